"""A webhook receiver on loopback that checks promote's signature as the README tells receivers
to: HMAC-SHA256 of the exact body bytes under the shared secret, compared in constant time, then
the signed timestamp's age and the delivery id against replays. Written from the README, not
from promote's code: a receiver that imported promote would agree with any bug in it."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPLAY_WINDOW_SECONDS = 300


@dataclass
class Receiver:
    secret: bytes
    port: int
    accepted: list[dict[str, Any]] = field(default_factory=list)
    # (status answered, why) of every request refused.
    refused: list[tuple[int, str]] = field(default_factory=list)
    # Answer this status to the next `failures` requests (an overloaded service).
    failures: int = 0
    failure_status: int = 503
    retry_after: str | None = None
    _seen: set[str] = field(default_factory=set)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _timer: threading.Timer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/promote"

    def check(self, body: bytes, headers: Any) -> tuple[int, str]:
        """The documented receiver check: 204 for a genuine, fresh, first delivery."""
        signature = headers.get("X-Promote-Signature-256") or ""
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            return 401, "bad signature"
        payload = json.loads(body)
        if abs(time.time() - payload["timestamp"]) > REPLAY_WINDOW_SECONDS:
            return 400, "stale timestamp"
        if payload["delivery"] in self._seen:
            return 409, "replayed delivery"
        self._seen.add(payload["delivery"])
        self.accepted.append(payload)
        return 204, "accepted"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    if receiver.failures > 0:
                        receiver.failures -= 1
                        status, why = receiver.failure_status, "overloaded"
                    else:
                        status, why = receiver.check(body, self.headers)
                    if status >= 300:
                        receiver.refused.append((status, why))
                self.send_response(status)
                if status == receiver.failure_status and receiver.retry_after:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def start_after(self, seconds: float) -> None:
        """Down now, listening in `seconds`: a service being restarted."""
        self._timer = threading.Timer(seconds, self.start)
        self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join(timeout=5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
