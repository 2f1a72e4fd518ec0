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


def cache_path() -> Path | None:
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # no home directory: nowhere to keep it
        return None
    return base / "promote" / "verified"


class VerifiedCache:
    """One line per verification: the hex digest of what was verified, ":", what it concluded
    (`proof.versions` says which letters)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._known: dict[str, str] = {}  # digest -> conclusion
        self._new: list[str] = []
        if path is not None:
            with contextlib.suppress(OSError):
                for entry in path.read_text(encoding="ascii").split():
                    digest, _, conclusion = entry.partition(":")
                    self._known[digest] = conclusion

    def conclusion(self, digest: str) -> str | None:
        """What verifying the bytes of this digest concluded before, if it succeeded."""
        return self._known.get(digest)

    def remember(self, digest: str, conclusion: str) -> None:
        if self._known.get(digest) != conclusion:
            self._known[digest] = conclusion
            self._new.append(f"{digest}:{conclusion}")

    def save(self) -> None:
        """Append what this run verified: whole lines, so concurrent runs only add entries."""
        if self._path is None or not self._new:
            return
        with contextlib.suppress(OSError):
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._path.open("a", encoding="ascii") as handle:
                handle.write("".join(f"{entry}\n" for entry in self._new))
            self._new = []
