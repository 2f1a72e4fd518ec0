"""What a data location holds, from listings alone: never a file's bytes.

A file is known by its fingerprint: its size and modification time (nanoseconds) on a local disk,
its size, ETag and version id on S3. The training records the fingerprints of every file under
its data location before it reads any (`Lineage.data_listing`), so a file changed while it ran
shows as changed afterwards rather than hiding. `promote status` lists each data root once and
compares each champion's recorded listing with what is there now (`data_change`): files added,
removed or changed, and the rows the training read from those changed or removed.

A local fingerprint is as good as its modification time: a copy that resets times (a fresh git
checkout of data kept in the repository) reads as changed although its bytes are the same.
"""

from __future__ import annotations

import hashlib
import json
import os
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promote.build.data import s3_client, split_s3
from promote.errors import ExternalError

# A registry tag holds at most 100,000 characters: a listing longer than this is recorded as its
# count and digest, and a change in it is then told without the counts per kind.
LISTING_TAG_LIMIT = 90_000
LISTING_FORMAT = 1


def list_location(uri: str) -> dict[str, str]:
    """Every file under `uri` (a local folder or an S3 prefix): relative path -> fingerprint.

    A local folder that does not exist holds no files; an S3 prefix that cannot be listed is
    an `ExternalError`.
    """
    if uri.startswith("s3://"):
        return _list_s3(uri)
    return _list_local(Path(uri))


def _list_local(root: Path) -> dict[str, str]:
    """Symlinks are followed, as the training's reads follow them; a folder reached twice (a
    link back up the tree) is listed once. Plain strings and the inode numbers the folder
    listing already holds: a data root of 30,000 files costs one `stat` per file, no more."""
    listing: dict[str, str] = {}
    try:
        identity = os.stat(root)
    except FileNotFoundError:
        return listing
    except OSError as exc:
        raise ExternalError(f"cannot list {root}: {exc.strerror or exc}") from None
    pending = [(str(root), "", identity.st_dev)]
    seen = {(identity.st_dev, identity.st_ino)}
    while pending:
        folder, prefix, device = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ExternalError(f"cannot list {folder}: {exc.strerror or exc}") from None
        for entry in entries:
            relative = prefix + entry.name
            if entry.is_dir():
                if entry.is_symlink():
                    target = entry.stat()
                    folder_device, key = target.st_dev, (target.st_dev, target.st_ino)
                else:
                    folder_device, key = device, (device, entry.inode())
                if key not in seen:
                    seen.add(key)
                    pending.append((entry.path, relative + "/", folder_device))
            elif entry.is_file():
                stat = entry.stat()
                listing[relative] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return listing


def _list_s3(uri: str) -> dict[str, str]:
    """The current version of every object under the prefix: one paged listing of versions,
    which holds ETags and version ids (a bucket without versioning answers version "null")."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3(uri.rstrip("/"))
    prefix = f"{key}/" if key else ""
    listing: dict[str, str] = {}
    try:
        pages = (
            s3_client().get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
        )
        for page in pages:
            for item in page.get("Versions", []):
                if item["IsLatest"] and not item["Key"].endswith("/"):
                    version = item.get("VersionId") or "null"
                    etag = item["ETag"].strip('"')
                    listing[item["Key"][len(prefix) :]] = f"{item['Size']}:{etag}:{version}"
    except (BotoCoreError, ClientError) as exc:
        raise ExternalError(f"cannot list s3://{bucket}/{prefix}: {exc}") from None
    # A key whose latest version is a delete marker has no "Versions" entry marked latest.
    return listing


def listing_tag(listing: dict[str, str], rows: dict[str, int]) -> str:
    """The registry tag that restates a training's listing: every file's fingerprint and the
    rows of each file it read as a table; past the tag's limit, the count and digest alone.
    Its sha256 is signed with the version's provenance (`Claims.data_listing_digest`)."""
    body: dict[str, Any] = {
        "format": LISTING_FORMAT,
        "files": listing,
        "rows": {path: count for path, count in rows.items() if path in listing},
    }
    text = _canonical(body)
    if len(text) > LISTING_TAG_LIMIT:
        text = _canonical(
            {"format": LISTING_FORMAT, "count": len(listing), "digest": listing_digest(listing)}
        )
    return text


def listing_digest(listing: dict[str, str]) -> str:
    return hashlib.sha256(_canonical(listing).encode()).hexdigest()


def tag_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class RootListing:
    """One data root's listing, sorted, so each model's folder in it is found by bisection:
    the root is listed once for every model whose data lives under it."""

    def __init__(self, files: dict[str, str]) -> None:
        self.paths = sorted(files)
        self.files = files

    def under(self, relative: str) -> dict[str, str]:
        """The files under `relative` (a folder of the root; "" for all), relative to it."""
        prefix = relative.strip("/")
        if not prefix:
            return self.files
        prefix += "/"
        found = {}
        # Walked from where the prefix sorts, not sliced: a slice copies the rest of the root.
        for index in range(bisect_left(self.paths, prefix), len(self.paths)):
            path = self.paths[index]
            if not path.startswith(prefix):
                break
            found[path[len(prefix) :]] = self.files[path]
        return found


@dataclass(frozen=True)
class DataChange:
    """How a champion's data location differs now from the listing its training recorded."""

    location: str
    added: int | None  # None: the listing was recorded as a count and digest alone
    removed: int | None
    changed: int | None
    rows: int | None  # rows the training read from the files changed or removed, if known
    files_then: int
    files_now: int
    problem: str | None = None  # set when the location could not be listed: nothing is known

    @property
    def summary(self) -> str:
        if self.problem is not None:
            return f"data not checked: {self.problem}"
        if self.added is None:
            return f"data changed: {self.files_then} -> {self.files_now} files, listing differs"
        parts = [
            f"{count} {what}"
            for count, what in ((self.added, "added"), (self.removed, "removed"))
            if count
        ]
        if self.changed:
            parts.append(f"{self.changed} changed")
        total = self.added + (self.removed or 0) + (self.changed or 0)
        text = f"data changed: {_files(total)} ({', '.join(parts)})"
        if self.rows:
            text += f"; the training read {self.rows:,} rows from those changed or removed"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "files_added": self.added,
            "files_removed": self.removed,
            "files_changed": self.changed,
            "rows_changed_or_removed": self.rows,
            "files_at_training": self.files_then,
            "files_now": self.files_now,
            "problem": self.problem,
        }


def _files(count: int) -> str:
    return f"{count} file{'' if count == 1 else 's'}"


def data_change(location: str, recorded_tag: str, current: dict[str, str]) -> DataChange | None:
    """What changed between the recorded listing (the tag's text, its digest already proven)
    and the current one; None when nothing did."""
    recorded = json.loads(recorded_tag)
    if "files" not in recorded:
        if recorded["digest"] == listing_digest(current):
            return None
        return DataChange(location, None, None, None, None, recorded["count"], len(current))
    then: dict[str, str] = recorded["files"]
    if then == current:
        return None
    rows: dict[str, int] = recorded["rows"]
    removed = [path for path in then if path not in current]
    changed = [path for path, mark in then.items() if path in current and current[path] != mark]
    added = sum(1 for path in current if path not in then)
    touched_rows = [rows[path] for path in (*removed, *changed) if path in rows]
    return DataChange(
        location,
        added,
        len(removed),
        len(changed),
        sum(touched_rows) if touched_rows else None,
        len(then),
        len(current),
    )
