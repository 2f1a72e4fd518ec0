"""Data roots (local folders or S3 prefixes) and the snapshots that pin what a training read."""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from promote.errors import CheckFailed, ExternalError


@dataclass(frozen=True)
class FileSnapshot:
    """One file a training read: enough to prove, and to re-read, exactly the same bytes."""

    path: str
    sha256: str
    size: int
    version_id: str | None = None
    etag: str | None = None


def resolve_uri(repo_root: Path, data_root: str, relative: str) -> str:
    """Where a manifest's data lives: `data_root/relative`, local roots taken from the repo root."""
    if data_root.startswith("s3://"):
        return f"{data_root.rstrip('/')}/{relative}"
    return str((repo_root / data_root / relative).resolve())


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def s3_client() -> Any:
    import boto3  # Lazy: only S3 data roots need it; endpoint and credentials come from AWS_* vars.

    return boto3.client("s3")


def normalise_uri(uri: str) -> str:
    """One spelling per location, so locations compare as places, not strings: a local path and
    its file:// URI are equal, and dot segments, doubled and trailing slashes and percent-escapes
    do not count. Relative local paths are taken from the working directory."""
    parts = urlsplit(uri)
    if len(parts.scheme) > 1:  # a one-letter scheme is a Windows drive
        if parts.scheme != "file":
            path = posixpath.normpath("/" + unquote(parts.path).lstrip("/")).rstrip("/")
            authority = f"//{parts.netloc.lower()}" if parts.netloc else ""
            return f"{parts.scheme.lower()}:{authority}{path}"
        uri = unquote(parts.path)
    return Path(os.path.normpath(os.path.abspath(uri))).as_uri()


def is_under(uri: str, root_uri: str) -> bool:
    """Whether `uri` is `root_uri` or inside it; local paths through their symlinks."""
    if uri.startswith("s3://") != root_uri.startswith("s3://"):
        return False
    if uri.startswith("s3://"):
        inner, root = normalise_uri(uri), normalise_uri(root_uri)
        return inner == root or inner.startswith(root + "/")
    return _local_path(uri).resolve().is_relative_to(_local_path(root_uri).resolve())


def _local_path(uri: str) -> Path:
    return Path(unquote(urlsplit(uri).path)) if uri.startswith("file:") else Path(uri)


class DataReader:
    """Reads files under one data URI and records each read in the snapshot.

    Given `pinned` snapshots (a reproduction), it re-reads those exact versions and refuses
    files whose bytes have changed since.
    """

    def __init__(self, base_uri: str, pinned: list[FileSnapshot] | None = None) -> None:
        self.base_uri = base_uri.rstrip("/")
        self.pinned = {entry.path: entry for entry in pinned or []}
        self.read: dict[str, FileSnapshot] = {}
        self._s3: Any = None

    def read_bytes(self, relative: str) -> bytes:
        relative = str(PurePosixPath(relative))
        if relative.startswith("/") or ".." in PurePosixPath(relative).parts:
            raise CheckFailed(f"data path {relative!r} leaves the data root")
        pinned = self.pinned.get(relative)
        if self.base_uri.startswith("s3://"):
            payload, version_id, etag = self._read_s3(relative, pinned)
        else:
            payload, version_id, etag = self._read_local(relative), None, None
        digest = hashlib.sha256(payload).hexdigest()
        if pinned is not None and pinned.sha256 != digest:
            raise CheckFailed(
                f"{self.base_uri}/{relative}: changed since the snapshot "
                f"(sha256 {digest[:12]} != {pinned.sha256[:12]})"
            )
        self.read[relative] = FileSnapshot(relative, digest, len(payload), version_id, etag)
        return payload

    def _read_local(self, relative: str) -> bytes:
        path = Path(self.base_uri) / relative
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ExternalError(f"cannot read data file {path}: {exc.strerror or exc}") from None

    def _read_s3(self, relative: str, pinned: FileSnapshot | None) -> tuple[bytes, str | None, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, prefix = split_s3(self.base_uri)
        key = f"{prefix}/{relative}" if prefix else relative
        request: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if pinned is not None and pinned.version_id:
            request["VersionId"] = pinned.version_id
        if self._s3 is None:
            self._s3 = s3_client()
        try:
            response = self._s3.get_object(**request)
            payload = response["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise ExternalError(f"cannot read s3://{bucket}/{key}: {exc}") from None
        version = response.get("VersionId")
        return payload, None if version in (None, "null") else version, response["ETag"].strip('"')

    def snapshot(self) -> list[FileSnapshot]:
        return [self.read[path] for path in sorted(self.read)]


def snapshot_to_json(entries: list[FileSnapshot]) -> list[dict[str, Any]]:
    return [asdict(entry) for entry in entries]


def snapshot_from_json(items: list[dict[str, Any]]) -> list[FileSnapshot]:
    return [FileSnapshot(**item) for item in items]
