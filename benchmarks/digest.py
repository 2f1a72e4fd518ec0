"""The artifact digest of a 1 GiB model directory against a one-core hashlib loop.

Two shapes of the same gibibyte: one large file, and many small files. The baseline hashes the
same files one after the other on one core (sha256, 1 MiB reads) and combines them the same
way; `promote.lineage.artifact_digest` must agree with it byte for byte. Both are measured warm
(the files in the page cache), alternately, best of three. The data is generated in a
temporary folder and removed afterwards.

    python benchmarks/digest.py [--quick] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from figures import Table, best_of, seconds

from promote.build.digest import artifact_digest
from promote.manifests.digest import canonical_digest

GIB = 1 << 30
SMALL_FILE = 64 << 10
BLOCK = 1 << 20
TARGETS = {"one large file": 0.95, "many small files": 1.8}


def one_core_digest(directory: Path) -> str:
    """The baseline: every file hashed in turn, on the calling thread."""
    pairs = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(BLOCK):
                digest.update(chunk)
        pairs.append([path.relative_to(directory).as_posix(), digest.hexdigest()])
    return canonical_digest(pairs)


def parallel_ceiling(threads: int) -> float:
    """In-memory sha256 on `threads` threads against one: how far this machine lets us go."""
    block = os.urandom(BLOCK)

    def hash_blocks() -> None:
        digest = hashlib.sha256()
        for _ in range(256):
            digest.update(block)

    def on_threads(count: int) -> float:
        pool = [threading.Thread(target=hash_blocks) for _ in range(count)]
        start = time.perf_counter()
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        return count / (time.perf_counter() - start)

    return max(on_threads(threads) for _ in range(3)) / max(on_threads(1) for _ in range(3))


def write_large(directory: Path, size: int, block: bytes) -> None:
    directory.mkdir()
    with (directory / "model.bin").open("wb") as handle:
        for _ in range(size // len(block)):
            handle.write(block)


def write_small(directory: Path, size: int, block: bytes) -> None:
    """size / 64 KiB files, 256 to a folder, as a model with many shards or assets."""
    for index in range(size // SMALL_FILE):
        folder = directory / f"part-{index // 256:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        offset = (index * 4096) % (len(block) - SMALL_FILE)
        (folder / f"{index:05d}.bin").write_bytes(block[offset : offset + SMALL_FILE])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB instead of 1 GiB")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the data")
    options = parser.parse_args()
    size = GIB // 4 if options.quick else GIB
    block = os.urandom(BLOCK)
    work = Path(tempfile.mkdtemp(prefix="promote-bench-digest-", dir=options.dir))
    table = Table(
        f"artifact digest of {size >> 20} MiB, {os.cpu_count()} cores, best of 3 (warm cache)"
    )
    try:
        for shape, write in (("one large file", write_large), ("many small files", write_small)):
            directory = work / shape.replace(" ", "-")
            write(directory, size, block)
            assert artifact_digest(directory) == one_core_digest(directory), "digests differ"
            measured = best_of(3, lambda d=directory: artifact_digest(d))  # type: ignore[misc]
            baseline = best_of(3, lambda d=directory: one_core_digest(d))  # type: ignore[misc]
            files = sum(1 for p in directory.rglob("*") if p.is_file())
            speedup = baseline / measured
            table.add(
                f"{shape} ({files:,} files)",
                f"{seconds(measured)} ({size / measured / (1 << 20):.0f} MiB/s)",
                f"{seconds(baseline)} one core",
                f"{speedup:.2f}x",
                f">= {TARGETS[shape]}x",
                speedup >= TARGETS[shape],
            )
            shutil.rmtree(directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cores = os.cpu_count() or 1
    table.add(
        f"machine ceiling: sha256 in memory, {cores} threads vs 1",
        f"{parallel_ceiling(cores):.2f}x",
    )
    table.print()


if __name__ == "__main__":
    main()
