"""The installed distribution, as a team installs it: a wheel, not this checkout."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from promote import DISTRIBUTION, __version__

ROOT = Path(__file__).resolve().parents[1]


def test_the_distribution_installs_under_its_own_name_with_the_promote_command() -> None:
    distribution = metadata.distribution(DISTRIBUTION)
    assert distribution.version == __version__
    [script] = [e for e in distribution.entry_points if e.group == "console_scripts"]
    assert (script.name, script.value) == ("promote", "promote.cli:app")


def test_the_installed_wheel_runs_the_quickstart_outside_the_checkout(tmp_path: Path) -> None:
    """Run from elsewhere, `promote` imports the installed package: its templates, example
    model and entry point must all have been packaged (an editable install would not tell)."""
    command = Path(sys.executable).parent / "promote"
    where = subprocess.run(
        [sys.executable, "-c", "import promote; print(promote.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    installed = Path(where.stdout.strip()).resolve()
    assert installed.parent != ROOT / "promote", f"{installed}: install the wheel, not -e"
    assert "site-packages" in installed.parts
    completed = subprocess.run(
        [str(command), "quickstart", str(tmp_path / "demo")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "prod     churn    in sync  champion v1" in completed.stdout
