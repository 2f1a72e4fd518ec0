"""The MLflow UI as a team sees it: a real `mlflow server` over a promoted sandbox's registry,
its model version page rendered by headless Chromium (Debian's package; `.ci/run` installs it).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.mlflow_server import PlainMlflowServer
from support.world import MODEL, World

from promote.registry.client import run_name

# The React app fetches and renders in virtual time: no wall-clock wait on a slow machine.
RENDER_BUDGET_MS = 30_000


@pytest.fixture
def ui(promoted: World, tmp_path: Path) -> Iterator[PlainMlflowServer]:
    server = PlainMlflowServer(tmp_path / "server", promoted.registry.tracking_uri)
    server.folder.mkdir()
    server.start()
    yield server
    server.stop()


def _rendered(url: str, profile: Path) -> str:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed: apt-get install -y chromium (.ci/run does)"
    completed = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={RENDER_BUDGET_MS}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return completed.stdout


def _text(dom: str) -> str:
    """What a reader sees: the page without scripts, styles and tags, spaces collapsed."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


def test_the_version_page_shows_what_promote_did_and_links_the_run(
    promoted: World, ui: PlainMlflowServer, tmp_path: Path
) -> None:
    name = f"prod.{MODEL}"
    version = promoted.registry.model(name)
    assert version is not None and version.champion is not None
    lineage = promoted.registry.lineage(version.champion.run_id)
    experiment = promoted.registry.client.get_run(lineage.run_id).info.experiment_id

    dom = _rendered(f"{ui.url}/#/models/{name}/versions/1", tmp_path / "chromium")

    text = _text(dom)
    assert "Passed: champion (was none)." in text
    assert f"rebuilt from staging.{MODEL}/1, at commit {lineage.code_commit[:12]}" in text
    assert "Gates : metric accuracy: pass (" in text and " metric roc_auc: pass (" in text
    assert f"Lineage : matches staging.{MODEL}/1: same code, params, libraries" in text
    link = re.search(rf'href="#/experiments/{experiment}/runs/{lineage.run_id}[^"]*">([^<]+)<', dom)
    assert link is not None, "no link to the run"
    assert link.group(1) == run_name(lineage) == f"prod.{MODEL}@{lineage.code_commit[:8]}"


def test_runs_are_named_sourced_and_hold_their_data_and_their_logged_model(
    promoted: World,
) -> None:
    from mlflow.utils.mlflow_tags import (
        MLFLOW_GIT_COMMIT,
        MLFLOW_MODEL_VERSIONS,
        MLFLOW_SOURCE_NAME,
    )

    registry = promoted.registry
    champion = registry.model(f"prod.{MODEL}")
    assert champion is not None and champion.champion is not None
    lineage = registry.lineage(champion.champion.run_id)
    run = registry.client.get_run(lineage.run_id)
    assert run.info.run_name == f"prod.{MODEL}@{lineage.code_commit[:8]}"
    assert run.data.tags[MLFLOW_GIT_COMMIT] == lineage.code_commit
    assert run.data.tags[MLFLOW_SOURCE_NAME] == f"models/{MODEL}/train.py"
    datasets = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert sorted(datasets) == ["test.csv", "train.csv"]
    for entry in lineage.data_snapshot:
        assert entry.sha256.startswith(datasets[entry.path].digest)
        assert json.loads(datasets[entry.path].source)["sha256"] == entry.sha256
    logged = registry.logged_model(lineage.run_id)
    model = registry.client.get_logged_model(logged.model_id)
    assert model.name == MODEL and model.source_run_id == lineage.run_id
    assert {m.key for m in model.metrics or []} == set(lineage.metrics)
    assert json.loads(model.tags[MLFLOW_MODEL_VERSIONS]) == [
        {"name": f"prod.{MODEL}", "version": "1"}
    ]
    assert champion.champion.source == logged.artifact_uri
