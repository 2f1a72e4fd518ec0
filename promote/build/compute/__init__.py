"""Where a rebuild's training runs: the engine an environment's `compute:` names.

An engine runs one training of an exported commit, streams its log lines, and hands back the
folder the training wrote (the model and its lineage record). Nothing else: the runner checks
that folder (`build.runner._checked_output`), signs and logs it, whichever engine produced it.
`local` runs a subprocess on this machine (the default); `ray` submits a Ray job;
`runner.engine_for` chooses.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from promote.build import notebook
from promote.errors import ExternalError
from promote.runtime.redact import redact
from promote.training import TrainingContext

OUTPUT_TAIL_LINES = 15
# The first line a cluster job prints (`compute.remote`): what comes before it is the cluster's.
TRAINING_STARTS = "promote: the training starts"


@dataclass(frozen=True)
class TrainingJob:
    """One training to run: the code, the script in it, and what the training is told."""

    label: str  # `env.model`, the prefix of every log line
    description: str  # "training env.model (entrypoint)", how errors name it
    checkout: Path  # the exported commit (or, for dev, the working tree)
    entrypoint: Path  # the script or notebook, inside `checkout`
    python: str | None  # the interpreter the environment names, on the machine that trains
    environment: dict[str, str]  # allowlisted variables (`runner.training_environment`)
    context: TrainingContext
    on_output: Callable[[str], None] | None


class Engine(Protocol):
    """What promote needs from a place that trains: small enough for a Kubernetes Job or a
    SageMaker training job to be another one (ARCHITECTURE.md says how)."""

    def check(self) -> None:
        """Refuse, before anything is written, when trainings cannot run there."""

    def run(self, job: TrainingJob, scratch: Path) -> Path:
        """Run `job` to its end, streaming its lines to `job.on_output`; the folder on this
        machine, under `scratch`, that holds what it wrote. An `ExternalError` naming the
        last line of output when the training failed."""


class LogStream:
    """A training's output as it arrives: each line redacted and prefixed, the tail kept for
    the error a failure raises. Every engine reports through one."""

    def __init__(self, job: TrainingJob) -> None:
        self.job = job
        self.tail: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)

    def line(self, raw: str) -> None:
        # Training output can echo credentials (a URI, a failed client's request).
        line = redact(raw.rstrip("\n"))
        self.tail.append(line)
        if self.job.on_output is not None:
            self.job.on_output(f"{self.job.label} | {line}")

    def failure(self, how: str) -> ExternalError:
        """The error of a training that ended `how` ("with exit code 3"), last line first: for
        a Python training, the exception and its message."""
        lines = [line for line in self.tail if line.strip()]
        last = lines[-1].strip() if lines else "no output"
        detail = "\n  ".join(lines)
        return ExternalError(
            f"{self.job.description} failed {how}: {last}" + (f"\n  {detail}" if detail else "")
        )


def runnable_script(entrypoint: Path, scratch: Path) -> tuple[Path, dict[str, str]]:
    """The file Python runs for `entrypoint`, and the variables it needs: a notebook runs as
    its code cells, written under `scratch`, importing its neighbours as a script would."""
    if not notebook.is_notebook(entrypoint.name):
        return entrypoint, {}
    script = scratch / "notebook.py"
    script.write_text(notebook.as_script(entrypoint.read_text(encoding="utf-8")))
    return script, {"PYTHONPATH": str(entrypoint.parent)}


def interpreter(job: TrainingJob) -> str:
    return job.python or sys.executable
