"""Drift of one dataset against its training profile, feature by feature.

Each column gets the method Evidently's data drift preset chooses, unless the rules name one:
numbers with more than 5 distinct values, the Kolmogorov-Smirnov test when training had at most
1,000 of them and the Wasserstein distance (normed by the training deviation) beyond; categories,
and numbers with at most 5 distinct values, the chi-square test, then the Jensen-Shannon distance.
PSI is given for every column. Large samples get distances because any test rejects a tiny,
harmless shift once there are enough rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from promote.drift import statistics
from promote.drift.profile import NUMERIC, profile_sample
from promote.drift.tally import (
    CategoryTally,
    ColumnTally,
    DatasetTally,
    NumericTally,
    tally_frame,
)
from promote.manifests.schema import P_VALUE_METHODS, DriftRules, FeatureDriftRule

SMALL_SAMPLE = 1000
FEW_VALUES = 5
# Rows a dataset known only by its profile is compared as, at most: 100 columns of them stay
# within tens of megabytes.
PROFILE_SAMPLE_ROWS = 50_000
# The bin of the categories that are not among the profile's most frequent, new ones included.
OTHER_CATEGORIES = "(other)"


@dataclass(frozen=True)
class Distribution:
    """A column at training and now, on the profile's grid, for the report's plot."""

    labels: list[str]  # the edges of a numeric column, else the categories
    training: list[float]
    current: list[float]
    cumulative: bool  # shares at or under each edge (numbers), else per category


@dataclass(frozen=True)
class FeatureDrift:
    column: str
    kind: str
    method: str | None  # None when there was nothing to compare
    score: float | None  # a p-value or a distance, as the method gives
    threshold: float | None
    psi: float | None
    missing: tuple[float, float]  # share of missing values at training, and now
    drifted: bool
    reason: str
    distribution: Distribution | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": self.kind,
            "method": self.method,
            "score": self.score,
            "threshold": self.threshold,
            "psi": self.psi,
            "missing_share": {"training": self.missing[0], "current": self.missing[1]},
            "drifted": self.drifted,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class DatasetDrift:
    name: str  # what was read: a path under the data root, or the batch given
    reference: str  # the dataset of the training profile it was compared with
    rows: int
    features: list[FeatureDrift]
    target: FeatureDrift | None  # None when the data has no target column
    drift_share: float
    unprofiled: list[str]  # columns the training did not have

    @property
    def drifted_features(self) -> list[FeatureDrift]:
        return [feature for feature in self.features if feature.drifted]

    @property
    def share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def drifted(self) -> bool:
        return self.share > self.drift_share or (self.target is not None and self.target.drifted)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reference": self.reference,
            "rows": self.rows,
            "drifted": self.drifted,
            "drifted_share": self.share,
            "drift_share": self.drift_share,
            "features": [feature.to_json() for feature in self.features],
            "target": self.target.to_json() if self.target else None,
            "unprofiled_columns": self.unprofiled,
        }


def default_method(trained: dict[str, Any]) -> str:
    small = trained["count"] <= SMALL_SAMPLE
    if trained["kind"] == NUMERIC and trained["distinct"] > FEW_VALUES:
        return "ks" if small else "wasserstein"
    return "chisquare" if small else "jensenshannon"


def _verdict(method: str, score: float, threshold: float) -> tuple[bool, str]:
    if method in P_VALUE_METHODS:
        drifted = score < threshold
        return drifted, f"{method} p-value {score:.3g} {'<' if drifted else '>='} {threshold:g}"
    drifted = score >= threshold
    return drifted, f"{method} {score:.3g} {'>=' if drifted else '<'} {threshold:g}"


def _category_counts(
    trained: dict[str, Any], current: CategoryTally
) -> tuple[np.ndarray, np.ndarray, Distribution]:
    reference = np.array([count for _, count in trained["top"]] + [trained["other"]])
    counts = np.append(current.counts, current.others)
    distribution = Distribution(
        [*current.labels, OTHER_CATEGORIES],
        (reference / reference.sum()).tolist(),
        (counts / counts.sum()).tolist(),
        cumulative=False,
    )
    return reference, counts, distribution


def _scores(
    trained: dict[str, Any], tally: ColumnTally
) -> tuple[dict[str, Callable[[], float]], Distribution]:
    """Each method's score of the column's present values against its profile, computed when
    asked, and the two distributions to plot."""
    numeric: dict[str, Callable[[], float]] = {}
    if isinstance(tally, NumericTally):
        reference, current = tally.reference, tally.binned
        trained_counts, current_counts = reference.bin_counts(), current.bin_counts()
        numeric = {
            "ks": lambda: statistics.ks_p_value(
                statistics.ks_distance(reference, tally.sample()), reference.total, tally.present
            ),
            # A constant training column (a rule may ask) has no spread to norm by: any
            # distance from it is then vast: any shift at all is drift.
            "wasserstein": lambda: (
                statistics.wasserstein(reference, tally.sample())
                / max(trained["std"], np.finfo(float).tiny)
            ),
        }
        distribution = Distribution(
            [f"{edge:g}" for edge in reference.edges],
            reference.cdf().tolist(),
            current.cdf().tolist(),
            cumulative=True,
        )
    else:
        trained_counts, current_counts, distribution = _category_counts(trained, tally)
    return {
        **numeric,
        "chisquare": lambda: statistics.chi_square_p_value(trained_counts, current_counts),
        "jensenshannon": lambda: statistics.jensen_shannon(trained_counts, current_counts),
        "psi": lambda: statistics.psi(trained_counts, current_counts),
    }, distribution


def compare_column(
    column: str,
    trained: dict[str, Any],
    tally: ColumnTally | None,
    rule: FeatureDriftRule | None,
    rules: DriftRules,
) -> FeatureDrift:
    """One column now against its profile; `tally` None: the column is gone from the data."""
    kind, was_missing = trained["kind"], trained["missing_share"]
    if tally is None:
        return FeatureDrift(
            column, kind, None, None, None, None, (was_missing, 1.0), True, "missing from the data"
        )
    rows = tally.rows
    missing = (was_missing, (rows - tally.present) / rows if rows else 1.0)
    if trained["count"] == 0 or tally.present == 0:
        # Nothing to compare on one side; values that are gone are the finding.
        gone = trained["count"] > 0
        reason = "no values now" if gone else "no values at training: not compared"
        return FeatureDrift(column, kind, None, None, None, None, missing, gone, reason)
    scores, distribution = _scores(trained, tally)
    method = rule.method if rule is not None else default_method(trained)
    threshold = rule.threshold if rule is not None else None
    if threshold is None:
        threshold = getattr(rules.thresholds, method)
    score = scores[method]()
    drifted, reason = _verdict(method, score, threshold)
    if missing[1] - missing[0] > rules.max_missing_increase:
        drifted, reason = True, f"missing {missing[0]:.1%} -> {missing[1]:.1%}; {reason}"
    return FeatureDrift(
        column,
        kind,
        method,
        score,
        threshold,
        scores["psi"](),
        missing,
        drifted,
        reason,
        distribution,
    )


def compare_dataset(
    name: str, current: DatasetTally, target: str | None, rules: DriftRules
) -> DatasetDrift:
    """A dataset now, tallied against one dataset of the training profile, under `rules`.

    The target is judged apart from the features, and only where the data has it: a batch of
    scoring inputs has no labels.
    """
    trained = current.trained
    profiled = trained["columns"]
    compared = [
        column
        for column in profiled
        if column not in rules.ignore and (column != target or current.column(column) is not None)
    ]
    results = {
        column: compare_column(
            column, profiled[column], current.column(column), rules.features.get(column), rules
        )
        for column in compared
    }
    target_drift = results.pop(target) if target in results else None
    return DatasetDrift(
        name=name,
        reference=trained["path"],
        rows=current.rows,
        features=list(results.values()),
        target=target_drift,
        drift_share=rules.drift_share,
        unprofiled=current.unprofiled,
    )


def compare_frame(
    name: str, frame: pd.DataFrame, trained: dict[str, Any], target: str | None, rules: DriftRules
) -> DatasetDrift:
    """A dataset held in memory against one dataset of the training profile."""
    return compare_dataset(name, tally_frame(frame, trained), target, rules)


def compare_profiles(
    name: str,
    current: dict[str, Any],
    trained: dict[str, Any],
    target: str | None,
    rules: DriftRules,
) -> DatasetDrift:
    """A dataset known by its training profile (`current`) against another training profile,
    by the same statistics as data read now: `current` is turned back into the values it
    describes (`profile_sample`), up to `PROFILE_SAMPLE_ROWS` rows. Exact for numbers with few
    distinct values and for categories; between quantile edges, as linear as the statistics
    take the reference to be. Beyond that many rows the shares hold and p-values are those of
    that many rows: a test is then no more sensitive than on them."""
    return compare_frame(name, profile_sample(current, PROFILE_SAMPLE_ROWS), trained, target, rules)
