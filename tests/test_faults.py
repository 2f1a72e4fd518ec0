"""Kill `promote apply` at every step, re-run it, and get what an uninterrupted run gives."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from support.world import MODEL, World

from promote.registry.entities import (
    CHAMPION,
    TAG_RUN_REGISTERED,
    TAG_VERDICT,
    VERDICT_PASSED,
)
from promote.registry.lock import lock_name
from promote.runtime.faults import CRASH_EXIT_CODE, FAILPOINT_VARIABLE, POINTS

STAGING = f"staging.{MODEL}"


def _end_state(world: World) -> dict[str, object]:
    model = world.registry.model(STAGING)
    assert model is not None
    return {
        "versions": [(v.version, v.tags[TAG_VERDICT]) for v in model.versions],
        "aliases": model.aliases,
        "events": [(e["action"], e["version"], e["previous"]) for e in model.events()],
        "locked": world.registry.model(lock_name(STAGING)) is not None,
    }


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_at_any_step_converges_on_rerun(trained: World, point: str) -> None:
    trained.propose_and_merge("staging")
    crashed = trained.cli("apply", "--env", "staging", env={FAILPOINT_VARIABLE: point})
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr

    status = trained.cli("status", "--env", "staging", "--json")
    [left] = json.loads(status.stdout)
    assert left["status"] == "pending", left  # what the crash left is visible, not silent
    assert left["lock"] is not None  # and so is the lock the dead process held

    rerun = trained.cli("apply", "--env", "staging")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _end_state(trained) == {
        "versions": [(1, VERDICT_PASSED)],
        "aliases": {CHAMPION: 1},
        "events": [("promote", 1, None)],
        "locked": False,
    }
    # Its run is marked as registered, so no later plan takes it for a leftover to reuse.
    [version] = trained.registry.models([STAGING])[STAGING].versions
    run = trained.registry.client.get_run(version.run_id)
    assert run.data.tags[TAG_RUN_REGISTERED] == f"{STAGING}/1"
    if point == "after-training":
        assert "reusing run" in rerun.stderr  # trained once, not twice
        assert len(trained.snapshot()["runs"]) == 2  # dev's run and staging's one
    assert trained.cli("status").returncode == 0
    assert trained.cli("apply").returncode == 0
    assert _end_state(trained)["events"] == [("promote", 1, None)]


def test_a_crash_while_replacing_a_champion_keeps_previous_right(promoted: World) -> None:
    promoted.train_dev(C=0.2)
    promoted.propose_and_merge("staging")
    crashed = promoted.cli("apply", "--env", "staging", env={FAILPOINT_VARIABLE: "after-previous"})
    assert crashed.returncode == CRASH_EXIT_CODE
    model = promoted.registry.model(STAGING)
    assert model is not None and model.aliases[CHAMPION] == 1  # prod-facing alias untouched
    assert promoted.cli("apply", "--env", "staging").returncode == 0
    model = promoted.registry.model(STAGING)
    assert model is not None and model.aliases == {CHAMPION: 2, "previous": 1}
    assert [(e["action"], e["version"], e["previous"]) for e in model.events()] == [
        ("promote", 1, None),
        ("promote", 2, 1),
    ]


def test_two_appliers_at_once_build_once(trained: World) -> None:
    trained.propose_and_merge("staging")
    command = [sys.executable, "-m", "promote", "apply", "--env", "staging", "--json"]
    first = subprocess.Popen(
        command, cwd=trained.repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(0.2)
    second = subprocess.Popen(
        command, cwd=trained.repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    outputs = [process.communicate(timeout=300) for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    actions = sorted(
        outcome["action"]
        for stdout, _ in outputs
        for outcome in json.loads(stdout)["outcomes"]
        if outcome["environment"] == "staging"
    )
    assert actions == ["none", "promote"]
    assert _end_state(trained)["versions"] == [(1, VERDICT_PASSED)]
    assert len(trained.snapshot()["runs"]) == 2


def test_a_live_lock_blocks_and_unlock_needs_force(trained: World) -> None:
    from promote.registry import lock

    trained.propose_and_merge("staging")
    with lock.hold(trained.registry, STAGING, wait_seconds=0):
        blocked = trained.cli("apply", "--env", "staging", "--lock-wait", "1")
        assert blocked.returncode == 1
        assert f"{STAGING} is locked by" in blocked.stdout + blocked.stderr
        refused = trained.cli("unlock", MODEL, "--env", "staging")
        assert refused.returncode == 2 and "pass --force" in refused.stderr
        forced = trained.cli("unlock", MODEL, "--env", "staging", "--force")
        assert forced.returncode == 0 and "released the lock" in forced.stdout
    assert trained.registry.model(lock_name(STAGING)) is None
    again = trained.cli("unlock", MODEL, "--env", "staging", "--json")
    assert json.loads(again.stdout) == {"model": STAGING, "released": False, "owner": None}
    assert trained.cli("apply", "--env", "staging").returncode == 0


def test_five_appliers_over_a_dead_appliers_lock_build_once(trained: World) -> None:
    """The issue's race: an apply killed mid-rebuild leaves its lock to a dead owner, then five
    appliers start at once. One takes the lock over and builds; the others find it done."""
    trained.propose_and_merge("staging")
    crashed = trained.cli("apply", "--env", "staging", env={FAILPOINT_VARIABLE: "before-training"})
    assert crashed.returncode == CRASH_EXIT_CODE
    assert trained.registry.model(lock_name(STAGING)) is not None  # held by the dead process
    command = [sys.executable, "-m", "promote", "apply", "--env", "staging", "--json"]
    appliers = [
        subprocess.Popen(
            command, cwd=trained.repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(5)
    ]
    outputs = [applier.communicate(timeout=600) for applier in appliers]
    for applier, (_, stderr) in zip(appliers, outputs, strict=True):
        assert applier.returncode == 0 and "Traceback" not in stderr, stderr
    actions = sorted(
        outcome["action"] for stdout, _ in outputs for outcome in json.loads(stdout)["outcomes"]
    )
    assert actions.count("promote") == 1, actions
    assert _end_state(trained) == {
        "versions": [(1, VERDICT_PASSED)],
        "aliases": {CHAMPION: 1},
        "events": [("promote", 1, None)],
        "locked": False,
    }
    assert len(trained.snapshot()["runs"]) == 2  # dev's run and the one rebuild
