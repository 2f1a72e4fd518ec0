"""`promote status` and `plan` with 1 % of models pending, on sqlite and over REST.

The registry of benchmarks/state_scale.py (N models x 3 environments, champions built from
their manifests, 1 % of prod champions moved by hand), in a real git repository whose manifests
pin a real commit; then 1 % of prod manifests change their params, so their rebuilds are
pending. Measured in the same run:

- sqlite read directly: status and plan with nothing pending and with 1 % pending (target:
  pending costs at most 1.2x);
- an `mlflow server` on the same database, over HTTP: status and plan against the best a user
  can do with MLflow's client alone (every registered model and every version, paged at the
  server's largest pages), in wall time and HTTP requests (target: <= 1.0x, requests growing
  with pages, not with models or pending builds). The server runs `--server-workers` worker
  processes (2 by default; MLflow's own default is 4): with one, both sides wait on the same
  single process, whatever the client does.

    python benchmarks/registry_rest.py [--models 10000] [--no-rest] [--server-workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import state_scale
from figures import Table, as_installed, seconds, timed

from promote.build import git
from promote.manifests.loader import load_repository
from promote.plan import Action, compute
from promote.registry import paged
from promote.registry.client import Registry

PENDING_EVERY = 100  # every 100th prod manifest asks for a rebuild
PENDING_OFFSET = 50  # ... not the ones whose champion was moved by hand
PENDING_RATIO_TARGET = 1.2
REST_RATIO_TARGET = 1.0
T = TypeVar("T")


def build(root: Path, models: int, template: Path) -> Path:
    """The repository (code and manifests committed) and its filled sqlite registry."""
    for index in range(models):
        script = root / "models" / state_scale.model_name(index) / "train.py"
        script.parent.mkdir(parents=True)
        script.write_text("print('train')\n")
    state_scale.COMMIT = git.init_repository(root, "main", "Model code")
    state_scale.write_repository(root, models)
    git.commit_all(root, "Manifests")
    database = root / ".promote" / "registry.db"
    database.parent.mkdir(parents=True)
    shutil.copyfile(template, database)
    state_scale.fill_registry(database, load_repository(root))
    return database


def ask_for_rebuilds(root: Path, models: int) -> int:
    """Change the params of every PENDING_EVERY-th prod manifest; how many changed."""
    changed = 0
    for index in range(PENDING_OFFSET, models, PENDING_EVERY):
        path = root / "environments" / "prod" / f"{state_scale.model_name(index)}.yaml"
        path.write_text(path.read_text().replace("C: 0.5", "C: 0.7"))
        changed += 1
    git.commit_all(root, "Retune 1 % of prod")
    return changed


def cli(root: Path, uri: str, command: str, *options: str) -> float:
    """The best of three runs of `promote COMMAND [OPTIONS]` in a subprocess, as a user runs it."""

    def run() -> None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "promote",
                "--repo",
                str(root),
                "--registry",
                uri,
                command,
                *options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            env=as_installed(),
        )

    return min(timed(run)[1] for _ in range(3))


@contextmanager
def counted_requests() -> Iterator[list[str]]:
    """Every HTTP request MLflow's client sends meanwhile, by method and path."""
    import requests

    sent: list[str] = []
    original = requests.Session.request

    def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(f"{method} {url.split('/api/', 1)[-1]}")
        return original(self, method, url, *args, **kwargs)

    requests.Session.request = request  # type: ignore[method-assign,assignment]
    try:
        yield sent
    finally:
        requests.Session.request = original  # type: ignore[method-assign]


def in_process(function: Callable[[], T]) -> tuple[T, float, list[str]]:
    with counted_requests() as sent:
        result, wall = timed(function)
    return result, wall, list(sent)


def raw_client_read(uri: str) -> int:
    """What a user's best client-only read is: every model, then every version, paged."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    listed = 0
    for search, size in (
        (client.search_registered_models, paged.MODELS_PER_PAGE),
        (client.search_model_versions, paged.VERSIONS_PER_PAGE),
    ):
        token = None
        while True:
            page = search(max_results=size, page_token=token)
            listed += len(page)
            token = page.token
            if not token:
                break
    return listed


def tests_support() -> None:
    """Make the tests' helpers (tests/support: servers on loopback) importable as `support`."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))


