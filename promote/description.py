"""What promote did to a version, in words: the description the MLflow UI shows on its page.

It is written when the version concludes (`apply.Promoter.conclude`) and proves nothing: the
signed provenance and verification summary do. It tells a reader of the registry, without
parsing tags, where the version came from, who approved it, how it fared and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from promote.build.lineage import Lineage
from promote.gates import GateResult
from promote.github.approval import Authorization
from promote.manifests.repository import ModelSpec
from promote.registry.entities import TAG_SOURCE, Version
from promote.registry.footprint import Comparison

if TYPE_CHECKING:
    from promote.drift.promotion import PromotionDrift


@dataclass(frozen=True)
class Conclusion:
    """How a candidate concluded: `reason` is None when it passed and became champion."""

    spec: ModelSpec
    candidate: Version
    lineage: Lineage
    lineage_problems: list[str]  # found before the gates: for a build, its lineage match
    gates: list[GateResult]
    reason: str | None
    previous: int | None
    authorization: Authorization | None
    merge_commit: str | None
    footprint: Comparison | None = None  # None: the artifact did not verify, nothing was run
    drift: PromotionDrift | None = None  # a rebuild's data against its source's


def version_description(conclusion: Conclusion) -> str:
    """Markdown: the verdict first, then source, approval, gates (one line each) and lineage."""
    c = conclusion
    if c.reason is None:
        was = f"v{c.previous}" if c.previous is not None else "none"
        verdict = f"**Passed: champion** (was {was})."
    else:
        verdict = f"**Rejected**: {c.reason}"
    lines = [
        verdict,
        "",
        f"- **Source**: {_source(c)}",
        f"- **Approval**: {_approval(c)}",
        f"- **Gates**:{'' if c.gates else ' none'}",
        *(f"  - {gate}" for gate in c.gates),
        f"- **Footprint**: {c.footprint.describe() if c.footprint else 'not measured'}",
        f"- **Lineage**: {_lineage(c)}",
        *_drift(c),
        f"- **Artifact**: sha256 `{c.lineage.artifact_digest[:16]}`, "
        f"flavor {c.lineage.flavor}, data `{c.lineage.data_uri}`",
    ]
    if c.merge_commit:
        lines.append(f"- **Applied at**: commit `{c.merge_commit[:12]}` of the GitOps repository")
    return "\n".join(lines) + "\n"


def _source(c: Conclusion) -> str:
    repo = "this repository" if c.lineage.code_repo == "." else c.lineage.code_repo
    code = f"commit `{c.lineage.code_commit[:12]}` of {repo}, {c.lineage.entrypoint}"
    source = c.candidate.tags.get(TAG_SOURCE)
    if not source:
        dirty = " with uncommitted changes" if c.lineage.code_dirty else ""
        return f"trained in {c.spec.environment} at {code}{dirty}"
    how = "copied from" if c.spec.config.training == "copy" else "rebuilt from"
    return f"{how} {source}, at {code}, on {c.spec.environment}'s data"


def _approval(c: Conclusion) -> str:
    authorization = c.authorization
    if authorization is None:
        if not c.candidate.tags.get(TAG_SOURCE):
            return "none: a training is not a promotion"
        return f"none required: no approval rule guards {c.spec.environment}"
    if authorization.break_glass:
        return f"BREAK-GLASS, approval bypassed: {authorization.break_glass}"
    approvers = ", ".join(authorization.approvers) or "nobody"
    return f"pull request {authorization.pull_request_url or '(none)'}, approved by {approvers}"


def _drift(c: Conclusion) -> list[str]:
    """The data drift from the source, with one line per feature compared."""
    if c.drift is None:
        return []
    return [
        f"- **Data drift**: {c.drift.summary}",
        *(f"  - {line}" for line in c.drift.feature_lines()),
    ]


def _lineage(c: Conclusion) -> str:
    source = c.candidate.tags.get(TAG_SOURCE)
    if not source:
        return "recorded; a training has no source to match"
    if c.lineage_problems:
        return "match FAILED: " + "; ".join(c.lineage_problems)
    return (
        f"matches {source}: same code, params, libraries, Python, schema, signature and "
        f"flavor; data is {c.spec.environment}'s own"
    )
