"""Concept drift: the champion scored on labelled data, against the metrics its training recorded.

The inputs may look as they did at training while the link between them and the target has
changed; only labels show it. promote recomputes the metrics it knows by name (scikit-learn's
definitions) and leaves the others out, saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from promote.errors import InputError
from promote.manifests.schema import ConceptRules


class Metric(NamedTuple):
    higher_is_better: bool
    function: str  # in sklearn.metrics
    reads_scores: bool  # class probabilities, not predicted labels


# The metrics a training may record that promote can recompute, by the names scripts use.
METRICS = {
    "accuracy": Metric(True, "accuracy_score", False),
    "f1": Metric(True, "f1_score", False),
    "precision": Metric(True, "precision_score", False),
    "recall": Metric(True, "recall_score", False),
    "roc_auc": Metric(True, "roc_auc_score", True),
    "log_loss": Metric(False, "log_loss", True),
    "mae": Metric(False, "mean_absolute_error", False),
    "mse": Metric(False, "mean_squared_error", False),
    "rmse": Metric(False, "root_mean_squared_error", False),
    "r2": Metric(True, "r2_score", False),
}


@dataclass(frozen=True)
class MetricDrift:
    metric: str
    trained: float
    current: float
    tolerance: float
    higher_is_better: bool

    @property
    def loss(self) -> float:
        """How much worse the metric is now than at training (negative: better)."""
        change = self.trained - self.current
        return change if self.higher_is_better else -change

    @property
    def drifted(self) -> bool:
        return self.loss > self.tolerance

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "trained": self.trained,
            "current": self.current,
            "tolerance": self.tolerance,
            "higher_is_better": self.higher_is_better,
            "drifted": self.drifted,
        }


def computable(recorded: dict[str, float]) -> list[str]:
    return sorted(name for name in recorded if name in METRICS)


def _value(metric: Metric, labels: Any, predictions: Any, scores: Any) -> float:
    from sklearn import metrics

    function = getattr(metrics, metric.function)
    if not metric.reads_scores:
        return float(function(labels, predictions))
    if metric.function == "roc_auc_score":
        # Two classes: the positive class's probability; more: one class against the rest.
        if scores.shape[1] == 2:
            return float(function(labels, scores[:, 1]))
        return float(function(labels, scores, multi_class="ovr"))
    return float(function(labels, scores))


def concept_drift(
    recorded: dict[str, float],
    labels: Any,
    predictions: np.ndarray,
    scores: np.ndarray | None,
    rules: ConceptRules,
) -> tuple[list[MetricDrift], list[str]]:
    """Each recorded metric promote knows, recomputed on `labels`; and the metrics left out,
    each with why."""
    results, left_out = [], []
    for name in sorted(recorded):
        metric = METRICS.get(name)
        if metric is None:
            left_out.append(f"{name}: promote does not know how it is computed")
            continue
        if metric.reads_scores and scores is None:
            left_out.append(f"{name}: the model gives no class probabilities")
            continue
        try:
            current = _value(metric, labels, predictions, scores)
        except ValueError as exc:  # scikit-learn's word for labels the metric cannot score
            first_line = (str(exc).splitlines() or [""])[0]
            raise InputError("--labels", None, f"cannot compute {name}: {first_line}") from None
        tolerance = rules.metrics.get(name, rules.tolerance)
        results.append(
            MetricDrift(name, recorded[name], current, tolerance, metric.higher_is_better)
        )
    return results, left_out
