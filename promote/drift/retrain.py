"""`promote retrain NAME --env ENV`: a reviewed rebuild of the champion's commit on the
environment's current data.

The retrain is a manifest change like any other: `data.as_of` enters the manifest digest, so
once merged (and approved) apply rebuilds the same commit, source and parameters; the lineage
match and the gates then hold it to the source and the champion as for any promotion. Nothing
here touches the registry's models: the branch (and its pull request) is the whole proposal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from promote.drift.check import DriftResult, check_drift
from promote.drift.report import markdown, verdict
from promote.errors import BadReference
from promote.github.pull_request import OpenedPullRequest, open_retrain_pull_request
from promote.manifests.repository import Repository
from promote.propose import Proposal, RetrainRequest, propose_retrain, request_retrain
from promote.registry.client import Registry


@dataclass
class Retrain:
    proposal: Proposal
    drift: DriftResult | None  # None: the champion holds no profile to compare with
    drift_note: str  # the verdict, or why there is none
    pull_request: OpenedPullRequest | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.proposal.to_json(),
            "champion": self.proposal.source_ref,
            "drift": self.drift.to_json() if self.drift else None,
            "drift_note": self.drift_note,
            "pull_request": self.pull_request.__dict__ if self.pull_request else None,
        }


def retrain(
    repo: Repository,
    registry: Registry,
    model: str,
    environment: str,
    open_pr: bool,
    environ: Mapping[str, str] | None = None,
) -> Retrain:
    """Check, measure the drift of the current data, then write the branch (and open the PR)."""
    request = request_retrain(
        repo, registry, model, environment, datetime.now(timezone.utc).replace(microsecond=0)
    )
    try:
        drift: DriftResult | None = check_drift(
            repo, registry, environment, model, None, None, None
        )
    except BadReference as exc:
        if exc.field is not None or exc.source != request.champion.ref:
            raise
        # A champion without a training profile is one that retraining gives a profile.
        return proposed(repo, registry, request, None, exc.message, open_pr, environ)
    assert drift is not None
    return proposed(repo, registry, request, drift, verdict(drift), open_pr, environ)


def proposed(
    repo: Repository,
    registry: Registry,
    request: RetrainRequest,
    drift: DriftResult | None,
    note: str,
    open_pr: bool,
    environ: Mapping[str, str] | None = None,
) -> Retrain:
    """The retrain's branch written (and its PR opened), the drift `note` and report with it."""
    proposal = propose_retrain(repo, request)
    outcome = Retrain(proposal, drift, note)
    if open_pr:
        report = markdown(drift) if drift is not None else f"No drift report: {note}.\n"
        outcome.pull_request = open_retrain_pull_request(repo, registry, proposal, report, environ)
    return outcome
