"""The default engine: the training runs as a subprocess of this process, on this machine."""

from __future__ import annotations

import subprocess
from pathlib import Path

from promote.build.compute import LogStream, TrainingJob, interpreter, runnable_script
from promote.build.runner import check_interpreter
from promote.manifests.schema import EnvironmentConfig


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
