"""Which registered versions the signatures vouch for, from registry tags alone (no I/O).

A version is genuine when its provenance envelope verifies for its environment and says what its
tags say: its name, run, artifact location and every `promote.*` claim. It has passed when a
verification summary signed for that very version, and that very provenance, says so. A second
version on the run of an earlier one is a copy, whatever it carries.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property

from promote.build.data import normalise_uri
from promote.errors import ProofInvalid
from promote.proof import dsse
from promote.proof.cache import VerifiedCache
from promote.proof.statement import CLAIMED_TAGS, Claims, summary_problem
from promote.proof.trust import Trust
from promote.registry.entities import (
    TAG_PROVENANCE,
    TAG_VERDICT,
    TAG_VERIFICATION,
    VERDICT_PASSED,
    RegisteredModel,
    Version,
)


@dataclass(frozen=True)
class Proof:
    problem: str | None = None  # why the version is forged; None: genuine
    passed: bool = False  # a signed verification summary says it passed
    passed_problem: str | None = None  # why a "passed" verdict tag is not believed
    provenance: str = field(default="", repr=False)  # the verified envelope

    @property
    def genuine(self) -> bool:
        return self.problem is None

    @cached_property
    def claims(self) -> Claims | None:
        """What the verified provenance says; None when the version is forged. Parsed when
        asked: most versions are only counted genuine or not."""
        if self.problem is not None:
            return None
        return Claims.from_statement(dsse.statement_of(dsse.payload_of(self.provenance)))


# The tags a proof depends on: the signed claims, both envelopes, and the verdict.
_PROVEN_TAGS = (*CLAIMED_TAGS, TAG_PROVENANCE, TAG_VERIFICATION, TAG_VERDICT)


def _cache_key(version: Version, trust: Trust) -> str:
    material = [
        trust.fingerprint,
        version.name,
        version.version,
        version.run_id,
        version.source,
        *(version.tags.get(tag) for tag in _PROVEN_TAGS),
    ]
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()


def prove(version: Version, trust: Trust, cache: VerifiedCache | None = None) -> Proof:
    envelope = version.tags.get(TAG_PROVENANCE)
    if not envelope:
        return Proof("no signed provenance")
    key = _cache_key(version, trust) if cache is not None else ""
    if cache is not None:
        if f"{key}:p" in cache:
            return Proof(passed=True, provenance=envelope)
        if f"{key}:g" in cache:
            return Proof(provenance=envelope)
    proof = _verified(version, trust, envelope)
    if cache is not None and proof.genuine and proof.passed_problem is None:
        cache.add(f"{key}:{'p' if proof.passed else 'g'}")
    return proof


def _verified(version: Version, trust: Trust, envelope: str) -> Proof:
    try:
        claims = Claims.from_statement(trust.open(envelope))
    except ProofInvalid as exc:
        return Proof(f"provenance: {exc.message}")
    if claims.registered_name != version.name:
        return Proof(f"provenance is for {claims.registered_name}")
    if claims.run_id != version.run_id:
        return Proof(f"provenance is for run {claims.run_id[:8]}, not {version.run_id[:8]}")
    if normalise_uri(claims.artifact_uri) != normalise_uri(version.source):
        return Proof(f"artifact location {version.source} is not the signed one")
    wrong = [key for key, value in claims.tags().items() if version.tags.get(key) != value]
    if wrong:
        return Proof(f"tag {wrong[0]} differs from the signed provenance")
    summary = version.tags.get(TAG_VERIFICATION)
    if not summary:
        unproven = "no signed verification" if version.verdict == VERDICT_PASSED else None
        return Proof(passed_problem=unproven, provenance=envelope)
    try:
        problem = summary_problem(
            trust.open(summary), version.name, version.version, claims, envelope
        )
    except ProofInvalid as exc:
        problem = f"verification: {exc.message}"
    return Proof(passed=problem is None, passed_problem=problem, provenance=envelope)


def prove_model(
    model: RegisteredModel, trust: Trust, cache: VerifiedCache | None = None
) -> dict[int, Proof]:
    proofs: dict[int, Proof] = {}
    first_of_run: dict[str, int] = {}
    for version in sorted(model.versions, key=lambda v: v.version):
        proof = prove(version, trust, cache)
        earlier = first_of_run.setdefault(version.run_id, version.version)
        if proof.genuine and earlier != version.version:
            proof = Proof(f"a copy of v{earlier} (same run {version.run_id[:8]})")
        proofs[version.version] = proof
    return proofs


def proven_claims(model: RegisteredModel, version: Version, trust: Trust, passed: bool) -> Claims:
    """What the signatures prove of `version` of `model`; `ProofInvalid` when it is forged or,
    asked `passed`, holds no signed verification that it passed."""
    proof = prove_model(model, trust)[version.version]
    if proof.claims is None:
        raise ProofInvalid(f"{version.ref} is forged: {proof.problem}")
    if passed and not proof.passed:
        raise ProofInvalid(
            f"{version.ref} has not passed: {proof.passed_problem or 'no signed verification'}"
        )
    return proof.claims


def require_signed_digest(version: Version, digest: str, claims: Claims) -> None:
    """`ProofInvalid` unless `digest`, recomputed from what storage holds, is the signed one."""
    if digest != claims.artifact_digest:
        raise ProofInvalid(
            f"{version.ref}: artifact in storage does not match its signed digest "
            f"({digest[:12]} != {claims.artifact_digest[:12]})"
        )
