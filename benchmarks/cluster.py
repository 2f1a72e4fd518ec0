"""Pending rebuilds on a Ray cluster: `promote apply --jobs 1` against `--jobs 4`.

The quickstart's sandbox with N copies of the example model (each on its own copy of the
data): every model is trained in dev and rebuilt in staging here, then proposed to prod, whose
`compute:` is a real local Ray head on loopback. The prod apply runs as a user runs it, in a
subprocess, once with `--jobs 1` (the baseline: one rebuild after the other) and once, from
the same saved state, with `--jobs 4`; both wall times are printed side by side.

    python benchmarks/cluster.py [--models 8] [--cpus 4] [--quick]
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

# The test suite's Ray head: every port free, on loopback, stopped by its processes' ids.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.ray_head import RayHead

from promote.apply import Pipeline
from promote.manifests.loader import load_repository
from promote.propose import propose
from promote.registry.client import Registry
from promote.scaffold.quickstart import EXAMPLE_MODEL, create_sandbox, merge
from promote.train import train

PARALLEL_JOBS = 4


def models_of(count: int) -> list[str]:
    return [f"{EXAMPLE_MODEL}_{index}" for index in range(count)]


def pending_in_prod(root: Path, count: int, address: str) -> Path:
    """The sandbox, with `count` prod rebuilds pending on the Ray head at `address`."""
    sandbox = create_sandbox(root)
    repo = sandbox.repo
    template = yaml.safe_load((repo / f"environments/dev/{EXAMPLE_MODEL}.yaml").read_text())
    for model in models_of(count):
        manifest = {**template, "model": model, "data": {"path": model}}
        (repo / f"environments/dev/{model}.yaml").write_text(yaml.safe_dump(manifest))
        for environment in ("dev", "staging", "prod"):
            data = sandbox.data(environment)
            shutil.copytree(data, data.parent / model)
    environment_file = repo / "environments/prod/environment.yaml"
    prod = yaml.safe_load(environment_file.read_text())
    prod["compute"] = {"engine": "ray", "address": address, "output_root": str(root / "handoff")}
    environment_file.write_text(yaml.safe_dump(prod, sort_keys=False))
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "Models on Ray"], check=True)
    registry = Registry.for_repository(repo)
    for model in models_of(count):
        assert train(load_repository(repo), registry, model, "dev", {}).ok
    for target in ("staging", "prod"):
        for model in models_of(count):
            proposal = propose(load_repository(repo), registry, model, target)
            assert proposal.branch is not None
            merge(repo, proposal.branch, f"Merge {proposal.branch}")
        if target == "staging":
            pipeline = Pipeline(load_repository(repo), registry, jobs=PARALLEL_JOBS)
            assert pipeline.apply("staging").ok
    return repo


def apply_prod(repo: Path, jobs: int) -> float:
    completed, wall = timed(
        lambda: subprocess.run(
            [sys.executable, "-m", "promote", "apply", "--env", "prod", "--jobs", str(jobs)],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
            env=as_installed(),
        )
    )
    if completed.returncode != 0:
        raise SystemExit(f"apply --jobs {jobs} failed:\n{completed.stderr[-3000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=8, help="pending rebuilds (default 8)")
    parser.add_argument("--cpus", type=int, default=4, help="the Ray head's CPUs (default 4)")
    parser.add_argument("--quick", action="store_true", help="4 pending rebuilds")
    options = parser.parse_args()
    if options.quick:
        options.models = PARALLEL_JOBS
    head = RayHead(cpus=options.cpus)
    root = Path(tempfile.mkdtemp(prefix="promote-cluster-"))
    try:
        address = head.start()
        live = root / "sandbox"
        repo = pending_in_prod(live, options.models, address)
        saved = root / "saved"
        shutil.copytree(live, saved, symlinks=True)
        sequential = apply_prod(repo, 1)
        # The same pending state again, at the same path (the registry holds absolute paths).
        shutil.rmtree(live)
        shutil.copytree(saved, live, symlinks=True)
        parallel = apply_prod(repo, PARALLEL_JOBS)
    finally:
        head.stop()
        shutil.rmtree(root, ignore_errors=True)
    table = Table(
        f"{options.models} pending prod rebuilds as Ray jobs "
        f"(local head, {options.cpus} CPUs; promote apply in a subprocess)"
    )
    table.add(
        f"apply --jobs {PARALLEL_JOBS}",
        seconds(parallel),
        baseline=f"{seconds(sequential)} (--jobs 1)",
        ratio=f"{parallel / sequential:.2f}x",
    )
    table.print()


if __name__ == "__main__":
    main()
