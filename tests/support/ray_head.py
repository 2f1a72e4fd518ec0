"""A real local Ray head on loopback, in a temporary folder of its own, stopped by its ids."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from support.processes import free_port

# A loaded machine can take a minute to bring the head's services up.
START_TIMEOUT = 240.0


class RayHead:
    """`ray start --head --block` with every port chosen free and every process on 127.0.0.1.

    Ray's processes are told the temporary folder; `stop` ends the process group it started
    and then any process still running in that folder (a job's entrypoint starts a session of
    its own), by id: never `ray stop`, which stops every Ray process of the machine.
    """

    def __init__(self, cpus: int = 2, environment: dict[str, str | None] | None = None) -> None:
        # Short, under /tmp: Ray's Unix sockets live in it, and their paths are bounded.
        self.folder = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        self.dashboard_port = free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.cpus = cpus
        # The cluster's own settings (its S3 endpoint and role), which its jobs inherit; None
        # leaves a variable of this machine out.
        self.environment = environment or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        ports = {
            "--port": free_port(),
            "--dashboard-port": self.dashboard_port,
            "--node-manager-port": free_port(),
            "--object-manager-port": free_port(),
            "--ray-client-server-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
            "--dashboard-agent-listen-port": free_port(),
            "--metrics-export-port": free_port(),
            "--runtime-env-agent-port": free_port(),
        }
        workers = free_port()
        command = [
            str(Path(sys.executable).parent / "ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address",
            "127.0.0.1",
            "--dashboard-host",
            "127.0.0.1",
            "--num-cpus",
            str(self.cpus),
            "--object-store-memory",
            str(100 * 1024 * 1024),
            "--temp-dir",
            str(self.folder),
            "--disable-usage-stats",
            "--min-worker-port",
            str(workers),
            "--max-worker-port",
            str(workers + 40),
            *[item for flag, port in ports.items() for item in (flag, str(port))],
        ]
        # The jobs' `python` is this interpreter: the cluster has promote installed.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        log = (self.folder / "head.log").open("wb")
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={
                **{k: v for k, v in os.environ.items() if k not in self.environment},
                **{k: v for k, v in self.environment.items() if v is not None},
                "PATH": path,
                "RAY_USAGE_STATS_ENABLED": "0",
            },
            start_new_session=True,
        )
        self._wait_until_serving()
        return self.address

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"ray start exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.address}/api/version", timeout=5):
                    return
            except OSError:
                time.sleep(1)
        raise AssertionError(f"Ray's dashboard did not answer in {START_TIMEOUT}s")

    def log_tail(self) -> str:
        return (self.folder / "head.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        for pid in self._processes_in_folder():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        shutil.rmtree(self.folder, ignore_errors=True)

    def _processes_in_folder(self) -> list[int]:
        """Processes whose command line or working directory is inside this head's folder."""
        marker = str(self.folder)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                command = (entry / "cmdline").read_bytes().decode(errors="replace")
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if marker in command or cwd.startswith(marker):
                found.append(int(entry.name))
        return found
