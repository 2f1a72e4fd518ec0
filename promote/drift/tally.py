"""Current data tallied against a training profile, one chunk of rows at a time.

A batch is never held whole: each column keeps what its statistics need, whatever the number of
rows. Counts on the profile's grid (PSI, chi-square, Jensen-Shannon, the report's plot) and of
the profile's categories are exact at any size. The Kolmogorov-Smirnov and Wasserstein
statistics compare the current values themselves: each distinct value is kept with its count up
to `EXACT_VALUES` of them, which covers any batch of that many rows and any column of few
values; past that, values are counted in cells, each profile bin cut into `CELLS_PER_BIN` equal
cells, and outside the training range cells that widen by `OUTER_GROWTH` of their distance from
it, taken as spread evenly within each cell. The Kolmogorov-Smirnov distance then errs by at
most the largest share of the batch in one cell, about 1/(bins x cells) of it when nothing
shifted; the Wasserstein distance by at most half a cell's width on average.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from promote.drift.profile import (
    NUMERIC,
    Binned,
    bin_values,
    category_keys,
    finite_values,
    reference_bins,
)
from promote.drift.statistics import Sample

EXACT_VALUES = 100_000
CELLS_PER_BIN = 64
OUTER_GROWTH = 0.01


class _Cells:
    """A numeric column's cells: within each profile bin, equal cells; beyond the training
    range, cells growing geometrically with distance from it. Cell ids sort as the values do."""

    def __init__(self, edges: np.ndarray) -> None:
        self.edges = edges
        span = float(edges[-1] - edges[0])
        inner = max(len(edges) - 1, 0) * CELLS_PER_BIN
        self.inner = inner
        # The first outer cell is as wide as an inner one (or a millionth of the value's size).
        self.unit = span / inner if inner else max(abs(float(edges[0])), 1.0) * 1e-6
        self.growth = np.log1p(OUTER_GROWTH)

    def ids(self, values: np.ndarray) -> np.ndarray:
        low, high = self.edges[0], self.edges[-1]
        ids = np.empty(len(values), dtype=np.int64)
        below, above = values < low, values > high
        inside = ~(below | above)
        if self.inner:
            bins = np.clip(np.searchsorted(self.edges, values[inside], side="left"), 1, None)
            lower, upper = self.edges[bins - 1], self.edges[bins]
            within = np.floor((values[inside] - lower) / (upper - lower) * CELLS_PER_BIN)
            ids[inside] = (bins - 1) * CELLS_PER_BIN + np.clip(within, 0, CELLS_PER_BIN - 1)
        else:
            ids[inside] = 0
        ids[below] = -1 - self._outer(low - values[below])
        ids[above] = max(self.inner, 1) + self._outer(values[above] - high)
        return ids

    def _outer(self, distance: np.ndarray) -> np.ndarray:
        return np.floor(np.log1p(distance / self.unit) / self.growth).astype(np.int64)

    def _outer_distance(self, index: np.ndarray) -> np.ndarray:
        return self.unit * np.expm1(index * self.growth)

    def bounds(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low, high = float(self.edges[0]), float(self.edges[-1])
        lower, upper = np.empty(len(ids)), np.empty(len(ids))
        below, above = ids < 0, ids >= max(self.inner, 1)
        inside = ~(below | above)
        if self.inner:
            bins, cell = np.divmod(ids[inside], CELLS_PER_BIN)
            start, width = self.edges[bins], self.edges[bins + 1] - self.edges[bins]
            lower[inside] = start + width * cell / CELLS_PER_BIN
            upper[inside] = start + width * (cell + 1) / CELLS_PER_BIN
        else:
            lower[inside] = upper[inside] = low
        far = -1 - ids[below]
        lower[below] = low - self._outer_distance(far + 1)
        upper[below] = low - self._outer_distance(far)
        near = ids[above] - max(self.inner, 1)
        lower[above] = high + self._outer_distance(near)
        upper[above] = high + self._outer_distance(near + 1)
        return lower, upper


def _merged(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys, sorted, each with the sum of its counts."""
    distinct, inverse = np.unique(keys, return_inverse=True)
    return distinct, np.bincount(inverse, weights=counts, minlength=len(distinct)).astype(np.int64)


