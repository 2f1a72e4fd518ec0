"""Training profiles: per-column statistics of the data a training read, small enough to sign.

A numeric column is kept as counts between quantile edges (every 2.5% of its values and finer
in the tails, or each of its distinct values when it has few), so its share of values at or
under every edge is exact. A categorical column is kept as its most frequent values with their
counts. Drift (`promote.drift.compare`) compares current data with that distribution. Pure
functions of pandas and numpy: the training helper calls `dataset_profile` on each CSV it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# Edges at every 2.5% of a column's values, and finer in the tails, where values spread the
# widest: on normal, exponential and lognormal columns the Wasserstein distance on this grid
# stays within a few percent of the exact one (a 2.5% grid alone doubled it for skewed ones,
# and without the 0.01% edges a lognormal's read 25% high over a million rows), and 100 columns
# take about 90 KB of JSON.
QUANTILE_BINS = 40
TAIL_QUANTILES = (0.0001, 0.001, 0.005, 0.01)
QUANTILES = np.unique(
    np.concatenate(
        [np.linspace(0.0, 1.0, QUANTILE_BINS + 1), TAIL_QUANTILES, 1.0 - np.array(TAIL_QUANTILES)]
    )
)
# Up to this many distinct values, each is an edge: the profile is then exact, and integer
# columns (ages, counts, months) are not spread between quantiles as if continuous.
EXACT_DISTINCT = 100
TOP_CATEGORIES = 20
# Inner quantile edges are rounded to this many significant digits, which halves the record;
# counts are taken on the rounded edges, so they stay exact.
EDGE_DIGITS = 6

# Bumped when the record's layout changes, so a reader can tell the layout it was written in.
PROFILE_FORMAT = 1

NUMERIC = "numeric"
CATEGORICAL = "categorical"
# What a numeric column's edges are, said in the record so that reading it needs no constant of
# the code that wrote it: each distinct value, or quantiles with values spread between them.
VALUE_GRID = "values"
QUANTILE_GRID = "quantiles"
# The categories a profile counts only as "other", when a profile is turned back into values.
OTHER_VALUES = "(other values)"


@dataclass(frozen=True)
class Binned:
    """A numeric sample counted on a grid of edges.

    `counts[i]` holds the values in (edges[i-1], edges[i]], `counts[0]` those equal to edges[0];
    values outside the grid are counted in `below` and `above` (a training profile's own grid
    holds all its values). `spread`: the edges are quantiles with values spread between them,
    taken as linear between edges; else every value is an edge.
    """

    edges: np.ndarray
    counts: np.ndarray
    spread: bool = False
    below: int = 0
    above: int = 0

    @property
    def total(self) -> int:
        return self.below + int(self.counts.sum()) + self.above

    def cdf(self) -> np.ndarray:
        """The share of values at or under each edge."""
        return (self.below + np.cumsum(self.counts)) / self.total

    def bin_counts(self) -> np.ndarray:
        """Counts per bin, the values outside the grid in a bin of their own on each side."""
        return np.concatenate([[self.below], self.counts, [self.above]])


def is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def finite_values(series: pd.Series) -> np.ndarray:
    """The column's finite numbers: text that is no number and infinities count as missing."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return values[np.isfinite(values)]


def category_keys(series: pd.Series) -> pd.Series:
    """The column's present values, as the text categories are counted by."""
    return series.dropna().astype(str)


def bin_values(values: np.ndarray, edges: np.ndarray, spread: bool) -> Binned:
    below, above = values < edges[0], values > edges[-1]
    inside = values[~(below | above)]
    counts = np.bincount(np.searchsorted(edges, inside, side="left"), minlength=len(edges))
    return Binned(edges, counts, spread, int(below.sum()), int(above.sum()))


