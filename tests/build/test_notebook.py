"""Notebook entrypoints: refused with outputs, run as their code cells once stripped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.world import MODEL, World

from promote.build import notebook


def document(*cells: dict[str, object]) -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": list(cells)})


def code(source: str, outputs: list[object] | None = None, count: int | None = None) -> dict:
    return {
        "cell_type": "code",
        "source": source.splitlines(keepends=True),
        "outputs": outputs or [],
        "execution_count": count,
        "metadata": {},
    }


def test_a_notebook_with_outputs_is_refused_naming_the_cells() -> None:
    text = document(
        code("x = 1"),
        {"cell_type": "markdown", "source": "# notes", "metadata": {}},
        code("print(x)", outputs=[{"output_type": "stream", "text": "1\n"}], count=2),
        code("y = 2", count=3),
    )
    problem = notebook.unstripped(text)
    assert problem is not None and "outputs in cell 3, 4" in problem and "nbstripout" in problem


def test_a_stripped_notebook_passes_and_runs_as_its_code_cells(tmp_path: Path) -> None:
    text = document(
        code("%matplotlib inline\nvalues = [1, 2]"),
        {"cell_type": "markdown", "source": ["raise SystemExit('markdown ran')"], "metadata": {}},
        code("!pip install nothing\nprint(sum(values))"),
    )
    assert notebook.unstripped(text) is None
    script = tmp_path / "script.py"
    script.write_text(notebook.as_script(text))
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert (completed.returncode, completed.stdout) == (0, "3\n")


def test_something_that_is_not_a_notebook_is_refused() -> None:
    assert notebook.unstripped("{not json") == "is not a readable notebook (JSONDecodeError)"
    assert notebook.unstripped('{"cells": 3}') == "is not a readable notebook (ValueError)"
    assert notebook.is_notebook("models/churn/train.ipynb")
    assert not notebook.is_notebook("models/churn/train.py")


def test_a_notebook_trains_in_dev_but_is_not_promoted_with_its_outputs(world: World) -> None:
    script = (world.repo / "models" / MODEL / "train.py").read_text()
    ran = [{"output_type": "stream", "name": "stdout", "text": "roc_auc 0.91\n"}]
    (world.repo / "models" / MODEL / "train.ipynb").write_text(
        document(code(script, outputs=ran, count=1))
    )
    world.edit_yaml(
        f"environments/dev/{MODEL}.yaml",
        lambda body: body["code"].update(entrypoint=f"models/{MODEL}/train.ipynb"),
    )
    world.train_dev()  # the notebook ran, as its code cells
    world.propose_and_merge("staging")
    before = world.snapshot()
    planned = world.cli("plan", "--env", "staging")
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert (
        f"environments/staging/{MODEL}.yaml: code.entrypoint: models/{MODEL}/train.ipynb "
        "is a notebook with outputs in cell 1: strip them"
    ) in planned.stdout
    assert world.cli("apply", "--env", "staging").returncode == 2
    assert world.snapshot() == before
