"""`promote drift` over 1,000,000 rows x 20 features against Evidently's data drift preset.

The same reference and current data (14 numeric and 6 categorical columns; some shifted, some
barely, most not) are written as Parquet once. Each side then runs in a fresh process of its own
and reads the current file itself: promote compares it with the reference's training profile
(built beforehand, as a training does), Evidently runs `Report([DataDriftPreset()])` on the
reference and current frames. Evidently is installed only for this benchmark, in a virtual
environment of its own (it needs pandas < 3):

    python -m venv /tmp/evidently && /tmp/evidently/bin/pip install evidently "pandas<3"
    python benchmarks/drift.py --evidently-python /tmp/evidently/bin/python [--quick]

Reported: each side's wall time and peak memory, the ratio, and whether the per-feature verdicts
agree where both chose the same method (Evidently's choice is promote's default). promote reads
the batch a chunk at a time, as `promote drift --data` does: its peak memory for the whole batch
is set beside its peak for the same rows four times over, which a bounded memory makes the same
(the first chunks raise it: the allocator keeps what they freed; then it holds).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.parquet
from figures import Table, seconds

NUMERIC_SHIFTS = {"n0": 0.3, "n1": 0.3, "n2": 0.3, "n3": 0.15, "n4": 0.05}
CATEGORICAL = [f"c{i}" for i in range(6)]
# promote's method names, by Evidently's.
SAME_METHODS = {
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
}
P_VALUE_METHODS = {"K-S p_value", "chi-square p_value", "Z-test p_value"}

EVIDENTLY_SIDE = """
import json, re, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

start = time.perf_counter()
reference = pd.read_parquet(sys.argv[1])
current = pd.read_parquet(sys.argv[2])
snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
seconds = time.perf_counter() - start
columns = {}
for metric in snapshot.dict()["metrics"]:
    config = metric["config"]
    if "column" in config:
        columns[config["column"]] = [config["method"], config["threshold"], metric["value"]]
