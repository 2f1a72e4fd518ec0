"""The few GitHub REST endpoints the pipeline uses, over urllib, failing closed.

Each call ends in GitHub's whole, well-formed answer, or in an error: `GitHubError` when GitHub
refused or answered something unexpected, `GitHubUnavailable` when it could not be asked
(down, slow, rate limiting) within the retry budget. A list is read to its last page or not
at all. Credentials are a GitHub App's installation token (see `app`) or a token; either is
sent only to the API's own scheme and host, in the Authorization header, never in a message.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any

from promote.errors import GitHubError, GitHubUnavailable, InputError
from promote.github.app import READ_PERMISSIONS, WRITE_PERMISSIONS, GitHubApp, InstallationToken
from promote.github.context import ApiSettings
from promote.runtime.redact import redact

API_VERSION = "2022-11-28"
PAGE_SIZE = 100  # GitHub's largest page
# 10,000 items: far more than any pull request's reviews or a commit's checks. A longer list is
# refused: judging approvals or checks on part of it could pass what the rest would refuse.
MAX_PAGES = 100
DEFAULT_BACKOFF_SECONDS = 1.0
JITTER = 0.1  # up to 10% more on each backoff, so parallel jobs do not retry in step
# An apply can outlive the hour an installation token lives: renew it this long before it ends.
TOKEN_RENEWAL_SECONDS = 300.0
# Who an Actions GITHUB_TOKEN acts as; `GET /user` refuses to say.
ACTIONS_LOGIN = "github-actions[bot]"
SHA = re.compile(r"[0-9a-f]{40}")
LINK = re.compile(r'<([^>]*)>\s*;\s*rel="([^"]*)"')


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
class Issue:
    number: int
    title: str
    body: str
    url: str

    @classmethod
    def from_api(cls, body: Any) -> Issue:
        fields = body if isinstance(body, dict) else {}
        number, title = fields.get("number"), fields.get("title")
        if type(number) is not int or not isinstance(title, str):
            raise GitHubError("GitHub API: an issue without number or title")
        return cls(number, title, str(fields.get("body") or ""), str(fields.get("html_url") or ""))


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
    status: str  # queued, in_progress, completed (and waiting, requested, pending)
    conclusion: str | None  # success, failure, neutral, skipped, ...; None until completed

    @classmethod
    def from_api(cls, body: Any) -> CheckRun:
        fields = body if isinstance(body, dict) else {}
        name, status, conclusion = (fields.get(k) for k in ("name", "status", "conclusion"))
        if not isinstance(name, str) or not isinstance(status, str):
            raise GitHubError("GitHub API: a check run without name or status")
        if conclusion is not None and not isinstance(conclusion, str):
            raise GitHubError(f"GitHub API: check run {name!r} has a conclusion that is not text")
        return cls(name, status, conclusion)


@dataclass(frozen=True)
class CommitStatus:
    context: str
    state: str  # error, failure, pending, success

    @classmethod
    def from_api(cls, body: Any) -> CommitStatus:
        context = body.get("context") if isinstance(body, dict) else None
        state = body.get("state") if isinstance(body, dict) else None
        if not isinstance(context, str) or not isinstance(state, str):
            raise GitHubError("GitHub API: a commit status without context or state")
        return cls(context, state)


def split_repository(full_name: str, what: str = "GITHUB_REPOSITORY") -> tuple[str, str]:
    owner, sep, name = full_name.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise InputError(what, None, f"{full_name!r} is not owner/name")
    return owner, name


class GitHubClient:
    """A GitHub REST client for one repository."""

    def __init__(
        self, repository: str, settings: ApiSettings, backoff: float = DEFAULT_BACKOFF_SECONDS
    ) -> None:
        self.owner, self.name = split_repository(repository)
        self.api_url = settings.api_url.rstrip("/")
        self.timeout = settings.timeout
        self.retry_budget = settings.retry_budget
        self.backoff = backoff
        self._token = settings.token
        # An App wins over GITHUB_TOKEN: its key is checked now, its token minted when needed.
        self._app = GitHubApp(settings.app) if settings.app else None
        self._installation_id = settings.app.installation_id if settings.app else None
        self._installation_tokens: dict[bool, InstallationToken] = {}  # by "may write"
        self._identity: str | None = None
        self._origin = _origin(self.api_url)
        self._opener = urllib.request.build_opener(_SameOriginRedirects(self._origin))

    @classmethod
    def from_environ(
        cls, repository: str, environ: Mapping[str, str] | None = None
    ) -> GitHubClient:
        return cls(repository, ApiSettings.from_environ(environ))

    @property
    def has_credentials(self) -> bool:
        return self._app is not None or bool(self._token)

    def require_token(self, purpose: str) -> GitHubClient:
        """Refuse early, with the reason, rather than fail later with GitHub's 401."""
        if not self.has_credentials:
            raise InputError(
                "GITHUB_TOKEN",
                None,
                f"not set: {purpose} needs GITHUB_TOKEN or a GitHub App (PROMOTE_GITHUB_APP_ID "
                "and its private key)",
            )
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
        where = _where(method, path)
        authorization = self._authorization(write=method != "GET")
        answer = self._exchange(method, self.api_url + path, body, authorization, where)
        return _decode(answer, where, missing_ok)

    def _list(self, path: str, key: str | None = None) -> list[Any]:
        """Every item of a list endpoint, following its `Link: <...>; rel="next"` pages; `key`
        names the list inside an object answer (check runs)."""
        where = _where("GET", path)
        separator = "&" if "?" in path else "?"
        url: str | None = f"{self.api_url}{path}{separator}per_page={PAGE_SIZE}"
        items: list[Any] = []
        pages = 0
        while url is not None:
            if pages == MAX_PAGES:
                raise GitHubError(
                    f"{where} lists more than {MAX_PAGES * PAGE_SIZE} items: refusing rather "
                    "than reading part of it"
                )
            answer = self._exchange("GET", url, None, self._authorization(write=False), where)
            page = _decode(answer, where, missing_ok=False)
            if key is not None:
                page = page.get(key) if isinstance(page, dict) else None
            if not isinstance(page, list):
                inside = f" under {key!r}" if key else ""
                raise GitHubError(f"{where} did not answer a list{inside}")
            items.extend(page)
            pages += 1
            url = _next_page(answer.headers)
            if url is not None and _origin(url) != self._origin:
                raise GitHubError(
                    f"{where}: its next page is on {_origin(url)[1] or 'another host'}, not the "
                    "API's host: refusing to send the token there"
                )
        return items

    def _exchange(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        authorization: str | None,
        where: str,
    ) -> Answer:
        """GitHub's final answer to one call, retried with backoff while GitHub is down, slow
        or rate limiting, as long as the retry budget lasts."""
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            outcome = self._attempt(_api_request(method, url, body, authorization))
            if isinstance(outcome, Answer):
                if not outcome.is_transient():
                    return outcome
                problem, asked = outcome.problem(), outcome.asked_wait()
            else:
                problem, asked = outcome, None
            elapsed = time.monotonic() - started
            left = self.retry_budget - elapsed
            if left <= 0:
                tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
                raise GitHubUnavailable(
                    f"{where} failed after {tries} in {elapsed:.1f}s (last: {problem}): retry later"
                )
            if asked is not None and asked > left:
                raise GitHubUnavailable(
                    f"{where} failed: {problem}; GitHub asked to wait {asked:.0f}s, more than "
                    f"the {left:.0f}s left of the retry budget: retry later"
                )
            backoff = self.backoff * 2 ** (attempts - 1) * (1 + random.random() * JITTER)
            time.sleep(asked if asked is not None else min(left, backoff))

    def _attempt(self, request: urllib.request.Request) -> Answer | str:
        """One try, bounded as a whole by `timeout` (a socket timeout bounds each read only, and
        an answer that drips would never end); a string says why GitHub could not be asked."""
        outcome: list[Answer | Exception] = []

        def fetch() -> None:
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    outcome.append(Answer(response.status, response.headers, response.read()))
            except urllib.error.HTTPError as exc:
                try:
                    outcome.append(Answer(exc.code, exc.headers, exc.read()))
                except (OSError, http.client.HTTPException) as broken:
                    outcome.append(broken)
            except Exception as exc:
                outcome.append(exc)

        worker = threading.Thread(target=fetch, name="promote-github", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if not outcome:
            # Abandoned: a blocked read cannot be interrupted, and its socket timeout ends it.
            return f"timed out after {self.timeout:g}s"
        result = outcome[0]
        if isinstance(result, Answer):
            return result
        problem = _unreachable(result, self.timeout)
        if problem is None:
            raise result
        return problem

    # -- credentials -------------------------------------------------------------------------

    def _authorization(self, write: bool) -> str | None:
        if self._app is not None:
            return f"Bearer {self._installation_token(write)}"
        return f"Bearer {self._token}" if self._token else None

    def _installation_token(self, write: bool) -> str:
        """The App's token for this repository, minted on first use: read-only, unless this call
        writes (a comment, a pull request)."""
        held = self._installation_tokens.get(write)
        if held is None or held.expires_at - time.time() < TOKEN_RENEWAL_SECONDS:
            installation = self._installation()
            path = f"/app/installations/{installation}/access_tokens"
            permissions = WRITE_PERMISSIONS if write else READ_PERMISSIONS
            body = {"repositories": [self.name], "permissions": dict(permissions)}
            granted = ", ".join(f"{name}: {level}" for name, level in permissions.items())
            hint = f"the App's installation must grant {self.owner}/{self.name} {granted}"
            held = InstallationToken.from_api(self._as_app("POST", path, body, hint))
            self._installation_tokens[write] = held
        return held.token

    def _installation(self) -> int:
        if self._installation_id is None:
            found = self._as_app(
                "GET",
                f"{self.repo_path}/installation",
                hint=f"is the App installed on {self.owner}/{self.name}?",
            )
            installation = found.get("id") if isinstance(found, dict) else None
            if not isinstance(installation, int):
                raise GitHubError(
                    f"GitHub API: the installation of {self.owner}/{self.name} has no id"
                )
            self._installation_id = installation
        return self._installation_id

    def _as_app(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, hint: str = ""
    ) -> Any:
        """A call as the App itself, with a fresh JWT: a 401 means a wrong App id or key."""
        assert self._app is not None
        where = _where(method, path)
        authorization = f"Bearer {self._app.jwt()}"
        answer = self._exchange(method, self.api_url + path, body, authorization, where)
        if answer.status == 401:
            raise InputError(
                "PROMOTE_GITHUB_APP_ID",
                None,
                f"GitHub refused the App's JWT ({where}: {answer.problem()}): check the App id "
                f"and {self._app.key_variable}",
            )
        if not 200 <= answer.status < 300 and hint:
            raise GitHubError(f"{where} failed: {answer.problem()}: {hint}")
        return _decode(answer, where, missing_ok=False)

    def git_push_header(self) -> str:
        """The HTTP header git sends to push to this repository as these credentials, as
        actions/checkout configures it (the token needs contents: write)."""
        token = self._installation_token(write=True) if self._app else self._token
        if not token:
            raise InputError("GITHUB_TOKEN", None, "not set: pushing a branch needs a token")
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        return f"AUTHORIZATION: basic {basic}"

    def identity(self) -> str:
        """The login the credentials act as: comments it wrote carry it."""
        if self._identity is None:
            self._identity = self._app_login() if self._app else self._token_login()
        return self._identity

    def _app_login(self) -> str:
        app = self._as_app("GET", "/app")
        slug = app.get("slug") if isinstance(app, dict) else None
        if not isinstance(slug, str) or not slug:
            raise GitHubError("GitHub API GET /app answered an App without a slug")
        return f"{slug}[bot]"

    def _token_login(self) -> str:
        where = _where("GET", "/user")
        authorization = self._authorization(write=False)
        answer = self._exchange("GET", f"{self.api_url}/user", None, authorization, where)
        if answer.status == 403:  # "Resource not accessible by integration": Actions' token
            return ACTIONS_LOGIN
        user = _decode(answer, where, missing_ok=False)
        login = user.get("login") if isinstance(user, dict) else None
        if not isinstance(login, str) or not login:
            raise GitHubError(f"{where} answered a user without a login")
        return login

    # -- endpoints ---------------------------------------------------------------------------

    def pulls_for_commit(self, sha: str) -> list[PullRequest]:
        """GET /repos/{owner}/{repo}/commits/{sha}/pulls: pull requests that contain a commit."""
        return [
            PullRequest.from_api(p)
            for p in self._list(f"{self.repo_path}/commits/{urllib.parse.quote(sha)}/pulls")
        ]

    def reviews(self, number: int) -> list[Review]:
        """GET /repos/{owner}/{repo}/pulls/{number}/reviews, oldest first."""
        return [Review.from_api(r) for r in self._list(f"{self.repo_path}/pulls/{number}/reviews")]

    def is_team_member(self, organisation: str, team_slug: str, login: str) -> bool:
        """GET /orgs/{org}/teams/{team_slug}/memberships/{username}: active membership only."""
        path = "/orgs/{}/teams/{}/memberships/{}".format(
            *(urllib.parse.quote(part, safe="") for part in (organisation, team_slug, login))
        )
        membership = self.request("GET", path, missing_ok=True)
        return isinstance(membership, dict) and membership.get("state") == "active"

    def branch_tip(self, branch: str) -> str:
        """GET /repos/{owner}/{repo}/git/ref/heads/{branch}: the commit the branch points at."""
        path = f"{self.repo_path}/git/ref/heads/{urllib.parse.quote(branch)}"
        ref = self.request("GET", path)
        ref = ref if isinstance(ref, dict) else {}
        target = ref.get("object")
        sha = target.get("sha") if isinstance(target, dict) else None
        # The exact branch, at a commit: anything else is not a tip to compare with.
        exact = ref.get("ref") == f"refs/heads/{branch}"
        if not exact or not isinstance(sha, str) or not SHA.fullmatch(sha):
            raise GitHubError(f"{_where('GET', path)} did not answer the commit of {branch}")
        return sha

    def check_runs(self, sha: str) -> list[CheckRun]:
        """GET /repos/{owner}/{repo}/commits/{sha}/check-runs: the latest run of each check."""
        path = f"{self.repo_path}/commits/{urllib.parse.quote(sha)}/check-runs"
        return [CheckRun.from_api(run) for run in self._list(path, key="check_runs")]

    def commit_statuses(self, sha: str) -> list[CommitStatus]:
        """GET /repos/{owner}/{repo}/commits/{sha}/statuses, newest first."""
        path = f"{self.repo_path}/commits/{urllib.parse.quote(sha)}/statuses"
        return [CommitStatus.from_api(status) for status in self._list(path)]

    def open_pull_request(self, head_branch: str) -> PullRequest | None:
        """The open pull request from `head_branch` of this repository, if any."""
        head = urllib.parse.quote(f"{self.owner}:{head_branch}")
        found = self._list(f"{self.repo_path}/pulls?state=open&head={head}")
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

    def open_issues(self, label: str) -> list[Issue]:
        """GET /repos/{owner}/{repo}/issues: the open issues that carry `label`; the pull
        requests GitHub lists among issues are left out."""
        path = f"{self.repo_path}/issues?state=open&labels={urllib.parse.quote(label)}"
        return [Issue.from_api(item) for item in self._list(path) if "pull_request" not in item]

    def create_issue(self, title: str, body: str, labels: list[str]) -> Issue:
        payload = {"title": title, "body": body, "labels": labels}
        return Issue.from_api(self.request("POST", f"{self.repo_path}/issues", payload))

    def update_issue(self, number: int, title: str, body: str) -> Issue:
        payload = {"title": title, "body": body}
        return Issue.from_api(self.request("PATCH", f"{self.repo_path}/issues/{number}", payload))

    def upsert_comment(self, number: int, marker: str, body: str) -> int:
        """Edit in place the comment on issue/PR `number` that holds `marker` and that these
        credentials wrote, or create it: a comment anyone else wrote is never taken over."""
        for comment in self._list(f"{self.repo_path}/issues/{number}/comments"):
            if not isinstance(comment, dict) or marker not in str(comment.get("body") or ""):
                continue
            author = comment.get("user")
            if isinstance(author, dict) and author.get("login") == self.identity():
                comment_id = _comment_id(comment)
                self.request(
                    "PATCH", f"{self.repo_path}/issues/comments/{comment_id}", {"body": body}
                )
                return comment_id
        created = self.request("POST", f"{self.repo_path}/issues/{number}/comments", {"body": body})
        return _comment_id(created)

    # -- calls made once: their caller retries and records every attempt ---------------------

    def attempt(self, method: str, path: str, body: Mapping[str, Any]) -> Answer | str:
        """One try of one call, not retried: GitHub's answer, or why it could not be asked."""
        authorization = self._authorization(write=method != "GET")
        return self._attempt(_api_request(method, self.api_url + path, body, authorization))

    def create_deployment(
        self, ref: str, environment: str, payload: Mapping[str, Any], description: str
    ) -> Answer | str:
        """POST /repos/{owner}/{repo}/deployments, once. `required_contexts` is empty: promote
        has checked the commit's required checks itself, and GitHub's own check would refuse a
        merge commit whose statuses are not all green (409) after the champion has moved."""
        body = {
            "ref": ref,
            "environment": environment,
            "payload": dict(payload),
            "description": description[:140],
            "auto_merge": False,
            "required_contexts": [],
        }
        return self.attempt("POST", f"{self.repo_path}/deployments", body)

    def create_deployment_status(
        self,
        deployment_id: int,
        state: str,
        description: str,
        environment_url: str | None,
        log_url: str | None,
    ) -> Answer | str:
        """POST /repos/{owner}/{repo}/deployments/{id}/statuses, once."""
        body: dict[str, Any] = {"state": state, "description": description[:140]}
        if environment_url:
            body["environment_url"] = environment_url
        if log_url:
            body["log_url"] = log_url
        return self.attempt("POST", f"{self.repo_path}/deployments/{deployment_id}/statuses", body)


@dataclass(frozen=True)
class Answer:
    """What GitHub answered one attempt: status, headers and the whole body."""

    status: int
    headers: Message
    body: bytes

    def message(self) -> str:
        """GitHub's own `message` field, which says what went wrong, on one line."""
        try:
            parsed = json.loads(self.body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return ""
        message = parsed.get("message") if isinstance(parsed, dict) else None
        return " ".join(str(message).split())[:200] if message else ""

    def json(self) -> Any:
        """The body as JSON; None when it is not."""
        try:
            return json.loads(self.body) if self.body else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None

    def problem(self) -> str:
        message = self.message()
        return f"HTTP {self.status} ({message})" if message else f"HTTP {self.status}"

    def is_transient(self) -> bool:
        """Worth asking again: GitHub failing (5xx) or rate limiting (429, or 403 so marked)."""
        if self.status >= 500 or self.status == 429:
            return True
        return self.status == 403 and (
            self.headers.get("x-ratelimit-remaining") == "0"
            or self.headers.get("Retry-After") is not None
            or "secondary rate limit" in self.message().lower()
        )

    def asked_wait(self) -> float | None:
        """Seconds GitHub asked to wait (`Retry-After`, or the reset of a spent rate limit)."""
        retry_after = (self.headers.get("Retry-After") or "").strip()
        if retry_after.isdigit():
            return float(retry_after)
        reset = (self.headers.get("x-ratelimit-reset") or "").strip()
        if self.headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
            return max(0.0, int(reset) - time.time())
        return None


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect (a renamed repository) only on the API's own scheme and host: urllib
    would carry the Authorization header to any host a redirect names."""

    def __init__(self, origin: tuple[str, str]) -> None:
        self.origin = origin

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if _origin(newurl) != self.origin:
            return None  # urllib then answers the redirect itself, which `_decode` refuses
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _api_request(
    method: str, url: str, body: Mapping[str, Any] | None, authorization: str | None
) -> urllib.request.Request:
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "promote",
    }
    if authorization:
        headers["Authorization"] = authorization
    data = None
    if body is not None:
        # PR bodies and comments quote lineage and plans: nothing secret may leave in them.
        data = redact(json.dumps(body)).encode()
        headers["Content-Type"] = "application/json"
    return urllib.request.Request(url, data=data, headers=headers, method=method)


def _decode(answer: Answer, where: str, missing_ok: bool) -> Any:
    if answer.status == 404 and missing_ok:
        return None
    if 300 <= answer.status < 400:
        raise GitHubError(f"{where} redirected to another host: not followed with the token")
    if not 200 <= answer.status < 300:
        raise GitHubError(f"{where} failed: {answer.problem()}")
    try:
        return json.loads(answer.body) if answer.body else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise GitHubError(f"{where} answered something that is not JSON") from None


def _unreachable(error: Exception, timeout: float) -> str | None:
    """Why GitHub could not be asked, in words; None for an error that is not the network's."""
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, TimeoutError):
        return f"timed out after {timeout:g}s"
    if isinstance(error, urllib.error.URLError):
        return f"cannot connect ({reason})"
    if isinstance(error, (OSError, http.client.HTTPException)):
        return f"the connection broke ({error.__class__.__name__})"
    return None


def _where(method: str, path: str) -> str:
    return f"GitHub API {method} {path.split('?')[0]}"


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _next_page(headers: Message) -> str | None:
    for url, relations in LINK.findall(headers.get("Link") or ""):
        if "next" in relations.split():
            return str(url)
    return None


def _comment_id(comment: Any) -> int:
    comment_id = comment.get("id") if isinstance(comment, dict) else None
    if not isinstance(comment_id, int):
        raise GitHubError("GitHub API: a comment without id")
    return comment_id
