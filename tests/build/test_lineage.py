"""Artifact digests and the lineage match, on records as the training helper writes them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from support.world import MODEL, World

from promote.build.digest import artifact_digest
from promote.build.lineage import Lineage, compare, resolve_libraries
from promote.errors import CheckFailed


def test_artifact_digest_covers_every_byte_and_path_but_not_download_metadata(
    tmp_path: Path,
) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "sub" / "weights.bin").write_bytes(b"\x00" * 1024)
    digest = artifact_digest(model)
    (model / "registered_model_meta").write_text("model_name: prod.churn\n")
    assert artifact_digest(model) == digest
    (model / "sub" / "weights.bin").write_bytes(b"\x00" * 1023 + b"\x01")
    assert artifact_digest(model) != digest
    (model / "sub" / "weights.bin").write_bytes(b"\x00" * 1024)
    (model / "sub" / "weights.bin").rename(model / "weights.bin")
    assert artifact_digest(model) != digest
    with pytest.raises(CheckFailed, match="is empty"):
        artifact_digest(tmp_path / "nothing-here")


def test_artifact_digest_leaves_out_only_the_fields_mlflow_fills_at_each_save(
    tmp_path: Path,
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    mlmodel = {
        "flavors": {"sklearn": {"pickled_model": "model.skops"}},
        "mlflow_version": "3.17.2",
        "model_uuid": "7cf48dbd410542d884b5c7f2503f680d",
        "model_id": None,
        "utc_time_created": "2026-12-02 18:56:43.774988",
    }
    (model / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    digest = artifact_digest(model)
    saved_again = {**mlmodel, "model_uuid": "4961dcb5", "utc_time_created": "2027-01-01 00:00:00"}
    # Other indentation, and a model id, as MLflow writes when it logs a model itself.
    (model / "MLmodel").write_text(yaml.safe_dump({**saved_again, "model_id": "m-1"}, indent=4))
    assert artifact_digest(model) == digest
    for field, value in (("mlflow_version", "3.18.0"), ("flavors", {"sklearn": {}})):
        (model / "MLmodel").write_text(yaml.safe_dump({**mlmodel, field: value}))
        assert artifact_digest(model) != digest, field


def _records(world: World) -> tuple[Lineage, Lineage]:
    registry = world.registry
    staging, prod = registry.model(f"staging.{MODEL}"), registry.model(f"prod.{MODEL}")
    assert staging is not None and staging.champion is not None
    assert prod is not None and prod.champion is not None
    return registry.lineage(staging.champion.run_id), registry.lineage(prod.champion.run_id)


def test_real_records_match_and_every_field_that_must_match_is_checked(promoted: World) -> None:
    source, rebuilt = _records(promoted)
    prod_root = str(promoted.sandbox.root / "data" / "prod")
    assert compare(source, rebuilt, prod_root, copied=False) == []
    for field, value in (
        ("python_version", "3.99.0"),
        ("params", {**rebuilt.params, "C": 99}),
        ("entrypoint", "models/other/train.py"),
        ("code_commit", "b" * 40),
        ("flavor", "xgboost"),
        ("signature", None),
        ("schema_fingerprint", "0" * 64),
        ("libraries", {**rebuilt.libraries, "numpy": "0.1"}),
    ):
        problems = compare(source, replace(rebuilt, **{field: value}), prod_root, copied=False)
        assert [p.split(" differs")[0] for p in problems] == [field], problems


def test_rebuild_must_read_its_own_environments_data(promoted: World) -> None:
    source, rebuilt = _records(promoted)
    staging_root = str(promoted.sandbox.root / "data" / "staging")
    problems = compare(source, rebuilt, staging_root, copied=False)
    assert problems == [f"data {rebuilt.data_uri} is not under {staging_root}"]
    same_data = replace(rebuilt, data_uri=source.data_uri, data_snapshot=source.data_snapshot)
    prod_root = str(promoted.sandbox.root / "data" / "prod")
    assert (
        "rebuild read the same data as the source"
        in compare(source, same_data, prod_root, copied=False)[-1]
    )


def test_a_tampered_lineage_record_is_detected(promoted: World) -> None:
    _, rebuilt = _records(promoted)
    text = rebuilt.to_json().replace('"C": 0.5', '"C": 5.0')
    with pytest.raises(CheckFailed, match="does not match its own digest"):
        Lineage.from_json(text)


def test_library_closure_follows_requirements() -> None:
    libraries = resolve_libraries(["scikit-learn"])
    assert {"scikit-learn", "numpy", "scipy", "joblib"} <= set(libraries)
    assert resolve_libraries(["no-such-distribution-anywhere"]) == {}
