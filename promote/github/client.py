"""The few GitHub REST endpoints the pipeline uses, over urllib with bounded timeouts.

Configuration comes from the environment GitHub Actions provides, read by `context`: the API
URL and a token. The token is sent only in the
Authorization header and never appears in an error message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promote.errors import GitHubError, GitHubUnavailable, InputError
from promote.github.context import ApiSettings
from promote.runtime.redact import redact

PAGE_SIZE = 100
MAX_PAGES = 20
API_VERSION = "2022-11-28"


@dataclass(frozen=True)
class PullRequest:
    number: int
    author: str
    head_sha: str
    base_ref: str
    merged: bool
    url: str

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> PullRequest:
        try:
            return cls(
                number=int(body["number"]),
                author=str(body["user"]["login"]),
                head_sha=str(body["head"]["sha"]),
                base_ref=str(body["base"]["ref"]),
                merged=body.get("merged_at") is not None,
                url=str(body.get("html_url") or ""),
            )
        except (KeyError, TypeError, ValueError):
            raise GitHubError(
                "GitHub API: a pull request without number, user, head or base"
            ) from None


@dataclass(frozen=True)
class Review:
    reviewer: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING
    commit_id: str

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> Review:
        try:
            return cls(
                reviewer=str(body["user"]["login"]),
                state=str(body["state"]),
                commit_id=str(body.get("commit_id") or ""),
            )
        except (KeyError, TypeError):
            raise GitHubError("GitHub API: a review without user or state") from None


@dataclass(frozen=True)
class CheckRun:
    name: str
    status: str  # queued, in_progress, completed
    conclusion: str | None  # success, failure, neutral, skipped, cancelled, timed_out...


@dataclass(frozen=True)
class CommitStatus:
    context: str
    state: str  # success, failure, error, pending


def split_repository(full_name: str, what: str = "GITHUB_REPOSITORY") -> tuple[str, str]:
    owner, sep, name = full_name.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise InputError(what, None, f"{full_name!r} is not owner/name")
    return owner, name


class GitHubClient:
    """A GitHub REST client for one repository."""

    def __init__(self, repository: str, token: str | None, api_url: str, timeout: float) -> None:
        self.owner, self.name = split_repository(repository)
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._token = token

    @classmethod
    def from_environ(
        cls, repository: str, environ: Mapping[str, str] | None = None
    ) -> GitHubClient:
        settings = ApiSettings.from_environ(environ)
        return cls(repository, settings.token, settings.api_url, settings.timeout)

    @property
    def has_credentials(self) -> bool:
        return bool(self._token)

    def require_token(self, purpose: str) -> GitHubClient:
        """Refuse early, with the reason, rather than fail later with GitHub's 401."""
        if not self._token:
            raise InputError("GITHUB_TOKEN", None, f"not set: {purpose} needs a GitHub token")
        return self

    @property
    def repo_path(self) -> str:
        return f"/repos/{urllib.parse.quote(self.owner)}/{urllib.parse.quote(self.name)}"

    # -- transport ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        """One call; a 404 is None when `missing_ok`, any other failure a one-line GitHubError."""
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "promote",
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        data = None
        if body is not None:
            # PR bodies and comments quote lineage and plans: nothing secret may leave in them.
            data = redact(json.dumps(body)).encode()
            headers["Content-Type"] = "application/json"
        where = f"GitHub API {method} {path.split('?')[0]}"
        request = urllib.request.Request(
            self.api_url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing_ok:
                return None
            failure = GitHubUnavailable if exc.code >= 500 or exc.code == 429 else GitHubError
            raise failure(f"{where} failed: HTTP {exc.code} {_api_message(exc)}".rstrip()) from None
        except TimeoutError:
            raise GitHubUnavailable(f"{where} timed out after {self.timeout:g}s") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise GitHubUnavailable(f"{where} timed out after {self.timeout:g}s") from None
            raise GitHubUnavailable(f"{where} failed: {reason}") from None
        except OSError as exc:
            raise GitHubUnavailable(f"{where} failed: {exc.__class__.__name__}") from None
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError:
            raise GitHubError(f"{where} answered something that is not JSON") from None

    def _list(self, path: str, key: str | None = None) -> list[Any]:
        """Every page of a list endpoint (GitHub pages with per_page and page); `key` names
        the list inside an object answer."""
        items: list[Any] = []
        separator = "&" if "?" in path else "?"
        for page in range(1, MAX_PAGES + 1):
            batch = self.request("GET", f"{path}{separator}per_page={PAGE_SIZE}&page={page}")
            if key is not None and isinstance(batch, dict):
                batch = batch.get(key)
            if not isinstance(batch, list):
                raise GitHubError(f"GitHub API GET {path.split('?')[0]} did not answer a list")
            items.extend(batch)
            if len(batch) < PAGE_SIZE:
                return items
        return items

    # -- endpoints ---------------------------------------------------------------------------

    def pulls_for_commit(self, sha: str) -> list[PullRequest]:
        """GET /repos/{owner}/{repo}/commits/{sha}/pulls: pull requests that contain a commit."""
        return [
            PullRequest.from_api(p) for p in self._list(f"{self.repo_path}/commits/{sha}/pulls")
        ]

    def reviews(self, number: int) -> list[Review]:
        """GET /repos/{owner}/{repo}/pulls/{number}/reviews, oldest first."""
        return [Review.from_api(r) for r in self._list(f"{self.repo_path}/pulls/{number}/reviews")]

    def branch_tip(self, branch: str) -> str:
        """GET /repos/{owner}/{repo}/git/ref/heads/{branch}: the commit the branch is at now."""
        ref = self.request("GET", f"{self.repo_path}/git/ref/heads/{urllib.parse.quote(branch)}")
        sha = (ref.get("object") or {}).get("sha") if isinstance(ref, dict) else None
        if not isinstance(sha, str) or len(sha) != 40:
            raise GitHubError(f"GitHub API: no commit for branch {branch}")
        return sha

    def check_runs(self, sha: str) -> list[CheckRun]:
        """GET /repos/{owner}/{repo}/commits/{sha}/check-runs: the latest run of each check."""
        found = self._list(f"{self.repo_path}/commits/{sha}/check-runs", key="check_runs")
        try:
            return [CheckRun(str(r["name"]), str(r["status"]), r.get("conclusion")) for r in found]
        except (KeyError, TypeError):
            raise GitHubError("GitHub API: a check run without name or status") from None

    def commit_statuses(self, sha: str) -> list[CommitStatus]:
        """GET /repos/{owner}/{repo}/commits/{sha}/statuses, newest first."""
        found = self._list(f"{self.repo_path}/commits/{sha}/statuses")
        try:
            return [CommitStatus(str(s["context"]), str(s["state"])) for s in found]
        except (KeyError, TypeError):
            raise GitHubError("GitHub API: a commit status without context or state") from None

    def is_team_member(self, organisation: str, team_slug: str, login: str) -> bool:
        """GET /orgs/{org}/teams/{team_slug}/memberships/{username}: active membership only."""
        path = "/orgs/{}/teams/{}/memberships/{}".format(
            *(urllib.parse.quote(part) for part in (organisation, team_slug, login))
        )
        membership = self.request("GET", path, missing_ok=True)
        return isinstance(membership, dict) and membership.get("state") == "active"

    def open_pull_request(self, head_branch: str) -> PullRequest | None:
        """The open pull request from `head_branch` of this repository, if any."""
        head = urllib.parse.quote(f"{self.owner}:{head_branch}")
        found = self.request(
            "GET", f"{self.repo_path}/pulls?state=open&head={head}&per_page={PAGE_SIZE}"
        )
        if not isinstance(found, list):
            raise GitHubError("GitHub API GET pulls did not answer a list")
        return PullRequest.from_api(found[0]) if found else None

    def create_pull_request(
        self, head_branch: str, base: str, title: str, body: str
    ) -> PullRequest:
        payload = {"title": title, "head": head_branch, "base": base, "body": body}
        return PullRequest.from_api(self.request("POST", f"{self.repo_path}/pulls", payload))

    def update_pull_request(self, number: int, title: str, body: str) -> PullRequest:
        payload = {"title": title, "body": body}
        return PullRequest.from_api(
            self.request("PATCH", f"{self.repo_path}/pulls/{number}", payload)
        )

    def upsert_comment(self, number: int, marker: str, body: str) -> int:
        """Create, or edit in place, the one comment on issue/PR `number` that contains `marker`."""
        comments = self._list(f"{self.repo_path}/issues/{number}/comments")
        for comment in comments:
            if isinstance(comment, dict) and marker in str(comment.get("body") or ""):
                comment_id = int(comment["id"])
                self.request(
                    "PATCH", f"{self.repo_path}/issues/comments/{comment_id}", {"body": body}
                )
                return comment_id
        created = self.request("POST", f"{self.repo_path}/issues/{number}/comments", {"body": body})
        return int(created["id"])


def _api_message(exc: urllib.error.HTTPError) -> str:
    """GitHub's own `message` field, which says what went wrong, trimmed to one line."""
    try:
        body = json.loads(exc.read() or b"{}")
    except (json.JSONDecodeError, OSError):
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return f"({' '.join(str(message).split())[:200]})" if message else ""
