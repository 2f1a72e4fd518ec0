"""A real `promote serve` process on loopback, and the HTTP requests the tests send it."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from support.processes import free_port

STARTUP_SECONDS = 120

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "contract_months", "age"]
ROWS = [[1, 120.0, 5, 1, 30], [70, 20.0, 0, 24, 60], [12, 80.5, 2, 12, 45]]


def split_request() -> dict[str, Any]:
    return {"dataframe_split": {"columns": FEATURES, "data": ROWS}}


def inputs_request() -> dict[str, Any]:
    return {"inputs": {name: [row[i] for row in ROWS] for i, name in enumerate(FEATURES)}}


def records(key: str) -> dict[str, Any]:
    """The rows as `dataframe_records` or `instances` send them: one object per row."""
    return {key: [dict(zip(FEATURES, row, strict=True)) for row in ROWS]}


class ServerProcess:
    """A scoring server in a subprocess on a loopback port: `promote serve`, or the baseline
    benchmarks/serving.py measures it against (`mlflow models serve`)."""

    def __init__(
        self, command: list[str], cwd: Path, port: int, env: dict[str, str] | None = None
    ) -> None:
        self.port = port
        self.stderr = cwd.parent / f"serve-{self.port}.log"
        with self.stderr.open("w") as log:
            self.process = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log
            )

    def log(self) -> str:
        return self.stderr.read_text()

    def wait_ready(self) -> None:
        """Return once /ping answers; fail with the server's log if it exits or never does."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if self.get("/ping")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"the server never answered /ping:\n{self.log()}")

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def get(self, path: str) -> tuple[int, bytes]:
        connection = self.connection()
        try:
            connection.request("GET", path)
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def version(self) -> dict[str, Any]:
        status, body = self.get("/version")
        assert status == 200
        return dict(json.loads(body))

    def wait_for(self, what: str, check: Any, seconds: float = 120) -> dict[str, Any]:
        """/version, once `check(version)` holds."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = self.version()
            if check(found):
                return found
            time.sleep(0.1)
        raise AssertionError(f"the server never {what}: {self.version()}\n{self.log()}")

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


class ScoringServer(ServerProcess):
    """`promote serve NAME --env ENV` in a subprocess, run from the repository."""

    def __init__(
        self, repo: Path, environment: str, *options: str, env: dict[str, str] | None = None
    ) -> None:
        port = free_port()
        command = [sys.executable, "-m", "promote", "serve", "churn", "--env", environment]
        super().__init__([*command, "--port", str(port), *options], repo, port, env)


def invoke(
    connection: http.client.HTTPConnection, payload: dict[str, Any]
) -> tuple[int, str | None, Any]:
    """POST /invocations: status, the version that answered, the decoded body."""
    connection.request(
        "POST",
        "/invocations",
        body=json.dumps(payload),
        headers={"Content-Type": "application/json"},
    )
    answer = connection.getresponse()
    return answer.status, answer.getheader("X-Promote-Version"), json.loads(answer.read())
