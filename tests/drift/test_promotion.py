"""Drift at promotion: a rebuild's training data against its source's, from both lineage records'
profiles. Real trainings; prod's data shifted on one feature is recorded, described, shown in
the plan report and the history, and rejected or accepted by `max_drift_share`."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from support.world import MODEL, World

from promote.drift.compare import compare_frame
from promote.drift.profile import profile_frame
from promote.drift.promotion import promotion_drift
from promote.github.report import report_states
from promote.manifests.loader import load_repository
from promote.manifests.schema import DriftRules, DriftThresholds
from promote.registry.entities import TAG_DATA_DRIFT, TAG_REASON, TAG_VERDICT

PROD_MANIFEST = f"environments/prod/{MODEL}.yaml"


def _shift_prod_age(world: World) -> None:
    """Every prod row thirty years older: one feature far from staging's, the others as were."""
    folder = world.sandbox.data("prod")
    for name in ("train.csv", "test.csv"):
        frame = pd.read_csv(folder / name)
        frame["age"] = frame["age"] + 30
        frame.to_csv(folder / name, index=False)


def _max_drift_share(share: float) -> Any:
    return lambda body: body.setdefault("gates", {}).update(max_drift_share=share)


def _version(world: World, number: int) -> Any:
    model = world.registry.model(f"prod.{MODEL}")
    assert model is not None
    version = model.version(number)
    assert version is not None
    return version


def _relaxed_rules(body: dict[str, Any]) -> None:
    # Staging's and prod's samples already differ a little in monthly charges (by design of
    # the example data): rules that only a large shift passes keep this test about age.
    body["drift"] = {"thresholds": {"wasserstein": 0.5, "jensenshannon": 0.5}}


def test_a_shifted_feature_is_recorded_shown_and_gated(trained: World) -> None:
    assert trained.promote("staging").ok
    _shift_prod_age(trained)
    trained.edit_yaml("environments/prod/environment.yaml", _relaxed_rules)
    trained.propose_and_merge("prod")
    trained.edit_yaml(PROD_MANIFEST, _max_drift_share(0.1))

    tight = trained.pipeline().apply("prod")
    assert not tight.ok
    (outcome,) = tight.outcomes
    assert "gate data drift: FAIL" in outcome.detail
    assert "train.csv:age" in outcome.detail and "test.csv:age" in outcome.detail
    rejected = _version(trained, 1)
    assert rejected.tags[TAG_VERDICT] == "rejected"
    assert "at most 10% allowed" in rejected.tags[TAG_REASON]
    recorded = json.loads(rejected.tags[TAG_DATA_DRIFT])
    assert recorded["share"] == pytest.approx(0.2)  # 1 of 5 features: age
    assert recorded["summary"].startswith(f"from staging.{MODEL}/1: train.csv 1 of 5 features")
    description = trained.registry.client.get_model_version(rejected.name, "1").description
    assert "- **Data drift**: from staging" in description
    assert "train.csv age: DRIFTED, wasserstein" in description
    assert "train.csv tenure_months: ok" in description

    # The same statistics as `promote drift` on the data itself: the same verdicts.
    staging = trained.registry.model(f"staging.{MODEL}")
    assert staging is not None and staging.champion is not None
    source = trained.registry.lineage(staging.champion.run_id)
    rebuilt = trained.registry.lineage(rejected.run_id)
    rules = DriftRules(thresholds=DriftThresholds(wasserstein=0.5, jensenshannon=0.5))
    measured = promotion_drift("s", source.profile, rebuilt.profile, rules)
    read = pd.read_csv(trained.sandbox.data("prod") / "train.csv")
    direct = compare_frame("train.csv", read, source.profile["datasets"][0], "churned", rules)
    assert [f.drifted for f in measured.datasets[0].features] == [
        f.drifted for f in direct.features
    ]
    for profiled, exact in zip(measured.datasets[0].features, direct.features, strict=True):
        assert profiled.score == pytest.approx(exact.score, rel=0.05, abs=0.01), profiled.column

    markdown = report_states(load_repository(trained.repo), trained.registry, "prod", "plan")
    assert "train.csv 1 of 5 features drifted (20%): age" in markdown

    trained.edit_yaml(PROD_MANIFEST, _max_drift_share(0.5))
    loose = trained.pipeline().apply("prod")
    assert loose.ok, loose.outcomes
    accepted = _version(trained, 2)
    assert accepted.tags[TAG_VERDICT] == "passed"
    assert json.loads(accepted.tags[TAG_DATA_DRIFT])["share"] == pytest.approx(0.2)
    history = json.loads(trained.cli("history", MODEL, "--env", "prod", "--json").stdout)
    assert [e["action"] for e in history] == ["reject", "promote"]
    assert all("test.csv 1 of 5 features drifted (20%): age" in e["data_drift"] for e in history)


