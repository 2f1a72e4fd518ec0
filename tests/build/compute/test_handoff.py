"""A training's output across machines: packed, left in S3 or a shared folder, fetched once."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from promote.build.compute import handoff
from promote.errors import ExternalError

TRAINING = "training prod.churn (models/churn/train.py)"


def output_folder(root: Path) -> Path:
    folder = root / "output"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "MLmodel").write_text("flavors: {}\n")
    (folder / "lineage.json").write_text('{"model": "churn"}')
    return folder


def files_under(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): path.read_text()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_an_output_crosses_through_s3_and_is_deleted_there(s3: Any, tmp_path: Path) -> None:
    s3.create_bucket(Bucket="builds")
    written = output_folder(tmp_path / "cluster")
    archive = tmp_path / "cluster" / "output.tar.gz"
    handoff.pack(written, archive)

    handoff.put(archive, "s3://builds/promote/job-1.tar.gz")
    handoff.fetch("s3://builds/promote/job-1.tar.gz", tmp_path / "fetched.tar.gz", TRAINING)
    handoff.unpack(tmp_path / "fetched.tar.gz", tmp_path / "here", TRAINING)

    assert files_under(tmp_path / "here") == files_under(written)
    assert s3.list_objects_v2(Bucket="builds").get("KeyCount") == 0


def test_an_output_crosses_through_a_shared_folder_whole(tmp_path: Path) -> None:
    written = output_folder(tmp_path / "cluster")
    archive = tmp_path / "cluster" / "output.tar.gz"
    handoff.pack(written, archive)
    shared = tmp_path / "shared" / "promote"

    handoff.put(archive, str(shared / "job-1.tar.gz"))
    assert sorted(p.name for p in shared.iterdir()) == ["job-1.tar.gz"]  # no partial copy left
    handoff.fetch(str(shared / "job-1.tar.gz"), tmp_path / "fetched.tar.gz", TRAINING)
    handoff.unpack(tmp_path / "fetched.tar.gz", tmp_path / "here", TRAINING)

    assert files_under(tmp_path / "here") == files_under(written)
    assert list(shared.iterdir()) == []


def test_a_missing_output_is_named_and_nothing_is_logged(tmp_path: Path) -> None:
    with pytest.raises(ExternalError) as missing:
        handoff.fetch(str(tmp_path / "never-left.tar.gz"), tmp_path / "f.tar.gz", TRAINING)
    assert missing.value.message.startswith(
        f"{TRAINING} succeeded but its output could not be fetched from {tmp_path}"
    )
    assert missing.value.message.endswith("; nothing was logged")


def test_an_archive_that_would_write_outside_its_folder_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "hostile.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        payload = b"written by training code"
        member = tarfile.TarInfo("../escaped.txt")
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))

    with pytest.raises(ExternalError, match=r"left an output archive that was refused"):
        handoff.unpack(archive, tmp_path / "here", TRAINING)
    assert not (tmp_path / "escaped.txt").exists()
