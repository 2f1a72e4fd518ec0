"""`promote apply` of one model: what it costs beyond the training itself.

The quickstart's sandbox (example churn model, dev/staging/prod, local data and sqlite): dev
is trained, staging's manifest proposed and merged, then `promote apply --env staging` runs as
a user runs it, in a subprocess. Staging's `python` points at a wrapper that records the wall
time of the training subprocess (interpreter start, imports, fit, logging), so:

    overhead = apply wall time - training subprocess wall time

covers the CLI start, manifests, registry reads and writes, the export of the pinned commit,
the lineage match, the artifact digest recomputed from storage, gates and the alias move.

    python benchmarks/apply_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from figures import Table, as_installed, seconds, timed

from promote.build import git
from promote.manifests.loader import load_repository
from promote.propose import propose
from promote.registry.client import Registry
from promote.scaffold.quickstart import EXAMPLE_MODEL, create_sandbox, merge
from promote.train import train

TARGET_SECONDS = 2.0
ENVIRONMENT = "staging"


def timing_interpreter(folder: Path, log: Path) -> Path:
    """A `python` for training runs that appends its own start and end times to `log`."""
    wrapper = folder / "timed-python"
    wrapper.write_text(
        "#!/bin/sh\n"
        "start=$(date +%s.%N)\n"
        f'"{sys.executable}" "$@"\n'
        "status=$?\n"
        f'echo "$start $(date +%s.%N)" >> "{log}"\n'
        'exit "$status"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the same: one model is quick")
    parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="promote-bench-apply-"))
    try:
        repo = create_sandbox(work / "sandbox").repo
        log = work / "training-times"
        settings = repo / "environments" / ENVIRONMENT / "environment.yaml"
        body = yaml.safe_load(settings.read_text())
        body["python"] = str(timing_interpreter(work, log))
        settings.write_text(yaml.safe_dump(body, sort_keys=False))
        identity = git.identity_env(repo)
        git.run_git(repo, "commit", "--quiet", "-am", "Time training runs", env=identity)

        registry = Registry.for_repository(repo)
        trained = train(load_repository(repo), registry, EXAMPLE_MODEL, "dev", {})
        assert trained.ok, trained.detail
        proposal = propose(load_repository(repo), registry, EXAMPLE_MODEL, ENVIRONMENT)
        assert proposal.branch is not None
        merge(repo, proposal.branch, f"Merge {proposal.branch}")

        command = [sys.executable, "-m", "promote", "--repo", str(repo), "apply"]
        command += ["--env", ENVIRONMENT]
        completed, wall = timed(
            lambda: subprocess.run(
                command, capture_output=True, text=True, check=False, env=as_installed()
            )
        )
        assert completed.returncode == 0, completed.stderr
        runs = [tuple(map(float, line.split())) for line in log.read_text().splitlines()]
        assert len(runs) == 1, runs
        training = runs[0][1] - runs[0][0]
        champion = registry.model(f"{ENVIRONMENT}.{EXAMPLE_MODEL}")
        assert champion is not None and champion.champion is not None
        run = registry.client.get_run(champion.champion.run_id).info
        inside = (run.end_time - run.start_time) / 1000
        floor = mlflow_floor(registry.tracking_uri)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    overhead = wall - training
    table = Table(f"promote apply --env {ENVIRONMENT}, one model (the quickstart's churn)")
    table.add("apply, wall time (CLI subprocess)", seconds(wall))
    table.add("  training subprocess (interpreter to exit)", seconds(training))
    table.add("  of which the MLflow run (start to end)", seconds(inside))
    table.add(
        "apply overhead beyond the training",
        seconds(overhead),
        f"{seconds(training)} training",
        f"{overhead / training:.2f}x of it",
        f"<= {TARGET_SECONDS:.0f} s",
        overhead <= TARGET_SECONDS,
    )
    table.add(
        "  MLflow alone: import, client, store (fresh process)",
        seconds(floor),
        "the floor of any apply that uses MLflow's client",
    )
    table.print()


def mlflow_floor(tracking_uri: str) -> float:
    """What a fresh process pays before its first registry call through MLflow's client, with
    the collector paused as promote pauses it: the part of apply's overhead that is MLflow's."""
    script = (
        "import gc, sys, time\n"
        "start = time.perf_counter()\n"
        "gc.disable()\n"
        "from mlflow import MlflowClient\n"
        "MlflowClient(tracking_uri=sys.argv[1]).search_registered_models(max_results=1)\n"
        "print(time.perf_counter() - start)\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script, tracking_uri],
            capture_output=True,
            text=True,
            check=True,
            env=as_installed(),
        ).stdout
        for _ in range(3)
    ]
    return min(float(out) for out in runs)


if __name__ == "__main__":
    main()
