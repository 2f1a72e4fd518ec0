"""The apply lock: a lock released just as another applier collides with it is taken, not an
error (MLflow reads back the model it collided with, and finds it gone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promote.registry import lock
from promote.registry.client import Registry


def test_a_lock_released_during_the_collision_is_taken(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
    client = registry.client
    holder = lock.owner_id()
    assert lock._try_acquire(registry, "staging.churn", holder, lock.DEFAULT_TTL)
    real_get = client._get_registry_client().store.get_registered_model
    collisions = []

    store = client._get_registry_client().store

    def released_in_between(name: str) -> Any:
        # The holder releases its lock between the collision and MLflow's read-back (once).
        del store.get_registered_model
        collisions.append(name)
        assert lock.release(registry, "staging.churn", holder)
        return real_get(name)

    store.get_registered_model = released_in_between
    with lock.hold(registry, "staging.churn", wait_seconds=30) as owner:
        held = lock.read(registry, "staging.churn")
        assert held is not None and held.owner == owner != holder
    assert collisions == [lock.lock_name("staging.churn")]
    assert lock.read(registry, "staging.churn") is None  # released on the way out
