"""What is on disk, for "nothing was written" checks."""

from __future__ import annotations

import os
from pathlib import Path


def file_states(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and link under `root` but git's own, with its size and modification time."""
    found = {}
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if name != ".git"]
        for name in names + [s for s in subfolders if Path(folder, s).is_symlink()]:
            info = Path(folder, name).lstat()
            found[str(Path(folder, name).relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return found
