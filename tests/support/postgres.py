"""A real PostgreSQL server on loopback, from the machine's `postgresql` package.

`initdb` makes a cluster in a temporary folder, `pg_ctl` starts it on a free port of 127.0.0.1
(password logins only, no other socket than the one in that folder) and stops it. PostgreSQL
refuses to run as root: under root (CI containers) the cluster belongs to the package's
`postgres` user and its programs run as that user (`runuser`). No PostgreSQL installed is a
failure that says how to install it, never a skip: `.ci/run` installs it.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from support.processes import free_port

SUPERUSER = "promote_admin"
# Every table promote's direct reads select from (promote/registry/sql.py): the five of the
# registry, then experiments, runs and their tags for the runs an interrupted apply left. The
# README's grant for a read replica's user names exactly these.
MLFLOW_READ_TABLES = (
    "registered_models",
    "registered_model_aliases",
    "registered_model_tags",
    "model_versions",
    "model_version_tags",
    "experiments",
    "runs",
    "tags",
)
# The account Debian's package creates; PostgreSQL's programs run as it when we are root.
SERVICE_ACCOUNT = "postgres"
START_SECONDS = 120


def server_programs() -> Path:
    """The folder holding initdb and pg_ctl: on PATH, else the newest under /usr/lib/postgresql."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += [
        Path(found).parent
        for found in sorted(
            glob.glob("/usr/lib/postgresql/*/bin/initdb"),
            key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
            reverse=True,
        )
    ]
    for folder in candidates:
        if (folder / "pg_ctl").exists():
            return folder
    raise RuntimeError(
        "PostgreSQL is not installed (no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin):"
        " apt-get install -y postgresql (.ci/run does)"
    )


class PostgresServer:
    """One PostgreSQL cluster: its superuser, the databases and roles the tests create."""

    def __init__(self) -> None:
        self.programs = server_programs()
        self.owner = _service_account() if os.geteuid() == 0 else None
        # Not under pytest's tmp_path: that is private to root, and the server user must reach it.
        self.folder = Path(tempfile.mkdtemp(prefix="promote-postgres-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.log = self.folder / "server.log"
        self.started = False
        password_file = self.folder / "superuser-password"
        password_file.write_text(self.password)
        if self.owner is not None:
            for path in (self.folder, password_file):
                os.chown(path, self.owner.pw_uid, self.owner.pw_gid)
        try:
            self._run(
                "initdb",
                "--pgdata",
                str(self.data),
                "--username",
                SUPERUSER,
                "--pwfile",
                str(password_file),
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--no-sync",
            )
            password_file.unlink()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder}"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            self._run(
                "pg_ctl",
                "--pgdata",
                str(self.data),
                "--log",
                str(self.log),
                "--options",
                options,
                "--wait",
                f"--timeout={START_SECONDS}",
                "start",
            )
            self.started = True
        except BaseException:
            self.stop()
            raise

    def _run(self, program: str, *arguments: str) -> None:
        command = [str(self.programs / program), *arguments]
        if self.owner is not None:
            command = ["runuser", "-u", self.owner.pw_name, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}{log}")

    def uri(self, database: str, user: str = SUPERUSER, password: str | None = None) -> str:
        """The SQLAlchemy URI MLflow and promote take (psycopg 3)."""
        secret = self.password if password is None else password
        return f"postgresql+psycopg://{user}:{secret}@127.0.0.1:{self.port}/{database}"

    def connect(
        self, database: str = "postgres", user: str = SUPERUSER, password: str | None = None
    ) -> Any:
        """A psycopg connection in autocommit: each statement commits on its own."""
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            dbname=database,
            user=user,
            password=self.password if password is None else password,
            autocommit=True,
        )

    def execute(self, database: str, *statements: str) -> None:
        """Run statements as the superuser."""
        with self.connect(database) as connection:
            for statement in statements:
                connection.execute(statement)

    def create_database(self, name: str) -> None:
        self.execute("postgres", f'CREATE DATABASE "{name}"')

    def create_reader(self, database: str, role: str) -> str:
        """A login granted SELECT on MLflow's tables that promote reads, and nothing else (the
        grant the README gives a platform team); its password."""
        password = secrets.token_urlsafe(16)
        self.execute(
            database,
            f"CREATE ROLE {role} LOGIN PASSWORD '{password}'",
            f"GRANT CONNECT ON DATABASE {database} TO {role}",
            f"GRANT USAGE ON SCHEMA public TO {role}",
            f"GRANT SELECT ON {', '.join(MLFLOW_READ_TABLES)} TO {role}",
        )
        return password

    def stop(self) -> None:
        if self.started:
            self._run("pg_ctl", "--pgdata", str(self.data), "--mode", "fast", "--wait", "stop")
            self.started = False
        shutil.rmtree(self.folder, ignore_errors=True)


def _service_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        raise RuntimeError(
            f"running as root, PostgreSQL needs an unprivileged account to run as, and there is"
            f" no {SERVICE_ACCOUNT!r} user: install Debian's postgresql package (it creates one)"
        ) from None
