"""The GitHub Actions context: the ONE place that reads `GITHUB_*` variables and the event file.

Everything else receives what it needs from here: the run's event (`CiContext`), the API
settings (`ApiSettings`), who runs this job (`run_description`), the repository's name.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promote.build import git
from promote.errors import InputError

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_RETRY_BUDGET_SECONDS = 60.0


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


@dataclass(frozen=True)
class CiContext:
    """Where this run comes from, as GitHub Actions describes it in the environment."""

    github_actions: bool
    event_name: str
    event_path: str
    ref: str
    sha: str
    repository: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> CiContext:
        env = _environ(environ)
        return cls(
            github_actions=env.get("GITHUB_ACTIONS") == "true",
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            event_path=env.get("GITHUB_EVENT_PATH", ""),
            ref=env.get("GITHUB_REF", ""),
            sha=env.get("GITHUB_SHA", ""),
            repository=env.get("GITHUB_REPOSITORY", ""),
        )


@dataclass(frozen=True)
class AppSettings:
    """A GitHub App to authenticate as: its id, its private key (PEM text), and the variable
    that held the key, named when the key is wrong."""

    app_id: str
    private_key: str = field(repr=False)
    key_variable: str = "PROMOTE_GITHUB_APP_PRIVATE_KEY"
    installation_id: int | None = None

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> AppSettings | None:
        """The App the PROMOTE_GITHUB_APP_* variables describe, None when none is set."""
        app_id = env.get("PROMOTE_GITHUB_APP_ID", "").strip()
        key_text = env.get("PROMOTE_GITHUB_APP_PRIVATE_KEY", "")
        key_file = env.get("PROMOTE_GITHUB_APP_PRIVATE_KEY_FILE", "").strip()
        raw_installation = env.get("PROMOTE_GITHUB_APP_INSTALLATION_ID", "").strip()
        # Actions expands a missing secret to "": an empty variable is an unset one.
        if not (app_id or key_text.strip() or key_file or raw_installation):
            return None
        if not app_id.isdigit():
            problem = f"{app_id!r} is not a number" if app_id else "not set"
            raise InputError(
                "PROMOTE_GITHUB_APP_ID", None, f"{problem}: a GitHub App needs its numeric id"
            )
        if key_text.strip() and key_file:
            raise InputError(
                "PROMOTE_GITHUB_APP_PRIVATE_KEY",
                None,
                "set it or PROMOTE_GITHUB_APP_PRIVATE_KEY_FILE, not both",
            )
        key_variable = "PROMOTE_GITHUB_APP_PRIVATE_KEY"
        if key_file:
            key_variable = "PROMOTE_GITHUB_APP_PRIVATE_KEY_FILE"
            try:
                key_text = Path(key_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(
                    key_variable, None, f"cannot read {key_file} ({exc.__class__.__name__})"
                ) from None
        elif not key_text.strip():
            raise InputError(
                key_variable,
                None,
                "not set: PROMOTE_GITHUB_APP_ID needs the App's private key "
                "(or PROMOTE_GITHUB_APP_PRIVATE_KEY_FILE)",
            )
        if raw_installation and not raw_installation.isdigit():
            raise InputError(
                "PROMOTE_GITHUB_APP_INSTALLATION_ID", None, f"{raw_installation!r} is not a number"
            )
        installation_id = int(raw_installation) if raw_installation else None
        return cls(app_id, key_text, key_variable, installation_id)


@dataclass(frozen=True)
class ApiSettings:
    """How to reach GitHub's REST API: where, as whom (a token, or a GitHub App, which wins),
    waiting how long for one attempt, and retrying for how long in all."""

    api_url: str
    token: str | None = field(repr=False)
    timeout: float
    retry_budget: float = DEFAULT_RETRY_BUDGET_SECONDS
    app: AppSettings | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        env = _environ(environ)
        timeout = _seconds(env, "PROMOTE_GITHUB_TIMEOUT", DEFAULT_TIMEOUT_SECONDS)
        if timeout <= 0:
            raise InputError("PROMOTE_GITHUB_TIMEOUT", None, "must be more than 0 seconds")
        retry_budget = _seconds(env, "PROMOTE_GITHUB_RETRY_BUDGET", DEFAULT_RETRY_BUDGET_SECONDS)
        if retry_budget < 0:
            raise InputError("PROMOTE_GITHUB_RETRY_BUDGET", None, "must be 0 seconds or more")
        return cls(
            api_url=env.get("GITHUB_API_URL") or DEFAULT_API_URL,
            token=env.get("GITHUB_TOKEN") or None,
            timeout=timeout,
            retry_budget=retry_budget,
            app=AppSettings.from_environ(env),
        )


def _seconds(env: Mapping[str, str], variable: str, default: float) -> float:
    raw = env.get(variable) or str(default)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise InputError(variable, None, f"{raw!r} is not a number of seconds")
    return seconds


def run_description(environ: Mapping[str, str] | None = None) -> str | None:
    """The Actions run this process belongs to, in words, or None outside Actions."""
    env = _environ(environ)
    run_id = env.get("GITHUB_RUN_ID")
    if not run_id:
        return None
    repository = env.get("GITHUB_REPOSITORY", "")
    actor = env.get("GITHUB_ACTOR", "github")
    return f"{actor} via github-actions {repository} run {run_id}"


def run_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The web page of the Actions run this process belongs to, or None outside Actions."""
    env = _environ(environ)
    run_id, repository = env.get("GITHUB_RUN_ID"), env.get("GITHUB_REPOSITORY")
    if not run_id or not repository:
        return None
    server = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    return f"{server}/{repository}/actions/runs/{run_id}"


