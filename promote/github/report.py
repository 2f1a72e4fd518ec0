"""The markdown shown on GitHub: the plan comment, the job summary and the promotion PR body.

All three render the same table per environment: model, action, version, commit, metrics
against the current champion, and gate results.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promote import gates as gate_rules
from promote.errors import InputError
from promote.gates import GateResult
from promote.github.client import GitHubClient
from promote.github.context import CiContext, pull_request_number, step_summary_path
from promote.manifests.repository import ModelSpec, Repository
from promote.manifests.schema import BUDGETS, Gates
from promote.plan import Action, ModelState, compute, decide, gather
from promote.registry.entities import PREVIOUS, TAG_COMMIT, TAG_DATA_DRIFT, Version
from promote.registry.footprint import recorded as recorded_footprint

if TYPE_CHECKING:
    from promote.build.lineage import Lineage
    from promote.propose import Proposal
    from promote.registry.client import Registry

# Found again on the next push, so the plan stays ONE comment, edited in place.
COMMENT_MARKER = "<!-- promote:plan -->"
# GitHub refuses an issue or pull request body over 65,536 characters.
MAX_BODY_CHARS = 65_536
SIZE_NOTE = (
    "Artifact size, latency and complexity gates are checked on the built artifact, and data "
    "drift from the source on the rebuild's training data, at apply; Footprint is what was "
    "measured when the version shown was applied."
)
# Gates on what only the built artifact shows: left to apply, not guessed in the plan.
BUILT_ARTIFACT_GATES = dict.fromkeys(BUDGETS)


@dataclass(frozen=True)
class MetricLine:
    name: str
    value: float
    baseline: float | None


@dataclass(frozen=True)
class Row:
    """One model in one environment, as the table shows it."""

    environment: str
    model: str
    action: str
    detail: str
    version: str
    commit: str
    metrics: list[MetricLine] = field(default_factory=list)
    gates: list[GateResult] = field(default_factory=list)
    footprint: str = ""  # latency, size and complexity as the version's tags record them
    data_drift: str = ""  # the candidate's drift from its source's data, as apply recorded it


def _metrics_and_gates(
    registry: Registry,
    candidate: Version | None,
    baseline: Version | None,
    gates: Gates,
) -> tuple[list[MetricLine], list[GateResult]]:
    """The candidate's metrics against the baseline's, and the gates those metrics pass."""
    if candidate is None:
        return [], []
    metrics = registry.run_metrics(candidate.run_id)
    baseline_metrics = registry.run_metrics(baseline.run_id) if baseline else None
    lines = [
        MetricLine(name, value, (baseline_metrics or {}).get(name))
        for name, value in sorted(metrics.items())
    ]
    # These gates need the built artifact; the table says so instead of guessing.
    planned = gates.model_copy(update=BUILT_ARTIFACT_GATES)
    return lines, gate_rules.evaluate(planned, metrics, baseline_metrics, 0)


def row_for_state(registry: Registry, state: ModelState) -> Row:
    """What a plan state means for the table: which version, measured against which.

    The registered model was read when the state was gathered: only run metrics are read here.
    """
    spec = state.spec
    manifest = spec.manifest
    model = state.registered
    champion = model.champion if model else None
    candidate: Version | None
    baseline: Version | None = champion
    if state.action is Action.BUILD and manifest.source is not None:
        candidate = state.source
        version = f"{manifest.source.environment} v{manifest.source.version} → new"
    elif state.target is not None:
        candidate = model.version(state.target) if model else None
        version = f"v{state.champion} → v{state.target}" if state.champion else f"v{state.target}"
    else:
        candidate = champion
        baseline = model.version(model.aliases.get(PREVIOUS)) if model else None
        version = f"v{state.champion}" if state.champion else "none"
    commit = manifest.code.commit or (champion.tags.get(TAG_COMMIT, "") if champion else "")
    metrics, gate_results = _metrics_and_gates(registry, candidate, baseline, spec.gates)
    return Row(
        spec.environment,
        spec.model,
        state.action.value,
        state.detail,
        version,
        commit,
        metrics,
        gate_results,
        recorded_footprint(candidate.tags) if candidate else "",
        _recorded_drift(candidate),
    )


def _recorded_drift(candidate: Version | None) -> str:
    """What apply recorded of a rebuild's drift from its source (a tag, for the report only:
    the gate was decided on the lineage records themselves)."""
    text = candidate.tags.get(TAG_DATA_DRIFT) if candidate is not None else None
    if not text:
        return ""
    try:
        return str(json.loads(text)["summary"])
    except (ValueError, KeyError, TypeError):
        return "unreadable drift record"


def _markdown() -> Any:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("promote.github", "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    environment.filters["cell"] = table_cell
    return environment


def table_cell(value: object) -> str:
    """Text that cannot break a markdown table row or open HTML."""
    text = " ".join(str(value).split())
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render_report(rows: list[Row], title: str) -> str:
    environments = [
        (name, list(group)) for name, group in groupby(rows, key=lambda r: r.environment)
    ]
    return (
        _markdown()
        .get_template("report.md.j2")
        .render(marker=COMMENT_MARKER, title=title, environments=environments, note=SIZE_NOTE)
    )


def _proposed_plan(repo: Repository, registry: Registry, proposal: Proposal) -> tuple[str, Lineage]:
    """The plan the proposed manifest will have in its environment once merged, and the
    lineage of the source version it names."""
    manifest = proposal.manifest
    spec = ModelSpec.of(repo.environment(proposal.environment), manifest, repo.root / proposal.path)
    snapshot = gather(repo, registry, [spec])
    source = snapshot.source_version(spec)
    if source is None:
        raise InputError(proposal.path, "source.version", f"{proposal.source_ref} does not exist")
    row = row_for_state(registry, decide(spec, snapshot))
    plan = render_report([row], f"Plan for {proposal.environment}")
    return plan.removeprefix(COMMENT_MARKER + "\n"), registry.lineage(source.run_id)


def render_pull_request_body(repo: Repository, registry: Registry, proposal: Proposal) -> str:
    manifest = proposal.manifest
    assert manifest.source is not None
    plan, lineage = _proposed_plan(repo, registry, proposal)
    return (
        _markdown()
        .get_template("pull_request.md.j2")
        .render(
            proposal=proposal,
            source_environment=manifest.source.environment,
            lineage=lineage,
            plan=plan,
        )
    )


def render_retrain_body(
    repo: Repository, registry: Registry, proposal: Proposal, drift_report: str
) -> str:
    """A retrain's pull request: why (the drift report of the environment's current data),
    what is rebuilt (the same commit, parameters and source), and its plan."""
    manifest = proposal.manifest
    assert manifest.source is not None and manifest.data.as_of is not None
    plan, lineage = _proposed_plan(repo, registry, proposal)
    body = (
        _markdown()
        .get_template("retrain.md.j2")
        .render(
            proposal=proposal,
            as_of=f"{manifest.data.as_of:%Y-%m-%dT%H:%M:%SZ}",
            source_ref=f"{manifest.source.environment} v{manifest.source.version}",
            lineage=lineage,
            plan=plan,
            drift_report=demoted_headings(drift_report),
        )
    )
    return within_body_limit(body, "the whole report is logged to the champion's run")


def within_body_limit(body: str, elsewhere: str) -> str:
    """`body`, cut to what GitHub accepts, saying where the rest is (`elsewhere`)."""
    if len(body) <= MAX_BODY_CHARS:
        return body
    note = f"\n\n… cut here: GitHub takes {MAX_BODY_CHARS:,} characters; {elsewhere}.\n"
    return body[: MAX_BODY_CHARS - len(note)] + note


def demoted_headings(markdown: str) -> str:
    """`markdown` with every heading one level down: a report nested under a body's heading."""
    return "\n".join(f"#{line}" if line.startswith("#") else line for line in markdown.splitlines())


def report_states(repo: Repository, registry: Registry, environment: str | None, title: str) -> str:
    states = compute(repo, registry, environment)
    return render_report([row_for_state(registry, s) for s in states], title)


def append_job_summary(markdown: str, environ: Mapping[str, str] | None = None) -> Path:
    """Append to the file GitHub Actions shows as the job summary."""
    path = step_summary_path(environ)
    with path.open("a", encoding="utf-8") as summary:
        summary.write(markdown + "\n")
    return path


def comment_on_pull_request(markdown: str, environ: Mapping[str, str] | None = None) -> int:
    """Create or update the plan comment on the pull request this workflow runs for."""
    number = pull_request_number(environ)
    client = GitHubClient.from_environ(CiContext.from_environ(environ).repository, environ)
    return client.require_token("--comment").upsert_comment(number, COMMENT_MARKER, markdown)