class NumericTally:
    """A numeric column so far: its counts on the profile's grid, and its values (each distinct
    one with its count, or counts in cells once there are too many)."""

    def __init__(self, trained: dict[str, Any]) -> None:
        reference = reference_bins(trained)
        self.reference = reference
        self.rows = 0
        self.present = 0
        self._grid = Binned(reference.edges, np.zeros(len(reference.edges), dtype=np.int64))
        self._keys = np.empty(0)
        self._counts = np.empty(0, dtype=np.int64)
        self._cells: _Cells | None = None
        self._inner = np.empty(0, dtype=np.int64)

    def add(self, series: pd.Series | None, rows: int) -> None:
        self.rows += rows
        if series is None:
            return
        values = finite_values(series)
        self.present += len(values)
        if not len(values) or not len(self.reference.edges):
            return
        chunk = bin_values(values, self.reference.edges, self.reference.spread)
        self._grid = Binned(
            self._grid.edges,
            self._grid.counts + chunk.counts,
            self.reference.spread,
            self._grid.below + chunk.below,
            self._grid.above + chunk.above,
        )
        if self._cells is None:
            self._keys, self._counts = _merged(
                np.concatenate([self._keys, values]),
                np.concatenate([self._counts, np.ones(len(values), dtype=np.int64)]),
            )
            if len(self._keys) > EXACT_VALUES:
                self._cells = _Cells(self.reference.edges)
                self._inner = np.zeros(max(self._cells.inner, 1), dtype=np.int64)
                ids, counts = self._cells.ids(self._keys), self._counts
                self._keys, self._counts = np.empty(0, dtype=np.int64), self._counts[:0]
                self._count_cells(ids, counts)
        else:
            self._count_cells(self._cells.ids(values), np.ones(len(values), dtype=np.int64))

    def _count_cells(self, ids: np.ndarray, counts: np.ndarray) -> None:
        """Inner cells in a dense array; the few outer ones, sparse (kept in `_keys`)."""
        inner = (ids >= 0) & (ids < len(self._inner))
        counted = np.bincount(ids[inner], weights=counts[inner], minlength=len(self._inner))
        self._inner += counted.astype(np.int64)
        self._keys, self._counts = _merged(
            np.concatenate([self._keys, ids[~inner]]),
            np.concatenate([self._counts, counts[~inner]]),
        )

    @property
    def binned(self) -> Binned:
        """The present values counted on the profile's grid."""
        return self._grid

    def sample(self) -> Sample:
        if self._cells is None:
            return Sample.of_counts(self._keys, self._counts)
        occupied = np.flatnonzero(self._inner)
        ids = np.concatenate([self._keys, occupied])
        counts = np.concatenate([self._counts, self._inner[occupied]])
        order = np.argsort(ids, kind="stable")
        ids, counts = ids[order], counts[order]
        lower, upper = self._cells.bounds(ids)
        total = int(counts.sum())
        after = np.cumsum(counts) / total
        before = after - counts / total
        # Each cell's bounds as knots, the share under its lower bound and at its upper one; of
        # knots at one point (two neighbouring cells' shared bound), the last holds.
        points = np.column_stack([lower, upper]).ravel()
        cumulative = np.column_stack([before, after]).ravel()
        keep = np.concatenate([np.diff(points) > 0, [True]])
        return Sample(points[keep], np.maximum.accumulate(cumulative)[keep], total, linear=True)


class CategoryTally:
    """A categorical column (or a numeric one compared by its values) so far: the count of
    each of the profile's top categories, and of the others."""

    def __init__(self, trained: dict[str, Any]) -> None:
        self.labels = [value for value, _ in trained["top"]]
        self.rows = 0
        self.present = 0
        self.counts = np.zeros(len(self.labels), dtype=np.int64)

    def add(self, series: pd.Series | None, rows: int) -> None:
        self.rows += rows
        if series is None:
            return
        keys = category_keys(series)
        self.present += len(keys)
        counted = keys.value_counts()
        self.counts += np.array([int(counted.get(label, 0)) for label in self.labels], dtype=int)

    @property
    def others(self) -> int:
        return self.present - int(self.counts.sum())


ColumnTally = NumericTally | CategoryTally


class DatasetTally:
    """A dataset so far, against one dataset of a training profile: each profiled column's
    tally, the rows read, and the columns seen that the training did not have."""

    def __init__(self, trained: dict[str, Any]) -> None:
        self.trained = trained
        self.rows = 0
        self.columns: dict[str, ColumnTally] = {
            name: NumericTally(column) if column["kind"] == NUMERIC else CategoryTally(column)
            for name, column in trained["columns"].items()
        }
        self.seen: set[str] = set()

    def add(self, frame: pd.DataFrame) -> None:
        present = {str(column): frame[column] for column in frame.columns}
        self.rows += len(frame)
        self.seen.update(present)
        for name, tally in self.columns.items():
            tally.add(present.get(name), len(frame))

    def column(self, name: str) -> ColumnTally | None:
        """The column's tally; None when no chunk had the column."""
        return self.columns[name] if name in self.seen else None

    @property
    def unprofiled(self) -> list[str]:
        return sorted(self.seen - set(self.columns))


def tally_frame(frame: pd.DataFrame, trained: dict[str, Any]) -> DatasetTally:
    tally = DatasetTally(trained)
    tally.add(frame)
    return tally
