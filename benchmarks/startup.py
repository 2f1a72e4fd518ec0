"""`promote --help` start-up against `mlflow --help`, both as fresh processes.

The CLI imports MLflow, SQLAlchemy and the library modules inside its commands, never at
start-up; this shows what that buys. Each command runs several times; the best run counts
(the least disturbed by whatever else the machine is doing), the median is shown too.

    python benchmarks/startup.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from figures import Table, as_installed, seconds, timed

TARGET_SECONDS = 0.2
TARGET_RATIO = 10.0


def wall_times(command: list[str], runs: int) -> list[float]:
    def run() -> None:
        subprocess.run(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            env=as_installed(),
        )

    run()  # warm the file cache: both commands are measured warm
    return [timed(run)[1] for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    runs = 5 if parser.parse_args().quick else 15
    python = sys.executable
    interpreter = wall_times([python, "-c", "pass"], runs)
    promote = wall_times([python, "-m", "promote", "--help"], runs)
    mlflow = wall_times([python, "-m", "mlflow", "--help"], max(3, runs // 3))
    best, baseline = min(promote), min(mlflow)

    table = Table(f"start-up, best of {runs} (median in brackets)")
    table.add(
        "python -c pass (the floor)",
        f"{seconds(min(interpreter))} ({seconds(statistics.median(interpreter))})",
    )
    table.add(
        "promote --help",
        f"{seconds(best)} ({seconds(statistics.median(promote))})",
        f"{seconds(baseline)} ({seconds(statistics.median(mlflow))}) mlflow --help",
        f"{baseline / best:.1f}x faster",
        f"<= {TARGET_SECONDS} s and >= {TARGET_RATIO:.0f}x",
        best <= TARGET_SECONDS and baseline / best >= TARGET_RATIO,
    )
    table.print()


if __name__ == "__main__":
    main()
