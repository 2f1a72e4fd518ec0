"""Work done on another core while this process goes on: in a forked copy of the process.

Threads would not do: the work handed off here (listing 30,000 files) and what this process does
meanwhile (reading 500,000 registry rows) both hold Python's lock between system calls, and two
threads taking turns ran slower than one after the other. A fork starts with everything already
loaded, computes, and sends its result back pickled through a pipe: fit for work whose result
is small beside its cost. Where there is no fork, or threads run (a child would inherit their
locks, held), the work is done on the spot.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Result = TypeVar("Result")


class Background(Generic[Result]):
    """`work()` started now; `result()` returns what it returned or raises what it raised.
    `fork=False`: done on the spot (too little to be worth a process)."""

    def __init__(self, work: Callable[[], Result], fork: bool = True) -> None:
        self._pid: int | None = None
        self._reader: int | None = None
        self._outcome: tuple[bool, object] | None = None
        if not fork or not hasattr(os, "fork") or threading.active_count() > 1:
            self._outcome = _outcome_of(work)
            return
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the copy: compute, send, and leave without running the parent's exit
            os.close(reader)
            code = 0
            try:
                payload = pickle.dumps(_outcome_of(work))
                with os.fdopen(writer, "wb") as pipe:
                    pipe.write(payload)
            except BaseException:  # whatever happens, the copy must not go on as the parent
                code = 1
            os._exit(code)
        os.close(writer)
        self._pid, self._reader = pid, reader

    def result(self) -> Result:
        if self._outcome is None:
            self._outcome = self._receive()
        succeeded, value = self._outcome
        if not succeeded:
            assert isinstance(value, BaseException)
            raise value
        return value  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the copy if its result is not wanted any more (an error came first)."""
        if self._pid is not None and self._outcome is None:
            self._outcome = (False, RuntimeError("the background work was stopped"))
            self._stop()

    def _receive(self) -> tuple[bool, object]:
        assert self._reader is not None
        try:
            with os.fdopen(self._reader, "rb") as pipe:
                payload = pipe.read()
        finally:
            self._reader = None
            self._stop()
        if not payload:
            raise RuntimeError("the background work ended without a result")
        outcome: tuple[bool, object] = pickle.loads(payload)  # our own copy wrote it
        return outcome

    def _stop(self) -> None:
        assert self._pid is not None
        if self._reader is not None:
            os.close(self._reader)
            self._reader = None
        # Ended (its pipe was read to the end), or killed: never left behind, never a zombie.
        if os.waitpid(self._pid, os.WNOHANG)[0] == 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
        self._pid = None


def _outcome_of(work: Callable[[], Result]) -> tuple[bool, object]:
    try:
        return True, work()
    except Exception as exc:  # raised again where the result is asked for
        return False, exc
