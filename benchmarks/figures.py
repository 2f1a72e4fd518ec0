"""What every benchmark script shares: timing, and one table of figures against targets.

The scripts are reports, not tests: they print what they measured, the baseline measured in
the same run, the ratio and PASS/FAIL against the target of issue 5, and exit 0.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


def as_installed() -> dict[str, str]:
    """The environment for `promote` subprocesses: Python's bytecode cache on, as for a user.

    pip compiles an installed package's modules; with an editable install and
    PYTHONDONTWRITEBYTECODE (set on this machine) every run would compile them all again.
    """
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(function: Callable[[], T]) -> tuple[T, float]:
    """The result of one call and its wall time in seconds."""
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def best_of(repeat: int, function: Callable[[], object]) -> float:
    """The fastest of `repeat` calls, in seconds: the figure least disturbed by the machine."""
    return min(timed(function)[1] for _ in range(repeat))


def seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


@dataclass
class Row:
    what: str
    measured: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    passed: bool | None = None

    @property
    def verdict(self) -> str:
        return "" if self.passed is None else "PASS" if self.passed else "FAIL"


class Table:
    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[Row] = []

    def add(
        self,
        what: str,
        measured: str,
        baseline: str = "",
        ratio: str = "",
        target: str = "",
        passed: bool | None = None,
    ) -> None:
        self.rows.append(Row(what, measured, baseline, ratio, target, passed))

    def print(self) -> None:
        headers = ("measurement", "measured", "baseline", "ratio", "target", "verdict")
        cells = [headers] + [
            (r.what, r.measured, r.baseline, r.ratio, r.target, r.verdict) for r in self.rows
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        load = os.getloadavg()[0]
        print(f"\n{self.title}  [load average {load:.1f} on {os.cpu_count()} cores]")
        for index, row in enumerate(cells):
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
            if index == 0:
                print("  ".join("-" * w for w in widths))
