"""Gates: metric thresholds, no regression against the champion, the artifact size budget, and
the footprint against the champion's: latency and complexity ratios, on real trainings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from support.world import MODEL, World

from promote.gates import GateResult, MeasuredDrift, evaluate
from promote.manifests.schema import Gates, NoRegression, Threshold
from promote.registry.entities import CHAMPION, TAG_REASON, TAG_VERDICT, Version
from promote.registry.footprint import (
    TAG_ARTIFACT_MB,
    TAG_COMPLEXITY,
    TAG_COMPLEXITY_RATIO,
    TAG_LATENCY_P50,
    TAG_LATENCY_P95,
    TAG_LATENCY_RATIO,
    Comparison,
    Complexity,
    Footprint,
    Latency,
)

MB = 1_000_000


def _gates(**fields: object) -> Gates:
    return Gates.model_validate(fields)


def _only(results: list[GateResult]) -> GateResult:
    assert len(results) == 1, results
    return results[0]


def test_no_gates_give_no_verdicts() -> None:
    assert evaluate(Gates(), {"accuracy": 0.1}, {"accuracy": 0.9}, 10**12) == []


@pytest.mark.parametrize(
    ("threshold", "value", "passed", "detail"),
    [
        ({"min": 0.8}, 0.85, True, "0.8500, needs >= 0.8"),
        ({"min": 0.8}, 0.8, True, "0.8000, needs >= 0.8"),  # the bound itself passes
        ({"min": 0.8}, 0.79, False, "0.7900, needs >= 0.8"),
        ({"max": 0.2}, 0.2, True, "0.2000, needs <= 0.2"),
        ({"max": 0.2}, 0.25, False, "0.2500, needs <= 0.2"),
        ({"min": 0.1, "max": 0.2}, 0.15, True, "0.1500, needs >= 0.1 and <= 0.2"),
        ({"min": 0.1, "max": 0.2}, 0.05, False, "0.0500, needs >= 0.1 and <= 0.2"),
        ({"min": 0.1, "max": 0.2}, 0.3, False, "0.3000, needs >= 0.1 and <= 0.2"),
    ],
)
def test_metric_thresholds(
    threshold: dict[str, float], value: float, passed: bool, detail: str
) -> None:
    result = _only(evaluate(_gates(metrics={"accuracy": threshold}), {"accuracy": value}, None, 0))
    assert result == GateResult("metric accuracy", passed, detail)
    verdict = "pass" if passed else "FAIL"
    assert str(result) == f"metric accuracy: {verdict} ({detail})"


def test_a_metric_the_run_did_not_log_fails_its_gate() -> None:
    results = evaluate(
        _gates(metrics={"accuracy": {"min": 0.5}, "roc_auc": {"min": 0.5}}),
        {"accuracy": 0.9},
        None,
        0,
    )
    assert results == [
        GateResult("metric accuracy", True, "0.9000, needs >= 0.5"),
        GateResult("metric roc_auc", False, "not logged by the training run"),
    ]
    assert str(results[1]) == "metric roc_auc: FAIL (not logged by the training run)"


def test_metric_gates_are_reported_in_name_order() -> None:
    gates = _gates(metrics={"zeta": {"min": 0}, "alpha": {"min": 0}, "mid": {"min": 0}})
    names = [r.name for r in evaluate(gates, {"zeta": 1, "alpha": 1, "mid": 1}, None, 0)]
    assert names == ["metric alpha", "metric mid", "metric zeta"]


@pytest.mark.parametrize(
    ("value", "champion", "passed"),
    [
        (0.80, 0.80, True),  # equal is no regression
        (0.85, 0.80, True),  # better
        (0.78, 0.80, True),  # worse, but within the tolerance of 0.03
        (0.76, 0.80, False),  # worse by more than the tolerance
    ],
)
def test_no_regression_when_higher_is_better(value: float, champion: float, passed: bool) -> None:
    gates = Gates(no_regression=NoRegression(metric="roc_auc", tolerance=0.03))
    result = _only(evaluate(gates, {"roc_auc": value}, {"roc_auc": champion}, 0))
    assert result.name == "no regression"
    assert result.passed is passed
    assert result.detail == f"roc_auc {value:.4f} vs champion {champion:.4f}, tolerance 0.03"


@pytest.mark.parametrize(
    ("value", "champion", "passed"),
    [
        (0.30, 0.30, True),
        (0.20, 0.30, True),  # lower loss is better
        (0.34, 0.30, True),  # higher, within the tolerance of 0.05
        (0.40, 0.30, False),  # higher by more than the tolerance
    ],
)
def test_no_regression_when_lower_is_better(value: float, champion: float, passed: bool) -> None:
    gates = _gates(no_regression={"metric": "loss", "tolerance": 0.05, "higher_is_better": False})
    result = _only(evaluate(gates, {"loss": value}, {"loss": champion}, 0))
    assert result.passed is passed, result


def test_no_regression_without_tolerance_refuses_any_worse_value() -> None:
    gates = Gates(no_regression=NoRegression(metric="roc_auc"))
    assert gates.no_regression is not None and gates.no_regression.tolerance == 0.0
    worse = _only(evaluate(gates, {"roc_auc": 0.7999}, {"roc_auc": 0.8}, 0))
    assert not worse.passed
    assert str(worse) == "no regression: FAIL (roc_auc 0.7999 vs champion 0.8000, tolerance 0.0)"
    assert _only(evaluate(gates, {"roc_auc": 0.8}, {"roc_auc": 0.8}, 0)).passed


@pytest.mark.parametrize("champion", [None, {}, {"accuracy": 0.99}])
def test_without_a_champion_metric_there_is_no_regression_check(
    champion: dict[str, float] | None,
) -> None:
    gates = Gates(no_regression=NoRegression(metric="roc_auc", tolerance=0.0))
    result = _only(evaluate(gates, {"roc_auc": 0.1}, champion, 0))
    assert result == GateResult("no regression", True, "no champion to compare with")
    assert str(result) == "no regression: pass (no champion to compare with)"


def test_no_regression_on_a_metric_the_run_did_not_log_fails() -> None:
    gates = Gates(no_regression=NoRegression(metric="roc_auc"))
    for champion in (None, {"roc_auc": 0.8}):
        result = _only(evaluate(gates, {"accuracy": 0.9}, champion, 0))
        assert result == GateResult("no regression", False, "roc_auc not logged")


@pytest.mark.parametrize(
    ("size", "passed", "detail"),
    [
        (0, True, "0.00 MB, budget 50.0 MB"),
        (12 * MB, True, "12.00 MB, budget 50.0 MB"),
        (50 * MB, True, "50.00 MB, budget 50.0 MB"),  # exactly the budget fits
        (50 * MB + 1, False, "50.00 MB, budget 50.0 MB"),
        (75_500_000, False, "75.50 MB, budget 50.0 MB"),
    ],
)
def test_artifact_size_budget(size: int, passed: bool, detail: str) -> None:
    result = _only(evaluate(Gates(max_artifact_mb=50.0), {}, None, size))
    assert result == GateResult("artifact size", passed, detail)


def test_every_gate_gives_one_verdict_in_a_fixed_order() -> None:
    gates = Gates(
        metrics={"roc_auc": Threshold(min=0.65), "accuracy": Threshold(min=0.6)},
        no_regression=NoRegression(metric="roc_auc", tolerance=0.03),
        max_artifact_mb=1.0,
    )
    results = evaluate(gates, {"roc_auc": 0.7, "accuracy": 0.5}, {"roc_auc": 0.8}, 2 * MB)
    assert [str(r) for r in results] == [
        "metric accuracy: FAIL (0.5000, needs >= 0.6)",
        "metric roc_auc: pass (0.7000, needs >= 0.65)",
        "no regression: FAIL (roc_auc 0.7000 vs champion 0.8000, tolerance 0.03)",
        "artifact size: FAIL (2.00 MB, budget 1.0 MB)",
    ]
    assert not all(r.passed for r in results)


PROD_FLOOR = {
    "metrics": {"roc_auc": {"min": 0.8}},
    "no_regression": {"metric": "roc_auc", "tolerance": 0.0},
    "max_artifact_mb": 10,
}


@pytest.mark.parametrize(
    "manifest",
    [
        {"no_regression": {"metric": "roc_auc", "tolerance": 0.03}},
        {"no_regression": {"metric": "accuracy", "tolerance": 0.0}},
        {"no_regression": {"metric": "roc_auc", "higher_is_better": False}},
        {"metrics": {"roc_auc": {"min": 0.5}}},
        {"max_artifact_mb": 500},
    ],
)
def test_a_manifest_built_in_code_is_held_to_its_environments_floor_too(
    manifest: dict[str, object],
) -> None:
    """The loader refuses these; a manifest that never went through it (one `promote model`
    builds) merges over the environment's gates without loosening one of them."""
    floor = _gates(**PROD_FLOOR)
    assert _gates(**manifest).refinement_problem(floor, "prod") is not None
    merged = _gates(**manifest).merged_over(floor)
    assert merged.no_regression == floor.no_regression
    assert merged.metrics["roc_auc"].min == 0.8 and merged.max_artifact_mb == 10
    # The regression that prompted this: a champion at 0.80, a candidate at 0.78.
    verdicts = evaluate(merged, {"roc_auc": 0.78}, {"roc_auc": 0.80}, 0)
    assert [r.name for r in verdicts if not r.passed] == ["metric roc_auc", "no regression"]


