"""Read-side proofs: verify a version's artifact and lineage, reproduce it, read its history."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from promote.build import runner
from promote.build.data import snapshot_to_json
from promote.errors import BadReference, CheckFailed
from promote.manifests.repository import Repository
from promote.registry.client import Registry
from promote.registry.entities import (
    REQUIRED_VERSION_TAGS,
    TAG_ARTIFACT_DIGEST,
    TAG_COMMIT,
    TAG_DATA_URI,
    TAG_DIRTY,
    TAG_LINEAGE_DIGEST,
    TAG_REPRODUCTION_OF,
    TAG_VERDICT,
    VERDICT_PASSED,
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
    version = select_version(repo, registry, environment, model, number)
    report = Report(version.ref)
    missing = [t for t in REQUIRED_VERSION_TAGS if t not in version.tags]
    report.add(
        "registered by the pipeline",
        not missing,
        f"missing {', '.join(missing)}" if missing else "all promote.* tags present",
    )
    digest, size = registry.stored_artifact(version)
    recorded = version.tags.get(TAG_ARTIFACT_DIGEST, "")
    report.add(
        "artifact digest",
        digest == recorded,
        f"storage {digest[:16]}, recorded {recorded[:16] or 'none'} ({size} bytes)",
    )
    try:
        lineage = registry.lineage(version.run_id)
    except (CheckFailed, Exception) as exc:  # a missing or tampered record is the finding itself
        report.add("lineage record", False, str(exc))
        return report
    report.add(
        "lineage record",
        lineage.lineage_digest == version.tags.get(TAG_LINEAGE_DIGEST)
        and lineage.artifact_digest == recorded
        and lineage.code_commit == version.tags.get(TAG_COMMIT)
        and lineage.data_uri == version.tags.get(TAG_DATA_URI),
        f"commit {lineage.code_commit[:12]}, data {lineage.data_uri}",
    )
    report.add(
        "verdict",
        version.tags.get(TAG_VERDICT) == VERDICT_PASSED,
        version.tags.get(TAG_VERDICT, "none"),
    )
    return report


def reproduce(
    repo: Repository, registry: Registry, environment: str, model: str, number: int | None
) -> Report:
    """Rebuild a version from its lineage alone (commit, params, data snapshot); compare."""
    version = select_version(repo, registry, environment, model, number)
    original = registry.lineage(version.run_id)
    if original.code_dirty:
        raise BadReference(version.ref, TAG_DIRTY, "trained from a dirty tree: not reproducible")
    config = repo.environment(environment)
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
