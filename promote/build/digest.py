"""The artifact digest: sha256 over the sorted (relative path, file sha256) pairs of a model
directory, without the files MLflow adds on download.

A deterministic training rebuilds the same digest: the `MLmodel` file is hashed as its YAML
without the fields MLflow fills anew on every save (`SAVE_TIME_FIELDS`); every other file, byte
for byte.
"""

from __future__ import annotations

import hashlib
import os
import queue
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from promote.errors import CheckFailed
from promote.manifests.digest import canonical_digest

# Files MLflow writes into a model directory when it is downloaded, not when it is logged.
DOWNLOAD_ONLY_FILES = frozenset({"registered_model_meta"})

# Top-level MLmodel fields MLflow fills anew each time it saves the same model: its ids and
# the clock. `mlflow_version` stays: it is what loads the model.
SAVE_TIME_FIELDS = ("model_uuid", "model_id", "utc_time_created")

MLMODEL_FILE = "MLmodel"

_CHUNK = 1 << 20


def _file_digest(path: str) -> str:
    # Plain reads sized to the data: hashlib.file_digest zeroes a 256 KiB buffer per file
    # while holding the GIL, which serialises the threads on many small files.
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        size = os.fstat(handle.fileno()).st_size
        # One read of a small file's exact size: no oversized allocation per file.
        while chunk := handle.read(min(size, _CHUNK) or _CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _content_digest(relative: str, path: str) -> str:
    """What a model file contributes to the digest: its bytes, or for the MLmodel file, what
    stays the same when the same model is saved again."""
    if relative == MLMODEL_FILE:
        return _mlmodel_digest(path)
    return _file_digest(path)


def _mlmodel_digest(path: str) -> str:
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        body = yaml.safe_load(raw)
        if isinstance(body, dict):
            kept = {key: value for key, value in body.items() if key not in SAVE_TIME_FIELDS}
            return canonical_digest(["MLmodel", kept])
    except (yaml.YAMLError, TypeError, ValueError):  # not MLflow's YAML: its bytes count
        pass
    return hashlib.sha256(raw).hexdigest()


def _model_files(directory: Path) -> list[tuple[str, str]]:
    """(relative posix path, absolute path) of every file, sorted; os.walk is several times
    cheaper than Path.rglob plus a stat per entry on directories of many small files."""
    found = []
    root = str(directory)
    for folder, _, names in os.walk(root):
        prefix = os.path.relpath(folder, root).replace(os.sep, "/")
        for name in names:
            relative = name if prefix == "." else f"{prefix}/{name}"
            if relative not in DOWNLOAD_ONLY_FILES:
                found.append((relative, os.path.join(folder, name)))
    return sorted(found)


def artifact_digest(directory: Path) -> str:
    """sha256 over the sorted (relative path, file sha256) pairs of a model directory (for the
    MLmodel file, the sha256 of what stays the same across saves).

    Files are hashed on one thread per core (hashlib and file reads release the GIL). Each
    thread takes the next file as soon as it is done with one: no task per file, which costs
    as much as hashing a small one, and a large file never leaves the other threads idle.
    """
    files = _model_files(directory)
    if not files:
        raise CheckFailed(f"model directory {directory} is empty")
    digests = [""] * len(files)
    remaining: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(files)):
        remaining.put(index)

    def hash_until_done() -> None:
        while True:
            try:
                index = remaining.get_nowait()
            except queue.Empty:
                return
            digests[index] = _content_digest(*files[index])

    workers = min(len(files), os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(hash_until_done) for _ in range(workers)]:
            future.result()  # a file that cannot be read fails the digest
    return canonical_digest(
        [[relative, d] for (relative, _), d in zip(files, digests, strict=True)]
    )
