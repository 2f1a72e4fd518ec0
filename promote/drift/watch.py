"""`promote watch`: the drift check of every champion, as a schedule runs it.

Each model of each environment with a champion is checked against its training profile on the
environment's current data (`promote drift`). With `--summary` the findings go to the job
summary; with `--notify` each drifted model gets ONE open issue, labelled `promote-drift` and
titled after its registered model, found again and updated in place on the next run. An issue
somebody closed stays closed: closing it ends that episode, and drift found after it opens a new
one. Where the environment's `watch.on_drift` is `retrain`, the drifted model gets its retrain
pull request instead (one branch per model, updated on the next run), which still needs review
and approval to merge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from promote.drift.check import DriftResult, check_drift
from promote.drift.report import markdown, verdict
from promote.drift.retrain import proposed
from promote.errors import CheckFailed, InputError
from promote.github.client import GitHubClient, Issue
from promote.github.context import repository_name, step_summary_path
from promote.github.pull_request import OpenedPullRequest
from promote.github.report import (
    append_job_summary,
    demoted_headings,
    table_cell,
    within_body_limit,
)
from promote.manifests.repository import ModelSpec, Repository
from promote.plan import selected_specs
from promote.propose import request_retrain
from promote.registry.client import Registry

DRIFT_LABEL = "promote-drift"


def issue_title(registered: str) -> str:
    """The title an issue about `registered` is found by again."""
    return f"Data drift in {registered}"


def _marker(registered: str) -> str:
    return f"<!-- promote:watch {registered} -->"


@dataclass
class Watched:
    """One model in one environment, as this run found it and what it did about it."""

    environment: str
    model: str
    registered: str
    verdict: str  # drift, ok, skipped (nothing to compare with) or failed (the check could not run)
    detail: str
    drift: DriftResult | None = None
    issue: Issue | None = None
    issue_created: bool = False
    pull_request: OpenedPullRequest | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "model": self.model,
            "registered_model": self.registered,
            "verdict": self.verdict,
            "detail": self.detail,
            "drift": self.drift.to_json() if self.drift else None,
            "issue": (
                {"number": self.issue.number, "url": self.issue.url, "created": self.issue_created}
                if self.issue
                else None
            ),
            "pull_request": self.pull_request.__dict__ if self.pull_request else None,
            "notes": self.notes,
        }


@dataclass
class WatchResult:
    watched: list[Watched]
    summary: Path | None = None

    @property
    def drifted(self) -> list[Watched]:
        return [w for w in self.watched if w.verdict == "drift"]

    @property
    def failed(self) -> list[Watched]:
        return [w for w in self.watched if w.verdict == "failed"]

    @property
    def ok(self) -> bool:
        return not self.drifted and not self.failed

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "drifted": [w.registered for w in self.drifted],
            "failed": [w.registered for w in self.failed],
            "models": [w.to_json() for w in self.watched],
            "summary": str(self.summary) if self.summary else None,
        }


class _Issues:
    """The open drift issues, listed once per run, as this run creates and updates them."""

    def __init__(self, client: GitHubClient) -> None:
        self.client = client
        self.open = client.open_issues(DRIFT_LABEL)

    def find(self, registered: str) -> Issue | None:
        marker, title = _marker(registered), issue_title(registered)
        return next((i for i in self.open if i.title == title or marker in i.body), None)

    def upsert(self, registered: str, body: str) -> tuple[Issue, bool]:
        existing = self.find(registered)
        title = issue_title(registered)
        if existing is not None:
            return self.client.update_issue(existing.number, title, body), False
        created = self.client.create_issue(title, body, [DRIFT_LABEL])
        self.open.append(created)
        return created, True


def _issue_body(spec: ModelSpec, drift: DriftResult, note: str = "") -> str:
    found = "found drift in" if drift.drifted else "found no drift in"
    lines = [
        _marker(drift.registered),
        f"`promote watch` {found} **{drift.registered}** on {drift.checked_at}: {verdict(drift)}.",
        "",
        "This issue is updated in place by every scheduled run while it is open.",
    ]
    if drift.drifted:
        lines += [
            f"To retrain on {spec.environment}'s current data, reviewed and approved as any "
            f"promotion: `promote retrain {spec.model} --env {spec.environment} --open-pr`. "
            f"To accept this data as it is, refine the `drift:` rules of {spec.display} "
            "(thresholds, ignored columns) in a pull request.",
        ]
    else:
        lines += ["The last check found none: close this issue once the cause is understood."]
    if note:
        lines += ["", note]
    body = "\n".join([*lines, "", demoted_headings(markdown(drift))]) + "\n"
    return within_body_limit(body, f"the whole report is logged to {drift.logged_to}")


def _check(
    repo: Repository, registry: Registry, spec: ModelSpec, with_champion: set[str]
) -> Watched:
    registered = repo.registered_name(spec.environment, spec.model)
    watched = Watched(spec.environment, spec.model, registered, "skipped", "no champion yet")
    if registered not in with_champion:
        return watched
    try:
        drift = check_drift(repo, registry, spec.environment, spec.model, None, None, None)
    except (InputError, CheckFailed) as exc:
        watched.verdict, watched.detail = "failed", exc.message
        return watched
    watched.drift, watched.detail = drift, verdict(drift)
    watched.verdict = "drift" if drift.drifted else "ok"
    return watched


def _act(
    repo: Repository,
    registry: Registry,
    spec: ModelSpec,
    watched: Watched,
    issues: _Issues,
    environ: Mapping[str, str] | None,
) -> None:
    """Open or update the drifted model's issue, or its retrain pull request where its
    environment asks for one; bring an open issue of a model no longer drifted up to date."""
    drift = watched.drift
    if drift is None:
        return
    note = ""
    if drift.drifted and spec.config.watch.on_drift == "retrain":
        try:
            request = request_retrain(
                repo,
                registry,
                spec.model,
                spec.environment,
                datetime.fromisoformat(drift.checked_at),
            )
        except InputError as exc:
            note = f"No retrain pull request: {exc.message}."
        else:
            outcome = proposed(repo, registry, request, drift, verdict(drift), True, environ)
            watched.pull_request = outcome.pull_request
            return
    if drift.drifted or issues.find(watched.registered) is not None:
        watched.issue, watched.issue_created = issues.upsert(
            watched.registered, _issue_body(spec, drift, note)
        )
    if note:
        watched.notes.append(note)


def summary_markdown(result: WatchResult) -> str:
    """The job summary: one row per model, then the report of each drifted one."""
    lines = [
        "# promote watch",
        "",
        "| environment | model | verdict | detail | issue or pull request |",
        "| --- | --- | --- | --- | --- |",
    ]
    for w in result.watched:
        link = ""
        if w.pull_request is not None:
            link = f"[#{w.pull_request.number}]({w.pull_request.url})"
        elif w.issue is not None:
            link = f"[#{w.issue.number}]({w.issue.url})"
        cells = [table_cell(c) for c in (w.environment, w.model, w.verdict.upper(), w.detail)]
        lines.append("| " + " | ".join([*cells, link]) + " |")
    for w in result.drifted:
        assert w.drift is not None
        lines += ["", demoted_headings(markdown(w.drift))]
    return "\n".join(lines) + "\n"


def watch(
    repo: Repository,
    registry: Registry,
    environment: str | None,
    notify: bool,
    summary: bool,
    environ: Mapping[str, str] | None = None,
) -> WatchResult:
    """Check every champion (of one environment, if given), then tell where asked."""
    specs = selected_specs(repo, environment)
    if summary:
        step_summary_path(environ)  # refused before any check runs, not after
    client = None
    if notify:
        name = repository_name(repo.root, environ)
        client = GitHubClient.from_environ(name, environ).require_token("--notify")
    # One bulk read says which models have a champion; only those are read again, to check.
    names = [repo.registered_name(spec.environment, spec.model) for spec in specs]
    with_champion = {n for n, m in registry.models(names).items() if m.champion is not None}
    result = WatchResult([_check(repo, registry, spec, with_champion) for spec in specs])
    if client is not None:
        issues = _Issues(client)
        for spec, watched in zip(specs, result.watched, strict=True):
            _act(repo, registry, spec, watched, issues, environ)
    if summary:
        result.summary = append_job_summary(summary_markdown(result), environ)
    return result
