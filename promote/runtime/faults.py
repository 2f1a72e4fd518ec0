"""Failpoints: named places in a promotion where a test (or a drill) can stop the process.

`PROMOTE_FAILPOINT=after-register` kills the process there, as a crash or `kill -9` would;
`PROMOTE_FAILPOINT=after-training:wait=/tmp/go` pauses there until the file `/tmp/go` exists
(it first creates `/tmp/go.reached`), so a test can stop a server at exactly that moment.
Unset, a failpoint costs one dictionary look-up.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

FAILPOINT_VARIABLE = "PROMOTE_FAILPOINT"
CRASH_EXIT_CODE = 137  # what a shell reports for a process killed by SIGKILL
WAIT_LIMIT_SECONDS = 120
POINTS = (
    "before-training",
    "after-training",
    "after-register",
    "after-verdict",
    "after-intent",
    "after-previous",
    "after-champion",
)


def failpoint(name: str) -> None:
    setting = os.environ.get(FAILPOINT_VARIABLE)
    if not setting:
        return
    point, _, action = setting.partition(":")
    if point != name:
        return
    if action.startswith("wait="):
        release = Path(action.removeprefix("wait="))
        Path(f"{release}.reached").touch()
        deadline = time.monotonic() + WAIT_LIMIT_SECONDS
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return
    os._exit(CRASH_EXIT_CODE)
