"""Which registered versions the signatures vouch for, from registry tags alone (no I/O).

A version is genuine when its provenance envelope verifies for its environment and says what its
tags say: its name, run, artifact location and every `promote.*` claim. It has passed when a
verification summary signed for that very version, and that very provenance, says so. A second
version on the run of an earlier one is a copy, whatever it carries.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cached_property

from promote.build.data import normalise_uri
from promote.build.listing import tag_digest
from promote.errors import ProofInvalid
from promote.proof import dsse
from promote.proof.cache import VerifiedCache
from promote.proof.statement import CLAIMED_TAGS, Claims, summary_problem
from promote.proof.trust import Trust
from promote.registry.entities import (
    TAG_DATA_LISTING,
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
    # Why the data listing tag is not the one the provenance signs; the version stays genuine:
    # the listing only tells status whether its data changed since.
    listing_problem: str | None = None
    copied: bool = False  # a copy of a version trained on another environment's data
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


# The tags a proof depends on: the signed claims, both envelopes, the verdict and the listing.
_PROVEN_TAGS = (*CLAIMED_TAGS, TAG_PROVENANCE, TAG_VERIFICATION, TAG_VERDICT, TAG_DATA_LISTING)
# What a cache entry says after the key: passed or only genuine, and whether a copy.
_CACHED = {"p": (True, False), "pc": (True, True), "g": (False, False), "gc": (False, True)}


def _cache_key(version: Version, trust: Trust) -> str:
    tags = version.tags
    material = [
        trust.fingerprint,
        version.name,
        str(version.version),
        version.run_id,
        version.source,
        *[tags.get(tag) for tag in _PROVEN_TAGS],
    ]
    # Each part's length first ("-": absent), then the parts: one string, unambiguous, hashed
    # once (30,000 versions' envelopes are 130 MB a status reads).
    lengths = ",".join(["-" if part is None else str(len(part)) for part in material])
    text = "".join([part for part in material if part is not None])
    return hashlib.sha256(f"{lengths}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()


def prove(version: Version, trust: Trust, cache: VerifiedCache | None = None) -> Proof:
    envelope = version.tags.get(TAG_PROVENANCE)
    if not envelope:
        return Proof("no signed provenance")
    key = _cache_key(version, trust) if cache is not None else ""
    remembered = _CACHED.get(cache.conclusion(key) or "") if cache is not None else None
    if remembered is not None:
        passed, copied = remembered
        return Proof(passed=passed, copied=copied, provenance=envelope)
    proof = _verified(version, trust, envelope)
    clean = proof.passed_problem is None and proof.listing_problem is None
    if cache is not None and proof.genuine and clean:
        cache.remember(key, f"{'p' if proof.passed else 'g'}{'c' if proof.copied else ''}")
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
    listing = version.tags.get(TAG_DATA_LISTING)
    listing_problem = None
    if listing is not None and tag_digest(listing) != claims.data_listing_digest:
        listing_problem = f"v{version.version}'s data listing tag is not the signed one"
    genuine = Proof(
        listing_problem=listing_problem, copied=claims.copied_from is not None, provenance=envelope
    )
    summary = version.tags.get(TAG_VERIFICATION)
    if not summary:
        unproven = "no signed verification" if version.verdict == VERDICT_PASSED else None
        return replace(genuine, passed_problem=unproven)
    try:
        problem = summary_problem(
            trust.open(summary), version.name, version.version, claims, envelope
        )
    except ProofInvalid as exc:
        problem = f"verification: {exc.message}"
    return replace(genuine, passed=problem is None, passed_problem=problem)


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