def test_a_manifest_that_only_tightens_refines_its_environments_gates() -> None:
    floor = _gates(**PROD_FLOOR)
    tighter = _gates(
        metrics={"roc_auc": {"min": 0.9, "max": 1.0}, "accuracy": {"min": 0.1}},
        no_regression={"metric": "roc_auc", "tolerance": 0.0, "higher_is_better": True},
        max_artifact_mb=1,
    )
    assert tighter.refinement_problem(floor, "prod") is None
    assert Gates().refinement_problem(floor, "prod") is None
    assert floor.refinement_problem(Gates(), "dev") is None  # no floor: anything refines it
    merged = tighter.merged_over(floor)
    assert (merged.metrics["roc_auc"].min, merged.metrics["roc_auc"].max) == (0.9, 1.0)
    assert merged.metrics["accuracy"].min == 0.1 and merged.max_artifact_mb == 1


@pytest.mark.parametrize(
    "gates",
    [
        {"metrics": {"auc": {"min": float("nan")}}},
        {"metrics": {"auc": {"max": float("inf")}}},
        {"no_regression": {"metric": "auc", "tolerance": float("inf")}},
        {"no_regression": {"metric": "auc", "tolerance": float("nan")}},
        {"max_artifact_mb": float("inf")},
        {"max_artifact_mb": float("nan")},
    ],
)
def test_gates_hold_finite_numbers_only(gates: dict[str, object]) -> None:
    """NaN compares false with everything and infinity passes everything: a gate of either
    could never fail (or never pass)."""
    with pytest.raises(ValidationError, match="finite number"):
        _gates(**gates)


