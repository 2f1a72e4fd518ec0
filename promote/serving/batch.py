"""`promote predict`: score CSV or Parquet files where they live with the verified champion.

Files are read and scored in chunks of rows, so memory holds a few chunks whatever the input's
size: Parquet by `ParquetFile.iter_batches`, CSV by pyarrow's streaming reader rather than
pandas' `read_csv(chunksize=...)`, because pyarrow fixes each column's type once for the whole
file (pandas infers it again per chunk, so one file could give chunks of different types) and
names the column a value does not convert in. Columns the signature names are read as its
types; columns kept with `--keep` as the text they hold. Every chunk is checked against the
model's signature (MLflow's own `validate_schema`) before it is predicted: a missing or mistyped
column is bad input, named in one line.

The output holds the kept columns and the predictions, row for row in input order (files sorted
by name). It appears whole or not at all (`storage.atomic_output`), with the model's identity in
it: Parquet key-value metadata, or for CSV a `<output>.promote.json` sidecar, written after the
output and holding its sha256, so a sidecar that does not describe the output shows it.
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from promote.build.data import is_under
from promote.errors import CheckFailed, InputError
from promote.manifests.repository import Repository
from promote.registry.client import Registry
from promote.registry.pyfunc import Column
from promote.serving.storage import (
    InputFile,
    atomic_output,
    data_format,
    list_inputs,
    parquet_file,
)
from promote.serving.verified import VerifiedModel, load_verified

PREDICTION = "prediction"
SIDECAR_SUFFIX = ".promote.json"

# A CSV chunk is a block of bytes: its size is estimated from the lines of the file's start.
CSV_SAMPLE_BYTES = 1 << 16
CSV_BLOCK_BYTES = (1 << 16, 1 << 28)

# How a CSV column is read when the signature gives its MLflow type.
_CSV_TYPES = {
    "boolean": pa.bool_(),
    "integer": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "string": pa.string(),
    "binary": pa.binary(),
}
_CSV_COLUMN_ERROR = re.compile(r"In CSV column #(\d+): (.*)")


@dataclass(frozen=True)
class BatchResult:
    output: str
    rows: int
    files: int
    seconds: float
    scored_by: VerifiedModel

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "rows": self.rows,
            "files": self.files,
            "seconds": round(self.seconds, 3),
            **self.scored_by.describe(),
        }


class Progress:
    """Rows done, rows per second and the time left, reported at most every `every` seconds.

    The time left is estimated from the input bytes read, the one measure of a CSV file known
    before it is parsed."""

    def __init__(self, total_bytes: int, report: Callable[[str], None], every: float) -> None:
        self.total_bytes = max(total_bytes, 1)
        self.report = report
        self.every = every
        self.rows = 0
        self.started = time.monotonic()
        self._last = self.started

    def advance(self, rows: int, done_bytes: int) -> None:
        self.rows += rows
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.report(self.line(done_bytes, now))

    def line(self, done_bytes: int, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        fraction = min(done_bytes / self.total_bytes, 1.0)
        left = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        bar = "#" * round(fraction * 20)
        eta = str(timedelta(seconds=round(left))) if left is not None else "?"
        return (
            f"[{bar:<20}] {fraction:4.0%} {self.rows:,} rows, "
            f"{self.rows / elapsed:,.0f} rows/s, ETA {eta}"
        )


def predict(
    repo: Repository,
    registry: Registry,
    environment: str,
    model: str,
    input_uri: str,
    output_uri: str,
    *,
    chunk_rows: int,
    keep: list[str],
    progress: Callable[[str], None],
    progress_every: float,
) -> BatchResult:
    """Score every row under `input_uri` with the environment's verified champion into
    `output_uri`. Bad input (an unknown format, a missing or mistyped column) is an
    `InputError`; a champion that does not verify, `ProofInvalid`; either way nothing is
    written."""
    output_format = data_format(output_uri, "--output")
    inputs = list_inputs(input_uri)
    if is_under(output_uri, input_uri):
        raise InputError("--output", None, f"{output_uri} is inside the input {input_uri}")
    with tempfile.TemporaryDirectory(prefix="promote-predict-") as scratch:
        verified = load_verified(repo, registry, environment, model, Path(scratch))
        where = input_uri if input_uri.startswith("s3://") else str(Path(input_uri).resolve())
        identity = {**verified.describe(), "input": where}
        tracker = Progress(sum(f.size for f in inputs), progress, progress_every)
        metadata = {f"promote.{key}": str(value) for key, value in identity.items()}
        with atomic_output(output_uri) as sink, _Writer(output_format, sink, metadata) as writer:
            done_bytes = 0
            for file in inputs:
                for batch, consumed in _batches(file, verified.loaded.columns, keep, chunk_rows):
                    writer.write(_scored(verified, file, batch, keep))
                    tracker.advance(batch.num_rows, done_bytes + consumed)
                done_bytes += file.size
            if tracker.rows == 0:
                raise InputError("--input", None, f"{input_uri} holds no rows to score")
        if output_format == "csv":
            sidecar = {**identity, "rows": tracker.rows, "sha256": sink.sha256.hexdigest()}
            with atomic_output(output_uri + SIDECAR_SUFFIX) as handle:
                handle.write(json.dumps(sidecar, indent=2, sort_keys=True).encode() + b"\n")
    return BatchResult(
        output_uri, tracker.rows, len(inputs), time.monotonic() - tracker.started, verified
    )


def _scored(verified: VerifiedModel, file: InputFile, batch: Any, keep: list[str]) -> Any:
    """The kept columns and the predictions of one chunk, as an Arrow table."""
    columns = verified.loaded.columns
    names = batch.schema.names
    frame = (
        batch if columns is None else batch.select([c.name for c in columns if c.name in names])
    ).to_pandas()
    problem = verified.loaded.input_problem(frame)
    if problem:
        raise InputError(file.uri, None, problem)
    predicted = _prediction_columns(verified.loaded.predict(frame), batch.num_rows)
    clash = sorted(set(keep) & set(predicted))
    if clash:
        raise InputError("--keep", None, f"{clash[0]} is the name of a prediction column")
    return pa.table({**{name: batch.column(name) for name in keep}, **predicted})


def _prediction_columns(predictions: Any, rows: int) -> dict[str, Any]:
    """Predictions as named Arrow columns: one `prediction`, `prediction_<i>` for each column
    of a 2-D array, or the columns of a data frame under their own names."""
    if isinstance(predictions, pd.DataFrame):
        table = pa.Table.from_pandas(predictions, preserve_index=False)
        found = {str(name): table.column(name) for name in table.column_names}
    else:
        values = np.asarray(predictions)
        if values.ndim == 1:
            found = {PREDICTION: pa.array(values)}
        elif values.ndim == 2:
            found = {f"{PREDICTION}_{i}": pa.array(values[:, i]) for i in range(values.shape[1])}
        else:
            raise CheckFailed(f"predictions of shape {values.shape} cannot be written as columns")
    if any(len(column) != rows for column in found.values()):
        raise CheckFailed(
            f"the model gave {len(next(iter(found.values())))} predictions for {rows} rows"
        )
    return found


class _Writer:
    """Writes tables of one schema (the first one's) as CSV or Parquet. Closed on the way out
    of its block, failing or not: a Parquet writer left open would write its footer when
    collected, into an output already aborted."""

    def __init__(self, output_format: str, sink: Any, metadata: dict[str, str]) -> None:
        self.output_format = output_format
        self.sink = sink
        self.metadata = metadata
        self.schema: Any = None  # the first table's: every later one is cast to it
        self._writer: Any = None

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()

    def write(self, table: Any) -> None:
        if self._writer is None:
            self.schema = table.schema
            self._writer = self._open(table.schema)
        elif not table.schema.equals(self.schema):
            try:
                table = table.cast(self.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                raise CheckFailed(f"the output's columns changed type mid-way: {exc}") from None
        self._writer.write_table(table)

    def _open(self, schema: Any) -> Any:
        if self.output_format == "parquet":
            return pq.ParquetWriter(self.sink, schema.with_metadata(self.metadata))
        return pacsv.CSVWriter(self.sink, schema)


def _require_columns(
    file: InputFile, names: list[str], columns: list[Column] | None, keep: list[str]
) -> None:
    wanted = [c.name for c in columns or [] if c.required]
    for name in [*wanted, *keep]:
        if name not in names:
            why = "the model's signature needs it" if name in wanted else "--keep names it"
            raise InputError(file.uri, name, f"no such column ({why})")


def _batches(
    file: InputFile, columns: list[Column] | None, keep: list[str], chunk_rows: int
) -> Iterator[tuple[Any, int]]:
    """The file's rows in chunks, each with the bytes of the file read so far."""
    with file.open() as handle:
        try:
            if file.format == "parquet":
                yield from _parquet_batches(file, handle, columns, keep, chunk_rows)
            else:
                yield from _csv_batches(file, handle, columns, keep, chunk_rows)
        except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
            raise InputError(file.uri, None, str(exc).splitlines()[0]) from None


def _parquet_batches(
    file: InputFile, handle: Any, columns: list[Column] | None, keep: list[str], chunk_rows: int
) -> Iterator[tuple[Any, int]]:
    parquet = parquet_file(handle)
    names = parquet.schema_arrow.names
    _require_columns(file, names, columns, keep)
    wanted = (
        None if columns is None else _unique([c.name for c in columns if c.name in names] + keep)
    )
    total = max(parquet.metadata.num_rows, 1)
    read = 0
    for batch in parquet.iter_batches(batch_size=chunk_rows, columns=wanted):
        read += batch.num_rows
        yield batch, file.size * read // total


def _csv_batches(
    file: InputFile, handle: Any, columns: list[Column] | None, keep: list[str], chunk_rows: int
) -> Iterator[tuple[Any, int]]:
    sample = handle.read(CSV_SAMPLE_BYTES)
    handle.seek(0)
    header = next(csv.reader([sample.split(b"\n", 1)[0].decode("utf-8-sig").rstrip("\r")]), [])
    _require_columns(file, header, columns, keep)
    types: dict[str, Any] = {}
    include = None
    if columns is not None:
        types = {name: pa.string() for name in keep}
        for column in columns:
            if column.type in _CSV_TYPES and column.name in header:
                types[column.name] = _CSV_TYPES[column.type]
        include = _unique([c.name for c in columns if c.name in header] + keep)
    line_bytes = len(sample) / max(sample.count(b"\n"), 1)
    low, high = CSV_BLOCK_BYTES
    options = pacsv.ReadOptions(block_size=int(min(max(chunk_rows * line_bytes, low), high)))
    try:
        reader = pacsv.open_csv(
            handle,
            read_options=options,
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=include),
        )
        for batch in reader:
            yield batch, handle.tell()
    except pa.ArrowInvalid as exc:
        found = _CSV_COLUMN_ERROR.match(str(exc))
        if found is None or int(found[1]) >= len(header):
            raise
        raise InputError(file.uri, header[int(found[1])], found[2]) from None


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))
