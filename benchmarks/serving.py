"""`promote serve` against `mlflow models serve` of the same champion, under the same load.

A sandbox's staging champion (the quickstart's churn model, built and verified by `promote
apply`) is served twice at once, each in its own process on loopback:

- `mlflow models serve -m models:/staging.churn@champion --env-manager local --workers 1`:
  MLflow's scoring server, a FastAPI app under uvicorn, one worker process, each request
  scored in a thread of asyncio's default pool;
- `promote serve churn --env staging`: one process, a thread per connection, following the
  champion.

One worker process each, so the comparison is like for like. The same client load is sent to
each in turn, rounds alternating so a busy machine disturbs both alike: CLIENTS threads, each
on its own kept-alive connection, POST the same `/invocations` body (ROWS rows in MLflow's
`dataframe_split` JSON) back to back; the first WARMUP seconds of every round are not counted.
Figures: requests per second (target: promote >= 0.95x MLflow) and the 99th percentile of the
latency the client saw (target: promote <= 1.1x MLflow).

    python benchmarks/serving.py [--clients 8] [--rows 10] [--seconds 10 | --quick] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from champion import (
    CHAMPION_URI,
    ENVIRONMENT,
    feature_rows,
    mlflow_environ,
    promoted_sandbox,
)
from figures import Table, as_installed, seconds
from support.processes import free_port
from support.serving import FEATURES, ScoringServer, ServerProcess
from support.world import World

RPS_TARGET = 0.95
P99_TARGET = 1.1


@dataclass
class Load:
    """What the clients saw of one server: every counted request's latency, and the seconds
    they were counted over."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, rank: float) -> float:
        return float(np.percentile(self.latencies, rank))


def hammer(server: ServerProcess, body: bytes, clients: int, warmup: float, span: float) -> Load:
    """CLIENTS connections posting `body` back to back for WARMUP + SPAN seconds; the
    latencies of the requests started after the warm-up."""
    counted_from = time.perf_counter() + warmup
    until = counted_from + span
    load = Load()
    failures: list[str] = []

    def client() -> None:
        connection = server.connection()
        try:
            while (start := time.perf_counter()) < until:
                connection.request(
                    "POST",
                    "/invocations",
                    body=body,
                    headers={"Content-Type": "application/json"},
                )
                answer = connection.getresponse()
                answer.read()
                if answer.status != 200:
                    failures.append(f"HTTP {answer.status}")
                    return
                if start >= counted_from:
                    load.latencies.append(time.perf_counter() - start)
        except OSError as exc:
            failures.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Counted until the last request counted ended, not until `until`: no idle tail.
    load.seconds = time.perf_counter() - counted_from
    assert not failures, f"port {server.port}: {failures[0]}\n{server.log()}"
    return load


def predictions(server: ServerProcess, body: bytes) -> list[object]:
    connection = server.connection()
    try:
        connection.request(
            "POST", "/invocations", body=body, headers={"Content-Type": "application/json"}
        )
        answer = connection.getresponse()
        assert answer.status == 200, server.log()
        return list(json.loads(answer.read())["predictions"])
    finally:
        connection.close()


def mlflow_models_serve(world: World, cwd: Path) -> ServerProcess:
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", CHAMPION_URI]
    command += ["--env-manager", "local", "--workers", "1", "-h", "127.0.0.1", "-p", str(port)]
    return ServerProcess(command, cwd, port, mlflow_environ(world))


def measure(table: Table, work: Path, options: argparse.Namespace) -> None:
    world = promoted_sandbox(work)
    rows = feature_rows(options.rows)
    body = json.dumps(
        {"dataframe_split": {"columns": FEATURES, "data": rows.values.tolist()}}
    ).encode()
    servers = {
        "promote": ScoringServer(world.repo, ENVIRONMENT, env=as_installed()),
        "mlflow": mlflow_models_serve(world, world.repo),
    }
    try:
        for server in servers.values():
            server.wait_ready()
        assert predictions(servers["promote"], body) == predictions(servers["mlflow"], body)
        loads = {name: Load() for name in servers}
        for round_number in range(options.rounds):
            order = list(servers) if round_number % 2 == 0 else list(servers)[::-1]
            for name in order:
                found = hammer(
                    servers[name], body, options.clients, options.warmup, options.seconds
                )
                loads[name].latencies += found.latencies
                loads[name].seconds += found.seconds
    finally:
        for server in servers.values():
            server.stop()
    promote, mlflow = loads["promote"], loads["mlflow"]
    load = f"{options.clients} clients, {options.rows} rows a request"
    ratio = promote.per_second / mlflow.per_second
    table.add(
        f"requests/s ({load})",
        f"{promote.per_second:,.1f}",
        f"{mlflow.per_second:,.1f}",
        f"{ratio:.2f}x",
        f">= {RPS_TARGET}x",
        ratio >= RPS_TARGET,
    )
    for rank, target in ((50, None), (99, P99_TARGET)):
        mine, theirs = promote.percentile(rank), mlflow.percentile(rank)
        table.add(
            f"p{rank} latency",
            seconds(mine),
            seconds(theirs),
            f"{mine / theirs:.2f}x",
            "" if target is None else f"<= {target}x",
            None if target is None else mine / theirs <= target,
        )
    table.add("requests counted", f"{len(promote.latencies):,}", f"{len(mlflow.latencies):,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    parser.add_argument("--rows", type=int, default=10, help="rows in each request")
    parser.add_argument("--seconds", type=float, default=10.0, help="counted seconds a round")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds a round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each server in turn")
    parser.add_argument("--quick", action="store_true", help="rounds of 4 counted seconds")
    options = parser.parse_args()
    if options.quick:
        options.seconds = 4.0
    table = Table("promote serve against mlflow models serve, one worker process each")
    work = Path(tempfile.mkdtemp(prefix="promote-bench-serve-"))
    try:
        measure(table, work, options)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table.print()


if __name__ == "__main__":
    main()
