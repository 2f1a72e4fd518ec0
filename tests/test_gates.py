"""Gates: metric thresholds, no regression against the champion, the artifact size budget."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from promote.gates import GateResult, MeasuredDrift, evaluate
from promote.manifests.schema import Gates, NoRegression, Threshold

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
    result = _only(evaluate(_gates(max_drift_share=0.25), {}, None, 0, drift))
    assert (result.name, result.passed, result.detail) == ("data drift", passed, detail)


def test_a_manifests_max_drift_share_only_tightens_its_environments() -> None:
    environment = _gates(max_drift_share=0.3)
    assert _gates(max_drift_share=0.1).merged_over(environment).max_drift_share == 0.1
    assert Gates().merged_over(environment).max_drift_share == 0.3
    problem = _gates(max_drift_share=0.5).refinement_problem(environment, "prod")
    assert problem is not None and problem[0] == "max_drift_share"
