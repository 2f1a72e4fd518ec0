"""Parsed manifests, cached by their content: thousands of manifests load without re-parsing.

Parsing YAML costs about a millisecond a file even through libyaml (PyYAML builds the objects
in Python); reading and hashing a file costs microseconds. So a repository's manifests are
parsed once per content: the key is the sha256 of the file's text, the value what the safe
loader returned for it. Only plain JSON data is kept (strings, numbers, booleans, null, lists,
string-keyed mappings), checked by a round trip, so a hit returns exactly what parsing would;
anything else (dates, binary, errors) is parsed every time, and every hit is still validated.

This is desired state only, keyed by what git holds. The registry is never cached: status and
plan read it live on every run. The cache lives with the other caches of the user (beside the
cloned code repositories, `$XDG_CACHE_HOME/promote`), one file per repository, rewritten only
when something was parsed; an unreadable or unwritable cache just means parsing again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMAT = 1


def cache_file(repository_root: Path) -> Path | None:
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # no home directory: nowhere to keep it
        return None
    key = hashlib.sha256(str(repository_root).encode()).hexdigest()[:16]
    return base / "promote" / "manifests" / f"{key}.json"


class ParseCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self.used: dict[str, dict[str, Any]] = {}
        self.changed = False
        if path is None:
            return
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(body, dict) and body.get("format") == FORMAT:
            self.entries = body.get("entries") or {}

    @classmethod
    def for_repository(cls, root: Path) -> ParseCache:
        return cls(cache_file(root))

    def parse(self, text: str, parse: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
        """What `parse(text)` returns, from the cache when this very text was parsed before."""
        key = hashlib.sha256(text.encode()).hexdigest()
        data = self.entries.get(key)
        if not isinstance(data, dict):
            data = parse(text)  # raises on bad input: errors are never cached
            if not _round_trips(data):
                return data
            self.changed = True
        self.used[key] = data
        return data

    def save(self) -> None:
        """Keep what this load used (older contents drop out), if anything new was parsed."""
        if self.path is None or not self.changed:
            return
        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps({"format": FORMAT, "entries": self.used}), "utf-8")
            os.replace(partial, self.path)  # readers see the old file or the new one, whole
        except OSError:
            partial.unlink(missing_ok=True)


def _round_trips(data: Any) -> bool:
    """Plain JSON data that comes back equal: no dates, bytes, non-string keys, cycles, NaN."""
    try:
        return bool(json.loads(json.dumps(data)) == data)
    except (TypeError, ValueError):
        return False
