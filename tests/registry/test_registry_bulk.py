"""Registry.models: the bulk read equals per-model reads, sees every change, stays few calls.

The registry is built through the real MLflow client and changed behind the pipeline's back
the way a person would change it (aliases, versions, tags). Both bulk paths are checked: the
direct SQL read `Registry.models` takes on sqlite, and the client paging it takes for a
tracking server.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from promote.errors import ExternalError, InputError
from promote.registry import entities, paged, sql
from promote.registry.client import Registry
from promote.registry.entities import CHAMPION, PREVIOUS, RegisteredModel, Version

ENVIRONMENTS = ("dev", "staging", "prod")
MODELS = ("churn", "fraud", "ltv")


def per_model(registry: Registry, names: list[str]) -> dict[str, RegisteredModel]:
    """The reference: one registered-model read and one version search per name."""
    found = {name: registry.model(name) for name in names}
    return {name: model for name, model in found.items() if model is not None}


def direct(registry: Registry, names: list[str], trace: Any = None) -> dict[str, RegisteredModel]:
    """The path a SQL store takes (called here without the fallback `models` keeps)."""
    return sql.read_sql(registry.tracking_uri, names, trace)


def through_sqlalchemy(registry: Registry, names: list[str]) -> dict[str, RegisteredModel]:
    """The path a server database takes (SQLAlchemy, a row per tag), here on the same file."""
    uri = registry.tracking_uri.replace("sqlite:", "sqlite+pysqlite:", 1)
    return sql.read_sql(uri, names)


def through_client(registry: Registry, names: list[str]) -> dict[str, RegisteredModel]:
    """The path a tracking server over http takes."""
    return paged.read_paged(registry.client, names, registry._call).models


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """dev, staging and prod with three models each, two or three versions per model."""
    root = tmp_path_factory.mktemp("bulk")
    registry = Registry(f"sqlite:///{root / 'registry.db'}", root / "artifacts")
    client = registry.client
    for environment in ENVIRONMENTS:
        for index, model in enumerate(MODELS):
            name = f"{environment}.{model}"
            client.create_registered_model(name, tags={"promote.managed": "true"})
            for number in range(1, 3 + index % 2):
                client.create_model_version(
                    name,
                    f"file:///artifacts/{name}/{number}",
                    run_id=f"{number:032x}",
                    tags={
                        "promote.manifest_digest": f"{name}-{number}",
                        "promote.verdict": "passed",
                    },
                )
            client.set_registered_model_alias(name, PREVIOUS, "1")
            client.set_registered_model_alias(name, CHAMPION, "2")
            client.set_registered_model_tag(name, "promote.champion", "2")
    return registry


def names_of(*environments: str) -> list[str]:
    return [f"{e}.{m}" for e in environments for m in MODELS]


def test_bulk_read_equals_per_model_reads(registry: Registry) -> None:
    names = [*names_of(*ENVIRONMENTS), "prod.absent"]
    expected = per_model(registry, names)
    assert "prod.absent" not in expected and len(expected) == 9
    assert expected["prod.fraud"].champion is not None
    assert [v.version for v in expected["prod.fraud"].versions] == [1, 2, 3]
    assert direct(registry, names) == expected
    assert through_sqlalchemy(registry, names) == expected
    assert through_client(registry, names) == expected
    assert registry.models(names) == expected
    # Only what was asked for, whichever path; a few names are looked up, not scanned for.
    assert set(direct(registry, names_of("prod"))) == set(names_of("prod"))
    assert direct(registry, ["prod.fraud"]) == {"prod.fraud": expected["prod.fraud"]}
    assert set(through_client(registry, names_of("prod"))) == set(names_of("prod"))


def test_sql_store_is_read_without_the_mlflow_client(tmp_path: Path) -> None:
    fresh = Registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
    assert fresh.models(["prod.churn"]) == {}
    assert not (tmp_path / "registry.db").exists(), "a read created the registry"
    assert "client" not in vars(fresh), "MLflow was loaded for a read SQL answers"


def test_changes_behind_the_pipelines_back_are_seen(registry: Registry) -> None:
    client = registry.client
    names = names_of(*ENVIRONMENTS)
    before = registry.models(names)
    client.set_registered_model_alias("prod.churn", CHAMPION, "1")
    client.create_model_version("staging.churn", "file:///hand/made", run_id="f" * 32)
    client.delete_model_version_tag("dev.ltv", "2", "promote.verdict")
    client.delete_registered_model_tag("dev.churn", "promote.champion")
    client.delete_model_version("prod.ltv", "2")  # the champion: its alias goes with it
    client.set_model_version_tag("staging.fraud", "3", "promote.verdict", "rejected")
    for key, version in (("promote.event.1.a", 1), ("promote.event.2.b", 2)):
        client.set_registered_model_tag("prod.fraud", key, json.dumps({"version": version}))

    after = direct(registry, names)
    assert after == per_model(registry, names)
    assert after == through_client(registry, names)
    assert after == through_sqlalchemy(registry, names)
    assert after != before
    assert after["prod.churn"].aliases[CHAMPION] == 1
    assert [v.version for v in after["staging.churn"].versions] == [1, 2, 3]
    assert after["staging.churn"].versions[-1].source == "file:///hand/made"
    assert "promote.verdict" not in after["dev.ltv"].version(2).tags  # type: ignore[union-attr]
    assert "promote.champion" not in after["dev.churn"].tags
    assert after["prod.ltv"].version(2) is None and CHAMPION not in after["prod.ltv"].aliases
    assert after["staging.fraud"].version(3).verdict == "rejected"  # type: ignore[union-attr]
    # The history's versions, taken out of the events by SQLite or parsed here: the same.
    expected_logged = {"prod.fraud": {1, 2}}
    assert after["prod.fraud"].event_versions == {1, 2}  # extracted in SQL, not parsed
    for read in (after, per_model(registry, names), through_sqlalchemy(registry, names)):
        logged = {n: m.logged_versions for n, m in read.items() if m.logged_versions}
        assert logged == expected_logged
    for name in names:  # looked up by name rather than scanned: the same answer
        assert direct(registry, [name]) == {name: after[name]}


def counted(registry: Registry, calls: list[str]) -> Any:
    """The registry's call wrapper, noting what each client call was for."""

    def call(what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(what)
        return registry._call(what, function, *args, **kwargs)

    return call


def add_models(registry: Registry, environment: str, count: int) -> list[str]:
    """Bulk-insert models (each with a champion v1 and a tag) into MLflow's own tables."""
    names = [f"{environment}.m{index:05d}" for index in range(count)]
    with sqlite3.connect(registry.tracking_uri.removeprefix("sqlite:///")) as db:
        db.executemany("INSERT INTO registered_models (name) VALUES (?)", [(n,) for n in names])
        db.executemany(
            "INSERT INTO model_versions (name, version, source, run_id, current_stage)"
            " VALUES (?, 1, 'file:///x', '', 'None')",
            [(n,) for n in names],
        )
        db.executemany(
            "INSERT INTO registered_model_aliases (name, alias, version) VALUES (?, ?, 1)",
            [(n, CHAMPION) for n in names],
        )
        db.executemany(
            "INSERT INTO model_version_tags (name, version, key, value) VALUES (?, 1, ?, ?)",
            [(n, "promote.verdict", "passed") for n in names],
        )
    return names


def test_reads_do_not_grow_with_models(registry: Registry) -> None:
    small = add_models(registry, "small", 50)
    large = add_models(registry, "large", 500)
    counts = []
    for names in (small, large, [*small, *large]):
        statements: list[str] = []
        assert len(direct(registry, names, statements.append)) == len(names)
        counts.append(len(statements))
    # A BEGIN, a count and six statements: by name for the few, a scan for the many.
    assert counts == [8, 8, 8], counts

    client_calls = []
    for names in (small, large):
        calls: list[str] = []
        models = paged.read_paged(registry.client, names, counted(registry, calls)).models
        assert models == direct(registry, names)
        client_calls.append(len(calls))
    assert client_calls == [2, 2]  # one page of registered models, one of versions


def test_a_survey_lists_names_from_the_pages_it_reads_anyway(registry: Registry) -> None:
    """status's strays (names no manifest declares) come from the models' own read."""
    registry.client.create_registered_model("prod.rogue")
    names, listed = names_of("prod"), ["prod.", "staging."]
    calls: list[str] = []
    found = paged.read_paged(registry.client, names, counted(registry, calls), listed)
    assert found.models == direct(registry, names)
    assert "prod.rogue" in found.listed["prod."] and "prod.rogue" not in found.models
    assert found.listed == {p: sql.read_names_sql(registry.tracking_uri, p) for p in listed}
    assert registry.survey(names, listed) == found  # the SQL path: the same answer
    # prod: its models and versions; staging, only listed: its models' pages alone.
    assert calls == ["searching the registry"] * 3, calls
    everything = paged.read_paged(registry.client, ["rogue-without-dot"], registry._call, listed)
    assert everything.listed == found.listed  # one listing of all names covers both prefixes


def test_rows_of_a_model_created_between_two_reads_wait_for_the_next_read() -> None:
    rows = entities.Rows(
        models={"prod.a"},
        aliases=[("prod.b", CHAMPION, 1)],
        model_tags=[("prod.b", "promote.managed", "true")],
        versions=[("prod.b", 1, "file:///b", ""), ("prod.a", 1, "file:///a", "")],
        version_tags={("prod.a", 1): {"promote.verdict": "passed"}},
    )
    expected = Version("prod.a", 1, "file:///a", "", {"promote.verdict": "passed"})
    assert rows.assemble() == {"prod.a": RegisteredModel("prod.a", {}, {}, [expected])}


def test_a_file_that_is_not_mlflows_registry_is_left_to_the_client(tmp_path: Path) -> None:
    """No tables, or no database at all: the SQL read steps aside, unwritten."""
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database, not even close" * 100)
    for path in (empty, garbage):
        before = path.read_bytes()
        with pytest.raises(sql.SchemaUnknown):
            sql.read_sql(f"sqlite:///{path}", ["prod.churn"])
        assert path.read_bytes() == before


def test_a_replica_answers_bulk_reads_without_the_tracking_server(registry: Registry) -> None:
    names = names_of(*ENVIRONMENTS)
    # Nothing listens on the tracking URI: every answer comes from the replica's tables.
    nowhere = "http://127.0.0.1:9"
    replicated = Registry(nowhere, registry.default_artifact_root, registry.tracking_uri)
    assert replicated.models(names) == per_model(registry, names)
    listed = paged.PagedReader(lambda: registry.client, registry._call).names("prod.")
    assert replicated.names("prod.") == listed and listed
    assert "client" not in vars(replicated)


def test_a_replica_that_cannot_be_read_is_an_error_not_an_empty_registry(tmp_path: Path) -> None:
    absent = tmp_path / "replica.db"
    replicated = Registry("http://127.0.0.1:9", tmp_path / "artifacts", f"sqlite:///{absent}")
    with pytest.raises(ExternalError, match="could not be read"):
        replicated.models(["prod.churn"])
    assert not absent.exists(), "a read created the replica"
    with pytest.raises(InputError, match="is not a database URI"):
        Registry("http://127.0.0.1:9", tmp_path / "artifacts", "https://replica.example")