GITHUB_REMOTE = re.compile(r"github\.com[:/]([^/]+)/([^/]+?)(?:\.git)?/?$")


def github_repository(url: str) -> str | None:
    """owner/name of a github.com remote URL (https or ssh), or None for any other URL."""
    found = GITHUB_REMOTE.search(url)
    return f"{found[1]}/{found[2]}" if found else None


def repository_name(root: Path, environ: Mapping[str, str] | None = None) -> str:
    """owner/name on GitHub: GITHUB_REPOSITORY, else read from the `origin` remote's URL."""
    env = _environ(environ)
    if env.get("GITHUB_REPOSITORY"):
        return env["GITHUB_REPOSITORY"]
    found = github_repository(git.run_git(root, "remote", "get-url", "origin", check=False))
    if found is None:
        raise InputError(
            "--open-pr", None, "set GITHUB_REPOSITORY=owner/name: origin is not a GitHub remote"
        )
    return found


def step_summary_path(environ: Mapping[str, str] | None = None) -> Path:
    """The file GitHub Actions shows as the job summary."""
    target = _environ(environ).get("GITHUB_STEP_SUMMARY")
    if not target:
        raise InputError("GITHUB_STEP_SUMMARY", None, "not set: --summary runs in GitHub Actions")
    return Path(target)


def pull_request_number(environ: Mapping[str, str] | None = None) -> int:
    """The number of the pull request a `pull_request` workflow runs for."""
    env = _environ(environ)
    event_path = env.get("GITHUB_EVENT_PATH", "")
    if env.get("GITHUB_EVENT_NAME") != "pull_request" or not event_path:
        raise InputError("--comment", None, "needs a pull_request event (GITHUB_EVENT_PATH)")
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
        return int(event["pull_request"]["number"])
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(event_path, "pull_request.number", "missing or not a number") from None


def read_event(path: str) -> dict[str, Any]:
    """The event payload GitHub wrote for this run, as a JSON object."""
    if not path:
        raise InputError("GITHUB_EVENT_PATH", None, "not set: the event payload is needed")
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            path, None, f"cannot read the event payload ({exc.__class__.__name__})"
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(path, None, f"the event payload is not JSON (line {exc.lineno})") from None
    if not isinstance(event, dict):
        raise InputError(path, None, "the event payload must be a JSON object")
    return event
