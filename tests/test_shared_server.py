"""The whole story on a shared tracking server, as teams run it, reached over HTTP only.

One real PostgreSQL server (the machine's package) holds MLflow's backend store; `mlflow server
--app-name basic-auth` runs on it, with artifacts on S3 (the moto server on loopback). The CI
user trains, proposes and applies to staging and prod through the server; status, verify,
rollback and two appliers racing for the lock run against it. Then the direct read path reads
that same PostgreSQL database, and a read-only role granted SELECT on MLflow's tables serves as
the read replica of `promote status --registry-db` and `promote plan --registry-db`.

The module's tests share one PostgreSQL and one mlflow server: they run on one xdist worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.mlflow_server import MlflowAuthServer
from support.moto import moto_environment
from support.postgres import MLFLOW_READ_TABLES, PostgresServer
from support.processes import Environ
from support.world import MODEL, World

from promote.manifests.loader import load_repository
from promote.registry import lock, sql
from promote.registry.client import Registry
from promote.registry.entities import CHAMPION, PREVIOUS
from promote.scaffold.quickstart import create_sandbox, merge
from promote.verify import verify

pytestmark = pytest.mark.xdist_group("shared-server")

BUCKET = "shared-artifacts"
CI_USER = "promote-ci"
READER = "promote_reader"
DATABASE = "mlflow"
PROD = f"prod.{MODEL}"
STAGING = f"staging.{MODEL}"


@dataclass
class SharedServer:
    world: World
    postgres: PostgresServer
    mlflow: MlflowAuthServer
    reader_password: str  # the read-only role's

    @property
    def replica_uri(self) -> str:
        return self.postgres.uri(DATABASE, READER, self.reader_password)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`promote --registry SERVER ...` as the CI user (the server's credentials are in the
        environment for the whole module)."""
        return self.world.cli("--registry", self.mlflow.url, *args)

    def replica_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.cli(*args, "--registry-db", self.replica_uri)

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.mlflow.url, registry_uri=self.mlflow.url)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared(
    postgres: PostgresServer, moto_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedServer]:
    import boto3

    base = tmp_path_factory.mktemp("shared")
    postgres.create_database(DATABASE)
    with Environ(moto_environment(moto_server)):
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        server = MlflowAuthServer(
            base / "server", f"s3://{BUCKET}/default", backend_store_uri=postgres.uri(DATABASE)
        )
        try:
            server.create_user(CI_USER)
            with server.as_user(CI_USER):
                yield SharedServer(
                    _promoted_through(server, base),
                    postgres,
                    server,
                    postgres.create_reader(DATABASE, READER),
                )
        finally:
            server.stop()


def _promoted_through(server: MlflowAuthServer, base: Path) -> World:
    """dev trained, staging and prod rebuilt, every registry call over HTTP (as the CI user the
    caller acts as)."""
    world = World(create_sandbox(base / "sandbox"))
    world.use_s3_artifacts(BUCKET)
    world.registry = Registry.for_repository(world.repo, server.url)
    world.train_dev()
    for target in ("staging", "prod"):
        result = world.promote(target)
        assert result.ok, result.outcomes
    return world


def _names(shared: SharedServer) -> list[str]:
    return shared.world.registry.names("")


