"""Background work: done in a forked copy where that is safe, its result or error handed back,
the copy never left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest

from promote.runtime.forked import Background


def _run(script: str) -> str:
    """`script` in a fresh interpreter: a process with no other thread, as the CLI is."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_work_runs_in_another_process_and_its_result_comes_back() -> None:
    out = _run(
        """
        import os
        from promote.runtime.forked import Background
        work = Background(lambda: (os.getpid(), {"a": [1, 2], "b": "x" * 100_000}))
        pid, value = work.result()
        print(pid != os.getpid(), value == {"a": [1, 2], "b": "x" * 100_000})
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            print("reaped")
        """
    )
    assert out.split() == ["True", "True", "reaped"]


def test_an_error_in_the_copy_is_raised_where_the_result_is_asked() -> None:
    out = _run(
        """
        from promote.errors import ExternalError
        from promote.runtime.forked import Background
        def work():
            raise ExternalError("cannot list s3://bucket/data: denied")
        pending = Background(work)
        try:
            pending.result()
        except ExternalError as exc:
            print(type(exc).__name__, exc.message)
        """
    )
    assert out == "ExternalError cannot list s3://bucket/data: denied"


def test_a_copy_that_dies_gives_an_error_not_a_hang() -> None:
    out = _run(
        """
        import os
        from promote.runtime.forked import Background
        pending = Background(lambda: os._exit(3))
        try:
            pending.result()
        except RuntimeError as exc:
            print(exc)
        """
    )
    assert out == "the background work ended without a result"


def test_closed_before_its_result_the_copy_is_stopped_and_reaped() -> None:
    out = _run(
        """
        import os, time
        from promote.runtime.forked import Background
        pending = Background(lambda: time.sleep(60))
        started = time.monotonic()
        pending.close()
        print(time.monotonic() - started < 10)
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            print("reaped")
        try:
            pending.result()
        except RuntimeError as exc:
            print(exc)
        """
    )
    assert out.splitlines() == ["True", "reaped", "the background work was stopped"]


def test_with_threads_running_the_work_is_done_on_the_spot() -> None:
    # A fork would copy only this thread, and with it any lock another thread holds.
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert Background(os.getpid).result() == os.getpid()
    finally:
        stop.set()
        other.join()
    with pytest.raises(KeyError):
        Background(lambda: {}["missing"], fork=False).result()
