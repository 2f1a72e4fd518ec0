"""The apply lock under a real race: five processes at once over a lock its owner left behind
when it was killed take it one at a time, each once, and none crashes.

Every round starts its five appliers together on a lock of its own, all left by one process
that took them and was killed with SIGKILL, as an apply killed while it rebuilds leaves its lock.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from promote.registry import lock
from promote.registry.client import Registry

APPLIERS = 5
ROUNDS = 20

HOLDER = """
import sys, time
from contextlib import ExitStack
from pathlib import Path
from promote.registry import lock
from promote.registry.client import Registry

registry = Registry(sys.argv[1], Path(sys.argv[2]))
with ExitStack() as stack:
    for name in sys.argv[3:]:
        stack.enter_context(lock.hold(registry, name, wait_seconds=0))
    print("held", flush=True)
    time.sleep(600)
"""

APPLIER = """
import json, os, sys, time
from pathlib import Path
from promote.registry import lock
from promote.registry.client import Registry

uri, folder, me, appliers = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
# These holders keep the lock for milliseconds, not an apply's minutes: poll to match.
lock.POLL_FIRST, lock.POLL_LONGEST = 0.005, 0.05
registry = Registry(uri, folder / "artifacts")
registry.client  # MLflow loads before the first round starts, not during it
for number, name in enumerate(sys.argv[5:]):
    (folder / f"ready-{number}-{me}").touch()
    while len(list(folder.glob(f"ready-{number}-*"))) < appliers:
        time.sleep(0.005)
    notes = []
    with lock.hold(registry, name, wait_seconds=60, on_wait=notes.append) as owner:
        entered = time.monotonic()  # one clock for every process of the host, so spans compare
        owned_on_entry = getattr(lock.read(registry, name), "owner", None) == owner
        try:  # a second holder inside finds the first one's marker
            os.close(os.open(folder / f"inside-{name}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            alone = True
        except FileExistsError:
            alone = False
        time.sleep(0.02)
        owned_on_exit = getattr(lock.read(registry, name), "owner", None) == owner
        if alone:
            os.unlink(folder / f"inside-{name}")
        left = time.monotonic()
    print(json.dumps({
        "name": name, "applier": me, "entered": entered, "left": left, "alone": alone,
        "owned": owned_on_entry and owned_on_exit, "notes": notes,
    }), flush=True)
"""


def _python(script: str, *args: str, output: Path) -> subprocess.Popen[str]:
    """A Python process writing to `output`.out and .err: files, so nothing blocks on a pipe."""
    with (
        output.with_suffix(".out").open("w") as stdout,
        output.with_suffix(".err").open("w") as stderr,
    ):
        return subprocess.Popen(
            [sys.executable, "-c", script, *args], stdout=stdout, stderr=stderr, text=True
        )


def _wait_all(processes: list[subprocess.Popen[str]], timeout: float) -> None:
    """Wait for every process; one that fails stops the rest, which would wait for it forever."""
    deadline = time.monotonic() + timeout
    while running := [process for process in processes if process.poll() is None]:
        if time.monotonic() > deadline or any(process.returncode for process in processes):
            for process in running:
                process.kill()
                process.wait()
            return
        time.sleep(0.1)


def _leave_dead_locks(registry: Registry, names: list[str], folder: Path) -> dict[str, str]:
    """Have a process take every lock and kill it with SIGKILL; each lock's dead owner."""
    output = folder / "holder"
    holder = _python(
        HOLDER, registry.tracking_uri, str(registry.default_artifact_root), *names, output=output
    )
    while "held" not in output.with_suffix(".out").read_text():
        assert holder.poll() is None, output.with_suffix(".err").read_text()
        time.sleep(0.1)
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=30) == -signal.SIGKILL
    dead = {name: lock.read(registry, name) for name in names}
    assert all(held is not None and held.owner_is_dead for held in dead.values())
    return {name: held.owner for name, held in dead.items() if held is not None}


def test_appliers_racing_over_a_dead_owners_lock_hold_it_one_at_a_time(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
    names = [f"staging.churn{number:02d}" for number in range(ROUNDS)]
    dead_owners = _leave_dead_locks(registry, names, tmp_path)

    outputs = [tmp_path / f"applier-{me}" for me in range(APPLIERS)]
    appliers = [
        _python(
            APPLIER,
            registry.tracking_uri,
            str(tmp_path),
            str(me),
            str(APPLIERS),
            *names,
            output=output,
        )
        for me, output in enumerate(outputs)
    ]
    _wait_all(appliers, timeout=240)

    stderrs = [output.with_suffix(".err").read_text() for output in outputs]
    failures = {
        output.name: (applier.returncode, stderr)
        for applier, output, stderr in zip(appliers, outputs, stderrs, strict=True)
        if applier.returncode != 0 or "Traceback" in stderr
    }
    # One that crashed shows its traceback; those it stopped show -9.
    assert not failures, "\n".join(
        f"{name}: exit {code}\n{err}" for name, (code, err) in failures.items()
    )
    holds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for output in outputs:
        for line in output.with_suffix(".out").read_text().splitlines():
            record = json.loads(line)
            holds[record["name"]].append(record)
    for name, records in holds.items():
        assert sorted(r["applier"] for r in records) == [str(me) for me in range(APPLIERS)], name
        assert all(r["alone"] and r["owned"] for r in records), records
        spans = sorted((r["entered"], r["left"]) for r in records)
        assert all(left <= entered for (_, left), (entered, _) in pairwise(spans)), spans
        takeovers = [note for r in records for note in r["notes"] if "which died" in note]
        assert takeovers == [f"{name}: released the lock of {dead_owners[name]}, which died"], (
            records
        )
    assert registry.names(lock.LOCK_PREFIX) == []  # every lock released, no guard left behind
