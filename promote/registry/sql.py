"""Bulk reads of the registry: many registered models in a few statements or pages.

`Registry.models` reads here, by one of two paths that return the same thing:

- a SQL store (sqlite, PostgreSQL, MySQL, SQL Server): MLflow's own tables, read directly in one
  read transaction, six statements per chunk of names, or six in all when the names asked
  for are most of the registry (a scan costs less than thousands of index look-ups);
- anything else (a tracking server over http): client search calls, paged by name prefix.

Both read the live registry on every call; nothing is cached, so a change made behind the
pipeline's back (an alias moved, a version added, a tag deleted) is seen by the next read.
sqlite, the default, is read with the standard library's driver: importing SQLAlchemy and
compiling its statements would cost more than the reads. Server databases go through
SQLAlchemy, imported only then; MLflow is never imported here.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promote.errors import ExternalError, InputError, SchemaUnknown
from promote.registry.entities import (
    EVENT_PREFIX,
    TAG_MANIFEST_DIGEST,
    TAG_RUN_REGISTERED,
    RegisteredModel,
    Rows,
    Survey,
)
from promote.registry.paged import PagedReader
from promote.runtime.redact import redact

SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")

# Names per IN list: under SQLite's historical 999 bound variables and SQL Server's 2,100.
NAMES_PER_STATEMENT = 500

# Asked for at least this share of the registry's models, the tables are read whole.
SCAN_SHARE = 0.25

# MLflow marks a deleted version with this stage and keeps its row (and its tags).
DELETED_STAGE = "Deleted_Internal"

# Single-tenant MLflow keeps every registry row in this workspace.
DEFAULT_WORKSPACE = "default"

Query = Callable[[str, dict[str, Any]], list[Any]]

SQLITE_MMAP_BYTES = 1 << 30

# SQLite has built JSON objects since 3.38 (and usually before, as an extension).
SQLITE_JSON = sqlite3.sqlite_version_info >= (3, 38, 0)


def is_sql_store(tracking_uri: str) -> bool:
    """A database MLflow reads itself, in the single-tenant layout whose tables we know."""
    scheme = tracking_uri.partition(":")[0].partition("+")[0].lower()
    workspaces = os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").strip().lower()
    return scheme in SQL_SCHEMES and workspaces not in ("1", "true")


def _sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a plain `sqlite:///path` URI (no driver, no options), else None."""
    if not tracking_uri.startswith("sqlite:///") or "?" in tracking_uri:
        return None
    path = tracking_uri.removeprefix("sqlite:///")
    return Path(path) if path and path != ":memory:" else None


def sqlite_file_missing(tracking_uri: str) -> bool:
    """No registry file yet: nothing is registered, and a read must not create one."""
    path = _sqlite_file(tracking_uri.partition("?")[0])
    return path is not None and not path.exists()


@dataclass(frozen=True)
class _Reader:
    query: Query
    # The database takes JSON apart in C (sqlite's json_extract): each history event's version.
    tags_as_json: bool


@contextmanager
def _read_transaction(tracking_uri: str, trace: Callable[[str], None] | None) -> Iterator[_Reader]:
    """Statements that all read one snapshot of the database; `trace` sees each statement."""
    path = _sqlite_file(tracking_uri)
    if path is not None:
        with _sqlite_transaction(path, trace) as query:
            yield _Reader(query, SQLITE_JSON)
        return
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(tracking_uri, poolclass=NullPool)
    if engine.dialect.name == "sqlite":
        # pysqlite opens no transaction for SELECTs; an explicit BEGIN reads one snapshot.
        sa.event.listen(engine, "connect", _driver_autocommit)
        sa.event.listen(engine, "begin", _begin)
    else:
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    if trace is not None:
        sa.event.listen(engine, "before_cursor_execute", lambda *event: trace(event[2]))
    try:
        with engine.connect() as connection:

            def query(statement: str, parameters: dict[str, Any]) -> list[Any]:
                try:
                    return list(connection.execute(sa.text(statement), parameters).all())
                except sa.exc.SQLAlchemyError as exc:
                    raise SchemaUnknown(str(exc)) from None

            yield _Reader(query, tags_as_json=False)
    except sa.exc.SQLAlchemyError as exc:
        raise SchemaUnknown(str(exc)) from None
    finally:
        engine.dispose()