def _footprint(
    latency: tuple[float, float] | None,
    champion_latency: tuple[float, float] | None,
    complexity: Complexity | None = None,
    champion_complexity: Complexity | None = None,
    has_champion: bool = True,
) -> Comparison:
    mine = Footprint(MB, Latency(*latency) if latency else None, complexity, "no input example")
    theirs = Footprint(
        MB, Latency(*champion_latency) if champion_latency else None, champion_complexity
    )
    return Comparison(mine, theirs if has_champion else None, 1 if has_champion else None, 50, 5)


@pytest.mark.parametrize(
    ("comparison", "passed", "detail"),
    [
        (
            _footprint((2.0, 3.0), (1.0, 1.5)),
            True,
            "2.00x champion v1 (p50 2.000 ms vs 1.000 ms; p95 3.000 ms vs 1.500 ms), budget 2.0x",
        ),
        (
            _footprint((2.2, 3.0), (1.0, 1.5)),
            False,
            "2.20x champion v1 (p50 2.200 ms vs 1.000 ms; p95 3.000 ms vs 1.500 ms), budget 2.0x",
        ),
        (
            _footprint((2.2, 3.0), None, has_champion=False),
            True,
            "p50 2.200 ms, p95 3.000 ms; no champion to compare with",
        ),
        (_footprint(None, (1.0, 1.5)), False, "not measured: no input example"),
        (None, False, "not measured: measured at apply"),
    ],
)
def test_latency_ratio_against_the_champion(
    comparison: Comparison | None, passed: bool, detail: str
) -> None:
    result = _only(evaluate(Gates(max_latency_ratio=2.0), {}, None, 0, comparison))
    assert result == GateResult("latency ratio", passed, detail)