def test_an_unshifted_rebuild_is_recorded_without_drift_and_passes_a_zero_share(
    trained: World,
) -> None:
    assert trained.promote("staging").ok
    # prod trains on staging's rows in another order: other files, the same distributions.
    for name in ("train.csv", "test.csv"):
        rows = pd.read_csv(trained.sandbox.data("staging") / name)
        shuffled = rows.sample(frac=1.0, random_state=3)
        shuffled.to_csv(trained.sandbox.data("prod") / name, index=False)
    trained.propose_and_merge("prod")
    trained.edit_yaml(PROD_MANIFEST, _max_drift_share(0.0))
    result = trained.pipeline().apply("prod")
    assert result.ok, result.outcomes
    recorded = json.loads(_version(trained, 1).tags[TAG_DATA_DRIFT])
    assert recorded["share"] == 0.0


def test_bad_max_drift_share_is_one_line_exit_2_and_writes_nothing(trained: World) -> None:
    trained.propose_and_merge("staging")
    trained.edit_yaml(f"environments/staging/{MODEL}.yaml", _max_drift_share(1.5))
    before = trained.snapshot()
    completed = trained.cli("apply", "--env", "staging")
    assert completed.returncode == 2
    assert completed.stderr.strip() == (
        f"error: environments/staging/{MODEL}.yaml: gates.max_drift_share: "
        "Input should be less than or equal to 1"
    )
    assert trained.snapshot() == before

    trained.edit_yaml("environments/staging/environment.yaml", _max_drift_share(0.2))
    trained.edit_yaml(f"environments/staging/{MODEL}.yaml", _max_drift_share(0.5))
    loosened = trained.cli("apply", "--env", "staging")
    assert loosened.returncode == 2
    assert "gates.max_drift_share: 0.5 loosens environment staging's 0.2" in loosened.stderr
    assert trained.snapshot() == before


def test_drift_rules_naming_no_column_of_the_source_stop_the_rebuild_before_training(
    trained: World,
) -> None:
    assert trained.promote("staging").ok
    trained.edit_yaml(
        "environments/prod/environment.yaml", lambda body: body.update(drift={"ignore": ["nope"]})
    )
    trained.propose_and_merge("prod")
    before = trained.snapshot()
    completed = trained.cli("apply", "--env", "prod")
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.strip().startswith(
        "error: environments/prod/environment.yaml: drift.ignore.0: no column 'nope'"
    )
    assert trained.registry.model(f"prod.{MODEL}") is None
    assert trained.snapshot()["runs"] == before["runs"]  # no training ran


def test_what_cannot_be_compared_is_said() -> None:
    rules = DriftRules()
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    profile: dict[str, Any] = {
        "format": 1,
        "target": None,
        "datasets": [{"path": "a.csv", "read_options": {}, **profile_frame(frame)}],
    }
    elsewhere = {**profile, "datasets": [{**profile["datasets"][0], "path": "b.csv"}]}
    assert promotion_drift("s/1", {}, profile, rules).problem == (
        "a training profile is missing (an older record)"
    )
    assert promotion_drift("s/1", profile, elsewhere, rules).problem == (
        "the two trainings read no dataset of the same path"
    )
    newer = promotion_drift("s/1", profile, {**profile, "format": 2}, rules)
    assert newer.problem == "training profiles in formats ['1', '2']; this promote reads format 1"
    assert newer.summary.startswith("not measured: ")
    same = promotion_drift("s/1", profile, profile, rules)
    assert (same.problem, same.share, same.drifted_features) == (None, 0.0, [])
