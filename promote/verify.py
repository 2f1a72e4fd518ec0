"""Read-side proofs: verify a version's artifact and lineage, reproduce it, read its history."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promote.build import runner
from promote.build.data import snapshot_to_json
from promote.build.digest import artifact_digest
from promote.errors import BadReference, CheckFailed, ExternalError, ProofInvalid
from promote.manifests.repository import Repository
from promote.proof.trust import Keyring
from promote.proof.versions import prove_model
from promote.registry.client import Registry
from promote.registry.entities import (
    TAG_DIRTY,
    TAG_REPRODUCTION_OF,
    RegisteredModel,
    Version,
)


@dataclass
class Check:
    name: str
    passed: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class Report:
    subject: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append(Check(name, passed, detail))

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "ok": self.ok,
            "checks": [c.to_json() for c in self.checks],
        }


def _registered(
    repo: Repository, registry: Registry, environment: str, model: str
) -> RegisteredModel:
    name = repo.registered_name(environment, model)
    registered = registry.model(name)
    if registered is None:
        raise BadReference(name, None, "no such registered model")
    return registered


def select_version(
    repo: Repository, registry: Registry, environment: str, model: str, number: int | None
) -> Version:
    """The given version, or the champion when no number is given."""
    registered = _registered(repo, registry, environment, model)
    version = registered.version(number) if number is not None else registered.champion
    if version is None:
        what = f"version {number}" if number is not None else "champion"
        raise BadReference(registered.name, "--version", f"has no {what}")
    return version


def verify(
    repo: Repository, registry: Registry, environment: str, model: str, number: int | None
) -> Report:
    """Everything a version's proof rests on, each checked from the signatures and storage."""
    version = select_version(repo, registry, environment, model, number)
    registered = _registered(repo, registry, environment, model)
    trust = Keyring(repo.environments).trust(environment)
    proof = prove_model(registered, trust)[version.version]
    claims = proof.claims
    report = Report(version.ref)
    report.add(
        "signed provenance",
        claims is not None,
        proof.problem or f"signed for {environment}: commit {claims.commit[:12] if claims else ''}",
    )
    report.add(
        "signed verification",
        proof.passed,
        "passed" if proof.passed else proof.passed_problem or f"verdict {version.verdict}",
    )
    with tempfile.TemporaryDirectory(prefix="promote-verify-") as scratch:
        model_dir = registry.download_model(version, Path(scratch) / "model")
        digest = artifact_digest(model_dir)
        signed = claims.artifact_digest if claims else ""
        report.add(
            "artifact digest",
            bool(signed) and digest == signed,
            f"storage {digest[:16]}, signed {signed[:16] or 'none'}",
        )
        signature = registry.download_model_signature(version.run_id, Path(scratch) / "sig")
        if signature is None:
            report.add("model signature", False, "the run holds no OpenSSF model signature")
        else:
            try:
                trust.verify_model(model_dir, signature)
                report.add("model signature", True, "OpenSSF model signature verifies")
            except ProofInvalid as exc:
                report.add("model signature", False, exc.message)
    try:
        lineage = registry.lineage(version.run_id)
    except (CheckFailed, ExternalError) as exc:  # a missing or tampered record is the finding
        report.add("lineage record", False, exc.message)
        return report
    problems = claims.lineage_problems(lineage) if claims else ["no signed provenance to match"]
    report.add(
        "lineage record",
        not problems,
        problems[0] if problems else f"commit {lineage.code_commit[:12]}, data {lineage.data_uri}",
    )
    return report


def reproduce(
    repo: Repository, registry: Registry, environment: str, model: str, number: int | None
) -> Report:
    """Rebuild a version from its lineage alone (commit, params, data snapshot); compare."""
    version = select_version(repo, registry, environment, model, number)
    original = registry.lineage(version.run_id)
    if not verify(repo, registry, environment, model, version.version).ok:
        raise CheckFailed(f"{version.ref} does not verify: `promote verify` says why")
    if original.code_dirty:
        raise BadReference(version.ref, TAG_DIRTY, "trained from a dirty tree: not reproducible")
    config = repo.environment(environment)
    runner.check_ready(config)
    request = runner.BuildRequest(
        origin=version.ref,
        model=model,
        environment=config,
        code_repo=original.code_repo,
        commit=original.code_commit,
        entrypoint=original.entrypoint,
        params=original.params,
        data_uri=original.data_uri,
        pinned_snapshot=snapshot_to_json(original.data_snapshot),
        run_tags={TAG_REPRODUCTION_OF: version.ref},
    )
    run_id = runner.build_at_commit(repo.root, request, registry, signer=None)
    again = registry.lineage(run_id)
    report = Report(f"{version.ref} (reproduced as run {run_id})")
    report.add("lineage", again.match_digest == original.match_digest, again.match_digest[:16])
    report.add("data snapshot", again.data_digest == original.data_digest, again.data_digest[:16])
    # Equal only where training is deterministic (README: Reproducible artifacts).
    report.add(
        "artifact digest",
        again.artifact_digest == original.artifact_digest,
        f"{original.artifact_digest[:16]} -> {again.artifact_digest[:16]}",
    )
    for name in sorted(set(original.metrics) | set(again.metrics)):
        before, after = original.metrics.get(name), again.metrics.get(name)
        same = (
            before is not None
            and after is not None
            and math.isclose(before, after, rel_tol=1e-9, abs_tol=1e-12)
        )
        report.add(f"metric {name}", same, f"{before} -> {after}")
    return report


def history(
    repo: Repository, registry: Registry, environment: str, model: str
) -> list[dict[str, Any]]:
    return _registered(repo, registry, environment, model).events()
