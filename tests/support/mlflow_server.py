"""Real `mlflow server`s on loopback.

`MlflowAuthServer`: `--app-name basic-auth`, the way a team would run it. Backend store: a
sqlite file in the test's folder, or the database given (PostgreSQL). Artifact store: S3 (the
moto server), written by clients directly with their own credentials (`--no-serve-artifacts`),
so MLflow permissions govern the registry and IAM governs the artifacts.

`PlainMlflowServer`: no auth, restartable in place (outages), or serving the UI over a
sandbox's own registry (the browser test).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support.processes import Environ, free_port

ADMIN = "admin"
# Only a failing start waits this long; a CI runner busy with trainings starts a server slowly.
STARTUP_SECONDS = 300
# MLflow 3 starts a job runner (a second interpreter, a huey consumer) beside every server;
# promote runs no server-side jobs, and on two cores that process slows every test's start.
WITHOUT_JOB_RUNNER = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


class MlflowAuthServer:
    """The server process, its admin, and the users the tests create on it."""

    def __init__(
        self, folder: Path, artifact_root: str, backend_store_uri: str | None = None
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.url = f"http://127.0.0.1:{free_port()}"
        self.passwords = {ADMIN: secrets.token_urlsafe(16)}
        config = folder / "basic_auth.ini"
        config.write_text(
            "[mlflow]\n"
            # What `promote access` recommends: everyone reads; writes need a grant or ownership.
            "default_permission = READ\n"
            f"database_uri = sqlite:///{folder / 'auth.db'}\n"
            f"admin_username = {ADMIN}\n"
            f"admin_password = {self.passwords[ADMIN]}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # Each request otherwise re-hashes the password (PBKDF2): slow, and not what is tested.
            "auth_cache_ttl_seconds = 300\n"
        )
        self.log = folder / "server.log"
        command = [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--app-name",
            "basic-auth",
            "--host",
            "127.0.0.1",
            "--port",
            self.url.rsplit(":", 1)[1],
            "--workers",
            "1",
            "--backend-store-uri",
            backend_store_uri or f"sqlite:///{folder / 'mlflow.db'}",
            "--default-artifact-root",
            artifact_root,
            "--no-serve-artifacts",
        ]
        server_env = {
            **os.environ,
            **WITHOUT_JOB_RUNNER,
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        }
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                command, env=server_env, stdout=out, stderr=subprocess.STDOUT
            )
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(
            f"mlflow server did not become healthy; its log: {self.log.read_text()[-2000:]}"
        )

    def create_user(self, username: str) -> None:
        from mlflow.server.auth.client import AuthServiceClient

        password = secrets.token_urlsafe(16)
        with self.as_user(ADMIN):
            AuthServiceClient(self.url).create_user(username, password)
        self.passwords[username] = password

    @contextmanager
    def as_user(self, username: str) -> Iterator[None]:
        """MLflow clients (in this process and in training subprocesses) act as `username`."""
        with Environ(
            {
                "MLFLOW_TRACKING_USERNAME": username,
                "MLFLOW_TRACKING_PASSWORD": self.passwords[username],
            }
        ):
            yield

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class PlainMlflowServer:
    """`mlflow server` on loopback, no auth: a sqlite backend (its own, or the one given) and
    local artifacts, restartable in place."""

    def __init__(
        self, folder: Path, backend_store_uri: str | None = None, workers: int = 1
    ) -> None:
        self.folder = folder
        self.backend_store_uri = backend_store_uri or f"sqlite:///{folder / 'mlflow.db'}"
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--backend-store-uri",
            self.backend_store_uri,
            "--default-artifact-root",
            str(self.folder / "artifacts"),
            "--no-serve-artifacts",
        ]
        log = (self.folder / "server.log").open("a")
        self.process = subprocess.Popen(
            command, env={**os.environ, **WITHOUT_JOB_RUNNER}, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(
            f"mlflow server did not start: {(self.folder / 'server.log').read_text()[-2000:]}"
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None
