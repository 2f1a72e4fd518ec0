"""A lock per registered model, kept in the shared registry itself.

Creating a registered model is atomic and its name unique, in every MLflow store: the lock is
a registered model named `promote-lock.<name>` whose tags record the owner and the expiry.
Two appliers racing for the same model serialise on it; the loser waits, then re-reads state.

Creation is also the only compare-and-swap MLflow offers. A delete names a model, not whose
lock it is, and two racing deletes can both report success. A rename is atomic, but renaming
`promote-lock.<name>` away moves whoever holds it by then, not the owner read before, and the
SQL store words a lost race as an UPDATE that matched no row. So removing a lock (its owner's
release, the takeover of a dead owner's lock, `promote unlock`) is a compare-and-delete built
on creation: see `_delete_if_held_by`.
"""

from __future__ import annotations

import hashlib
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
# A guard stands for two registry calls; one this old was left by a process stuck or gone.
GUARD_TTL = timedelta(minutes=10)

# An apply holds its lock for minutes: polling faster than this would only load the registry.
POLL_FIRST = 0.5
POLL_LONGEST = 5.0


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


def guard_name(name: str, owner: str) -> str:
    """The guard over removing `owner`'s hold on lock model `name`: one name per holding.

    Owner ids are unique per holding, so a guard's name is never reused for another holding.
    They contain ':', which MLflow names may not; a digest is always a valid name.
    """
    return f"{name}.release.{hashlib.sha256(owner.encode()).hexdigest()[:16]}"


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def read(registry: Registry, registered_name: str) -> LockInfo | None:
    return _read(registry, lock_name(registered_name))


def _read(registry: Registry, name: str) -> LockInfo | None:
    model = registry.model(name)
    if model is None:
        return None
    expires = model.tags.get(TAG_LOCK_EXPIRES, "")
    try:
        when = datetime.fromisoformat(expires)
    except ValueError:
        when = datetime.fromtimestamp(0, timezone.utc)
    return LockInfo(model.name, model.tags.get(TAG_LOCK_OWNER, "unknown"), when)


def _create(registry: Registry, name: str, owner: str, ttl: timedelta, description: str) -> bool:
    expires = (datetime.now(timezone.utc) + ttl).isoformat(timespec="seconds")
    return registry.create_exclusive(
        name, {TAG_LOCK_OWNER: owner, TAG_LOCK_EXPIRES: expires}, description
    )


def _try_acquire(registry: Registry, registered_name: str, owner: str, ttl: timedelta) -> bool:
    return _create(
        registry,
        lock_name(registered_name),
        owner,
        ttl,
        f"promote apply lock on {registered_name}; do not edit",
    )


def _delete_if_held_by(registry: Registry, name: str, owner: str) -> bool:
    """Delete lock model `name` if `owner` holds it, atomically; True when this call did.

    Whoever removes a holding first creates its guard (`guard_name`), then reads the lock
    again. Only one creator of the guard succeeds, and nobody else can remove that holding
    while the guard stands, so the lock read under the guard is the lock deleted. Once the
    guard is gone, a late remover that read the same owner creates it anew, reads the lock's
    next holder and leaves it alone. A guard whose creator died or overran `GUARD_TTL` is
    itself a lock model, removed the same way, one level down.
    """
    guard = guard_name(name, owner)
    while not _create(
        registry, guard, owner_id(), GUARD_TTL, f"promote: removing {owner}'s lock {name}"
    ):
        remover = _read(registry, guard)
        if remover is None:
            continue  # the other remover finished between our create and read: try again
        if not (remover.owner_is_dead or remover.stale):
            return False  # a live process is removing this holding: it will be gone
        if not _delete_if_held_by(registry, guard, remover.owner):
            return False
    try:
        held = _read(registry, name)
        if held is None or held.owner != owner:
            return False
        registry.delete_model(name)
        return True
    finally:
        registry.delete_model(guard)


def release(registry: Registry, registered_name: str, owner: str | None) -> bool:
    """Drop the lock; only its owner may, unless `owner` is None (the explicit unlock command).

    Either way it removes only the holding it read: a lock taken anew since is left alone.
    """
    if owner is None:
        held = read(registry, registered_name)
        if held is None:
            return False
        owner = held.owner
    return _delete_if_held_by(registry, lock_name(registered_name), owner)


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
    pause = POLL_FIRST
    told = False
    while not _try_acquire(registry, registered_name, owner, ttl):
        held = read(registry, registered_name)
        if (
            held is not None
            and held.owner_is_dead
            and release(registry, registered_name, held.owner)
        ):
            if on_wait is not None:
                on_wait(f"{registered_name}: released the lock of {held.owner}, which died")
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
        pause = min(pause * 2, POLL_LONGEST)
    try:
        yield owner
    finally:
        try:
            release(registry, registered_name, owner)
        except Exception:  # registry gone: the next apply frees a dead owner's lock, or unlock
            if on_wait is not None:
                on_wait(f"{registered_name}: could not release the lock (registry unreachable)")
