"""`promote status` and `plan` from a read replica of a PostgreSQL-backed tracking server.

The registry of benchmarks/registry_rest.py (N models x 3 environments, 1 % of prod champions
moved by hand, and a checkout where 1 % of prod manifests ask for a rebuild), copied into a real
PostgreSQL server (the tests' tests/support/postgres.py) behind a real `mlflow server`. A user
granted SELECT on MLflow's tables only (the README's grant) is the replica. Measured in the same
run:

- the best a user can do with MLflow's client alone over HTTP (every registered model and every
  version, paged at the server's largest pages): the baseline;
- status and plan with `--registry-db` (the CLI, best of three), with 1 % pending and with none
  (targets: <= 3 s at 10,000 x 3, <= 1.0x the client alone, pending <= 1.2x);
- the HTTP requests status sends with a replica (the library call, counted), and a champion
  moved through the server seen by the next status from the replica (nothing cached).

    python benchmarks/registry_replica.py [--quick] [--models 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import registry_rest
import state_scale
from figures import Table, seconds

from promote.manifests.loader import load_repository
from promote.plan import compute
from promote.registry.client import Registry
from promote.registry.entities import CHAMPION

TARGET_SECONDS = 3.0
DATABASE = "mlflow"
READER = "promote_reader"
# Parents before children: the versions, aliases and tags refer to their registered model.
REGISTRY_TABLES = (
    "registered_models",
    "model_versions",
    "registered_model_aliases",
    "registered_model_tags",
    "model_version_tags",
)


def copy_registry(database: Path, postgres: Any) -> None:
    """The sqlite registry's rows into PostgreSQL's tables (MLflow made both schemas)."""
    with sqlite3.connect(database) as source, postgres.connect(DATABASE) as target:
        for table in REGISTRY_TABLES:
            rows = source.execute(f"SELECT * FROM {table}")
            columns = ", ".join(column[0] for column in rows.description)
            with target.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        target.execute("ANALYZE")  # the planner's statistics, as a live database keeps them


def drift_count(root: Path, server: str, work: Path, replica: str) -> int:
    states = compute(load_repository(root), Registry(server, work / "artifacts", replica))
    return sum(1 for state in states if state.drift)


def measure(models: int, work: Path) -> None:
    registry_rest.tests_support()
    from support.postgres import PostgresServer

    template = state_scale.template_registry(work)
    steady, pending_root = work / "steady", work / "pending"
    database = registry_rest.build(steady, models, template)
    shutil.copytree(steady, pending_root, symlinks=True)
    changed = registry_rest.ask_for_rebuilds(pending_root, models)
    table = Table(
        f"read replica on PostgreSQL: {models:,} x 3 models, {changed} prod rebuilds pending"
    )
    postgres = PostgresServer()
    try:
        postgres.create_database(DATABASE)
        # The server creates MLflow's schema on PostgreSQL as it starts; the rows come after.
        with registry_rest.mlflow_server(postgres.uri(DATABASE), work) as server:
            copy_registry(database, postgres)
            replica = postgres.uri(DATABASE, READER, postgres.create_reader(DATABASE, READER))
            registry_rest.raw_client_read(server)  # warm the server as the others find it
            listed, raw_time, raw_sent = registry_rest.in_process(
                lambda: registry_rest.raw_client_read(server)
            )
            table.add(
                "MLflow client alone over HTTP: every model and version, paged",
                seconds(raw_time),
                f"{len(raw_sent)} requests, {listed:,} items",
            )
            _, library_time, sent = registry_rest.in_process(
                lambda: drift_count(pending_root, server, work, replica)
            )
            table.add(
                "status from the replica, 1 % pending (library, first run: no manifest validated)",
                seconds(library_time),
                f"{len(sent)} HTTP requests vs {len(raw_sent)}",
                f"{library_time / raw_time:.2f}x",
                "no request to the server",
                not sent,
            )
            for command in ("status", "plan"):
                options = (command, "--registry-db", replica)
                quiet = registry_rest.cli(steady, server, *options)
                busy = registry_rest.cli(pending_root, server, *options)
                judged = models >= 10_000
                table.add(
                    f"promote {command} --registry-db, 1 % pending (CLI)",
                    seconds(busy),
                    f"{seconds(raw_time)} client alone",
                    f"{busy / raw_time:.2f}x",
                    f"<= {TARGET_SECONDS:.0f} s, <= 1.0x" if judged else "<= 1.0x",
                    busy <= raw_time and (busy <= TARGET_SECONDS or not judged),
                )
                ratio = busy / quiet
                table.add(
                    f"promote {command} --registry-db, pending against none",
                    seconds(busy),
                    f"{seconds(quiet)} nothing pending",
                    f"{ratio:.2f}x",
                    f"<= {registry_rest.PENDING_RATIO_TARGET}x",
                    ratio <= registry_rest.PENDING_RATIO_TARGET,
                )
            drift = drift_count(steady, server, work, replica)
            from mlflow import MlflowClient

            moved = f"prod.{state_scale.model_name(state_scale.TWO_VERSIONS_EVERY)}"
            MlflowClient(server).set_registered_model_alias(moved, CHAMPION, "1")
            seen = drift_count(steady, server, work, replica) == drift + 1
            table.add(
                "champion moved through the server, seen from the replica",
                f"{drift} drifted, then {'one more' if seen else 'NOT SEEN'}",
                target="at once",
                passed=seen,
            )
    finally:
        postgres.stop()
    table.print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 models x 3")
    parser.add_argument("--models", type=int, default=None)
    options = parser.parse_args()
    models = options.models or (1000 if options.quick else 10_000)
    os.environ["MLFLOW_SQLALCHEMYSTORE_POOLCLASS"] = "NullPool"
    work = Path(tempfile.mkdtemp(prefix="promote-bench-replica-"))
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    try:
        measure(models, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
