"""Gates a candidate version must pass before it may become champion."""

from __future__ import annotations

from dataclasses import dataclass

from promote.manifests.schema import Gates
from promote.registry.footprint import NO_CHAMPION, Comparison


@dataclass(frozen=True)
class MeasuredDrift:
    """How far a rebuild's training data is from its source's (`drift.promotion`)."""

    share: float | None  # None: it could not be measured, for `problem`
    drifted: list[str]  # the drifted features, named
    problem: str | None = None


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {'pass' if self.passed else 'FAIL'} ({self.detail})"


def evaluate(
    gates: Gates,
    metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    artifact_bytes: int,
    footprint: Comparison | None = None,
    drift: MeasuredDrift | None = None,
) -> list[GateResult]:
    """Every gate's verdict; a metric a gate names but the run did not log fails that gate, a
    ratio gate fails when its figure could not be measured (`footprint` None: not built), and
    so does the drift gate for a rebuild whose drift from its source could not be measured."""
    results = []
    for name, threshold in sorted(gates.metrics.items()):
        value = metrics.get(name)
        if value is None:
            results.append(GateResult(f"metric {name}", False, "not logged by the training run"))
            continue
        low_ok = threshold.min is None or value >= threshold.min
        high_ok = threshold.max is None or value <= threshold.max
        bounds = " and ".join(
            part
            for part in (
                f">= {threshold.min}" if threshold.min is not None else "",
                f"<= {threshold.max}" if threshold.max is not None else "",
            )
            if part
        )
        results.append(
            GateResult(f"metric {name}", low_ok and high_ok, f"{value:.4f}, needs {bounds}")
        )
    rule = gates.no_regression
    if rule is not None:
        value = metrics.get(rule.metric)
        baseline = (champion_metrics or {}).get(rule.metric)
        if value is None:
            results.append(GateResult("no regression", False, f"{rule.metric} not logged"))
        elif baseline is None:
            results.append(GateResult("no regression", True, "no champion to compare with"))
        else:
            change = value - baseline if rule.higher_is_better else baseline - value
            results.append(
                GateResult(
                    "no regression",
                    change >= -rule.tolerance,
                    f"{rule.metric} {value:.4f} vs champion {baseline:.4f}, "
                    f"tolerance {rule.tolerance}",
                )
            )
    if gates.max_artifact_mb is not None:
        size_mb = artifact_bytes / 1e6
        results.append(
            GateResult(
                "artifact size",
                size_mb <= gates.max_artifact_mb,
                f"{size_mb:.2f} MB, budget {gates.max_artifact_mb} MB",
            )
        )
    if gates.max_latency_ratio is not None:
        results.append(_latency(gates.max_latency_ratio, footprint))
    if gates.max_complexity_ratio is not None:
        results.append(_complexity(gates.max_complexity_ratio, footprint))
    if gates.max_drift_share is not None:
        results.append(_drift_gate(gates.max_drift_share, drift))
    return results


def _drift_gate(limit: float, drift: MeasuredDrift | None) -> GateResult:
    if drift is None:
        return GateResult("data drift", True, "a training: no source to compare with")
    if drift.share is None:
        return GateResult("data drift", False, f"not measured: {drift.problem}")
    named = f": {', '.join(drift.drifted)}" if drift.drifted else ""
    return GateResult(
        "data drift",
        drift.share <= limit,
        f"{drift.share:.0%} of features drifted from the source's data{named}, "
        f"at most {limit:.0%} allowed",
    )


def _latency(budget: float, footprint: Comparison | None) -> GateResult:
    name = "latency ratio"
    if footprint is None or footprint.candidate.latency is None:
        why = footprint.candidate.latency_problem if footprint else "measured at apply"
        return GateResult(name, False, f"not measured: {why}")
    latency = footprint.candidate.latency
    if footprint.champion is None:
        return GateResult(name, True, f"{latency}; {NO_CHAMPION} to compare with")
    ratio = footprint.latency_ratio
    if ratio is None or footprint.champion.latency is None:
        return GateResult(name, False, f"{latency}; the champion's could not be measured")
    return GateResult(
        name,
        ratio <= budget,
        f"{ratio:.2f}x champion v{footprint.champion_version} (p50 {latency.p50_ms:.3f} ms vs "
        f"{footprint.champion.latency.p50_ms:.3f} ms; p95 {latency.p95_ms:.3f} ms vs "
        f"{footprint.champion.latency.p95_ms:.3f} ms), budget {budget}x",
    )


def _complexity(budget: float, footprint: Comparison | None) -> GateResult:
    name = "complexity ratio"
    complexity = footprint.candidate.complexity if footprint else None
    if footprint is None or complexity is None:
        return GateResult(name, False, "the flavor exposes no complexity measure")
    if footprint.champion is None:
        return GateResult(name, True, f"{complexity}; {NO_CHAMPION} to compare with")
    ratio = footprint.complexity_ratio
    theirs = footprint.champion.complexity
    if ratio is None or theirs is None:
        return GateResult(
            name, False, f"{complexity}: not comparable with the champion's ({theirs or 'none'})"
        )
    return GateResult(
        name,
        ratio <= budget,
        f"{ratio:.2f}x champion v{footprint.champion_version} ({complexity} vs {theirs}), "
        f"budget {budget}x",
    )
