"""The GitHub Actions context: the ONE place that reads `GITHUB_*` variables and the event file.

Everything else receives what it needs from here: the run's event (`CiContext`), the API
settings (`ApiSettings`), who runs this job (`run_description`), the repository's name.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promote.build import git
from promote.errors import InputError

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_TIMEOUT_SECONDS = 10.0


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
class ApiSettings:
    """How to reach GitHub's REST API: where, with which token, waiting how long."""

    api_url: str
    token: str | None
    timeout: float

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        env = _environ(environ)
        raw_timeout = env.get("PROMOTE_GITHUB_TIMEOUT", str(DEFAULT_TIMEOUT_SECONDS))
        try:
            timeout = float(raw_timeout)
        except ValueError:
            raise InputError(
                "PROMOTE_GITHUB_TIMEOUT", None, f"{raw_timeout!r} is not a number"
            ) from None
        return cls(
            env.get("GITHUB_API_URL") or DEFAULT_API_URL, env.get("GITHUB_TOKEN") or None, timeout
        )


def run_description(environ: Mapping[str, str] | None = None) -> str | None:
    """The Actions run this process belongs to, in words, or None outside Actions."""
    env = _environ(environ)
    run_id = env.get("GITHUB_RUN_ID")
    if not run_id:
        return None
    repository = env.get("GITHUB_REPOSITORY", "")
    actor = env.get("GITHUB_ACTOR", "github")
    return f"{actor} via github-actions {repository} run {run_id}"


def repository_name(root: Path, environ: Mapping[str, str] | None = None) -> str:
    """owner/name on GitHub: GITHUB_REPOSITORY, else read from the `origin` remote's URL."""
    env = _environ(environ)
    if env.get("GITHUB_REPOSITORY"):
        return env["GITHUB_REPOSITORY"]
    url = git.run_git(root, "remote", "get-url", "origin", check=False)
    found = re.search(r"github\.com[:/]([^/]+)/([^/]+?)(?:\.git)?/?$", url)
    if found is None:
        raise InputError(
            "--open-pr", None, "set GITHUB_REPOSITORY=owner/name: origin is not a GitHub remote"
        )
    return f"{found[1]}/{found[2]}"


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
