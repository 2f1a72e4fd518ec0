"""How a training's output crosses from the machine that trained to the one that registers.

A cluster does not share the CI runner's disk: the job packs its output folder into one
archive and leaves it under the environment's `compute.output_root` (S3, or a folder both sides
mount); promote fetches it, unpacks it (no path may leave the folder) and deletes it.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from promote.errors import ExternalError

ARCHIVE_SUFFIX = ".tar.gz"
# Tells the job (`compute.remote`) where to leave its archive.
OUTPUT_VARIABLE = "PROMOTE_OUTPUT_URI"


def pack(folder: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(folder.iterdir()):
            tar.add(entry, arcname=entry.name)


def unpack(archive: Path, folder: Path, what: str) -> None:
    """The archive's files under `folder`; the "data" filter refuses links and paths that
    would leave it: the archive comes from training code, which `what` names."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(folder, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ExternalError(
            f"{what} left an output archive that was refused ({type(exc).__name__}: {exc}); "
            "nothing was logged"
        ) from None


def _s3_location(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def put(archive: Path, uri: str) -> None:
    if uri.startswith("s3://"):
        import boto3

        bucket, key = _s3_location(uri)
        boto3.client("s3").upload_file(str(archive), bucket, key)
        return
    destination = Path(uri)
    destination.parent.mkdir(parents=True, exist_ok=True)
    # Written beside, then renamed: promote never fetches half an archive.
    partial = destination.with_name(destination.name + ".partial")
    shutil.copyfile(archive, partial)
    partial.replace(destination)


def fetch(uri: str, archive: Path, what: str) -> None:
    """Bring the archive at `uri` here, then delete it there; `what` names the training."""
    try:
        if uri.startswith("s3://"):
            import boto3

            bucket, key = _s3_location(uri)
            client = boto3.client("s3")
            client.download_file(bucket, key, str(archive))
            client.delete_object(Bucket=bucket, Key=key)
            return
        shutil.move(uri, archive)
    except Exception as exc:  # boto3's and the filesystem's errors alike: the output is missing
        first_line = (str(exc).splitlines() or [""])[0]
        raise ExternalError(
            f"{what} succeeded but its output could not be fetched from {uri} "
            f"({type(exc).__name__}: {first_line}); nothing was logged"
        ) from None
