"""What the serving benchmarks share: a sandbox whose staging champion was built, signed and
verified as a user's is, rows for it, and the wall time and peak memory of one command.

The sandbox is the tests' own story (tests/support/world.py): the quickstart's churn model
trained in dev and promoted to staging by `promote apply`, so `promote predict` and `promote
serve` verify it exactly as they would in production. The baselines load the same champion
with MLflow alone, from the same registry (`models:/staging.churn@champion`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from support.serving import FEATURES
from support.world import MODEL, World

from promote.scaffold.example.churn.data import churn_frame
from promote.scaffold.quickstart import create_sandbox

ENVIRONMENT = "staging"
CHAMPION_URI = f"models:/{ENVIRONMENT}.{MODEL}@champion"


def promoted_sandbox(work: Path) -> World:
    """A sandbox under `work` whose staging champion verifies."""
    world = World(create_sandbox(work / "sandbox"))
    world.train_dev()
    assert world.promote(ENVIRONMENT).ok, "\n".join(world.lines)
    return world


def mlflow_environ(world: World) -> dict[str, str]:
    """The environment a plain MLflow process needs: the sandbox's registry, and this Python's
    scripts on PATH as in an activated virtualenv (`mlflow models serve` runs `uvicorn`)."""
    scripts = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": world.registry.tracking_uri,
        "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")]),
    }


def feature_rows(rows: int, seed: int = 5) -> pd.DataFrame:
    """`rows` rows of the churn model's features, drawn as its training data is."""
    return churn_frame(rows, seed, 0.0)[FEATURES]


@dataclass(frozen=True)
class Finished:
    seconds: float
    peak_rss: int  # bytes: the largest resident set the process (or a child) reached
    stdout: str


def run_measured(command: list[str | Path], cwd: Path, environ: dict[str, str]) -> Finished:
    """Run `command` to its end: its wall time, its own peak memory (`wait4` reports the
    child's, not the maximum of every child this process ever had) and its output. Fails with
    its stderr."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as errors_file:
        process = subprocess.Popen(
            command, cwd=cwd, env=environ, stdout=subprocess.PIPE, stderr=errors_file
        )
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        errors_file.seek(0)
        errors = errors_file.read()
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed:\n{errors.decode(errors='replace')}")
    return Finished(wall, usage.ru_maxrss * 1024, output.decode())


def mib(size: float) -> str:
    return f"{size / (1 << 20):,.0f} MiB"
