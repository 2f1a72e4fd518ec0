"""The entrypoint of a Ray job, run on the cluster: `python -m promote.build.compute.remote`.

The job's working directory is the exported commit. This runs the training there with the same
allowlisted environment a local training gets (whatever the cluster's processes hold), its
output written to a folder of this node, then packs that output and leaves it where promote
fetches it (`handoff.OUTPUT_VARIABLE`). Its exit code is the training's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from promote.build.compute import TRAINING_STARTS, handoff, runnable_script
from promote.build.runner import training_environment
from promote.training import TrainingContext


def main() -> int:
    context = TrainingContext.from_env()
    destination = os.environ[handoff.OUTPUT_VARIABLE]
    checkout = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="promote-job-") as scratch:
        output = Path(scratch) / "output"
        output.mkdir()
        # The runner named paths inside the commit relative to it: here they are under cwd.
        here = replace(
            context,
            output_dir=str(output),
            requirements=str(checkout / context.requirements) if context.requirements else None,
        )
        script, search_path = runnable_script(checkout / context.entrypoint, Path(scratch))
        print(TRAINING_STARTS, flush=True)
        returncode = subprocess.call(
            [sys.executable, str(script)],
            cwd=str(checkout),
            env={**training_environment(os.environ), **here.to_env(), **search_path},
        )
        if returncode == 0 and here.lineage_file.is_file():
            archive = Path(scratch) / f"output{handoff.ARCHIVE_SUFFIX}"
            handoff.pack(output, archive)
            handoff.put(archive, destination)
        return returncode


if __name__ == "__main__":
    sys.exit(main())
