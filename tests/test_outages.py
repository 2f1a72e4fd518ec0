"""Outages mid-apply: a real `mlflow server` stopped by the test, an S3 (moto) server stopped.

Each ends in exit 1 with a clear message after bounded retries, with prod as it was; once the
service is back, the next apply converges.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.mlflow_server import PlainMlflowServer
from support.processes import free_port
from support.world import MODEL, World

from promote.registry.client import Registry
from promote.registry.entities import CHAMPION
from promote.runtime.faults import FAILPOINT_VARIABLE


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[PlainMlflowServer]:
    server = PlainMlflowServer(tmp_path / "server")
    server.folder.mkdir()
    server.start()
    yield server
    server.stop()


def _apply_paused_at(
    world: World, point: str, tmp_path: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[str], Path]:
    release = tmp_path / "release"
    process = subprocess.Popen(
        [sys.executable, "-m", "promote", "apply", "--env", "staging"],
        cwd=world.repo,
        env={**os.environ, **env, FAILPOINT_VARIABLE: f"{point}:wait={release}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not Path(f"{release}.reached").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "apply never reached the failpoint"
        time.sleep(0.1)
    return process, release


def test_registry_server_stopped_mid_apply(
    world: World, mlflow_server: PlainMlflowServer, tmp_path: Path
) -> None:
    env = {"MLFLOW_TRACKING_URI": mlflow_server.url}
    assert world.cli("train", MODEL, env=env).returncode == 0
    registry = Registry(mlflow_server.url, tmp_path)
    from promote.manifests.loader import load_repository
    from promote.propose import propose
    from promote.scaffold.quickstart import merge

    proposal = propose(load_repository(world.repo), registry, MODEL, "staging")
    assert proposal.branch is not None
    merge(world.repo, proposal.branch, "Merge")

    process, release = _apply_paused_at(world, "after-training", tmp_path, env)
    mlflow_server.stop()
    release.touch()
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 1, stdout + stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: registry {mlflow_server.url} unreachable, gave up after retries"
    )

    mlflow_server.start()
    assert registry.model(f"staging.{MODEL}") is None  # nothing half-made is live
    status = world.cli("status", "--env", "staging", env=env)
    assert "pending" in status.stdout and "reuses run" in status.stdout
    rerun = world.cli("apply", "--env", "staging", env=env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    staging = registry.model(f"staging.{MODEL}")
    assert staging is not None and [v.version for v in staging.versions] == [1]
    assert staging.aliases == {CHAMPION: 1}


def test_s3_stopped_mid_apply(
    trained: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "3",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s3: Any = boto3.client("s3")
    s3.create_bucket(Bucket="staging-data")
    for name in ("train.csv", "test.csv"):
        s3.put_object(
            Bucket="staging-data",
            Key=f"{MODEL}/{name}",
            Body=(trained.sandbox.data("staging") / name).read_bytes(),
        )
    trained.edit_yaml(
        "environments/staging/environment.yaml",
        lambda body: body.update(data_root="s3://staging-data"),
    )
    trained.propose_and_merge("staging")
    before = trained.snapshot()

    process, release = _apply_paused_at(trained, "before-training", tmp_path, env)
    server.stop()
    release.touch()
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 1, stdout + stderr
    # A training lists its data location before reading it: that is the first call to fail.
    assert "cannot list s3://staging-data/churn/" in stderr
    # The failed training logged no run; no version, alias or tag changed.
    assert trained.snapshot() == before

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        rerun = trained.cli("apply", "--env", "staging")
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    finally:
        server.stop()
    staging = trained.registry.model(f"staging.{MODEL}")
    assert staging is not None and staging.aliases == {CHAMPION: 1}
