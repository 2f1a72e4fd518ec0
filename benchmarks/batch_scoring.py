"""`promote predict` against plain `mlflow.pyfunc.load_model(...).predict` on the same file.

A sandbox's staging champion (the quickstart's churn model, built and verified by `promote
apply`) scores ROWS generated rows, from Parquet and from CSV, two ways in the same run, each
in its own process as a user runs it, writing its predictions in the input's format:

- plain MLflow: `mlflow.pyfunc.load_model("models:/staging.churn@champion")`, the whole file
  read by pandas, `predict`, the predictions written by pandas;
- `promote predict churn --env staging`: the champion verified from storage, then the file
  streamed in chunks.

Throughput is rows over each command's wall time, start to exit (target: promote >= 0.9x
plain); memory is each process's peak resident set (target: promote <= 1 GiB, where plain
holds the whole frame). Both outputs are compared, row for row.

    python benchmarks/batch_scoring.py [--rows 10000000 | --quick] [--formats parquet,csv]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from champion import (
    CHAMPION_URI,
    ENVIRONMENT,
    MODEL,
    feature_rows,
    mib,
    mlflow_environ,
    promoted_sandbox,
    run_measured,
)
from figures import Table, as_installed, seconds

THROUGHPUT_TARGET = 0.9
RSS_TARGET = 1 << 30

# Plain MLflow, as its documentation scores a batch: the whole file in one frame.
# It prints the seconds from the model loaded to the output written, as `promote predict
# --json` does.
PLAIN_PREDICT = """
import json, sys, time
import mlflow.pyfunc
import pandas as pd

uri, source, target = sys.argv[1:]
model = mlflow.pyfunc.load_model(uri)
start = time.monotonic()
parquet = source.endswith(".parquet")
frame = pd.read_parquet(source) if parquet else pd.read_csv(source)
predictions = pd.DataFrame({"prediction": model.predict(frame)})
if parquet:
    predictions.to_parquet(target, index=False)
else:
    predictions.to_csv(target, index=False)
print(json.dumps({"seconds": time.monotonic() - start}))
"""


def predictions(path: Path) -> np.ndarray:
    table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
    return np.asarray(table.column("prediction"))


def throughput(table: Table, what: str, rows: int, promoted: float, plain: float) -> None:
    table.add(
        what,
        f"{rows / promoted:,.0f} rows/s ({seconds(promoted)})",
        f"{rows / plain:,.0f} rows/s ({seconds(plain)})",
        f"{plain / promoted:.2f}x",
        f">= {THROUGHPUT_TARGET}x",
        plain / promoted >= THROUGHPUT_TARGET,
    )


def measure(table: Table, work: Path, rows: int, formats: list[str]) -> None:
    world = promoted_sandbox(work)
    frame = feature_rows(rows)
    for kind in formats:
        source = work / f"rows.{kind}"
        if kind == "parquet":
            frame.to_parquet(source, index=False)
        else:
            frame.to_csv(source, index=False)
        size = f"{rows:,} rows, {mib(source.stat().st_size)} {kind}"
        plain_output, promote_output = work / f"plain.{kind}", work / f"promote.{kind}"
        plain = run_measured(
            [sys.executable, "-c", PLAIN_PREDICT, CHAMPION_URI, *(source, plain_output)],
            work,
            mlflow_environ(world),
        )
        promoted = run_measured(
            [
                *(sys.executable, "-m", "promote", "predict", MODEL, "--env", ENVIRONMENT),
                *("--input", str(source), "--output", str(promote_output), "--json"),
            ],
            world.repo,
            as_installed(),
        )
        assert np.array_equal(predictions(plain_output), predictions(promote_output)), kind
        command = f"{kind}: throughput, command ({size})"
        throughput(table, command, rows, promoted.seconds, plain.seconds)
        loaded = [json.loads(run.stdout)["seconds"] for run in (promoted, plain)]
        throughput(table, f"{kind}: throughput, once loaded", rows, *loaded)
        table.add(
            f"{kind}: peak RSS",
            mib(promoted.peak_rss),
            mib(plain.peak_rss),
            f"{promoted.peak_rss / plain.peak_rss:.2f}x",
            f"<= {mib(RSS_TARGET)}",
            promoted.peak_rss <= RSS_TARGET,
        )
        for path in (source, plain_output, promote_output):
            path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows in the input file")
    parser.add_argument("--quick", action="store_true", help="1,000,000 rows")
    parser.add_argument(
        "--formats", default="parquet,csv", help="comma-separated input formats to measure"
    )
    options = parser.parse_args()
    rows = 1_000_000 if options.quick else options.rows
    formats = [kind.strip() for kind in options.formats.split(",")]
    unknown = sorted(set(formats) - {"parquet", "csv"})
    if unknown:
        parser.error(f"--formats: unknown format {unknown[0]} (parquet, csv)")
    table = Table("promote predict against plain pyfunc predict, the same champion and file")
    work = Path(tempfile.mkdtemp(prefix="promote-bench-batch-"))
    try:
        measure(table, work, rows, formats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table.print()


if __name__ == "__main__":
    main()
