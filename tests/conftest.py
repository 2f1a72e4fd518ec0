"""Shared fixtures: sandbox git repositories, the sqlite registry, a moto S3 server and a Ray
head on loopback.

The helpers they use (World, the story's stages, free ports, servers) live in tests/support/.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Helpers assert too: rewrite their asserts as pytest does the tests' (before importing them).
pytest.register_assert_rewrite("support")

# Tests import these helpers from support.* themselves; conftest only builds fixtures on them.
from support.moto import moto_environment  # noqa: E402
from support.processes import free_port  # noqa: E402
from support.world import StoryTemplates, World  # noqa: E402

from promote.scaffold.quickstart import create_sandbox  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    # Fresh connections for every registry call: tests swap the sqlite file between cases.
    os.environ["MLFLOW_SQLALCHEMYSTORE_POOLCLASS"] = "NullPool"
    # Caches (parsed manifests, cloned code repositories) go to a folder of this run, not ~/.cache.
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="promote-tests-cache-")
    # Signing keys the sandboxes generate stay in this run's folder, never in ~/.config.
    os.environ["PROMOTE_KEY_DIR"] = tempfile.mkdtemp(prefix="promote-tests-keys-")


@pytest.fixture
def world(tmp_path: Path) -> World:
    """A fresh sandbox: example code, manifests and data committed; nothing trained."""
    return World(create_sandbox(tmp_path / "sandbox"))


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

    for name, value in moto_environment(moto_server).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return boto3.client("s3")


@pytest.fixture(scope="session")
def ray_head(moto_server: str) -> Iterator[str]:
    """A local Ray head on loopback (two CPUs), its dashboard's address; stopped by its ids.
    The cluster reaches S3 (the moto server) with credentials of its own, as a real one has a
    role: the jobs are never handed the CI job's."""
    from support.ray_head import RayHead

    head = RayHead(cpus=2, environment=moto_environment(moto_server))
    try:
        yield head.start()
    finally:
        head.stop()


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fake GitHub REST API on loopback; GITHUB_* variables point promote at it."""
    from support.github_fake import FakeGitHub, serve

    fake = FakeGitHub()
    server, thread = serve(fake)
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_test-token-never-printed")
    monkeypatch.setenv("GITHUB_REPOSITORY", fake.full_name)
    monkeypatch.setenv("PROMOTE_GITHUB_TIMEOUT", "0.5")
    monkeypatch.setenv("PROMOTE_GITHUB_RETRY_BUDGET", "2")
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


WEBHOOK_SECRET = "whsec-for-tests-0123456789"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A webhook receiver on a free loopback port, not yet listening; the secret promote signs
    with is in PROMOTE_TEST_WEBHOOK_SECRET. Stopped (and its delayed start cancelled) after."""
    from support.webhook import Receiver

    monkeypatch.setenv("PROMOTE_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
    found = Receiver(WEBHOOK_SECRET.encode(), free_port())
    yield found
    found.stop()
