"""A lock per registered model, kept in the shared registry itself.

Creating a registered model is atomic and its name unique, in every MLflow store: the lock is
a registered model named `promote-lock.<name>` whose tags record the owner and the expiry.
Two appliers racing for the same model serialise on it; the loser waits, then re-reads state.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from promote.errors import LockHeld
from promote.registry.client import Registry
from promote.registry.entities import TAG_LOCK_EXPIRES, TAG_LOCK_OWNER

LOCK_PREFIX = "promote-lock."
DEFAULT_TTL = timedelta(hours=2)


@dataclass(frozen=True)
class LockInfo:
    name: str
    owner: str
    expires: datetime

    @property
    def stale(self) -> bool:
        return datetime.now(timezone.utc) >= self.expires

    @property
    def owner_is_dead(self) -> bool:
        """True only when the owner ran on this host and its process is gone (a crash)."""
        host, _, rest = self.owner.partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def lock_name(registered_name: str) -> str:
    return f"{LOCK_PREFIX}{registered_name}"


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def read(registry: Registry, registered_name: str) -> LockInfo | None:
    model = registry.model(lock_name(registered_name))
    if model is None:
        return None
    expires = model.tags.get(TAG_LOCK_EXPIRES, "")
    try:
        when = datetime.fromisoformat(expires)
    except ValueError:
        when = datetime.fromtimestamp(0, timezone.utc)
    return LockInfo(model.name, model.tags.get(TAG_LOCK_OWNER, "unknown"), when)


def _try_acquire(registry: Registry, registered_name: str, owner: str, ttl: timedelta) -> bool:
    expires = (datetime.now(timezone.utc) + ttl).isoformat(timespec="seconds")
    return registry.create_exclusive(
        lock_name(registered_name),
        {TAG_LOCK_OWNER: owner, TAG_LOCK_EXPIRES: expires},
        f"promote apply lock on {registered_name}; do not edit",
    )


def release(registry: Registry, registered_name: str, owner: str | None) -> bool:
    """Drop the lock; only its owner may, unless `owner` is None (the explicit unlock command)."""
    held = read(registry, registered_name)
    if held is None or (owner is not None and held.owner != owner):
        return False
    registry.delete_model(held.name)
    return True


@contextmanager
def hold(
    registry: Registry,
    registered_name: str,
    wait_seconds: float,
    ttl: timedelta = DEFAULT_TTL,
    on_wait: Any = None,
) -> Iterator[str]:
    """Hold the model's lock for the block; wait up to `wait_seconds` for another holder."""
    owner = owner_id()
    deadline = time.monotonic() + wait_seconds
    pause = 0.5
    told = False
    while not _try_acquire(registry, registered_name, owner, ttl):
        held = read(registry, registered_name)
        if held is not None and held.owner_is_dead:
            if on_wait is not None:
                on_wait(f"{registered_name}: releasing the lock of {held.owner}, which died")
            release(registry, registered_name, held.owner)
            continue
        if time.monotonic() >= deadline:
            if held is None:
                raise LockHeld(f"{registered_name}: could not take the lock in {wait_seconds}s")
            advice = (
                f"expired at {held.expires.isoformat()}: `promote unlock` releases it"
                if held.stale
                else f"until {held.expires.isoformat()}"
            )
            raise LockHeld(f"{registered_name} is locked by {held.owner}, {advice}")
        if held is not None and on_wait is not None and not told:
            on_wait(f"{registered_name}: waiting for the lock held by {held.owner}")
            told = True
        time.sleep(pause)
        pause = min(pause * 2, 5.0)
    try:
        yield owner
    finally:
        try:
            release(registry, registered_name, owner)
        except Exception:  # registry gone: the next apply frees a dead owner's lock, or unlock
            if on_wait is not None:
                on_wait(f"{registered_name}: could not release the lock (registry unreachable)")
