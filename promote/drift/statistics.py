"""Two-sample statistics between a training profile and current data, on the profile's grid.

The Kolmogorov-Smirnov and Wasserstein statistics compare the current values (a `Sample`: each
value exactly, or counts in narrow cells of a batch too large to keep) with the profile's
distribution: exact when every training value is an edge (a column with few distinct values),
linear between quantile edges otherwise. PSI, chi-square and Jensen-Shannon compare counts per
bin: the profile's edges for numbers, its top categories and the rest for categories.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from promote.drift.profile import Binned

# PSI divides by each bin's share: an empty bin counts as this share, as Evidently does.
PSI_EMPTY_SHARE = 1e-4


def _shares(counts: np.ndarray) -> np.ndarray:
    return counts / counts.sum()


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    expected = np.where(reference == 0, PSI_EMPTY_SHARE, _shares(reference))
    actual = np.where(current == 0, PSI_EMPTY_SHARE, _shares(current))
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _reference_cdf(reference: Binned, points: np.ndarray, left_limit: bool) -> np.ndarray:
    """The profile's cumulative distribution at `points`, or just before them: linear between
    quantile edges (with the minimum's own share at the first edge), else a step at each edge."""
    cdf = np.concatenate([[0.0], reference.cdf()])
    edges = reference.edges
    if not reference.spread:
        return cdf[np.searchsorted(edges, points, side="left" if left_limit else "right")]
    linear = np.interp(points, edges, cdf[1:], left=0.0, right=1.0)
    return np.where(points <= edges[0], 0.0, linear) if left_limit else linear


@dataclass(frozen=True)
class Sample:
    """The current values of a column as a distribution: `cumulative[i]` is the share at or under
    `points[i]`. Exact values are steps at each point; counts in cells (`linear`) are spread
    evenly within each cell, `points` holding every cell's bounds."""

    points: np.ndarray
    cumulative: np.ndarray
    total: int
    linear: bool = False

    @classmethod
    def of_values(cls, values: np.ndarray) -> Sample:
        distinct, counts = np.unique(values, return_counts=True)
        return cls.of_counts(distinct, counts)

    @classmethod
    def of_counts(cls, distinct: np.ndarray, counts: np.ndarray) -> Sample:
        total = int(counts.sum())
        return cls(distinct, np.cumsum(counts) / max(total, 1), total)

    def cdf(self, points: np.ndarray, left_limit: bool) -> np.ndarray:
        """The share at or under each of `points`, or just under them."""
        if self.linear:
            return np.interp(points, self.points, self.cumulative, left=0.0, right=1.0)
        index = np.searchsorted(self.points, points, side="left" if left_limit else "right")
        return np.concatenate([[0.0], self.cumulative])[index]


def _gaps(reference: Binned, current: Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gap between the profile's distribution and the current one, piece by piece.

    The pieces run between the edges and the current points, sorted: on each, both
    distributions are constant or linear, so each gap is linear, from its `start` to its `end`
    across `widths`.
    """
    points = np.union1d(reference.edges, current.points)
    start = _reference_cdf(reference, points[:-1], left_limit=False) - current.cdf(
        points[:-1], left_limit=False
    )
    end = _reference_cdf(reference, points[1:], left_limit=True) - current.cdf(
        points[1:], left_limit=True
    )
    return start, end, np.diff(points)


def ks_distance(reference: Binned, current: Sample) -> float:
    """The largest gap between the profile's cumulative distribution and the current one."""
    start, end, _ = _gaps(reference, current)
    return float(max(np.abs(start).max(initial=0.0), np.abs(end).max(initial=0.0)))


def ks_p_value(distance: float, reference_size: int, current_size: int) -> float:
    """Smirnov's asymptotic two-sided p-value, as scipy's `ks_2samp` computes it."""
    from scipy.stats import kstwo

    effective = np.round(reference_size * current_size / (reference_size + current_size))
    return float(np.clip(kstwo.sf(distance, max(effective, 1.0)), 0.0, 1.0))


def wasserstein(reference: Binned, current: Sample) -> float:
    """The earth mover's distance: the area between the two cumulative distributions."""
    start, end, widths = _gaps(reference, current)
    magnitude = np.abs(start) + np.abs(end)
    crossing = start * end < 0
    # The area under a linear gap; where it changes sign, the two triangles either side of 0.
    mean_gap = np.where(
        crossing, (start**2 + end**2) / (2 * np.where(crossing, magnitude, 1.0)), magnitude / 2
    )
    return float(mean_gap @ widths)


def chi_square_p_value(reference: np.ndarray, current: np.ndarray) -> float:
    """Pearson's chi-square test that both count vectors come from one distribution.

    Without Yates' correction: on two categories this is the two-proportion z-test that
    Evidently applies to binary columns.
    """
    from scipy.stats import chi2_contingency

    table = np.vstack([reference, current])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0  # both samples hold one and the same value
    return float(chi2_contingency(table, correction=False).pvalue)


def jensen_shannon(reference: np.ndarray, current: np.ndarray) -> float:
    """The Jensen-Shannon distance of the two count vectors' shares (natural logarithm)."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(_shares(reference), _shares(current)))
