"""The default engine: the training runs as a subprocess of this process, on this machine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from promote.build.compute import LogStream, TrainingJob, interpreter, runnable_script
from promote.errors import InputError
from promote.manifests.repository import environment_file
from promote.manifests.schema import EnvironmentConfig


def check_interpreter(config: EnvironmentConfig) -> None:
    """Refuse, before anything is written, to train with an interpreter this machine lacks."""
    if config.python is not None and shutil.which(config.python) is None:
        raise InputError(
            environment_file(config.name),
            "python",
            f"{config.python!r} is not an executable on this machine",
        )


class LocalEngine:
    def __init__(self, config: EnvironmentConfig) -> None:
        self.config = config

    def check(self) -> None:
        check_interpreter(self.config)

    def run(self, job: TrainingJob, scratch: Path) -> Path:
        output = Path(job.context.output_dir)
        script, search_path = runnable_script(job.entrypoint, scratch)
        # Arguments go as a list and parameters as JSON: nothing from a manifest reaches a shell.
        # Output is streamed (a long rebuild is not silent), one prefixed line at a time, merged
        # in the order the training wrote it.
        stream = LogStream(job)
        with subprocess.Popen(
            [interpreter(job), str(script)],
            cwd=str(job.checkout),
            env={**job.environment, **job.context.to_env(), **search_path},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as process:
            assert process.stdout is not None
            for raw in process.stdout:
                stream.line(raw)
            returncode = process.wait()
        if returncode != 0 or not job.context.lineage_file.is_file():
            raise stream.failure(f"with exit code {returncode}")
        return output