@contextmanager
def _sqlite_transaction(path: Path, trace: Callable[[str], None] | None) -> Iterator[Query]:
    try:
        # Read-only: a read never creates, migrates or locks the registry for writing.
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
        )
    except sqlite3.Error as exc:
        raise SchemaUnknown(str(exc)) from None
    try:

        def query(statement: str, parameters: dict[str, Any]) -> list[Any]:
            try:
                return connection.execute(statement, parameters).fetchall()
            except sqlite3.Error as exc:
                raise SchemaUnknown(str(exc)) from None

        # Pages mapped rather than copied in one read call each: a scan reads the whole file.
        query(f"PRAGMA mmap_size = {SQLITE_MMAP_BYTES}", {})
        connection.set_trace_callback(trace)
        query("BEGIN", {})
        yield query
    finally:
        connection.close()  # nothing was written: closing ends the read transaction


def _driver_autocommit(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


def read_sql(
    tracking_uri: str, names: list[str], trace: Callable[[str], None] | None = None
) -> dict[str, RegisteredModel]:
    """Read MLflow's registry tables directly, for `names`, in one read transaction.

    Raises SchemaUnknown when the tables are not the ones this MLflow version writes (no schema
    yet, an older one): the caller then reads through the client.
    """
    wanted = set(names)
    rows = Rows()
    with _read_transaction(tracking_uri, trace) as reader:
        workspace = {"workspace": DEFAULT_WORKSPACE}
        (registered,) = reader.query(
            "SELECT COUNT(*) FROM registered_models WHERE workspace = :workspace", workspace
        )[0]
        if len(wanted) >= registered * SCAN_SHARE:
            _read_rows(reader, workspace, "", wanted, rows)
        else:
            ordered = sorted(wanted)
            for start in range(0, len(ordered), NAMES_PER_STATEMENT):
                chunk = ordered[start : start + NAMES_PER_STATEMENT]
                parameters = {f"n{index}": name for index, name in enumerate(chunk)}
                placeholders = ", ".join(f":{key}" for key in parameters)
                _read_rows(
                    reader,
                    {**workspace, **parameters},
                    f" AND name IN ({placeholders})",
                    wanted,
                    rows,
                )
    return rows.assemble()


def _read_rows(
    reader: _Reader, parameters: dict[str, Any], names: str, wanted: set[str], rows: Rows
) -> None:
    """The five tables' rows for the names `names` selects (all, when empty).

    Only the registered models are kept to those wanted: `Rows.assemble` drops the other rows
    of models not kept, and the tags of deleted versions with their versions.
    """

    def fetch(table: str, *columns: str, condition: str = "") -> list[Any]:
        selected = ", ".join(("name", *columns))
        statement = f"SELECT {selected} FROM {table} WHERE workspace = :workspace{names}{condition}"
        return reader.query(statement, parameters)

    rows.models.update(name for (name,) in fetch("registered_models") if name in wanted)
    rows.aliases += fetch("registered_model_aliases", "alias", "version")
    rows.model_tags += fetch("registered_model_tags", "key", "value")
    if reader.tags_as_json:
        # Each history event's version, out of its JSON in C: plan asks it of every model.
        events = fetch(
            "registered_model_tags",
            "json_extract(value, '$.version')",
            condition=f" AND key >= '{EVENT_PREFIX}' AND key < '{EVENT_PREFIX[:-1]}/'",
        )
        logged = rows.event_versions = rows.event_versions or {}
        for name, version in events:
            logged.setdefault(name, set()).add(version)
    rows.versions += fetch(
        "model_versions",
        "version",
        "source",
        "run_id",
        condition=f" AND (current_stage IS NULL OR current_stage != '{DELETED_STAGE}')",
    )
    # A row per tag, not one JSON object per version: signed envelopes make most of the tags'
    # bytes, and escaping them into JSON and parsing it back took twice as long as the rows.
    for name, number, key, value in fetch("model_version_tags", "version", "key", "value"):
        rows.version_tags.setdefault((name, number), {})[key] = value


def read_names_sql(tracking_uri: str, prefix: str) -> list[str]:
    """Registered model names starting with `prefix`, in one statement on a SQL store."""
    escaped = prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    with _read_transaction(tracking_uri, None) as reader:
        found = reader.query(
            "SELECT name FROM registered_models"
            " WHERE workspace = :workspace AND name LIKE :pattern ESCAPE '!'",
            {"workspace": DEFAULT_WORKSPACE, "pattern": f"{escaped}%"},
        )
    # SQLite's LIKE ignores ASCII case; registered model names do not.
    return sorted(name for (name,) in found if name.startswith(prefix))


def read_unregistered_runs_sql(
    tracking_uri: str, experiment: str, digests: set[str]
) -> dict[str, list[str]]:
    """`PagedReader.unregistered_runs` in one statement per chunk of digests."""
    candidates: dict[str, list[str]] = {}
    ordered = sorted(digests)
    with _read_transaction(tracking_uri, None) as reader:
        for start in range(0, len(ordered), NAMES_PER_STATEMENT):
            chunk = {
                f"d{i}": digest
                for i, digest in enumerate(ordered[start : start + NAMES_PER_STATEMENT])
            }
            placeholders = ", ".join(f":{key}" for key in chunk)
            found = reader.query(
                "SELECT t.value, r.run_uuid FROM runs r"
                " JOIN experiments e ON e.experiment_id = r.experiment_id"
                " JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = :digest_tag"
                " WHERE e.workspace = :workspace AND e.name = :experiment"
                " AND r.status = 'FINISHED' AND r.lifecycle_stage = 'active'"
                f" AND t.value IN ({placeholders})"
                " AND NOT EXISTS (SELECT 1 FROM tags g"
                " WHERE g.run_uuid = r.run_uuid AND g.key = :registered_tag)"
                " ORDER BY r.start_time DESC, r.run_uuid",
                {
                    "workspace": DEFAULT_WORKSPACE,
                    "experiment": experiment,
                    "digest_tag": TAG_MANIFEST_DIGEST,
                    "registered_tag": TAG_RUN_REGISTERED,
                    **chunk,
                },
            )
            for digest, run_id in found:
                candidates.setdefault(digest, []).append(run_id)
    return candidates


class SqlReader:
    """Bulk reads from MLflow's own tables; the paged reader answers where they are not (yet)
    the tables this MLflow version writes.

    Without a fallback, the tables are a read replica of a tracking server's database
    (`replica_reader`): there, tables that cannot be read are an error, never a silent read through
    the server, and a missing sqlite file is a wrong path, not an empty registry.
    """

    def __init__(self, tracking_uri: str, fallback: PagedReader | None) -> None:
        self.tracking_uri = tracking_uri
        self.fallback = fallback

    def _nothing_registered_yet(self) -> bool:
        return self.fallback is not None and sqlite_file_missing(self.tracking_uri)

    def _fallback(self, problem: SchemaUnknown) -> PagedReader:
        if self.fallback is None:
            first_line = (str(problem).splitlines() or ["unknown tables"])[0]
            raise ExternalError(
                f"registry database {redact(self.tracking_uri)} could not be read: {first_line}"
            )
        return self.fallback

    def models(self, names: list[str]) -> dict[str, RegisteredModel]:
        if self._nothing_registered_yet():
            return {}
        try:
            return read_sql(self.tracking_uri, names)
        except SchemaUnknown as problem:
            return self._fallback(problem).models(names)

    def names(self, prefix: str) -> list[str]:
        if self._nothing_registered_yet():
            return []
        try:
            return read_names_sql(self.tracking_uri, prefix)
        except SchemaUnknown as problem:
            return self._fallback(problem).names(prefix)

    def survey(self, names: list[str], listed: Iterable[str]) -> Survey:
        # A listing is one cheap statement here: no reason to read more rows to get it.
        return Survey(self.models(names), {prefix: self.names(prefix) for prefix in listed})

    def unregistered_runs(self, experiment: str, digests: set[str]) -> dict[str, list[str]]:
        if self._nothing_registered_yet():
            return {}
        try:
            return read_unregistered_runs_sql(self.tracking_uri, experiment, digests)
        except SchemaUnknown as problem:
            return self._fallback(problem).unregistered_runs(experiment, digests)


def replica_reader(database_uri: str, setting: str) -> SqlReader:
    """The reader of a read-only copy of the tracking server's database, named by `setting`.

    Reads only, in read transactions: the database user needs SELECT on MLflow's tables and
    nothing else. Nothing is cached, so what the server wrote and the replica has is seen at once.
    """
    if not is_sql_store(database_uri):
        raise InputError(
            setting,
            None,
            f"{redact(database_uri)} is not a database URI MLflow's tables can be read from"
            f" (schemes: {', '.join(SQL_SCHEMES)})",
        )
    return SqlReader(database_uri, fallback=None)