LINEAR = Complexity("parameters", 6)


@pytest.mark.parametrize(
    ("comparison", "passed", "detail"),
    [
        (
            _footprint(None, None, Complexity("leaves", 60, 4), Complexity("leaves", 40, 4)),
            True,
            "1.50x champion v1 (60 leaves in 4 trees vs 40 leaves in 4 trees), budget 1.5x",
        ),
        (
            _footprint(None, None, Complexity("leaves", 61, 4), Complexity("leaves", 40, 4)),
            False,
            "1.52x champion v1 (61 leaves in 4 trees vs 40 leaves in 4 trees), budget 1.5x",
        ),
        (
            _footprint(None, None, Complexity("leaves", 61, 4), LINEAR),
            False,
            "61 leaves in 4 trees: not comparable with the champion's (6 parameters)",
        ),
        (
            _footprint(None, None, LINEAR, has_champion=False),
            True,
            "6 parameters; no champion to compare with",
        ),
        (_footprint(None, None, None, LINEAR), False, "the flavor exposes no complexity measure"),
    ],
)
def test_complexity_ratio_against_the_champion(
    comparison: Comparison, passed: bool, detail: str
) -> None:
    result = _only(evaluate(Gates(max_complexity_ratio=1.5), {}, None, 0, comparison))
    assert result == GateResult("complexity ratio", passed, detail)


def test_ratio_budgets_merge_to_the_stricter_and_may_not_be_loosened() -> None:
    floor = Gates(max_latency_ratio=1.5, max_complexity_ratio=2.0)
    merged = Gates(max_latency_ratio=3.0, max_complexity_ratio=1.2).merged_over(floor)
    assert (merged.max_latency_ratio, merged.max_complexity_ratio) == (1.5, 1.2)
    problem = Gates(max_latency_ratio=3.0).refinement_problem(floor, "prod")
    assert problem is not None and problem[0] == "max_latency_ratio"


FOREST = """\
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, roc_auc_score

from promote import training

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "contract_months", "age"]

with training.start(target="churned") as run:
    train = run.read_csv("train.csv")
    test = run.read_csv("test.csv")
    # More trees: more work for every prediction, and a bigger model.
    model = RandomForestClassifier(
        n_estimators=int(run.params["trees"]), max_depth=4, random_state=0
    )
    model.fit(train[FEATURES], train["churned"])
    scores = model.predict_proba(test[FEATURES])[:, 1]
    run.log_metrics(
        {
            "roc_auc": roc_auc_score(test["churned"], scores),
            "accuracy": accuracy_score(test["churned"], scores >= 0.5),
        }
    )
    run.log_model(model, input_example=test[FEATURES].head(5))
"""


def _train_forests(world: World, gates: dict[str, float]) -> None:
    """dev's manifest trains a random forest of `trees` trees, held to `gates` only."""
    (world.repo / "models" / "churn" / "forest.py").write_text(FOREST)

    def use_forest(body: dict[str, Any]) -> None:
        body["code"] = {"entrypoint": "models/churn/forest.py", "params": {"trees": 5}}
        body["gates"] = gates

    world.edit_yaml("environments/dev/churn.yaml", use_forest)


