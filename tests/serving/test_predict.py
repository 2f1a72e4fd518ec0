"""`promote predict`: real files, local and on S3 (moto), scored by the real CLI and compared with
plain `mlflow.pyfunc.load_model(...).predict` on the same rows."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
import pyarrow.parquet as pq
import pytest
from support.world import MODEL, World

from promote.registry.entities import TAG_ARTIFACT_DIGEST, Version
from promote.serving import storage

PROD = f"prod.{MODEL}"


def _champion(world: World) -> Version:
    model = world.registry.model(PROD)
    assert model is not None and model.champion is not None
    return model.champion


def _plain_predictions(world: World, frame: pd.DataFrame, scratch: Path) -> list[Any]:
    """What MLflow's own loader predicts for these rows with the champion."""
    model_dir = world.registry.download_model(_champion(world), scratch / "plain")
    return list(mlflow.pyfunc.load_model(str(model_dir)).predict(frame))


def _scored(world: World, *args: str) -> Any:
    result = world.cli("predict", MODEL, "--env", "prod", *args)
    assert result.returncode == 0, result.stderr
    return result


def _rows(world: World) -> pd.DataFrame:
    return pd.read_csv(world.sandbox.data("prod") / "test.csv")


def test_local_csv_and_parquet_are_scored_as_plain_pyfunc_predicts_with_the_model_named(
    promoted: World, tmp_path: Path
) -> None:
    champion = _champion(promoted)
    rows = _rows(promoted)
    expected = _plain_predictions(promoted, rows, tmp_path)
    assert len(set(expected)) == 2  # both classes: a column of one constant would prove little
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    rows.to_csv(inputs / "rows.csv", index=False)
    rows.to_parquet(inputs / "rows.parquet")

    _scored(promoted, "--input", str(inputs / "rows.csv"), "--output", str(outputs / "s.csv"))
    scored = pd.read_csv(outputs / "s.csv")
    assert list(scored.columns) == ["prediction"]
    assert list(scored["prediction"]) == expected
    sidecar = json.loads((outputs / "s.csv.promote.json").read_text())
    assert sidecar["version"] == champion.version
    assert sidecar["artifact_digest"] == champion.tags[TAG_ARTIFACT_DIGEST]
    assert sidecar["run_id"] == champion.run_id
    assert sidecar["rows"] == len(rows)
    assert sidecar["sha256"] == hashlib.sha256((outputs / "s.csv").read_bytes()).hexdigest()

    result = _scored(
        promoted,
        "--input",
        str(inputs / "rows.parquet"),
        "--output",
        str(outputs / "s.parquet"),
        "--keep",
        "churned",
        "--chunk-rows",
        "100",
    )
    assert f"scored {len(rows):,} rows of 1 file(s)" in result.stdout
    parquet = pq.ParquetFile(outputs / "s.parquet")
    assert parquet.metadata.num_row_groups == len(rows) // 100  # one per chunk: it streamed
    metadata = {k.decode(): v.decode() for k, v in parquet.schema_arrow.metadata.items()}
    assert metadata["promote.version"] == str(champion.version)
    assert metadata["promote.artifact_digest"] == champion.tags[TAG_ARTIFACT_DIGEST]
    assert metadata["promote.run_id"] == champion.run_id
    table = parquet.read().to_pandas()
    assert list(table["prediction"]) == expected
    assert list(table["churned"]) == list(rows["churned"])
    # Nothing but the outputs: no temporary file left beside them.
    assert sorted(p.name for p in outputs.iterdir()) == ["s.csv", "s.csv.promote.json", "s.parquet"]


def test_an_s3_prefix_is_scored_in_key_order_and_a_failure_leaves_no_object(
    promoted: World, s3: Any, tmp_path: Path
) -> None:
    rows = _rows(promoted)
    s3.create_bucket(Bucket="scores")
    parts = [rows.iloc[:250], rows.iloc[250:]]
    for index, part in enumerate(parts):
        buffer = io.BytesIO()
        part.to_parquet(buffer)
        s3.put_object(Bucket="scores", Key=f"in/part-{index}.parquet", Body=buffer.getvalue())
    s3.put_object(Bucket="scores", Key="in/_SUCCESS", Body=b"")  # a marker, not data

    _scored(promoted, "--input", "s3://scores/in/", "--output", "s3://scores/out/s.parquet")
    body = s3.get_object(Bucket="scores", Key="out/s.parquet")["Body"].read()
    parquet = pq.ParquetFile(io.BytesIO(body))
    assert list(parquet.read().to_pandas()["prediction"]) == _plain_predictions(
        promoted, rows, tmp_path
    )
    assert parquet.schema_arrow.metadata[b"promote.input"] == b"s3://scores/in/"

    bad = rows.astype({"tenure_months": str})
    bad.loc[10, "tenure_months"] = "ten"
    s3.put_object(Bucket="scores", Key="in/part-2.csv", Body=bad.to_csv(index=False).encode())
    failed = promoted.cli(
        "predict",
        MODEL,
        "--env",
        "prod",
        "--input",
        "s3://scores/in",
        "--output",
        "s3://scores/out/t.csv",
    )
    assert failed.returncode == 2, failed.stderr
    assert failed.stderr.splitlines() == [
        "error: s3://scores/in/part-2.csv: tenure_months: CSV conversion error to int64: "
        "invalid value 'ten'"
    ]
    listed = s3.list_objects_v2(Bucket="scores", Prefix="out/")["Contents"]
    assert [item["Key"] for item in listed] == ["out/s.parquet"]
    assert s3.list_multipart_uploads(Bucket="scores").get("Uploads", []) == []


