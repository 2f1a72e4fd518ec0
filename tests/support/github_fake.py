"""A GitHub REST API on loopback: the endpoints promote uses, answering in GitHub's real shapes.

State is plain dicts the tests fill. Lists are paged as GitHub pages them: `per_page` (at most
100) and `Link` headers with absolute URLs on the fake's own address (or `link_base`).

Faults: `faults` is a queue of `Fault`s, each answering the next `times` requests whose path
contains its `path` with an HTTP status (and headers such as Retry-After), or dripping the
answer one byte at a time. `fail_status` answers every request with that status and
`hang_seconds` delays every answer.

App mode (`register_app`): the `/app` routes and the installation lookup take only a JWT signed
by the registered key; every other route takes only a token minted by
`POST /app/installations/{id}/access_tokens`, within the permissions it was minted with.
"""

from __future__ import annotations

import base64
import json
import math
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

API_VERSION_HEADER = "X-GitHub-Api-Version"
MAX_PER_PAGE = 100
SHA = re.compile(r"[0-9a-f]{40}")
NOT_FOUND = {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
NOT_ACCESSIBLE = {"message": "Resource not accessible by integration"}
BAD_CREDENTIALS = {"message": "Bad credentials"}
BAD_JWT = {"message": "A JSON web token could not be decoded"}


def user(login: str) -> dict[str, Any]:
    """A simple-user object as GitHub embeds it in pulls, reviews and comments."""
    return {
        "login": login,
        "id": abs(hash(login)) % 10**8,
        "node_id": f"U_{login}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{login}",
        "html_url": f"https://github.com/{login}",
        "type": "Bot" if login.endswith("[bot]") else "User",
        "site_admin": False,
    }


@dataclass
class Fault:
    """The next `times` requests whose path contains `path`: answered `status` (with `headers`
    and GitHub's `message`), or, with status None, the real answer; dripped one byte every
    `drip_seconds` when that is set."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "Server Error"
    path: str = ""
    times: int = 1
    drip_seconds: float = 0.0


@dataclass
class Page:
    """One page of a list: its items, its Link header, and the key an object answer holds
    them under (check runs), with the list's total."""

    items: list[Any]
    link: str
    key: str | None = None
    total: int = 0

    def payload(self) -> Any:
        return {"total_count": self.total, self.key: self.items} if self.key else self.items


@dataclass
class FakeGitHub:
    owner: str = "acme"
    repo: str = "models"
    url: str = ""
    link_base: str = ""  # where Link headers point; the fake's own address when empty
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    teams: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    check_runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # newest first
    deployments: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    deployment_statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    # (method, path, Authorization) of every request, in order.
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    drips: list[float] = field(default_factory=list)  # seconds each dripped answer takes
    fail_status: int | None = None
    hang_seconds: float = 0.0
    # Who a plain token is: GET /user answers `user_login`, or 403 as to Actions' token, and
    # comments it writes are by `user_login`, else `bot_login`.
    user_login: str | None = None
    bot_login: str = "github-actions[bot]"
    app_id: int | None = None
    app_public_key: rsa.RSAPublicKey | None = None
    app_slug: str = "promote-app"
    installation_id: int = 4242
    minted: dict[str, dict[str, str]] = field(default_factory=dict)  # token -> permissions
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    _next_id: int = 1000
    _lock: threading.Lock = field(default_factory=threading.Lock)

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

    def add_issue(
        self, title: str, body: str, labels: list[str], state: str = "open"
    ) -> dict[str, Any]:
        # Issues and pull requests share one sequence of numbers, as on GitHub.
        number = max([0, *self.pulls, *self.issues]) + 1
        issue = {
            "id": self.next_id(),
            "number": number,
            "html_url": f"https://github.com/{self.full_name}/issues/{number}",
            "title": title,
            "body": body,
            "state": state,
            "labels": [{"name": name} for name in labels],
            "user": user(self.user_login or self.bot_login),
        }
        self.issues[number] = issue
        return issue

    def _issues_listed(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """GET /issues: issues and, as GitHub lists them there too, pull requests (marked with a
        `pull_request` key), filtered by state and by every label asked."""
        wanted = set(filter(None, query.get("labels", "").split(",")))
        state = query.get("state", "open")
        pulls = [
            {**p, "labels": p.get("labels", []), "pull_request": {}} for p in self.pulls.values()
        ]
        return [
            item
            for item in [*self.issues.values(), *pulls]
            if state in ("all", item["state"])
            and wanted <= {label["name"] for label in item["labels"]}
        ]

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
                "submitted_at": f"2026-11-20T11:{len(reviews) % 60:02d}:00Z",
                "commit_id": commit_id,
            }
        )

    def add_team_member(
        self, organisation: str, team: str, login: str, state: str = "active"
    ) -> None:
        self.teams.setdefault((organisation, team), {})[login] = state

    def add_comment(self, number: int, author: str, body: str) -> dict[str, Any]:
        comment = {"id": self.next_id(), "body": body, "user": user(author)}
        self.comments.setdefault(number, []).append(comment)
        return comment

    def add_check_run(
        self, sha: str, name: str, conclusion: str | None, status: str | None = None
    ) -> None:
        """A check run on `sha`; without a conclusion it is still in progress."""
        run_id = self.next_id()
        self.check_runs.setdefault(sha, []).append(
            {
                "id": run_id,
                "head_sha": sha,
                "node_id": f"CR_{run_id}",
                "external_id": "",
                "url": f"https://api.github.com/repos/{self.full_name}/check-runs/{run_id}",
                "status": status or ("completed" if conclusion else "in_progress"),
                "conclusion": conclusion,
                "started_at": "2026-11-20T10:00:00Z",
                "completed_at": "2026-11-20T10:05:00Z" if conclusion else None,
                "name": name,
                "app": {"slug": "github-actions"},
            }
        )

    def add_status(self, sha: str, context: str, state: str) -> None:
        """A commit status on `sha`, newer than those before (GitHub lists newest first)."""
        status_id = self.next_id()
        self.statuses.setdefault(sha, []).insert(
            0,
            {
                "id": status_id,
                "node_id": f"SC_{status_id}",
                "state": state,
                "description": None,
                "target_url": None,
                "context": context,
                "created_at": "2026-11-20T10:00:00Z",
                "creator": user("ci-bot"),
            },
        )

    def register_app(self, app_id: int, public_key: rsa.RSAPublicKey) -> None:
        """App mode: JWTs signed by the key's private half, then minted tokens only."""
        self.app_id = app_id
        self.app_public_key = public_key

    # -- faults ------------------------------------------------------------------------------

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path in path:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # -- routing -----------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, body: Any, authorization: str | None = None
    ) -> tuple[int, Any]:
        parsed = urllib.parse.urlsplit(path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        route = parsed.path
        repo = re.escape(f"/repos/{self.owner}/{self.repo}")
        if (
            route == "/app"
            or route.startswith("/app/")
            or re.fullmatch(rf"{repo}/installation", route)
        ):
            if not self._valid_jwt(authorization):
                return 401, BAD_JWT
            return self._app_route(method, route, body)
        permissions = self.minted.get((authorization or "").removeprefix("Bearer "))
        if self.app_public_key is not None:
            if permissions is None:
                return 401, BAD_CREDENTIALS
            writes = method != "GET"
            if route == "/user" or (writes and permissions.get("pull_requests") != "write"):
                return 403, NOT_ACCESSIBLE
            if route.startswith("/orgs/") and permissions.get("members") != "read":
                return 403, NOT_ACCESSIBLE
        if route == "/user":
            return (200, user(self.user_login)) if self.user_login else (403, NOT_ACCESSIBLE)
        if m := re.fullmatch(rf"{repo}/commits/([0-9a-f]{{40}})/pulls", route):
            found = [self.pulls[n] for n in self.commit_pulls.get(m[1], [])]
            return 200, self._page(route, found, query)
        if m := re.fullmatch(rf"{repo}/commits/([0-9a-f]{{40}})/check-runs", route):
            runs = self.check_runs.get(m[1], [])
            return 200, self._page(route, runs, query, key="check_runs")
        if m := re.fullmatch(rf"{repo}/commits/([0-9a-f]{{40}})/statuses", route):
            return 200, self._page(route, self.statuses.get(m[1], []), query)
        if re.fullmatch(rf"{repo}/deployments", route):
            if method == "POST":
                return self._create_deployment(body, permissions)
            return 200, self._page(route, self.deployments[::-1], query)
        if m := re.fullmatch(rf"{repo}/deployments/(\d+)/statuses", route):
            if int(m[1]) not in self.deployment_statuses:
                return 404, NOT_FOUND
            if method == "POST":
                return self._create_deployment_status(int(m[1]), body, permissions)
            return 200, self._page(route, self.deployment_statuses[int(m[1])][::-1], query)
        if m := re.fullmatch(rf"{repo}/git/ref/heads/(.+)", route):
            branch = urllib.parse.unquote(m[1])
            sha = self.branches.get(branch)
            if sha is None:
                return 404, NOT_FOUND
            ref_url = f"https://api.github.com/repos/{self.full_name}/git/refs/heads/{m[1]}"
            return 200, {
                "ref": f"refs/heads/{branch}",
                "node_id": f"REF_{m[1]}",
                "url": ref_url,
                "object": {
                    "sha": sha,
                    "type": "commit",
                    "url": f"https://api.github.com/repos/{self.full_name}/git/commits/{sha}",
                },
            }
        if m := re.fullmatch(rf"{repo}/pulls/(\d+)/reviews", route):
            return 200, self._page(route, self.reviews.get(int(m[1]), []), query)
        if m := re.fullmatch(rf"{repo}/pulls/(\d+)", route):
            pull = self.pulls.get(int(m[1]))
            if pull is None:
                return 404, NOT_FOUND
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
            return 200, self._page(route, found, query)
        if re.fullmatch(rf"{repo}/issues", route):
            if method == "POST":
                return 201, self.add_issue(body["title"], body["body"], body.get("labels", []))
            return 200, self._page(route, self._issues_listed(query), query)
        if m := re.fullmatch(rf"{repo}/issues/(\d+)", route):
            issue = self.issues.get(int(m[1]))
            if issue is None:
                return 404, NOT_FOUND
            if method == "PATCH":
                issue.update({k: body[k] for k in ("title", "body", "state") if k in body})
            return 200, issue
        if m := re.fullmatch(rf"{repo}/issues/(\d+)/comments", route):
            if method == "POST":
                return 201, self.add_comment(int(m[1]), self._login_of(permissions), body["body"])
            return 200, self._page(route, self.comments.get(int(m[1]), []), query)
        if m := re.fullmatch(rf"{repo}/issues/comments/(\d+)", route):
            for comment in (c for cs in self.comments.values() for c in cs):
                if comment["id"] == int(m[1]):
                    # As on GitHub, anyone who may write to the repository may edit it.
                    comment["body"] = body["body"]
                    return 200, comment
            return 404, NOT_FOUND
        if m := re.fullmatch(r"/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)", route):
            state = self.teams.get((m[1], m[2]), {}).get(m[3])
            if state is None:
                return 404, NOT_FOUND
            return 200, {
                "url": f"https://api.github.com/teams/1/memberships/{m[3]}",
                "role": "member",
                "state": state,
            }
        return 404, NOT_FOUND

    def _app_route(self, method: str, route: str, body: Any) -> tuple[int, Any]:
        if route == "/app" and method == "GET":
            return 200, {"id": self.app_id, "slug": self.app_slug, "name": "Promote"}
        if route.endswith("/installation") and method == "GET":
            return 200, {
                "id": self.installation_id,
                "app_id": self.app_id,
                "account": user(self.owner),
                "repository_selection": "selected",
            }
        wanted = f"/app/installations/{self.installation_id}/access_tokens"
        if route == wanted and method == "POST":
            self.token_requests.append(body or {})
            repositories = (body or {}).get("repositories")
            if repositories is not None and repositories != [self.repo]:
                return 422, {"message": "There is at least one repository that does not exist"}
            token = f"ghs_{secrets.token_hex(18)}"
            permissions = (body or {}).get("permissions") or {"pull_requests": "write"}
            self.minted[token] = permissions
            expires = datetime.now(timezone.utc) + timedelta(hours=1)
            return 201, {
                "token": token,
                "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "permissions": permissions,
                "repository_selection": "selected",
            }
        return 404, NOT_FOUND

    def _valid_jwt(self, authorization: str | None) -> bool:
        """A JWT GitHub would take: RS256, signed by the registered key, this App, not expired."""
        if self.app_public_key is None or not (authorization or "").startswith("Bearer "):
            return False
        token = (authorization or "").removeprefix("Bearer ")
        try:
            header_part, claims_part, signature_part = token.split(".")
            header = json.loads(_b64decode(header_part))
            claims = json.loads(_b64decode(claims_part))
            self.app_public_key.verify(
                _b64decode(signature_part),
                f"{header_part}.{claims_part}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
            issued, expires = int(claims["iat"]), int(claims["exp"])
        except (ValueError, KeyError, TypeError, InvalidSignature):
            return False
        now = time.time()
        return (
            header.get("alg") == "RS256"
            and str(claims.get("iss")) == str(self.app_id)
            and issued <= now + 60
            and now < expires <= issued + 600
        )

    def _login_of(self, permissions: dict[str, str] | None) -> str:
        """Who a request's credentials act as: the App's bot, or the token's user."""
        if permissions is not None and self.app_public_key is not None:
            return f"{self.app_slug}[bot]"
        return self.user_login or self.bot_login

    def _create_pull(self, body: dict[str, Any]) -> tuple[int, Any]:
        if any(
            p["head"]["ref"] == body["head"] and p["state"] == "open" for p in self.pulls.values()
        ):
            return 422, {
                "message": "Validation Failed",
                "errors": [{"message": "A pull request already exists"}],
            }
        number = max([0, *self.pulls, *self.issues]) + 1
        pull = self.add_pull(
            number, "promote-bot", "f" * 40, head_ref=body["head"], base_ref=body["base"]
        )
        pull.update(title=body["title"], body=body["body"])
        return 201, pull

    def _create_deployment(
        self, body: dict[str, Any], permissions: dict[str, str] | None
    ) -> tuple[int, Any]:
        """As GitHub validates it: a ref, and required contexts that must all have passed."""
        ref = body.get("ref")
        if not isinstance(ref, str) or not ref:
            return 422, {"message": 'Invalid request.\n\n"ref" wasn\'t supplied.'}
        required = body.get("required_contexts")
        if required is None or any(
            status["context"] == context and status["state"] != "success"
            for context in required
            for status in self.statuses.get(ref, [])
        ):
            return 409, {"message": "Conflict: Commit status checks failed for " + ref}
        deployment_id = self.next_id()
        deployment = {
            "url": f"https://api.github.com/repos/{self.full_name}/deployments/{deployment_id}",
            "id": deployment_id,
            "node_id": f"DE_{deployment_id}",
            "sha": ref if SHA.fullmatch(ref) else "0" * 40,
            "ref": ref,
            "task": body.get("task", "deploy"),
            "payload": body.get("payload", {}),
            "environment": body.get("environment", "production"),
            "description": body.get("description"),
            "creator": user(self._login_of(permissions)),
            "created_at": "2026-11-20T12:00:00Z",
            "updated_at": "2026-11-20T12:00:00Z",
        }
        self.deployments.append(deployment)
        self.deployment_statuses[deployment_id] = []
        return 201, deployment

    def _create_deployment_status(
        self, deployment_id: int, body: dict[str, Any], permissions: dict[str, str] | None
    ) -> tuple[int, Any]:
        states = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
        if body.get("state") not in states:
            return 422, {"message": "Validation Failed"}
        status_id = self.next_id()
        status = {
            "id": status_id,
            "node_id": f"DES_{status_id}",
            "state": body["state"],
            "description": body.get("description", ""),
            "environment_url": body.get("environment_url", ""),
            "log_url": body.get("log_url", ""),
            "creator": user(self._login_of(permissions)),
            "created_at": "2026-11-20T12:00:00Z",
        }
        self.deployment_statuses[deployment_id].append(status)
        return 201, status

    def _page(
        self, route: str, items: list[Any], query: dict[str, str], key: str | None = None
    ) -> Page:
        size = min(int(query.get("per_page", 30)), MAX_PER_PAGE)
        page = int(query.get("page", 1))
        last = max(1, math.ceil(len(items) / size))

        def link(number: int, relation: str) -> str:
            target = urllib.parse.urlencode({**query, "per_page": size, "page": number})
            return f'<{self.link_base or self.url}{route}?{target}>; rel="{relation}"'

        links = []
        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        return Page(items[(page - 1) * size : page * size], ", ".join(links), key, len(items))


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def serve(fake: FakeGitHub) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start `fake` on 127.0.0.1 on a free port; sets `fake.url`."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            authorization = self.headers.get("Authorization")
            fake.requests.append((self.command, self.path, authorization))
            fault = fake.take_fault(self.path)
            if fake.hang_seconds:
                time.sleep(fake.hang_seconds)
            headers: dict[str, str] = {}
            if fault is not None and fault.status is not None:
                status, payload = fault.status, {"message": fault.message}
                headers.update(fault.headers)
            elif fake.fail_status is not None:
                status, payload = fake.fail_status, {"message": "Server Error"}
            else:
                status, payload = fake.handle(self.command, self.path, body, authorization)
            if isinstance(payload, Page):
                if payload.link:
                    headers["Link"] = payload.link
                payload = payload.payload()
            raw = json.dumps(payload).encode()
            headers.update(
                {
                    "Content-Type": "application/json; charset=utf-8",
                    "Content-Length": str(len(raw)),
                }
            )
            try:
                if fault is not None and fault.drip_seconds:
                    self._drip(status, headers, raw, fault.drip_seconds)
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (timeout tests)

        def _drip(self, status: int, headers: dict[str, str], raw: bytes, seconds: float) -> None:
            """Status line, headers and body one byte at a time: each read is quick, the
            whole answer slow."""
            lines = [f"{self.protocol_version} {status} {self.responses.get(status, ('',))[0]}"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            answer = ("\r\n".join(lines) + "\r\n\r\n").encode() + raw
            fake.drips.append(len(answer) * seconds)
            for index in range(len(answer)):
                self.wfile.write(answer[index : index + 1])
                time.sleep(seconds)

        do_GET = do_POST = do_PATCH = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll interval: `shutdown` waits for one, at the end of every test.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return server, thread
