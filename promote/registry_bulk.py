"""Bulk reads of the registry: many registered models in a few statements or pages.

`Registry.models` reads here, by one of two paths that return the same thing:

- a SQL store (sqlite, PostgreSQL, MySQL, SQL Server): MLflow's own tables, read directly with
  SQLAlchemy Core in one transaction, five statements per chunk of names;
- anything else (a tracking server over http): client search calls, paged by name prefix.

Both read the live registry on every call; nothing is cached, so a change made behind the
pipeline's back (an alias moved, a version added, a tag deleted) is seen by the next read.
SQLAlchemy and MLflow are imported inside the functions: the CLI's start-up never loads them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promote.registry import RegisteredModel, Version

SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
# Names per IN list: under SQLite's historical 999 bound variables and SQL Server's 2,100.
NAMES_PER_STATEMENT = 500
# The largest pages an MLflow server serves for each search.
MODELS_PER_PAGE = 1000
VERSIONS_PER_PAGE = 10_000
# MLflow marks a deleted version with this stage and keeps its row (and its tags).
DELETED_STAGE = "Deleted_Internal"
# Single-tenant MLflow keeps every registry row in this workspace.
DEFAULT_WORKSPACE = "default"


@dataclass
class Rows:
    """Registry rows as plain tuples: what both read paths produce, assembled one way."""

    models: set[str] = field(default_factory=set)
    aliases: list[tuple[str, str, int]] = field(default_factory=list)  # name, alias, version
    model_tags: list[tuple[str, str, str]] = field(default_factory=list)  # name, key, value
    versions: list[tuple[str, int, str, str]] = field(default_factory=list)  # name, v, source, run
    version_tags: list[tuple[str, int, str, str]] = field(default_factory=list)  # name, v, k, val

    def assemble(self) -> dict[str, RegisteredModel]:
        # Rows of a model that was not among the models read (created between two pages, or
        # between two statements where the database allows phantoms) wait for the next read.
        aliases: dict[str, dict[str, int]] = {name: {} for name in self.models}
        model_tags: dict[str, dict[str, str]] = {name: {} for name in self.models}
        version_tags: dict[tuple[str, int], dict[str, str]] = {}
        for name, alias, number in self.aliases:
            if name in aliases:
                aliases[name][alias] = int(number)
        for name, key, value in self.model_tags:
            if name in model_tags:
                model_tags[name][key] = value
        for name, number, key, value in self.version_tags:
            version_tags.setdefault((name, int(number)), {})[key] = value
        versions: dict[str, list[Version]] = {name: [] for name in self.models}
        for name, number, source, run_id in sorted(self.versions, key=lambda row: row[:2]):
            if name in versions:
                tags = version_tags.get((name, int(number)), {})
                versions[name].append(Version(name, int(number), source, run_id or "", tags))
        return {
            name: RegisteredModel(name, aliases[name], model_tags[name], versions[name])
            for name in sorted(self.models)
        }


def is_sql_store(tracking_uri: str) -> bool:
    """A database MLflow reads itself, in the single-tenant layout whose tables we know."""
    scheme = tracking_uri.partition(":")[0].partition("+")[0].lower()
    workspaces = os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").strip().lower()
    return scheme in SQL_SCHEMES and workspaces not in ("1", "true")


def sqlite_file_missing(tracking_uri: str) -> bool:
    """No registry file yet: nothing is registered, and a read must not create one."""
    if not tracking_uri.startswith("sqlite:///"):
        return False
    path = tracking_uri.removeprefix("sqlite:///").partition("?")[0]
    return bool(path) and path != ":memory:" and not Path(path).exists()


def read_sql(tracking_uri: str, names: list[str]) -> dict[str, RegisteredModel]:
    """Read MLflow's registry tables directly, filtered by name, in one read transaction.

    Raises sqlalchemy.exc.SQLAlchemyError when the tables are not the ones this MLflow
    version writes (no schema yet, an older schema): the caller then reads through the client.
    """
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(tracking_uri, poolclass=NullPool)
    if engine.dialect.name == "sqlite":
        # pysqlite opens no transaction for SELECTs; an explicit BEGIN makes the statements
        # below read one snapshot, so a write landing between two of them cannot show half.
        sa.event.listen(engine, "connect", _driver_autocommit)
        sa.event.listen(engine, "begin", _begin)
    else:
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    tables = _tables()
    rows = Rows()
    try:
        with engine.connect() as connection:
            for start in range(0, len(names), NAMES_PER_STATEMENT):
                chunk = names[start : start + NAMES_PER_STATEMENT]
                _read_chunk(connection, tables, chunk, rows)
    finally:
        engine.dispose()
    return rows.assemble()


def _driver_autocommit(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


def _tables() -> dict[str, Any]:
    """The columns read, as MLflow's dbmodels/models.py declares them (no reflection)."""
    import sqlalchemy as sa

    def table(name: str, *columns: str) -> Any:
        return sa.table(name, *(sa.column(c) for c in ("workspace", "name", *columns)))

    return {
        "models": table("registered_models"),
        "aliases": table("registered_model_aliases", "alias", "version"),
        "model_tags": table("registered_model_tags", "key", "value"),
        "versions": table("model_versions", "version", "source", "run_id", "current_stage"),
        "version_tags": table("model_version_tags", "version", "key", "value"),
    }


