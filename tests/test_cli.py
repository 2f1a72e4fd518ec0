"""The command line: fast start, schemas, and the quickstart as a new user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from promote.cli import app

PROBE = """
import sys
from promote.cli import app
try:
    app({args!r}, prog_name="promote")
except SystemExit as exit:
    code = exit.code
print("EXIT", code, "MLFLOW", "mlflow" in sys.modules, "PANDAS", "pandas" in sys.modules)
"""


def _probe(args: list[str], cwd: Path) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.strip().splitlines()[-1]


def test_help_and_plan_on_an_empty_repository_import_no_mlflow(tmp_path: Path) -> None:
    assert _probe(["--help"], tmp_path) == "EXIT 0 MLFLOW False PANDAS False"
    assert _probe(["plan"], tmp_path) == "EXIT 0 MLFLOW False PANDAS False"
    assert not (tmp_path / ".promote").exists()


def test_schemas_are_exported_as_json_schema(tmp_path: Path) -> None:
    for kind, required in (("manifest", {"model", "code", "data"}), ("environment", {"name"})):
        completed = subprocess.run(
            [sys.executable, "-m", "promote", "schema", kind, "--json"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        schema = json.loads(completed.stdout)
        assert required <= set(schema["required"])
        assert schema["additionalProperties"] is False
    unknown = subprocess.run(
        [sys.executable, "-m", "promote", "schema", "pipeline"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert unknown.returncode == 2 and "unknown kind" in unknown.stderr


def _readme_environment_example() -> str:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    after = readme.split("A complete prod `environment.yaml`", 1)[1]
    return after.split("```yaml\n", 1)[1].split("```", 1)[0]


def _dotted_keys(node: object, prefix: str = "") -> set[str]:
    """Every key of a YAML mapping by dotted path; the keys of user-named maps as `*`."""
    if not isinstance(node, dict):
        return set()
    keys = set()
    for key, value in node.items():
        named = prefix.rstrip(".") in {"gates.metrics", "drift.features", "drift.concept.metrics"}
        path = prefix + ("*" if named else key)
        keys |= {path} | _dotted_keys(value, f"{path}.")
    return keys


def test_the_readme_environment_example_is_valid_and_schema_lists_its_every_field() -> None:
    from promote.manifests.schema import EnvironmentConfig, parse, parse_yaml
    from promote.proof.trust import Trust

    example = _readme_environment_example()
    config = parse(EnvironmentConfig, parse_yaml(example, "README.md"), "README.md")
    Trust.of(config, "README.md")  # its public key is a real one
    listed = CliRunner().invoke(app, ["schema", "environment"])
    assert listed.exit_code == 0
    paths = {line.split()[0] for line in listed.stdout.splitlines()[1:]}
    # A map of plain values (per-metric tolerances) is listed once, by its own path.
    missing = {
        key
        for key in _dotted_keys(yaml.safe_load(example))
        if key not in paths and not (key.endswith(".*") and key[:-2] in paths)
    }
    assert not missing, missing
    assert "lineage match compares the version" in listed.stdout  # meanings, not only names


def test_every_command_that_prints_data_can_print_json() -> None:
    import typer.main

    # These print prose or markdown (report's data is `plan --json`) or run a server.
    narrative = {"quickstart", "report", "serve"}
    group = typer.main.get_group(app)
    missing = [
        name
        for name, command in group.commands.items()
        if name not in narrative and not any("--json" in p.opts for p in command.params)
    ]
    assert not missing


def test_quickstart_runs_the_whole_story(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    completed = subprocess.run(
        [sys.executable, "-m", "promote", "quickstart", str(target)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,  # a hang guard, not a performance target
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    for step in (
        "2. promote train churn --env dev",
        "3. promote model churn --to staging",
        "4. promote apply --env staging",
        "6. promote apply --env prod",
        "prod.churn: rebuilding models/churn/train.py",
        "prod.churn: lineage match",
        "7. promote status",
    ):
        assert step in out, step
    for environment in ("dev", "staging", "prod"):
        assert f"   {environment:8} churn    in sync  champion v1" in out
    status = subprocess.run(
        [sys.executable, "-m", "promote", "status", "--json"],
        cwd=target / "repo",
        capture_output=True,
        text=True,
        check=True,
    )
    assert [s["status"] for s in json.loads(status.stdout)] == ["in sync"] * 3
    again = subprocess.run(
        [sys.executable, "-m", "promote", "quickstart", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 2
    assert again.stderr.strip() == f"error: {target}: exists and is not empty: choose a new folder"


def _promote(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promote", *args], cwd=cwd, capture_output=True, text=True
    )


def test_version_is_the_package_version(tmp_path: Path) -> None:
    from promote import __version__

    completed = _promote("--version", cwd=tmp_path)
    assert completed.returncode == 0
    assert completed.stdout.strip() == f"promote {__version__}"


def test_an_unexpected_error_is_one_line_with_its_own_exit_code(tmp_path: Path) -> None:
    """A registry URI MLflow has no store for fails inside MLflow, not as a promote error."""
    for name, lines in {"dev": "", "prod": "promotes_from: dev\n"}.items():
        folder = tmp_path / "environments" / name
        folder.mkdir(parents=True)
        (folder / "environment.yaml").write_text(f"name: {name}\n{lines}data_root: data\n")
    args = ("--registry", "bogus://nowhere", "status")
    completed = _promote(*args, cwd=tmp_path)
    assert completed.returncode == 70, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: internal error (")
    assert lines[0].endswith("run with --traceback for details")
    traced = _promote("--traceback", *args, cwd=tmp_path)
    assert traced.returncode != 0 and "Traceback (most recent call last)" in traced.stderr


def test_with_json_a_failure_is_json_on_stdout_too(tmp_path: Path) -> None:
    """A script reading --json output gets the error as data, not an empty stdout."""
    folder = tmp_path / "environments" / "dev"
    folder.mkdir(parents=True)
    (folder / "environment.yaml").write_text("name: dev\ndata_root: data\ntraining: sometimes\n")
    completed = _promote("plan", "--json", cwd=tmp_path)
    assert completed.returncode == 2
    answer = json.loads(completed.stdout)
    assert answer == {
        "ok": False,
        "error": {
            "kind": "InputError",
            "message": answer["error"]["message"],
            "exit_code": 2,
            "file": "environments/dev/environment.yaml",
            "field": "training",
        },
    }
    assert completed.stderr.strip() == f"error: {answer['error']['message']}"
    for name, lines in {"dev": "", "prod": "promotes_from: dev\n"}.items():
        folder = tmp_path / "environments" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "environment.yaml").write_text(f"name: {name}\n{lines}data_root: data\n")
    internal = _promote("--registry", "bogus://nowhere", "status", "--json", cwd=tmp_path)
    assert internal.returncode == 70
    error = json.loads(internal.stdout)["error"]
    assert error["kind"] == "internal" and error["exit_code"] == 70


def _commands() -> list[str]:
    import typer

    from promote.cli import app

    group = typer.main.get_command(app)
    return sorted(getattr(group, "commands", {}))


def test_every_command_has_an_example_and_plain_placeholders() -> None:
    """Each --help ends with an example of that very command; placeholders name the value
    asked for, never a Python type (`<str>`, `<list[str]>`) or typer's braces."""
    from promote.cli import EXAMPLES

    names = _commands()
    assert set(EXAMPLES) >= set(names), set(names) - set(EXAMPLES)
    for name in names:
        completed = subprocess.run(
            [sys.executable, "-m", "promote", name, "--help"],
            capture_output=True,
            text=True,
            check=True,
        )
        shown = completed.stdout
        assert f"Example: promote {name}" in shown.replace("\n", " "), name
        for noise in ("<str>", "<int>", "<path>", "<list[", "<float>"):
            assert noise not in shown, (name, noise, shown)
        usage = shown.splitlines()[0]
        assert "{" not in usage, usage


def test_shell_completion_completes_commands(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "promote"],
        env={
            **os.environ,
            "_PROMOTE_COMPLETE": "complete_bash",
            "COMP_WORDS": "promote sta",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert completed.stdout.split() == ["status"]
