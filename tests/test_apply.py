"""Apply end to end on the embedded default: rebuilds, lineage match, idempotency, rollback."""

from __future__ import annotations

from conftest import MODEL, World

from promote.plan import Action, compute
from promote.registry import (
    CHAMPION,
    PREVIOUS,
    TAG_ARTIFACT_DIGEST,
    TAG_COMMIT,
    TAG_DATA_URI,
    TAG_LINEAGE_DIGEST,
    TAG_MANIFEST_DIGEST,
    TAG_SOURCE,
)


def test_prod_is_rebuilt_on_prod_data_with_the_same_lineage(promoted: World) -> None:
    registry = promoted.registry
    staging = registry.model(f"staging.{MODEL}")
    prod = registry.model(f"prod.{MODEL}")
    assert staging is not None and prod is not None
    assert staging.champion is not None and prod.champion is not None
    source, rebuilt = staging.champion, prod.champion
    assert rebuilt.tags[TAG_SOURCE] == f"staging.{MODEL}/{source.version}"
    assert rebuilt.tags[TAG_COMMIT] == source.tags[TAG_COMMIT]
    assert len(rebuilt.tags[TAG_COMMIT]) == 40
    assert rebuilt.tags[TAG_LINEAGE_DIGEST] == source.tags[TAG_LINEAGE_DIGEST]
    assert rebuilt.tags[TAG_ARTIFACT_DIGEST] != source.tags[TAG_ARTIFACT_DIGEST]
    assert "/data/prod/" in rebuilt.tags[TAG_DATA_URI]
    assert "/data/staging/" in source.tags[TAG_DATA_URI]
    lineage = registry.lineage(rebuilt.run_id)
    assert lineage.environment == "prod"
    assert {entry.path for entry in lineage.data_snapshot} == {"train.csv", "test.csv"}
    assert "scikit-learn" in lineage.libraries
    assert registry.stored_artifact(rebuilt)[0] == rebuilt.tags[TAG_ARTIFACT_DIGEST]


def test_apply_twice_creates_no_second_version(promoted: World) -> None:
    before = promoted.snapshot()
    result = promoted.pipeline().apply()
    assert result.ok
    assert {o.action for o in result.outcomes} <= {"none", "dev"}
    assert promoted.snapshot() == before


def test_reverting_the_manifest_repoints_champion_without_rebuilding(promoted: World) -> None:
    from promote import git

    promoted.train_dev(C=0.2)
    promoted.promote("staging")
    result = promoted.promote("prod")
    assert result.ok
    prod = promoted.registry.model(f"prod.{MODEL}")
    assert prod is not None and prod.aliases == {CHAMPION: 2, PREVIOUS: 1}
    runs_before = promoted.snapshot()["runs"]

    git.run_git(
        promoted.repo, "revert", "-m", "1", "--no-edit", "HEAD", env=git.identity_env(promoted.repo)
    )
    states = compute(promoted.pipeline().repo, promoted.registry, "prod")
    assert [(s.action, s.target) for s in states] == [(Action.REPOINT, 1)]
    result = promoted.pipeline().apply("prod")
    assert result.ok and [o.action for o in result.outcomes] == ["rollback"]
    prod = promoted.registry.model(f"prod.{MODEL}")
    assert prod is not None and prod.aliases == {CHAMPION: 1, PREVIOUS: 2}
    assert len(prod.versions) == 2
    assert promoted.snapshot()["runs"] == runs_before
    assert [e["action"] for e in prod.events()] == ["promote", "promote", "rollback"]
    assert prod.champion is not None
    assert prod.champion.tags[TAG_MANIFEST_DIGEST] == states[0].spec.digest
