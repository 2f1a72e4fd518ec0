"""A GitHub REST API on loopback: the endpoints promote uses, answering in GitHub's real shapes.

State is plain dicts the tests fill; `fail_status` answers every request with that HTTP error
and `hang_seconds` delays every answer (for timeout tests).
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_VERSION_HEADER = "X-GitHub-Api-Version"


def user(login: str) -> dict[str, Any]:
    """A simple-user object as GitHub embeds it in pulls, reviews and comments."""
    return {
        "login": login,
        "id": abs(hash(login)) % 10**8,
        "node_id": f"U_{login}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{login}",
        "html_url": f"https://github.com/{login}",
        "type": "User",
        "site_admin": False,
    }


@dataclass
class FakeGitHub:
    owner: str = "acme"
    repo: str = "models"
    url: str = ""
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    teams: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    check_runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    fail_status: int | None = None
    hang_seconds: float = 0.0
    _next_id: int = 1000

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- building state in GitHub's shapes ---------------------------------------------------

    def add_pull(
        self,
        number: int,
        author: str,
        head_sha: str,
        head_ref: str = "promote/prod/churn-v1",
        base_ref: str = "main",
        merge_commit_sha: str | None = None,
        commits: tuple[str, ...] = (),
        title: str = "Promote churn",
        body: str = "",
    ) -> dict[str, Any]:
        repo_url = f"https://api.github.com/repos/{self.full_name}"
        pull = {
            "url": f"{repo_url}/pulls/{number}",
            "id": self.next_id(),
            "node_id": f"PR_{number}",
            "html_url": f"https://github.com/{self.full_name}/pull/{number}",
            "number": number,
            "state": "closed" if merge_commit_sha else "open",
            "locked": False,
            "title": title,
            "body": body,
            "user": user(author),
            "created_at": "2026-11-20T10:00:00Z",
            "updated_at": "2026-11-20T12:00:00Z",
            "closed_at": "2026-11-20T12:00:00Z" if merge_commit_sha else None,
            "merged_at": "2026-11-20T12:00:00Z" if merge_commit_sha else None,
            "merge_commit_sha": merge_commit_sha,
            "draft": False,
            "head": {
                "label": f"{self.owner}:{head_ref}",
                "ref": head_ref,
                "sha": head_sha,
                "user": user(self.owner),
                "repo": {"full_name": self.full_name},
            },
            "base": {
                "label": f"{self.owner}:{base_ref}",
                "ref": base_ref,
                "sha": "0" * 40,
                "user": user(self.owner),
                "repo": {"full_name": self.full_name},
            },
            "author_association": "MEMBER",
        }
        self.pulls[number] = pull
        for sha in {head_sha, *commits, *([merge_commit_sha] if merge_commit_sha else [])}:
            self.commit_pulls.setdefault(sha, []).append(number)
        return pull

    def add_review(self, number: int, reviewer: str, state: str, commit_id: str) -> None:
        reviews = self.reviews.setdefault(number, [])
        review_id = self.next_id()
        reviews.append(
            {
                "id": review_id,
                "node_id": f"PRR_{review_id}",
                "user": user(reviewer),
                "body": "",
                "state": state,
                "html_url": f"https://github.com/{self.full_name}/pull/{number}#pullrequestreview-{review_id}",
                "pull_request_url": f"https://api.github.com/repos/{self.full_name}/pulls/{number}",
                "author_association": "MEMBER",
                "submitted_at": f"2026-11-20T11:{len(reviews):02d}:00Z",
                "commit_id": commit_id,
            }
        )

    def add_check_run(self, sha: str, name: str, conclusion: str | None) -> None:
        """A check run on `sha`; no conclusion means it is still in progress."""
        runs = self.check_runs.setdefault(sha, [])
        runs.append(
            {
                "id": self.next_id(),
                "head_sha": sha,
                "name": name,
                "status": "completed" if conclusion else "in_progress",
                "conclusion": conclusion,
                "app": {"slug": "github-actions"},
            }
        )

    def add_status(self, sha: str, context: str, state: str) -> None:
        """A commit status on `sha`, newest first as GitHub lists them."""
        self.statuses.setdefault(sha, []).insert(
            0, {"id": self.next_id(), "context": context, "state": state}
        )

    def add_team_member(
        self, organisation: str, team: str, login: str, state: str = "active"
    ) -> None:
        self.teams.setdefault((organisation, team), {})[login] = state

    # -- routing -----------------------------------------------------------------------------

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parsed = urllib.parse.urlsplit(path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        route = parsed.path
        repo = re.escape(f"/repos/{self.owner}/{self.repo}")
        if m := re.fullmatch(rf"{repo}/commits/([0-9a-f]{{40}})/pulls", route):
            return 200, self._page([self.pulls[n] for n in self.commit_pulls.get(m[1], [])], query)
        if m := re.fullmatch(rf"{repo}/git/ref/heads/(.+)", route):
            sha = self.branches.get(urllib.parse.unquote(m[1]))
            if sha is None:
                return 404, {"message": "Not Found"}
            return 200, {"ref": f"refs/heads/{m[1]}", "object": {"type": "commit", "sha": sha}}
        if m := re.fullmatch(rf"{repo}/commits/([0-9a-f]{{40}})/check-runs", route):
            runs = self.check_runs.get(m[1], [])
            return 200, {"total_count": len(runs), "check_runs": self._page(runs, query)}
        if m := re.fullmatch(rf"{repo}/commits/([0-9a-f]{{40}})/statuses", route):
            return 200, self._page(self.statuses.get(m[1], []), query)
        if m := re.fullmatch(rf"{repo}/pulls/(\d+)/reviews", route):
            return 200, self._page(self.reviews.get(int(m[1]), []), query)
        if m := re.fullmatch(rf"{repo}/pulls/(\d+)", route):
            pull = self.pulls.get(int(m[1]))
            if pull is None:
                return 404, {"message": "Not Found"}
            if method == "PATCH":
                pull.update({k: body[k] for k in ("title", "body") if k in body})
            return 200, pull
        if re.fullmatch(rf"{repo}/pulls", route):
            if method == "POST":
                return self._create_pull(body)
            head = query.get("head", "")
            found = [
                p
                for p in self.pulls.values()
                if (not head or p["head"]["label"] == head)
                and p["state"] == query.get("state", "open")
            ]
            return 200, self._page(found, query)
        if m := re.fullmatch(rf"{repo}/issues/(\d+)/comments", route):
            comments = self.comments.setdefault(int(m[1]), [])
            if method == "POST":
                comment = {
                    "id": self.next_id(),
                    "body": body["body"],
                    "user": user("github-actions[bot]"),
                }
                comments.append(comment)
                return 201, comment
            return 200, self._page(comments, query)
        if m := re.fullmatch(rf"{repo}/issues/comments/(\d+)", route):
            for comment in (c for cs in self.comments.values() for c in cs):
                if comment["id"] == int(m[1]):
                    comment["body"] = body["body"]
                    return 200, comment
            return 404, {"message": "Not Found"}
        if m := re.fullmatch(r"/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)", route):
            state = self.teams.get((m[1], m[2]), {}).get(m[3])
            if state is None:
                return 404, {
                    "message": "Not Found",
                    "documentation_url": "https://docs.github.com/rest",
                }
            return 200, {
                "url": f"https://api.github.com/teams/1/memberships/{m[3]}",
                "role": "member",
                "state": state,
            }
        return 404, {"message": "Not Found"}

    def _create_pull(self, body: dict[str, Any]) -> tuple[int, Any]:
        if any(
            p["head"]["ref"] == body["head"] and p["state"] == "open" for p in self.pulls.values()
        ):
            return 422, {
                "message": "Validation Failed",
                "errors": [{"message": "A pull request already exists"}],
            }
        number = max([0, *self.pulls]) + 1
        pull = self.add_pull(
            number, "promote-bot", "f" * 40, head_ref=body["head"], base_ref=body["base"]
        )
        pull.update(title=body["title"], body=body["body"])
        return 201, pull

    @staticmethod
    def _page(items: list[Any], query: dict[str, str]) -> list[Any]:
        size = int(query.get("per_page", 30))
        page = int(query.get("page", 1))
        return items[(page - 1) * size : page * size]


def serve(fake: FakeGitHub) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start `fake` on 127.0.0.1 on a free port; sets `fake.url`."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            fake.requests.append((self.command, self.path, self.headers.get("Authorization")))
            if fake.hang_seconds:
                time.sleep(fake.hang_seconds)
            if fake.fail_status is not None:
                status, payload = fake.fail_status, {"message": "Server Error"}
            else:
                status, payload = fake.handle(self.command, self.path, body)
            raw = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (timeout tests)

        do_GET = do_POST = do_PATCH = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
