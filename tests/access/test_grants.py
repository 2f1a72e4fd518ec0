"""Registry permissions, proven on a real `mlflow server --app-name basic-auth` on loopback.

The story runs through the server with each actor's own MLflow user: the data scientist trains
dev and proposes; each environment's CI user applies its environment; `promote access --apply`
grants what the plan says. Then the data scientist tries every write on `prod.*`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.mlflow_server import ADMIN, MlflowAuthServer
from support.moto import moto_environment
from support.processes import Environ
from support.world import MODEL, World
from typer.testing import CliRunner

from promote.cli import app
from promote.manifests.loader import load_repository
from promote.registry.client import Registry
from promote.registry.entities import CHAMPION, TAG_ARTIFACT_DIGEST, TAG_MANAGED
from promote.scaffold.quickstart import create_sandbox
from promote.verify import verify

BUCKET = "mlflow-artifacts"
SCIENTIST = "alice"
PROD = f"prod.{MODEL}"


@dataclass
class ServerStory:
    world: World
    server: MlflowAuthServer

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.server.url, registry_uri=self.server.url)

    def grant(self) -> Any:
        """`promote access --apply`, as the server's admin."""
        with self.server.as_user(ADMIN):
            arguments = ["--repo", str(self.world.repo), "--registry", self.server.url, "access"]
            return CliRunner().invoke(
                app, [*arguments, "--apply", "--data-scientist", SCIENTIST, "--json"]
            )


@pytest.fixture(scope="module")
def story(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerStory]:
    import boto3

    base = tmp_path_factory.mktemp("registry")
    with Environ(moto_environment(moto_server)):
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        server = MlflowAuthServer(base / "server", f"s3://{BUCKET}/default")
        try:
            yield _run_story(server, base)
        finally:
            server.stop()


def _run_story(server: MlflowAuthServer, base: Path) -> ServerStory:
    for user in (SCIENTIST, "promote-ci-dev", "promote-ci-staging", "promote-ci-prod"):
        server.create_user(user)
    world = World(create_sandbox(base / "sandbox"))
    world.use_s3_artifacts(BUCKET)
    world.registry = Registry.for_repository(world.repo, server.url)
    story = ServerStory(world, server)
    with server.as_user(SCIENTIST):
        world.train_dev()
        world.propose_and_merge("staging")
    with server.as_user("promote-ci-staging"):
        assert world.pipeline().apply("staging").ok
    with server.as_user(SCIENTIST):
        world.propose_and_merge("prod")
    with server.as_user("promote-ci-prod"):
        result = world.pipeline().apply("prod")
        assert result.ok, result.outcomes
    granted = story.grant()
    assert granted.exit_code == 0, granted.output
    return story


def _attempts(client: Any, version: str, source: str) -> dict[str, Callable[[], object]]:
    """Every write a data scientist could try on the prod model, by name."""
    return {
        "set champion": lambda: client.set_registered_model_alias(PROD, CHAMPION, version),
        "delete champion": lambda: client.delete_registered_model_alias(PROD, CHAMPION),
        "set model tag": lambda: client.set_registered_model_tag(PROD, "promote.champion", "9"),
        "delete model tag": lambda: client.delete_registered_model_tag(PROD, TAG_MANAGED),
        "set version tag": lambda: client.set_model_version_tag(
            PROD, version, TAG_ARTIFACT_DIGEST, "0"
        ),
        "delete version tag": lambda: client.delete_model_version_tag(
            PROD, version, TAG_ARTIFACT_DIGEST
        ),
        "create version": lambda: client.create_model_version(PROD, source, await_creation_for=0),
        "delete version": lambda: client.delete_model_version(PROD, version),
        "rename model": lambda: client.rename_registered_model(PROD, "prod.renamed"),
        "delete model": lambda: client.delete_registered_model(PROD),
    }


def test_data_scientist_cannot_write_anything_on_prod_models(story: ServerStory) -> None:
    from mlflow.exceptions import MlflowException

    client = story.client()
    outcomes = {}
    with story.server.as_user(SCIENTIST):
        before = story.world.registry.model(PROD)
        assert before is not None and before.champion is not None
        champion = before.champion
        for name, attempt in _attempts(client, str(champion.version), champion.source).items():
            try:
                attempt()
                outcomes[name] = "allowed"
            except MlflowException as exc:
                outcomes[name] = exc.error_code
        after = story.world.registry.model(PROD)
    assert outcomes == dict.fromkeys(outcomes, "PERMISSION_DENIED")
    assert len(outcomes) == 10
    assert after == before


def test_data_scientist_reads_prod_and_keeps_working_in_dev(story: ServerStory) -> None:
    client = story.client()
    with story.server.as_user(SCIENTIST):
        assert client.get_registered_model(PROD).aliases[CHAMPION]
        client.set_registered_model_tag(f"dev.{MODEL}", "note", "still mine")
        assert client.get_registered_model(f"dev.{MODEL}").tags["note"] == "still mine"


def test_ci_user_of_staging_cannot_touch_prod(story: ServerStory) -> None:
    from mlflow.exceptions import MlflowException

    with story.server.as_user("promote-ci-staging"), pytest.raises(MlflowException) as refused:
        story.client().set_registered_model_alias(PROD, CHAMPION, "1")
    assert refused.value.error_code == "PERMISSION_DENIED"


def test_prod_ci_user_ran_the_full_prod_apply_through_the_server(story: ServerStory) -> None:
    world = story.world
    with story.server.as_user("promote-ci-prod"):
        prod = world.registry.model(PROD)
        report = verify(load_repository(world.repo), world.registry, "prod", MODEL, None)
    assert prod is not None and prod.champion is not None
    assert prod.champion.source.startswith(f"s3://{BUCKET}/prod/")
    assert [event["action"] for event in prod.events()] == ["promote"]
    assert report.ok, report.to_json()


def test_grants_follow_the_plan_and_reapply_cleanly(story: ServerStory) -> None:
    granted = story.grant()  # second run: every grant exists already and is replaced
    assert granted.exit_code == 0, granted.output

    grants = {
        (g["user"], g["label"]): g["permission"]
        for g in json.loads(granted.stdout)["mlflow"]["grants"]
    }
    assert grants[(SCIENTIST, PROD)] == "READ"
    assert grants[(SCIENTIST, f"staging.{MODEL}")] == "READ"
    assert grants[(SCIENTIST, f"dev.{MODEL}")] == "EDIT"
    assert grants[("promote-ci-prod", PROD)] == "MANAGE"
    assert grants[("promote-ci-prod", f"staging.{MODEL}")] == "READ"
    assert grants[("promote-ci-prod", "promote/prod")] == "MANAGE"
    assert grants[(SCIENTIST, "promote/prod")] == "READ"


def test_a_prod_model_created_by_hand_loses_its_creator_rights_on_the_next_grant(
    story: ServerStory,
) -> None:
    """MLflow lets any user create a new name (and makes them its MANAGE owner); the next
    `promote access --apply` brings every `prod.*` name back to READ for data scientists."""
    from mlflow.exceptions import MlflowException

    client = story.client()
    with story.server.as_user(SCIENTIST):
        client.create_registered_model("prod.shadow")
        client.set_registered_model_tag("prod.shadow", "owner", "alice")
    assert story.grant().exit_code == 0
    with story.server.as_user(SCIENTIST), pytest.raises(MlflowException) as refused:
        client.create_model_version(
            "prod.shadow", f"s3://{BUCKET}/dev/anything", await_creation_for=0
        )
    assert refused.value.error_code == "PERMISSION_DENIED"
