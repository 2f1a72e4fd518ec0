"""Shared fixtures: sandbox git repositories, the sqlite registry, a moto S3 server on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from promote.apply import Pipeline
from promote.build import git
from promote.manifests.loader import load_repository
from promote.propose import propose
from promote.registry.client import Registry
from promote.scaffold.quickstart import Sandbox, create_sandbox, merge
from promote.train import train

MODEL = "churn"
# Fresh connections for every registry call: tests swap the sqlite file between cases.
os.environ["MLFLOW_SQLALCHEMYSTORE_POOLCLASS"] = "NullPool"
# Caches (parsed manifests, cloned code repositories) go to a folder of this run, not ~/.cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="promote-tests-cache-")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class World:
    """A sandbox repository with its registry, and the steps of the story as methods."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.repo = sandbox.repo
        self.registry = Registry.for_repository(self.repo)
        self.lines: list[str] = []

    def pipeline(self) -> Pipeline:
        return Pipeline(load_repository(self.repo), self.registry, report=self.lines.append)

    def train_dev(self, **overrides: Any) -> int:
        outcome = train(
            load_repository(self.repo), self.registry, MODEL, "dev", overrides, self.lines.append
        )
        assert outcome.ok, outcome.detail
        assert outcome.version is not None
        return outcome.version

    def propose_and_merge(self, target: str) -> None:
        proposal = propose(load_repository(self.repo), self.registry, MODEL, target)
        assert proposal.branch is not None
        merge(self.repo, proposal.branch, f"Merge {proposal.branch}")

    def promote(self, target: str) -> Any:
        self.propose_and_merge(target)
        return self.pipeline().apply(target)

    def edit_yaml(self, relative: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Change a YAML file in the repository and commit it on main, as a merged PR would."""
        path = self.repo / relative
        body = yaml.safe_load(path.read_text()) if path.exists() else {}
        change(body)
        path.write_text(yaml.safe_dump(body, sort_keys=False))
        self.commit(f"Edit {relative}")

    def commit(self, message: str) -> str:
        return git.commit_all(self.repo, message)

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The real `promote` command in a subprocess, run from the repository."""
        return subprocess.run(
            [sys.executable, "-m", "promote", *args],
            cwd=self.repo,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **(env or {})},
        )

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every registry table that a promotion could touch, for 'nothing was written' checks."""
        path = self.repo / ".promote" / "registry.db"
        if not path.exists():
            return {}
        with sqlite3.connect(path) as db:
            return {
                table: sorted(db.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
                for table in (
                    "registered_models",
                    "registered_model_tags",
                    "registered_model_aliases",
                    "model_versions",
                    "model_version_tags",
                    "runs",
                )
            }


@pytest.fixture
def world(tmp_path: Path) -> World:
    """A fresh sandbox: example code, manifests and data committed; nothing trained."""
    return World(create_sandbox(tmp_path / "sandbox"))


class StoryTemplates:
    """The story's stages, built once per session and restored at one fixed path.

    Registry rows and lineage hold absolute paths, so each stage is saved aside and copied
    back to the very folder it was built in, where every recorded path is valid again.
    """

    def __init__(self, base: Path) -> None:
        self.live = base / "sandbox"
        self.saved = base / "saved"
        world = World(create_sandbox(self.live))
        world.train_dev()
        self._save("trained")
        assert world.promote("staging").ok
        assert world.promote("prod").ok
        self._save("promoted")

    def _save(self, stage: str) -> None:
        shutil.copytree(self.live, self.saved / stage, symlinks=True)

    def restore(self, stage: str) -> World:
        shutil.rmtree(self.live)
        shutil.copytree(self.saved / stage, self.live, symlinks=True)
        return World(Sandbox(self.live))


@pytest.fixture(scope="session")
def story(tmp_path_factory: pytest.TempPathFactory) -> StoryTemplates:
    return StoryTemplates(tmp_path_factory.mktemp("story"))


@pytest.fixture
def trained(story: StoryTemplates) -> World:
    """Dev trained at HEAD: dev.churn v1 is champion."""
    return story.restore("trained")


@pytest.fixture
def promoted(story: StoryTemplates) -> World:
    """The whole story done: dev trained, staging and prod rebuilt, each v1 champion."""
    return story.restore("promoted")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 S3 client on the moto server; AWS_* variables reach training subprocesses too."""
    import boto3

    for name, value in {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return boto3.client("s3")


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fake GitHub REST API on loopback; GITHUB_* variables point promote at it."""
    from github_fake import FakeGitHub, serve

    fake = FakeGitHub()
    server, thread = serve(fake)
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_test-token-never-printed")
    monkeypatch.setenv("GITHUB_REPOSITORY", fake.full_name)
    monkeypatch.setenv("PROMOTE_GITHUB_TIMEOUT", "0.5")
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class Environ:
    """Set (or, given None, unset) environment variables for a block, then restore them.

    For module-scoped fixtures, where `monkeypatch` is not available; training subprocesses
    inherit what is set here.
    """

    def __init__(self, values: dict[str, str | None]) -> None:
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        self.saved = {name: os.environ.get(name) for name in self.values}
        self._set(self.values)

    def __exit__(self, *exc: object) -> None:
        self._set(self.saved)

    @staticmethod
    def _set(values: dict[str, str | None]) -> None:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