def _read_chunk(connection: Any, tables: dict[str, Any], chunk: list[str], rows: Rows) -> None:
    import sqlalchemy as sa

    def fetch(name: str, *columns: str, where: Any = sa.true()) -> list[Any]:
        table = tables[name]
        statement = sa.select(*(table.c[c] for c in ("name", *columns))).where(
            table.c.workspace == DEFAULT_WORKSPACE, table.c.name.in_(chunk), where
        )
        # The driver's own rows, in one call: these untyped columns need no conversion, and
        # building SQLAlchemy Row objects would cost as much as the fetch itself.
        return list(connection.execute(statement).cursor.fetchall())

    rows.models.update(name for (name,) in fetch("models"))
    rows.aliases.extend(fetch("aliases", "alias", "version"))
    rows.model_tags.extend(fetch("model_tags", "key", "value"))
    versions = fetch(
        "versions",
        "version",
        "source",
        "run_id",
        where=tables["versions"].c.current_stage != DELETED_STAGE,
    )
    rows.versions.extend(versions)
    live = {(name, number) for name, number, _, _ in versions}
    # A deleted version keeps its tag rows: only tags of live versions are read back.
    rows.version_tags.extend(
        row for row in fetch("version_tags", "version", "key", "value") if row[:2] in live
    )


def read_paged(
    client: Any, names: list[str], call: Callable[..., Any]
) -> dict[str, RegisteredModel]:
    """Read through MLflow's search API, page by page, one name prefix at a time.

    With the default `{env}.{model}` template every environment is one prefix (`prod.`); names
    without a dot are found by listing everything. Each call goes through `call`, which turns
    MLflow errors into the pipeline's.
    """
    wanted = set(names)
    rows = Rows()
    for prefix in _prefixes(wanted):
        escaped = prefix.replace("'", "\\'")
        where = f"name LIKE '{escaped}%'" if prefix else None
        for model in _pages(
            call, client.search_registered_models, filter_string=where, max_results=MODELS_PER_PAGE
        ):
            if model.name not in wanted:
                continue
            rows.models.add(model.name)
            rows.aliases.extend((model.name, a, int(v)) for a, v in (model.aliases or {}).items())
            rows.model_tags.extend((model.name, k, v) for k, v in model.tags.items())
        for version in _pages(
            call,
            client.search_model_versions,
            filter_string=where,
            max_results=VERSIONS_PER_PAGE,
            # A stable order: offsets stay valid while someone else updates a version.
            order_by=["name ASC", "version_number ASC"],
        ):
            if version.name not in wanted:
                continue
            number = int(version.version)
            rows.versions.append((version.name, number, version.source, version.run_id or ""))
            rows.version_tags.extend((version.name, number, k, v) for k, v in version.tags.items())
    return rows.assemble()


def _prefixes(names: Iterable[str]) -> set[str]:
    prefixes = {name.partition(".")[0] + "." if "." in name else "" for name in names}
    return {""} if "" in prefixes else prefixes


def _pages(call: Callable[..., Any], search: Callable[..., Any], **options: Any) -> Iterator[Any]:
    token = None
    while True:
        page = call("searching the registry", search, page_token=token, **options)
        yield from page
        token = page.token
        if not token:
            return


def read_names_sql(tracking_uri: str, prefix: str) -> list[str]:
    """Registered model names starting with `prefix`, in one statement on a SQL store."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    models = _tables()["models"]
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    engine = sa.create_engine(tracking_uri, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            statement = sa.select(models.c.name).where(
                models.c.workspace == DEFAULT_WORKSPACE,
                models.c.name.like(f"{escaped}%", escape="\\"),
            )
            # SQLite's LIKE ignores ASCII case; registered model names do not.
            return sorted(
                name for (name,) in connection.execute(statement) if name.startswith(prefix)
            )
    finally:
        engine.dispose()
