"""Local servers and subprocesses: a free loopback port, environment variables for a block."""

from __future__ import annotations

import os
import socket


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Environ:
    """Set (or, given None, unset) environment variables for a block, then restore them.

    For module-scoped fixtures, where `monkeypatch` is not available; training subprocesses
    inherit what is set here.
    """

    def __init__(self, values: dict[str, str | None]) -> None:
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        self.saved = {name: os.environ.get(name) for name in self.values}
        self._set(self.values)

    def __exit__(self, *exc: object) -> None:
        self._set(self.saved)

    @staticmethod
    def _set(values: dict[str, str | None]) -> None:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
