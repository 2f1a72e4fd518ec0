"""`promote serve`: MLflow's scoring protocol over HTTP for the verified champion, following it.

Not MLflow's scoring server app (`mlflow.pyfunc.scoring_server.init`, what `mlflow models serve`
runs under uvicorn), for three reasons. It binds one model, and that model's input schema, when
the app is built, so following the champion would mean building a new app or restarting the
process, and dropping the requests in between. Its `/version` answers MLflow's version, where
promote's answers which model version is served. And it runs on FastAPI and uvicorn, which
promote does not depend on. What clients see of the protocol is still MLflow's own: every
`/invocations` request is answered by MLflow's `invocations` function (`registry.pyfunc`), so
CSV, Parquet and the JSON formats (dataframe_split, dataframe_records, instances, inputs, with
params), the status codes and the error bodies are those of `mlflow models serve`.

Around it, a threaded HTTP/1.1 server from the standard library whose model is one reference:
each request reads it once, so a request in flight finishes on the version it started with, and
a swap is one assignment. A `Follower` thread reads the champion alias every `interval` seconds;
when it moves, the new version is downloaded, verified and loaded beside the served one, and
only then swapped in. A version that fails verification is never served: it is logged, listed
by `/version`, and not tried again (versions are immutable).
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from promote.errors import CheckFailed, InputError, PromoteError
from promote.manifests.repository import Repository
from promote.registry.client import Registry
from promote.registry.entities import CHAMPION
from promote.serving.verified import VerifiedModel, load_verified

# Which version answered, on every /invocations response: MLflow's body has no room for it.
VERSION_HEADER = "X-Promote-Version"
DIGEST_HEADER = "X-Promote-Artifact-Digest"

# How long a stopping server waits for a follower busy verifying a version.
STOP_WAIT = 30.0


@dataclass(frozen=True)
class Refusal:
    version: int
    reason: str
    time: str


class Served:
    """The version answering requests, and the versions refused. Each is one reference that
    the follower replaces whole, so a request thread reads either the old value or the new."""

    def __init__(self, first: VerifiedModel) -> None:
        self.model = first
        self.refused: tuple[Refusal, ...] = ()

    def refuse(self, version: int, reason: str) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.refused = (*self.refused, Refusal(version, reason, now))

    def is_refused(self, version: int) -> bool:
        return any(refusal.version == version for refusal in self.refused)

    def describe(self) -> dict[str, Any]:
        return {
            **self.model.describe(),
            "refused": [refusal.__dict__ for refusal in self.refused],
        }


class Follower(threading.Thread):
    """Reads the champion alias every `interval` seconds and swaps in each new version that
    verifies. It never stops on an error: a registry it cannot read is tried again next time."""

    def __init__(
        self,
        served: Served,
        champion: Callable[[], int | None],
        load: Callable[[int, Path], VerifiedModel],
        folder: Path,
        interval: float,
        log: Callable[[str], None],
    ) -> None:
        super().__init__(name="promote-follower", daemon=True)
        self.served = served
        self.champion = champion
        self.load = load
        self.folder = folder  # where the served version was downloaded; the others beside it
        self.interval = interval
        self.log = log
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.follow()

    def follow(self) -> None:
        current = self.served.model
        still = f"still serving {current.registered_name} v{current.version}"
        try:
            number = self.champion()
        except PromoteError as exc:
            self.log(f"cannot read the champion: {exc.message}; {still}")
            return
        if number is None or number == current.version or self.served.is_refused(number):
            return
        folder = Path(tempfile.mkdtemp(prefix=f"v{number}-", dir=self.folder.parent))
        try:
            candidate = self.load(number, folder)
        except CheckFailed as exc:
            shutil.rmtree(folder, ignore_errors=True)
            self.served.refuse(number, exc.message)
            self.log(f"refused {current.registered_name} v{number}: {exc.message}; {still}")
            return
        except Exception as exc:  # storage, the registry, a bug: try again at the next read
            shutil.rmtree(folder, ignore_errors=True)
            message = exc.message if isinstance(exc, PromoteError) else repr(exc)
            self.log(f"cannot load v{number} yet: {message}; {still}")
            return
        self.served.model = candidate
        self.log(
            f"now serving {candidate.registered_name} v{candidate.version} "
            f"({candidate.digest[:12]}), was v{current.version}"
        )
        # The old model is in memory, for the requests still on it; its files are not needed.
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = folder


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection
    # Headers and body are buffered and sent in one write when the request is done (the
    # standard handler flushes after each request): unbuffered, they went out in two, and
    # Nagle's algorithm held the body until the client acknowledged the headers, some 40 ms
    # on Linux. A body larger than the buffer still goes out in pieces, so Nagle stays off.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path in ("/ping", "/health"):
            self._answer(200, "application/json", b"\n")  # MLflow's health answer
        elif path == "/version":
            body = json.dumps(self.server.served.describe(), sort_keys=True).encode()
            self._answer(200, "application/json", body)
        else:
            self._answer(404, "text/plain", b"not found\n")

    def do_POST(self) -> None:
        if self.path.partition("?")[0] != "/invocations":
            self._answer(404, "text/plain", b"not found\n")
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._answer(411, "text/plain", b"a Content-Length is required\n")
            return
        body = self.rfile.read(int(length))
        model = self.server.served.model  # read once: this request is answered by this version
        try:
            status, kind, answer = model.loaded.score(body, self.headers.get("Content-Type", ""))
        except Exception as exc:  # a bug must cost one request, not the connection
            status, kind = 500, "application/json"
            answer = json.dumps({"error_code": "INTERNAL_ERROR", "message": repr(exc)}).encode()
        self._answer(status, kind, answer, model)

    def _answer(
        self, status: int, kind: str, body: bytes, model: VerifiedModel | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if model is not None:
            self.send_header(VERSION_HEADER, str(model.version))
            self.send_header(DIGEST_HEADER, model.digest)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: a line per request would cost more than many predictions."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], served: Served) -> None:
        self.served = served
        super().__init__(address, _Handler)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def serve(
    repo: Repository,
    registry: Registry,
    environment: str,
    model: str,
    *,
    host: str,
    port: int,
    interval: float,
    log: Callable[[str], None],
) -> None:
    """Serve the verified champion on `host:port` until interrupted (SIGINT or SIGTERM).

    Nothing listens before the champion verifies: `ProofInvalid` otherwise."""
    name = repo.registered_name(environment, model)

    def champion() -> int | None:
        # The alias alone: reading every version each poll would cost the requests in flight
        # CPU (and the GIL) that grows with the model's history.
        aliases = registry.aliases(name)
        return aliases.get(CHAMPION) if aliases else None

    def load(number: int, folder: Path) -> VerifiedModel:
        return load_verified(repo, registry, environment, model, folder, number)

    # A follower still downloading when the server stops may leave files the cleanup races.
    with tempfile.TemporaryDirectory(
        prefix="promote-serve-", ignore_cleanup_errors=True
    ) as scratch:
        folder = Path(tempfile.mkdtemp(prefix="first-", dir=scratch))
        first = load_verified(repo, registry, environment, model, folder)
        try:
            server = _Server((host, port), Served(first))
        except OSError as exc:
            raise InputError("--port", None, f"cannot listen on {host}:{port}: {exc}") from None
        follower = Follower(server.served, champion, load, folder, interval, log)
        log(
            f"serving {name} v{first.version} ({first.digest[:12]}) on "
            f"http://{host}:{server.server_port}, following its champion every {interval:g}s"
        )
        follower.start()
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass  # how SIGINT and SIGTERM stop it
        finally:
            signal.signal(signal.SIGTERM, previous)
            follower.stopping.set()
            server.server_close()
            follower.join(timeout=STOP_WAIT)
    log(f"stopped serving {name}")
