"""The code base stays typed and lint-clean: the same checks a reviewer would run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_finds_nothing() -> None:
    lint = _run("ruff", "check", "promote", "tests", "benchmarks")
    assert lint.returncode == 0, lint.stdout
    formatting = _run("ruff", "format", "--check", "promote", "tests", "benchmarks")
    assert formatting.returncode == 0, formatting.stdout


def test_mypy_is_clean_on_the_package() -> None:
    typed = _run("mypy")
    assert typed.returncode == 0, typed.stdout
