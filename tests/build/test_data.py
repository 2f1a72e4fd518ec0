"""Data roots on S3 (moto server on loopback): snapshots pin object versions, rebuilds read them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.world import MODEL, World

from promote.build.data import DataReader, FileSnapshot
from promote.errors import CheckFailed
from promote.verify import reproduce

BUCKET = "prod-data"


def _upload_prod_data(world: World, s3: Any) -> None:
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for name in ("train.csv", "test.csv"):
        s3.put_object(
            Bucket=BUCKET,
            Key=f"prod/{MODEL}/{name}",
            Body=(world.sandbox.data("prod") / name).read_bytes(),
        )
    world.edit_yaml(
        "environments/prod/environment.yaml",
        lambda body: body.update(data_root=f"s3://{BUCKET}/prod"),
    )


def test_prod_rebuilds_from_s3_and_reproduces_the_pinned_object_versions(
    trained: World, s3: Any
) -> None:
    _upload_prod_data(trained, s3)
    assert trained.promote("staging").ok
    assert trained.promote("prod").ok
    prod = trained.registry.model(f"prod.{MODEL}")
    assert prod is not None and prod.champion is not None
    lineage = trained.registry.lineage(prod.champion.run_id)
    assert lineage.data_uri == f"s3://{BUCKET}/prod/{MODEL}"
    versions = {entry.path: entry.version_id for entry in lineage.data_snapshot}
    assert set(versions) == {"train.csv", "test.csv"} and all(versions.values())
    assert all(entry.etag for entry in lineage.data_snapshot)

    # The live object changes; the reproduction still reads the version the lineage pinned.
    s3.put_object(
        Bucket=BUCKET, Key=f"prod/{MODEL}/train.csv", Body=b"tenure_months,churned\n1,0\n"
    )
    report = reproduce(trained.pipeline().repo, trained.registry, "prod", MODEL, None)
    assert report.ok, report.to_json()
    assert {c.name for c in report.checks} >= {"lineage", "data snapshot", "metric roc_auc"}


def test_reader_refuses_bytes_that_changed_since_the_snapshot(s3: Any) -> None:
    s3.create_bucket(Bucket="unversioned")
    s3.put_object(Bucket="unversioned", Key="m/train.csv", Body=b"a,b\n1,2\n")
    reader = DataReader("s3://unversioned/m")
    assert reader.read_bytes("train.csv") == b"a,b\n1,2\n"
    pinned = reader.snapshot()
    assert pinned[0].version_id is None and pinned[0].size == 8
    s3.put_object(Bucket="unversioned", Key="m/train.csv", Body=b"a,b\n1,3\n")
    with pytest.raises(CheckFailed, match="changed since the snapshot"):
        DataReader("s3://unversioned/m", pinned).read_bytes("train.csv")


def test_local_reader_records_digests_and_refuses_escapes(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_bytes(b"x\n1\n")
    reader = DataReader(str(tmp_path))
    reader.read_bytes("train.csv")
    [entry] = reader.snapshot()
    assert entry == FileSnapshot(
        "train.csv", "daff832f802000e645771a60983c76c963f6ee602a6230e45237bd360e91cc1a", 4
    )
    for escape in ("../secret.csv", "/etc/passwd"):
        with pytest.raises(CheckFailed, match="leaves the data root"):
            reader.read_bytes(escape)