def _status(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {row["registered_model"]: row["status"] for row in json.loads(result.stdout)}


def test_the_story_ran_over_http_on_postgres_and_s3(shared: SharedServer) -> None:
    world = shared.world
    prod = world.registry.model(PROD)
    assert prod is not None and prod.champion is not None
    assert prod.champion.source.startswith(f"s3://{BUCKET}/prod/")
    assert [event["action"] for event in prod.events()] == ["promote"]
    report = verify(load_repository(world.repo), world.registry, "prod", MODEL, None)
    assert report.ok, report.to_json()
    # The rows are PostgreSQL's: the server wrote them there, not to a file of its own.
    with shared.postgres.connect(DATABASE) as connection:
        aliases = connection.execute(
            "SELECT name, alias, version FROM registered_model_aliases ORDER BY name"
        ).fetchall()
    assert (PROD, CHAMPION, 1) in aliases and (STAGING, CHAMPION, 1) in aliases
    status = shared.cli("status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert set(_status(status).values()) == {"in sync"}
    verified = shared.cli("verify", MODEL, "--env", "prod", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_direct_read_of_the_same_database_answers_as_rest_does(shared: SharedServer) -> None:
    names = [*_names(shared), "prod.absent"]
    over_rest = shared.world.registry.models(names)
    assert {PROD, STAGING, f"dev.{MODEL}"} <= set(over_rest)
    assert over_rest == {name: shared.world.registry.model(name) for name in over_rest}
    database = shared.postgres.uri(DATABASE)
    direct = Registry(database, shared.world.registry.default_artifact_root)
    assert isinstance(direct.reader, sql.SqlReader)
    # read_sql has no fallback: an answer here is PostgreSQL's, through promote's own SQL.
    assert sql.read_sql(database, names) == over_rest
    assert direct.models(names) == over_rest
    assert sql.read_sql(shared.replica_uri, names) == over_rest
    assert sql.read_names_sql(database, "prod.") == [PROD]
    assert "client" not in vars(direct), "the direct read loaded MLflow's client"


def test_the_replica_user_reads_mlflows_tables_and_can_write_nothing(
    shared: SharedServer,
) -> None:
    import psycopg

    with shared.postgres.connect(DATABASE, READER, shared.reader_password) as connection:
        for table in MLFLOW_READ_TABLES:
            connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        refused = []
        for statement in (
            "UPDATE registered_model_aliases SET version = 9",
            f"DELETE FROM registered_model_tags WHERE name = '{PROD}'",
            "INSERT INTO registered_models (name, workspace) VALUES ('prod.forged', 'default')",
            "CREATE TABLE planted (id int)",
            "SELECT COUNT(*) FROM params",  # not one of the tables promote reads
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
            refused.append(statement)
    assert len(refused) == 5
    prod = shared.world.registry.model(PROD)
    assert prod is not None and prod.aliases[CHAMPION] == 1


def test_status_and_plan_from_the_replica_see_a_change_made_through_the_server_at_once(
    shared: SharedServer,
) -> None:
    status = shared.replica_cli("status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert _status(status)[PROD] == "in sync"
    planned = shared.replica_cli("plan", "--json")
    assert planned.returncode == 0, planned.stderr
    assert {row["action"] for row in json.loads(planned.stdout)} <= {"none", "dev"}

    client = shared.client()
    client.delete_registered_model_alias(PROD, CHAMPION)  # by hand, through the server
    try:
        status = shared.replica_cli("status", "--json")
        assert status.returncode == 1, status.stdout + status.stderr
        assert _status(status)[PROD] == "drifted"
        replica = Registry(
            shared.mlflow.url, shared.world.registry.default_artifact_root, shared.replica_uri
        )
        seen = replica.models([PROD])[PROD]
        assert CHAMPION not in seen.aliases
        assert "client" not in vars(replica), "the replica's read went through the server"
    finally:
        client.set_registered_model_alias(PROD, CHAMPION, "1")
    status = shared.replica_cli("status", "--json")
    assert status.returncode == 0 and _status(status)[PROD] == "in sync"


def test_a_replica_that_is_not_a_database_or_cannot_be_read_is_refused(
    shared: SharedServer,
) -> None:
    bad = shared.world.cli(
        "--registry", shared.mlflow.url, "status", "--registry-db", "https://replica.example"
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: --registry-db (PROMOTE_REGISTRY_DB): https://replica.example is not a database"
        " URI MLflow's tables can be read from (schemes: sqlite, postgresql, mysql, mssql)"
    ]
    wrong_password = shared.replica_uri.replace(f"{READER}:", f"{READER}:not-it-", 1)
    denied = shared.cli("status", "--registry-db", wrong_password)
    assert denied.returncode == 1
    assert "could not be read" in denied.stderr and "not-it-" not in denied.stderr


def _apply_in_background(shared: SharedServer, output: Path) -> subprocess.Popen[str]:
    with output.open("w") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "promote",
                "--registry",
                shared.mlflow.url,
                "apply",
                "--env",
                "staging",
            ],
            cwd=shared.world.repo,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            # Each line reaches the file as it is printed: the test reads who is waiting.
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def test_two_appliers_at_once_take_the_lock_in_turn_and_build_once(
    shared: SharedServer, tmp_path: Path
) -> None:
    world = shared.world
    world.train_dev(C=0.2)
    world.propose_and_merge("staging")
    before = world.registry.model(STAGING)
    assert before is not None
    outputs = [tmp_path / f"applier-{number}.out" for number in range(2)]
    # Held here first, so both appliers are certainly waiting for it when it is let go.
    appliers: list[subprocess.Popen[str]] = []
    try:
        with lock.hold(world.registry, STAGING, wait_seconds=0):
            appliers = [_apply_in_background(shared, output) for output in outputs]
            deadline = time.monotonic() + 600
            while not all("waiting for the lock" in output.read_text() for output in outputs):
                texts = [output.read_text() for output in outputs]
                assert time.monotonic() < deadline, texts
                assert all(applier.poll() is None for applier in appliers), texts
                time.sleep(0.5)
        codes = [applier.wait(timeout=900) for applier in appliers]
    finally:
        for applier in appliers:
            if applier.poll() is None:
                applier.kill()
                applier.wait()
    texts = [output.read_text() for output in outputs]
    assert codes == [0, 0], texts
    # One built and moved champion; the other, deciding again under the lock, found it done.
    assert sorted("ok: champion -> v" in text for text in texts) == [False, True], texts
    assert all("waiting for the lock" in text for text in texts)
    after = world.registry.model(STAGING)
    assert after is not None
    assert len(after.versions) == len(before.versions) + 1, texts
    assert after.aliases == {CHAMPION: len(after.versions), PREVIOUS: before.aliases[CHAMPION]}
    assert [event["action"] for event in after.events()] == [
        *(event["action"] for event in before.events()),
        "promote",
    ]
    assert lock.read(world.registry, STAGING) is None


def test_rollback_over_http_repoints_prod_without_rebuilding(shared: SharedServer) -> None:
    world = shared.world
    world.train_dev(C=0.3)
    assert world.promote("staging").ok
    assert world.promote("prod").ok
    prod = world.registry.model(PROD)
    assert prod is not None and prod.champion is not None
    newest, earlier = prod.champion.version, prod.aliases[PREVIOUS]
    proposed = shared.cli("rollback", MODEL, "--env", "prod", "--json")
    assert proposed.returncode == 0, proposed.stdout + proposed.stderr
    merge(world.repo, f"promote/prod/{MODEL}-rollback-v{earlier}", "Merge rollback")
    applied = shared.cli("apply", "--env", "prod", "--json")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert [o["action"] for o in json.loads(applied.stdout)["outcomes"]] == ["rollback"]
    after = world.registry.model(PROD)
    assert after is not None
    assert after.aliases == {CHAMPION: earlier, PREVIOUS: newest}
    assert len(after.versions) == len(prod.versions)
    status = shared.replica_cli("status", "--json")
    assert status.returncode == 0 and _status(status)[PROD] == "in sync", status.stdout
