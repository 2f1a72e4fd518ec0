"""Apply end to end on the embedded default: rebuilds, lineage match, idempotency, rollback."""

from __future__ import annotations

from support.world import MODEL, World

from promote.plan import Action, compute
from promote.registry.entities import (
    CHAMPION,
    PREVIOUS,
    TAG_ARTIFACT_DIGEST,
    TAG_COMMIT,
    TAG_DATA_URI,
    TAG_LINEAGE_DIGEST,
    TAG_MANIFEST_DIGEST,
    TAG_RUN_ENVIRONMENT,
    TAG_RUN_MODEL,
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
    # Same model (the match digest), another record: its data, run and artifact are prod's.
    assert rebuilt.tags[TAG_LINEAGE_DIGEST] != source.tags[TAG_LINEAGE_DIGEST]
    match = registry.lineage(source.run_id).match_digest
    assert registry.lineage(rebuilt.run_id).match_digest == match
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
    from promote.build import git

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


def test_copy_mode_promotes_the_validated_artifact_itself(trained: World) -> None:
    trained.edit_yaml(
        "environments/staging/environment.yaml", lambda body: body.update(training="copy")
    )
    result = trained.promote("staging")
    assert result.ok, result.outcomes
    dev = trained.registry.model(f"dev.{MODEL}")
    staging = trained.registry.model(f"staging.{MODEL}")
    assert dev is not None and dev.champion is not None
    assert staging is not None and staging.champion is not None
    assert staging.champion.tags[TAG_ARTIFACT_DIGEST] == dev.champion.tags[TAG_ARTIFACT_DIGEST]
    assert staging.champion.run_id != dev.champion.run_id
    assert "/artifacts/staging/" in staging.champion.source
    lineage = trained.registry.lineage(staging.champion.run_id)
    assert lineage.copied_from == f"dev.{MODEL}/1"
    assert lineage.environment == "staging"
    assert trained.registry.run_metrics(staging.champion.run_id) == lineage.metrics


def test_train_overrides_params_and_records_them(trained: World) -> None:
    result = trained.cli("train", MODEL, "--env", "dev", "--param", "C=0.05", "--json")
    assert result.returncode == 0, result.stderr
    dev = trained.registry.model(f"dev.{MODEL}")
    assert dev is not None and dev.champion is not None and dev.champion.version == 2
    assert trained.registry.lineage(dev.champion.run_id).params == {"C": 0.05, "max_iter": 300}


def test_training_above_dev_is_refused(trained: World) -> None:
    result = trained.cli("train", MODEL, "--env", "prod")
    assert result.returncode == 2
    assert "prod is built by the pipeline from an approved manifest" in result.stderr


def test_champion_moved_by_hand_is_drift_and_apply_moves_it_back(promoted: World) -> None:
    promoted.train_dev(C=0.2)
    promoted.promote("staging")
    client = promoted.registry.client
    client.set_registered_model_alias(f"staging.{MODEL}", CHAMPION, "1")
    status = promoted.cli("status")
    assert status.returncode == 1
    assert "champion moved by hand to v1 (pipeline set v2)" in status.stdout
    result = promoted.pipeline().apply("staging")
    # Undoing a hand-made move is a repair in the history, not a rollback nor a new choice.
    assert result.ok and [o.action for o in result.outcomes] == ["repair"]
    staging = promoted.registry.model(f"staging.{MODEL}")
    assert staging is not None and staging.aliases[CHAMPION] == 2
    assert staging.events()[-1]["action"] == "repair"
    assert promoted.cli("status").returncode == 0


def test_a_hand_moved_previous_alias_is_drift(promoted: World) -> None:
    promoted.train_dev(C=0.2)
    promoted.promote("staging")
    name = f"staging.{MODEL}"
    staging = promoted.registry.model(name)
    assert staging is not None and staging.aliases == {CHAMPION: 2, PREVIOUS: 1}
    assert promoted.cli("status").returncode == 0
    client = promoted.registry.client
    client.set_registered_model_alias(name, PREVIOUS, "2")
    status = promoted.cli("status")
    assert status.returncode == 1
    assert "previous moved by hand to v2 (pipeline set v1)" in status.stdout
    client.delete_registered_model_alias(name, PREVIOUS)
    assert "previous alias removed by hand (pipeline set v1)" in promoted.cli("status").stdout


def test_runs_a_killed_apply_left_running_are_marked_killed(trained: World) -> None:
    client = trained.registry.client
    experiment = trained.registry.experiment_id("staging", None)
    abandoned = client.create_run(
        experiment, tags={TAG_RUN_MODEL: MODEL, TAG_RUN_ENVIRONMENT: "staging"}
    ).info.run_id
    half_logged = client.create_logged_model(experiment, name=MODEL, source_run_id=abandoned)
    assert client.get_run(abandoned).info.status == "RUNNING"
    assert trained.promote("staging").ok
    assert client.get_run(abandoned).info.status == "KILLED"
    # The model it was logging shows as failed in the MLflow UI, not as pending forever.
    assert client.get_logged_model(half_logged.model_id).status == "FAILED"
    assert any("marked KILLED 1 run(s)" in line for line in trained.lines)


def test_promote_rollback_proposes_the_previous_manifest(promoted: World) -> None:
    from promote.build import git
    from promote.scaffold.quickstart import merge

    promoted.train_dev(C=0.2)
    promoted.promote("staging")
    assert promoted.promote("prod").ok
    head = git.head_commit(promoted.repo)
    proposed = promoted.cli("rollback", MODEL, "--env", "prod", "--json")
    assert proposed.returncode == 0, proposed.stderr
    assert git.head_commit(promoted.repo) == head  # a proposal only: main is untouched
    branch = f"promote/prod/{MODEL}-rollback-v1"
    merge(promoted.repo, branch, "Merge rollback")
    runs_before = promoted.snapshot()["runs"]
    result = promoted.pipeline().apply("prod")
    assert result.ok and [o.action for o in result.outcomes] == ["rollback"]
    prod = promoted.registry.model(f"prod.{MODEL}")
    assert prod is not None and prod.aliases == {CHAMPION: 1, PREVIOUS: 2}
    assert promoted.snapshot()["runs"] == runs_before


def test_rollback_without_a_previous_version_is_bad_input(promoted: World) -> None:
    result = promoted.cli("rollback", MODEL, "--env", "prod")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: prod.{MODEL}: previous: no previous version to roll back to"
    )


def test_an_altered_manifest_cache_cannot_steer_apply(trained: World) -> None:
    """Facts in the cache that the manifest's text does not give stop apply, unwritten."""
    import json

    from promote.manifests.cache import cache_file

    trained.propose_and_merge("staging")
    assert trained.cli("plan", "--env", "staging").returncode == 0  # fills the cache
    path = cache_file(trained.repo.resolve())
    assert path is not None
    body = json.loads(path.read_text())
    for entry in body["entries"].values():
        if entry[2] == "dev":  # the staging manifest, promoted from dev
            entry[4] = "0" * 64  # a digest no manifest of this repository has
    path.write_text(json.dumps(body))
    before = trained.snapshot()

    try:
        result = trained.cli("apply", "--env", "staging")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "the manifest cache disagrees" in result.stderr
        assert trained.snapshot() == before
    finally:
        # The story's worlds share one path, so one cache: later tests must not inherit this.
        path.unlink()
