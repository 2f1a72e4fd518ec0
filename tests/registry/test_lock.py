"""The apply lock: a lock released just as another applier collides with it is taken, not an
error (MLflow reads back the model it collided with, and finds it gone); removing a lock is a
compare-and-delete, so a remover that read an owner since replaced never deletes the new lock.

The race itself, between processes, is in test_lock_race.py.
"""

from __future__ import annotations

import re
import socket
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from promote.errors import LockHeld
from promote.registry import lock
from promote.registry.client import Registry

NAME = "staging.churn"


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")


def a_dead_owner() -> str:
    """The owner id of a process of this host that has exited."""
    finished = subprocess.Popen(["true"])
    finished.wait()
    return f"{socket.gethostname()}:{finished.pid}:deadbeef"


def owner_of(registry: Registry) -> str | None:
    held = lock.read(registry, NAME)
    return None if held is None else held.owner


def test_a_lock_released_during_the_collision_is_taken(registry: Registry) -> None:
    client = registry.client
    holder = lock.owner_id()
    assert lock._try_acquire(registry, NAME, holder, lock.DEFAULT_TTL)
    real_get = client._get_registry_client().store.get_registered_model
    collisions = []

    store = client._get_registry_client().store

    def released_in_between(name: str) -> Any:
        # The holder releases its lock between the collision and MLflow's read-back (once).
        del store.get_registered_model
        collisions.append(name)
        assert lock.release(registry, NAME, holder)
        return real_get(name)

    store.get_registered_model = released_in_between
    with lock.hold(registry, NAME, wait_seconds=30) as owner:
        held = lock.read(registry, NAME)
        assert held is not None and held.owner == owner != holder
    assert collisions == [lock.lock_name(NAME)]
    assert lock.read(registry, NAME) is None  # released on the way out


def test_a_late_remover_of_a_dead_owner_leaves_the_next_holder_alone(registry: Registry) -> None:
    # Two appliers read the same dead owner; the first removes its lock and takes it anew.
    dead = a_dead_owner()
    assert lock._try_acquire(registry, NAME, dead, lock.DEFAULT_TTL)
    assert lock.release(registry, NAME, dead)
    first = lock.owner_id()
    assert lock._try_acquire(registry, NAME, first, lock.DEFAULT_TTL)
    assert not lock.release(registry, NAME, dead)  # the second, late
    assert owner_of(registry) == first
    assert registry.names(lock.LOCK_PREFIX) == [lock.lock_name(NAME)]  # no guard left


def test_an_owner_releasing_late_leaves_a_lock_taken_since(registry: Registry) -> None:
    with lock.hold(registry, NAME, wait_seconds=0):
        assert lock.release(registry, NAME, owner=None)  # `promote unlock --force`
        successor = lock.owner_id()
        assert lock._try_acquire(registry, NAME, successor, lock.DEFAULT_TTL)
    assert owner_of(registry) == successor
    assert lock.release(registry, NAME, owner=None)
    assert not lock.release(registry, NAME, owner=None)  # nothing left to unlock
    assert registry.names(lock.LOCK_PREFIX) == []


def test_a_removal_under_way_is_left_to_its_remover(registry: Registry) -> None:
    dead = a_dead_owner()
    assert lock._try_acquire(registry, NAME, dead, lock.DEFAULT_TTL)
    guard = lock.guard_name(lock.lock_name(NAME), dead)
    assert lock._create(registry, guard, lock.owner_id(), lock.GUARD_TTL, "a live remover")
    assert not lock.release(registry, NAME, dead)
    with (
        pytest.raises(LockHeld, match=re.escape(f"locked by {dead}")),
        lock.hold(registry, NAME, 0),
    ):
        pass
    assert owner_of(registry) == dead


@pytest.mark.parametrize("abandoned", ["remover-died", "remover-overran"])
def test_a_removal_its_remover_abandoned_is_finished(registry: Registry, abandoned: str) -> None:
    remover, ttl = (
        (a_dead_owner(), lock.GUARD_TTL)
        if abandoned == "remover-died"
        else ("elsewhere:1:cafef00d", -timedelta(seconds=1))
    )
    dead = a_dead_owner()
    assert lock._try_acquire(registry, NAME, dead, lock.DEFAULT_TTL)
    guard = lock.guard_name(lock.lock_name(NAME), dead)
    assert lock._create(registry, guard, remover, ttl, "an abandoned remover")
    notes: list[str] = []
    with lock.hold(registry, NAME, wait_seconds=5, on_wait=notes.append) as owner:
        assert owner_of(registry) == owner
        assert registry.names(lock.LOCK_PREFIX) == [lock.lock_name(NAME)]
    assert notes == [f"{NAME}: released the lock of {dead}, which died"]
    assert registry.names(lock.LOCK_PREFIX) == []
