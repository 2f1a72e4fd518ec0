"""Which registered versions the signatures vouch for, from registry tags alone (no I/O).

A version is genuine when its provenance envelope verifies for its environment and says what its
tags say: its name, run, artifact location and every `promote.*` claim. It has passed when a
verification summary signed for that very version, and that very provenance, says so. A second
version on the run of an earlier one is a copy, whatever it carries.
"""

from __future__ import annotations

from dataclasses import dataclass

from promote.build.data import normalise_uri
from promote.errors import ProofInvalid
from promote.proof.statement import Claims, summary_problem
from promote.proof.trust import Trust
from promote.registry.entities import (
    TAG_PROVENANCE,
    TAG_VERIFICATION,
    VERDICT_PASSED,
    RegisteredModel,
    Version,
)


@dataclass(frozen=True)
class Proof:
    claims: Claims | None  # None: the version is forged (or unsigned)
    problem: str | None = None  # why it is forged
    passed: bool = False  # a signed verification summary says it passed
    passed_problem: str | None = None  # why a "passed" verdict tag is not believed

    @property
    def genuine(self) -> bool:
        return self.claims is not None


def prove(version: Version, trust: Trust) -> Proof:
    envelope = version.tags.get(TAG_PROVENANCE)
    if not envelope:
        return Proof(None, "no signed provenance")
    try:
        claims = Claims.from_statement(trust.open(envelope))
    except ProofInvalid as exc:
        return Proof(None, f"provenance: {exc.message}")
    if claims.registered_name != version.name:
        return Proof(None, f"provenance is for {claims.registered_name}")
    if claims.run_id != version.run_id:
        return Proof(None, f"provenance is for run {claims.run_id[:8]}, not {version.run_id[:8]}")
    if normalise_uri(claims.artifact_uri) != normalise_uri(version.source):
        return Proof(None, f"artifact location {version.source} is not the signed one")
    wrong = [key for key, value in claims.tags().items() if version.tags.get(key) != value]
    if wrong:
        return Proof(None, f"tag {wrong[0]} differs from the signed provenance")
    return _with_verdict(version, trust, claims, envelope)


def _with_verdict(version: Version, trust: Trust, claims: Claims, provenance: str) -> Proof:
    summary = version.tags.get(TAG_VERIFICATION)
    if not summary:
        unproven = "no signed verification" if version.verdict == VERDICT_PASSED else None
        return Proof(claims, passed_problem=unproven)
    try:
        problem = summary_problem(
            trust.open(summary), version.name, version.version, claims, provenance
        )
    except ProofInvalid as exc:
        problem = f"verification: {exc.message}"
    return Proof(claims, passed=problem is None, passed_problem=problem)


def prove_model(model: RegisteredModel, trust: Trust) -> dict[int, Proof]:
    proofs: dict[int, Proof] = {}
    first_of_run: dict[str, int] = {}
    for version in sorted(model.versions, key=lambda v: v.version):
        proof = prove(version, trust)
        earlier = first_of_run.setdefault(version.run_id, version.version)
        if proof.genuine and earlier != version.version:
            proof = Proof(None, f"a copy of v{earlier} (same run {version.run_id[:8]})")
        proofs[version.version] = proof
    return proofs
