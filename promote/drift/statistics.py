"""Two-sample statistics between a training profile and current data, on the profile's grid.

The Kolmogorov-Smirnov and Wasserstein statistics compare the current values themselves with
the profile's distribution: exact when every training value is an edge (a column with few
distinct values), linear between quantile edges otherwise. PSI, chi-square and Jensen-Shannon
compare counts per bin: the profile's edges for numbers, its top categories and the rest for
categories.
"""

from __future__ import annotations

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


def _gaps(reference: Binned, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gap between the profile's distribution and the values', piece by piece.

    The pieces run between the edges and the values, sorted: on each, the values' distribution
    is constant and the profile's linear (or constant), so each gap is linear, from its `start`
    to its `end` across `widths`.
    """
    ordered = np.sort(values)
    points = np.union1d(reference.edges, ordered)
    current = np.searchsorted(ordered, points, side="right")[:-1] / len(ordered)
    start = _reference_cdf(reference, points[:-1], left_limit=False) - current
    end = _reference_cdf(reference, points[1:], left_limit=True) - current
    return start, end, np.diff(points)


def ks_distance(reference: Binned, values: np.ndarray) -> float:
    """The largest gap between the profile's cumulative distribution and the values'."""
    start, end, _ = _gaps(reference, values)
    return float(max(np.abs(start).max(initial=0.0), np.abs(end).max(initial=0.0)))


def ks_p_value(distance: float, reference_size: int, current_size: int) -> float:
    """Smirnov's asymptotic two-sided p-value, as scipy's `ks_2samp` computes it."""
    from scipy.stats import kstwo

    effective = np.round(reference_size * current_size / (reference_size + current_size))
    return float(np.clip(kstwo.sf(distance, max(effective, 1.0)), 0.0, 1.0))


def wasserstein(reference: Binned, values: np.ndarray) -> float:
    """The earth mover's distance: the area between the two cumulative distributions."""
    start, end, widths = _gaps(reference, values)
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
