"""Work on many items at once, up to a bound: `promote apply --jobs`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def bounded(
    items: Sequence[Item],
    work: Callable[[Item], Result],
    bound: int,
    on_done: Callable[[Result], None],
) -> list[Result]:
    """`work` on every item, at most `bound` at a time (threads: the work waits on trainings
    and the registry, not on this process's CPU); each result is passed to `on_done` as it
    ends, and all are returned in the order of `items`."""
    with ThreadPoolExecutor(max_workers=max(1, bound), thread_name_prefix="promote-job") as pool:
        futures = [pool.submit(work, item) for item in items]
        for future in as_completed(futures):
            on_done(future.result())
        return [future.result() for future in futures]
