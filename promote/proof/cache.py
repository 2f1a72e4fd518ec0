"""Versions whose signatures this machine has verified before, remembered by their exact bytes.

Verifying one version costs two ECDSA checks and parsing its statements (about 0.2 ms): 30,000
versions would double the time `status` takes. What a verification concluded depends only on
the version's identity, its signed tags and the environment's keys, so it is kept under the
sha256 of all of them; any changed byte is a miss and a full verification. Only successes are
kept. The cache steers reports (status, plan) and nothing else: every alias move verifies the
signatures again, without it (`apply.Promoter.verified`). It lives with the user's other caches
(`$XDG_CACHE_HOME/promote/verified`); an unreadable or unwritable cache means verifying again.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

# An entry: the hex digest of what was verified, then "p" (passed) or "g" (genuine).
ENTRY_LENGTH = 64 + 2


def cache_path() -> Path | None:
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # no home directory: nowhere to keep it
        return None
    return base / "promote" / "verified"


class VerifiedCache:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._known: set[str] = set()
        self._new: list[str] = []
        if path is not None:
            with contextlib.suppress(OSError):
                self._known = set(path.read_text(encoding="ascii").split())

    def __contains__(self, entry: str) -> bool:
        return entry in self._known

    def add(self, entry: str) -> None:
        if entry not in self._known:
            self._known.add(entry)
            self._new.append(entry)

    def save(self) -> None:
        """Append what this run verified: whole lines, so concurrent runs only add entries."""
        if self._path is None or not self._new:
            return
        with contextlib.suppress(OSError):
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._path.open("a", encoding="ascii") as handle:
                handle.write("".join(f"{entry}\n" for entry in self._new))
            self._new = []