def _rejected(world: World, trees: int) -> Version:
    result = world.cli("train", MODEL, "--env", "dev", "--param", f"trees={trees}")
    assert result.returncode == 1, result.stderr
    model = world.registry.model(f"dev.{MODEL}")
    assert model is not None
    candidate = model.versions[-1]
    assert candidate.tags[TAG_VERDICT] == "rejected"
    assert model.aliases[CHAMPION] == candidate.version - 1  # the champion stays
    return candidate


def _description(world: World, version: Version) -> str:
    found = world.registry.client.get_model_version(version.name, str(version.version))
    return str(found.description)


def test_a_slower_model_is_rejected_by_max_latency_ratio(world: World) -> None:
    _train_forests(world, {"max_latency_ratio": 3.0})
    assert world.train_dev() == 1  # no champion: the ratio gate passes, and says why
    first = world.registry.model(f"dev.{MODEL}")
    assert first is not None and first.champion is not None
    assert first.champion.tags[TAG_LATENCY_RATIO] == "no champion"
    assert float(first.champion.tags[TAG_LATENCY_P50]) > 0
    assert "latency ratio: pass" in _description(world, first.champion)
    assert "no champion to compare with" in _description(world, first.champion)

    slower = _rejected(world, trees=300)
    ratio = float(slower.tags[TAG_LATENCY_RATIO])
    assert ratio > 3.0
    assert float(slower.tags[TAG_LATENCY_P95]) >= float(slower.tags[TAG_LATENCY_P50])
    assert f"gate latency ratio: FAIL ({ratio:.2f}x champion v1" in slower.tags[TAG_REASON]
    described = _description(world, slower)
    assert "latency ratio: FAIL" in described and "**Footprint**: latency p50" in described


def test_a_bigger_ensemble_is_rejected_by_max_complexity_ratio(world: World) -> None:
    _train_forests(world, {"max_complexity_ratio": 1.5})
    assert world.train_dev() == 1
    first = world.registry.model(f"dev.{MODEL}")
    assert first is not None and first.champion is not None
    assert first.champion.tags[TAG_COMPLEXITY_RATIO] == "no champion"
    assert first.champion.tags[TAG_COMPLEXITY].endswith("leaves in 5 trees")

    bigger = _rejected(world, trees=20)
    assert bigger.tags[TAG_COMPLEXITY].endswith("leaves in 20 trees")
    assert float(bigger.tags[TAG_COMPLEXITY_RATIO]) > 1.5
    assert float(bigger.tags[TAG_ARTIFACT_MB]) > float(first.champion.tags[TAG_ARTIFACT_MB])
    assert "complexity ratio: FAIL" in _description(world, bigger)
    report = world.cli("report", "--env", "dev")
    assert report.returncode == 0, report.stderr
    assert "leaves in 5 trees (to champion: no champion)" in report.stdout  # the champion's row


@pytest.mark.parametrize(
    ("drift", "passed", "detail"),
    [
        (
            MeasuredDrift(0.2, ["train.csv:age"]),
            True,
            "20% of features drifted from the source's data: train.csv:age, at most 25% allowed",
        ),
        (
            MeasuredDrift(0.4, ["train.csv:age", "train.csv:income"]),
            False,
            "40% of features drifted from the source's data: train.csv:age, train.csv:income, "
            "at most 25% allowed",
        ),
        (MeasuredDrift(None, [], "no profile"), False, "not measured: no profile"),
        (None, True, "a training: no source to compare with"),
    ],
)
def test_max_drift_share_rejects_a_rebuild_whose_data_drifted_too_far(
    drift: MeasuredDrift | None, passed: bool, detail: str
) -> None:
    result = _only(evaluate(_gates(max_drift_share=0.25), {}, None, 0, drift=drift))
    assert (result.name, result.passed, result.detail) == ("data drift", passed, detail)


def test_a_manifests_max_drift_share_only_tightens_its_environments() -> None:
    environment = _gates(max_drift_share=0.3)
    assert _gates(max_drift_share=0.1).merged_over(environment).max_drift_share == 0.1
    assert Gates().merged_over(environment).max_drift_share == 0.3
    problem = _gates(max_drift_share=0.5).refinement_problem(environment, "prod")
    assert problem is not None and problem[0] == "max_drift_share"
