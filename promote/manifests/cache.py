"""Manifests validated before, remembered by their exact text: thousands load in a blink.

Validating a manifest (YAML, then pydantic) costs about a hundred microseconds; reading and
hashing the file costs a few. So what validation concluded is kept per manifest, under the
sha256 of the file's bytes, the environment's settings and the validating code itself: the
facts planning needs (model, pinned commit, source version, manifest digest). A hit returns
those facts without building pydantic objects; a miss validates in full, and errors are never
kept. Every file is still read on every load: a cache hit means the same bytes, not the same
modification time. Before apply acts on a model it validates that manifest's text again and
checks it gives the same facts (`ModelSpec.confirm`), so a damaged or altered cache can slow
a load down or stop an apply, never steer one.

This is desired state only, keyed by what git holds. The registry is never cached: status and
plan read it live on every run. The cache lives with the user's other caches
(`$XDG_CACHE_HOME/promote`), one file per repository, rewritten only when something was
validated; an unreadable or unwritable cache just means validating again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

FORMAT = 2


def cache_file(repository_root: Path) -> Path | None:
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # no home directory: nowhere to keep it
        return None
    key = hashlib.sha256(str(repository_root).encode()).hexdigest()[:16]
    return base / "promote" / "manifests" / f"{key}.json"


class ManifestCache:
    """Plain-JSON entries by key; what this load looked up is what the next one keeps."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, Any] = {}
        self.used: dict[str, Any] = {}
        self.changed = False
        if path is None:
            return
        try:
            body = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return
        if isinstance(body, dict) and body.get("format") == FORMAT:
            entries = body.get("entries")
            self.entries = entries if isinstance(entries, dict) else {}

    @classmethod
    def for_repository(cls, root: Path) -> ManifestCache:
        return cls(cache_file(root))

    @staticmethod
    def key(context: bytes, content: bytes) -> str:
        """The key of a file's `content` validated in `context` (settings and code)."""
        return hashlib.sha256(context + content).hexdigest()

    def get(self, key: str) -> Any:
        entry = self.entries.get(key)
        if entry is not None:
            self.used[key] = entry
        return entry

    def put(self, key: str, entry: Any) -> None:
        self.used[key] = entry
        self.changed = True

    def save(self) -> None:
        """Keep what this load used (older contents drop out), if anything new was validated."""
        if self.path is None or not self.changed:
            return
        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps({"format": FORMAT, "entries": self.used}), "utf-8")
            os.replace(partial, self.path)  # readers see the old file or the new one, whole
        except OSError:
            partial.unlink(missing_ok=True)