def test_an_s3_output_larger_than_a_part_is_invisible_until_its_upload_completes(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "S3_CHUNK", 5 << 20)  # S3's smallest part
    s3.create_bucket(Bucket="out")
    payload = bytes(range(256)) * (48 << 10)  # 12 MiB: two full parts and a short last one

    def keys() -> list[str]:
        return [item["Key"] for item in s3.list_objects_v2(Bucket="out").get("Contents", [])]

    with pytest.raises(RuntimeError), storage.atomic_output("s3://out/failed.bin") as output:
        output.write(payload)
        assert s3.list_multipart_uploads(Bucket="out")["Uploads"]  # parts went up already
        raise RuntimeError("the scoring failed")
    assert keys() == []
    assert s3.list_multipart_uploads(Bucket="out").get("Uploads", []) == []

    with storage.atomic_output("s3://out/done.bin") as output:
        output.write(payload)
        assert keys() == []
    assert s3.get_object(Bucket="out", Key="done.bin")["Body"].read() == payload
    assert output.sha256.hexdigest() == hashlib.sha256(payload).hexdigest()


def test_a_failure_mid_way_leaves_the_previous_output_untouched(
    promoted: World, tmp_path: Path
) -> None:
    rows = _rows(promoted)
    inputs = tmp_path / "in"
    inputs.mkdir()
    rows.to_csv(inputs / "a.csv", index=False)
    late = rows.astype({"age": str})
    late.loc[len(rows) - 1, "age"] = "old"  # the very last row of the second file
    late.to_csv(inputs / "b.csv", index=False)
    output = tmp_path / "out" / "s.parquet"
    output.parent.mkdir()
    output.write_bytes(b"yesterday's scores")

    failed = promoted.cli(
        "predict", MODEL, "--env", "prod", "--input", str(inputs), "--output", str(output)
    )
    assert failed.returncode == 2, failed.stderr
    assert failed.stderr.splitlines() == [
        f"error: {inputs / 'b.csv'}: age: CSV conversion error to int64: invalid value 'old'"
    ]
    assert output.read_bytes() == b"yesterday's scores"
    assert [p.name for p in output.parent.iterdir()] == ["s.parquet"]


def test_a_missing_or_mistyped_column_is_one_line_exit_2_and_nothing_written(
    promoted: World, tmp_path: Path
) -> None:
    rows = _rows(promoted)
    rows.drop(columns=["age"]).to_csv(tmp_path / "no-age.csv", index=False)
    rows.astype({"support_calls": float}).to_parquet(tmp_path / "float-calls.parquet")
    output = tmp_path / "out" / "s.csv"

    missing = promoted.cli(
        "predict",
        MODEL,
        "--env",
        "prod",
        "--input",
        str(tmp_path / "no-age.csv"),
        "--output",
        str(output),
    )
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        f"error: {tmp_path / 'no-age.csv'}: age: no such column (the model's signature needs it)"
    ]
    mistyped = promoted.cli(
        "predict",
        MODEL,
        "--env",
        "prod",
        "--input",
        str(tmp_path / "float-calls.parquet"),
        "--output",
        str(output),
    )
    assert mistyped.returncode == 2
    assert mistyped.stderr.splitlines() == [
        f"error: {tmp_path / 'float-calls.parquet'}: Incompatible input types for column "
        "support_calls. Can not safely convert float64 to int64."
    ]
    assert not output.parent.exists()

    inside = promoted.cli(
        "predict", MODEL, "--env", "prod", "--input", str(tmp_path), "--output", str(output)
    )
    assert inside.returncode == 2
    assert inside.stderr.splitlines() == [
        f"error: --output: {output} is inside the input {tmp_path}"
    ]
    assert not output.parent.exists()


def test_progress_tells_rows_per_second_and_the_time_left_from_the_bytes_read() -> None:
    from promote.serving.batch import Progress

    lines: list[str] = []
    progress = Progress(total_bytes=1000, report=lines.append, every=0.0)
    progress.advance(500, done_bytes=250)
    assert len(lines) == 1 and "500 rows" in lines[0]
    assert progress.line(250, progress.started + 10) == (
        "[#####               ]  25% 500 rows, 50 rows/s, ETA 0:00:30"
    )