def _edges(values: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    if len(distinct) <= EXACT_DISTINCT:
        return distinct
    quantiles = np.quantile(values, QUANTILES)
    inner = [float(f"{q:.{EDGE_DIGITS}g}") for q in quantiles[1:-1]]
    # The extremes stay exact, so the grid holds every training value.
    grid = np.clip(np.array([distinct[0], *inner, distinct[-1]]), distinct[0], distinct[-1])
    return np.unique(grid)


def _numeric_profile(values: np.ndarray) -> dict[str, Any]:
    if values.size == 0:
        return {
            "distinct": 0,
            "grid": VALUE_GRID,
            "edges": [],
            "counts": [],
            "mean": None,
            "std": None,
        }
    distinct = np.unique(values)
    edges = _edges(values, distinct)
    grid = VALUE_GRID if len(edges) == len(distinct) else QUANTILE_GRID
    return {
        "distinct": len(distinct),
        "grid": grid,
        "edges": edges.tolist(),
        "counts": bin_values(values, edges, grid == QUANTILE_GRID).counts.tolist(),
        "mean": float(values.mean()),
        # The population deviation (ddof 0): Evidently norms the Wasserstein distance by it.
        "std": float(values.std()),
    }


def _categorical_profile(series: pd.Series) -> dict[str, Any]:
    counts = category_keys(series).value_counts()
    # Most frequent first, equal counts by value: the same data gives the same record.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    top = [[value, int(count)] for value, count in ranked[:TOP_CATEGORIES]]
    return {
        "distinct": len(ranked),
        "top": top,
        "other": int(sum(count for _, count in ranked[TOP_CATEGORIES:])),
    }


def profile_column(series: pd.Series) -> dict[str, Any]:
    if is_numeric(series):
        values = finite_values(series)
        kind, present, statistics = NUMERIC, len(values), _numeric_profile(values)
    else:
        kind, present, statistics = (
            CATEGORICAL,
            int(series.notna().sum()),
            _categorical_profile(series),
        )
    rows = len(series)
    return {
        "dtype": str(series.dtype),
        "kind": kind,
        "count": present,
        "missing_share": (rows - present) / rows if rows else 0.0,
        **statistics,
    }


def profile_frame(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "rows": len(frame),
        "columns": {str(name): profile_column(frame[name]) for name in frame.columns},
    }


def dataset_profile(path: str, frame: pd.DataFrame, read_options: dict[str, Any]) -> dict[str, Any]:
    """One dataset a training read: where (relative to its data URI), how, and its columns.

    Only plain read options are kept (a separator, a header row): drift reads the current file
    with them. A callable (a converter) cannot be recorded, and is left out.
    """
    plain = {name: value for name, value in read_options.items() if _is_plain(value)}
    return {"path": path, "read_options": plain, **profile_frame(frame)}


def _is_plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    return value is None or isinstance(value, (str, int, float, bool))


def training_profile(datasets: list[dict[str, Any]], target: str | None) -> dict[str, Any]:
    """The profile a lineage record holds: every dataset in the order the training read them."""
    return {"format": PROFILE_FORMAT, "target": target, "datasets": datasets}


def reference_bins(column: dict[str, Any]) -> Binned:
    """A numeric column's profile as the counts it holds."""
    return Binned(
        np.array(column["edges"], dtype=float),
        np.array(column["counts"], dtype=int),
        spread=column["grid"] == QUANTILE_GRID,
    )


def column_sample(column: dict[str, Any], rows: int, scale: float) -> pd.Series:
    """The values a profiled column describes, as a column of `rows` rows: its counts scaled by
    `scale`, numbers spread evenly within each quantile bin (the linear distribution the drift
    statistics assume between edges) or repeated exactly on a grid of every value, categories
    repeated, missing values as missing. Categories beyond the top ones are one placeholder:
    none of the reference's top categories (those they were counted apart from)."""
    if column["kind"] == NUMERIC:
        counts = np.round(np.array(column["counts"], dtype=float) * scale).astype(int)
        edges = np.array(column["edges"], dtype=float)
        values = np.repeat(edges, counts)
        if column["grid"] == QUANTILE_GRID and len(edges) > 1:
            # Bin i holds (edges[i-1], edges[i]]: spread its values up to edges[i].
            lower = np.repeat(np.concatenate([[edges[0]], edges[:-1]]), counts)
            position = np.concatenate(
                [np.arange(1, count + 1) / count for count in counts if count]
            )
            values = lower + (values - lower) * position
        present: pd.Series = pd.Series(values, dtype=float)
    else:
        labels = [value for value, _ in column["top"]] + [OTHER_VALUES]
        tallies = [count for _, count in column["top"]] + [column["other"]]
        scaled = np.round(np.array(tallies, dtype=float) * scale).astype(int)
        present = pd.Series(np.repeat(np.array(labels, dtype=object), scaled), dtype=object)
    missing = max(rows - len(present), 0)
    return pd.concat([present, pd.Series([None] * missing, dtype=present.dtype)], ignore_index=True)


def profile_sample(dataset: dict[str, Any], max_rows: int) -> pd.DataFrame:
    """A frame whose profile is `dataset`'s (up to `max_rows` rows, shares kept beyond): what
    a dataset known only by its training profile is compared as."""
    rows = max(int(dataset["rows"]), 1)
    scale = min(1.0, max_rows / rows)
    size = round(rows * scale)
    columns = {
        name: column_sample(column, size, scale) for name, column in dataset["columns"].items()
    }
    return pd.DataFrame({name: values.iloc[:size] for name, values in columns.items()})