status = open("/proc/self/status").read()
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
print(json.dumps({"seconds": seconds, "peak_kib": peak, "columns": columns}))
"""


def frames(rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def sample(shifted: bool) -> pd.DataFrame:
        columns: dict[str, np.ndarray] = {}
        for index in range(12):
            name = f"n{index}"
            shift = NUMERIC_SHIFTS.get(name, 0.0) if shifted else 0.0
            columns[name] = rng.normal(50, 10, rows) + 10 * shift
        columns["n12"] = rng.lognormal(0, 1, rows) + (0.2 if shifted else 0.0)
        columns["n13"] = rng.integers(18, 90, rows).astype(float)  # an age: few distinct values
        for index, name in enumerate(CATEGORICAL):
            levels = [f"{name}-{level}" for level in range(5 + 3 * index)]
            weights = np.ones(len(levels))
            if shifted and index == 0:
                weights[0] = 3.0  # one level three times as frequent
            columns[name] = rng.choice(levels, rows, p=weights / weights.sum())
        return pd.DataFrame(columns)

    return sample(False), sample(True)


def promote_side(batch: Path) -> None:
    """In its own process: read the batch a chunk at a time as `promote drift --data` does,
    compare it with the profile; print JSON."""
    from promote.drift.check import batch_chunks
    from promote.drift.compare import compare_dataset
    from promote.drift.tally import DatasetTally
    from promote.manifests.schema import DriftRules

    profile = json.loads((batch.parent / "profile.json").read_text())
    start = time.perf_counter()
    tally = DatasetTally(profile)
    for chunk in batch_chunks(str(batch), profile):
        tally.add(chunk)
    result = compare_dataset("current", tally, None, DriftRules())
    elapsed = time.perf_counter() - start
    columns = {f.column: [f.method, f.threshold, f.score, f.drifted] for f in result.features}
    print(json.dumps({"seconds": elapsed, "peak_kib": peak_kib(), "columns": columns}))


def peak_kib() -> int:
    """This process's peak resident memory since it started. Not `ru_maxrss`: Linux carries
    that across exec, so a child would report the parent's peak (the frames this script
    generated) as its own."""
    status = Path("/proc/self/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert found is not None, "no VmHWM in /proc/self/status"
    return int(found.group(1))


def run_side(command: list[str]) -> dict[str, Any]:
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evidently-python", help="A Python with Evidently installed.")
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead.")
    parser.add_argument("--side", help=argparse.SUPPRESS)  # the child process's mode
    arguments = parser.parse_args()
    if arguments.side:
        promote_side(Path(arguments.side))
        return
    if not arguments.evidently_python:
        parser.error("--evidently-python is required")
    from promote.drift.profile import dataset_profile

    rows = 100_000 if arguments.quick else 1_000_000
    with tempfile.TemporaryDirectory(prefix="promote-drift-bench-") as scratch:
        folder = Path(scratch)
        reference, current = frames(rows, seed=11)
        reference.to_parquet(folder / "reference.parquet")
        # Row groups of 100,000 rows, as writers that stream do (Spark's are 128 MB): pyarrow
        # reads a Parquet file a row group at a time, so they are the file's chunks.
        groups = {"row_group_size": 100_000}
        current.to_parquet(folder / "current.parquet", **groups)
        # Four times the batch, written a copy at a time: a bounded memory is the same for it.
        table = pyarrow.Table.from_pandas(current, preserve_index=False)
        with pyarrow.parquet.ParquetWriter(folder / "fourfold.parquet", table.schema) as writer:
            for _ in range(4):
                writer.write_table(table, **groups)
        del table
        start = time.perf_counter()
        profile = dataset_profile("reference.parquet", reference, {})
        profiling = time.perf_counter() - start
        (folder / "profile.json").write_text(json.dumps(profile))
        del reference, current
        ours = run_side([sys.executable, __file__, "--side", str(folder / "current.parquet")])
        fourfold = run_side([sys.executable, __file__, "--side", str(folder / "fourfold.parquet")])
        theirs = run_side(
            [
                arguments.evidently_python,
                "-c",
                EVIDENTLY_SIDE,
                str(folder / "reference.parquet"),
                str(folder / "current.parquet"),
            ]
        )
    ratio = theirs["seconds"] / ours["seconds"]
    ours_columns, theirs_columns = ours["columns"], theirs["columns"]
    compared, disagreeing = 0, []
    for column, (method, threshold, value) in theirs_columns.items():
        mine = ours_columns.get(column)
        if mine is None or SAME_METHODS.get(str(method)) != mine[0]:
            continue
        compared += 1
        drifted = value < threshold if method in P_VALUE_METHODS else value >= threshold
        if drifted != mine[3]:
            disagreeing.append(f"{column} (promote {mine[2]:.4g}, Evidently {value:.4g})")
    table = Table(f"promote drift, {rows:,} rows x 20 features")
    table.add(
        "drift of the current batch (read + compare)",
        seconds(ours["seconds"]),
        f"Evidently DataDriftPreset {seconds(theirs['seconds'])}",
        f"{ratio:.1f}x",
        ">= 5x",
        ratio >= 5,
    )
    table.add(
        "per-feature verdicts, same method",
        f"{compared - len(disagreeing)} of {compared} agree",
        "; ".join(disagreeing) or "",
        target="all",
        passed=not disagreeing and compared > 0,
    )
    table.add(
        "peak memory",
        f"{ours['peak_kib'] // 1024} MiB",
        f"Evidently {theirs['peak_kib'] // 1024} MiB",
        f"{theirs['peak_kib'] / ours['peak_kib']:.1f}x",
    )
    table.add(
        f"peak memory, {4 * rows:,} rows (the batch four times) against {rows:,}",
        f"{fourfold['peak_kib'] // 1024} MiB",
        f"{ours['peak_kib'] // 1024} MiB",
        f"{fourfold['peak_kib'] / ours['peak_kib']:.2f}x",
        "<= 1.1x (a chunk + the profile, whatever the rows)",
        fourfold["peak_kib"] <= 1.1 * ours["peak_kib"],
    )
    table.add("training profile of the reference (at training)", seconds(profiling))
    table.print()


if __name__ == "__main__":
    main()