@contextmanager
def mlflow_server(backend_store_uri: str, work: Path, workers: int = 2) -> Iterator[str]:
    """The tests' `mlflow server` on loopback, over this registry's database."""
    tests_support()
    from support import mlflow_server as servers

    servers.STARTUP_SECONDS = 600  # a loaded machine starts it slowly; the figures are ratios
    server = servers.PlainMlflowServer(work, backend_store_uri, workers)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def allowed(raw_sent: list[str], what: str) -> int:
    """The requests status may send: the client's pages, plus one first page per environment
    (each is read apart, side by side), plus, with builds pending, one experiment look-up and
    one page of unregistered runs for prod, the one environment with builds pending: a number
    of environments, never of models or builds."""
    pending = 2 if what == "1 % pending" else 0
    return len(raw_sent) + len(state_scale.ENVIRONMENTS) + pending


def measure(models: int, work: Path, rest: bool, workers: int) -> None:
    template = state_scale.template_registry(work)
    steady, pending_root = work / "steady", work / "pending"
    database = build(steady, models, template)
    shutil.copytree(steady, pending_root, symlinks=True)
    changed = ask_for_rebuilds(pending_root, models)
    uri = f"sqlite:///{database}"  # one registry, two checkouts: with and without pending
    count = f"{models:,} x 3 models, {changed} prod rebuilds pending"

    states = compute(load_repository(pending_root), Registry(uri, work / "artifacts"))
    pending = [s for s in states if s.action == Action.BUILD]
    assert len(pending) == changed, [
        (s.registered_name, s.action, s.detail) for s in states if s.action != Action.NONE
    ][:5]

    table = Table(f"pending builds and REST: {count}")
    for command in ("status", "plan"):
        quiet, busy = cli(steady, uri, command), cli(pending_root, uri, command)
        ratio = busy / quiet
        table.add(
            f"promote {command}, sqlite, 1 % pending",
            seconds(busy),
            f"{seconds(quiet)} nothing pending",
            f"{ratio:.2f}x",
            f"<= {PENDING_RATIO_TARGET}x",
            ratio <= PENDING_RATIO_TARGET,
        )
    if rest:
        with mlflow_server(f"sqlite:///{database}", work, workers) as server:
            raw_client_read(server)  # warm the server's caches as the others will find them
            listed, raw_time, raw_sent = in_process(lambda: raw_client_read(server))
            table.add(
                "MLflow client alone: every model and version, paged",
                seconds(raw_time),
                f"{len(raw_sent)} requests, {listed:,} items",
            )
            for root, what in ((steady, "nothing pending"), (pending_root, "1 % pending")):
                _, wall, sent = in_process(
                    lambda root=root: compute(  # type: ignore[misc]
                        load_repository(root), Registry(server, work / "artifacts")
                    )
                )
                table.add(
                    f"status over REST, {what} (library)",
                    seconds(wall),
                    f"{len(sent)} requests vs {len(raw_sent)}",
                    f"{wall / raw_time:.2f}x",
                    f"<= {REST_RATIO_TARGET}x the client alone",
                    wall <= raw_time * REST_RATIO_TARGET and len(sent) <= allowed(raw_sent, what),
                )
                print(f"{what}: {sorted(set(sent))}")
            for command in ("status", "plan"):
                wall = cli(pending_root, server, command)
                table.add(
                    f"promote {command} over REST, 1 % pending (CLI)",
                    seconds(wall),
                    seconds(raw_time),
                    f"{wall / raw_time:.2f}x",
                    f"<= {REST_RATIO_TARGET}x the client alone",
                    wall <= raw_time * REST_RATIO_TARGET,
                )
    table.print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="1,000 models x 3")
    parser.add_argument("--no-rest", action="store_true", help="sqlite only")
    parser.add_argument(
        "--server-workers",
        type=int,
        default=2,
        help="the mlflow server's worker processes (MLflow's own default is 4)",
    )
    options = parser.parse_args()
    if options.quick:
        options.models = 1_000
    os.environ["MLFLOW_SQLALCHEMYSTORE_POOLCLASS"] = "NullPool"
    work = Path(tempfile.mkdtemp(prefix="promote-bench-rest-"))
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    try:
        measure(options.models, work, not options.no_rest, options.server_workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
