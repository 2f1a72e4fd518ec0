"""Required checks: a pinned commit is promoted only once the checks its environment names have
passed on GitHub (check runs and commit statuses alike, as branch protection counts them)."""

from __future__ import annotations

from pathlib import Path

from promote.errors import InputError
from promote.github.client import GitHubClient
from promote.github.context import github_repository, repository_name

# What branch protection accepts as a passed check run; a commit status must be "success".
PASSING_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})


class RequiredChecks:
    """The checks of pinned commits, asked of GitHub once per repository and commit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._clients: dict[str, GitHubClient] = {}
        self._verdicts: dict[tuple[str, str], dict[str, str]] = {}

    def problem(self, location: str, commit: str, required: list[str]) -> str | None:
        """Which required check `commit` has not passed, in words, or None when all have."""
        repository = self._repository(location)
        if repository is None:
            return f"required_checks are read from GitHub, and {location} is not on GitHub"
        verdicts = self._verdicts_of(repository, commit)
        problems = []
        for name in required:
            verdict = verdicts.get(name)
            if verdict is None:
                problems.append(f"{name!r} never ran on it")
            elif verdict != "passed":
                problems.append(f"{name!r} is {verdict}")
        if not problems:
            return None
        return f"{commit[:12]} has not passed the required checks: {'; '.join(problems)}"

    def _repository(self, location: str) -> str | None:
        found = github_repository(location)
        if found:
            return found
        if "://" in location or location.startswith("git@"):
            return None
        try:
            return repository_name(self.root)  # the GitOps repository holds the code
        except InputError:
            return None

    def _verdicts_of(self, repository: str, commit: str) -> dict[str, str]:
        """Check or status name -> "passed", or what it is instead (failure, in progress...)."""
        key = (repository, commit)
        if key in self._verdicts:
            return self._verdicts[key]
        if repository not in self._clients:
            self._clients[repository] = GitHubClient.from_environ(repository).require_token(
                "checking required_checks"
            )
        api = self._clients[repository]
        verdicts: dict[str, str] = {}
        for run in api.check_runs(commit):
            if run.status != "completed":
                verdict = run.status.replace("_", " ")
            elif run.conclusion in PASSING_CONCLUSIONS:
                verdict = "passed"
            else:
                verdict = (run.conclusion or "unknown").replace("_", " ")
            # Several runs of one name (re-runs, two apps): each must have passed.
            if verdicts.get(run.name, "passed") == "passed":
                verdicts[run.name] = verdict
        for status in api.commit_statuses(commit):  # newest first: the first is its state
            verdicts.setdefault(
                status.context, "passed" if status.state == "success" else status.state
            )
        self._verdicts[key] = verdicts
        return verdicts
