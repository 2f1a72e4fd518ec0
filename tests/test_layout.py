"""The layout's boundaries hold: read from the source itself, so a change that breaks one fails.

- no import cycles between promote's modules (lazy imports included);
- nothing outside promote/registry/ imports MLflow;
- GitHub Actions' variables are read in promote/github/context.py only;
- exit codes are named in errors.py and used by the CLI only;
- every error class lives in errors.py;
- the CLI starts without importing MLflow.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "promote"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, tuple[Path, ast.Module]]:
    return {
        _module_name(path): (path, ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _type_checking_blocks(tree: ast.Module) -> set[int]:
    """Line numbers inside `if TYPE_CHECKING:` blocks: imports there never run."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, imported module or module.name) of every import that can run."""
    skipped = _type_checking_blocks(tree)
    for node in ast.walk(tree):
        if node.lineno in skipped if hasattr(node, "lineno") else False:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _import_graph() -> dict[str, set[str]]:
    sources = _sources()
    graph: dict[str, set[str]] = {}
    for name, (_path, tree) in sources.items():
        found = set()
        for _line, imported in _imports(tree):
            while imported and imported not in sources:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and imported != "promote":
                found.add(imported)
        graph[name] = found
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state, path = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_no_import_cycles_between_modules() -> None:
    graph = _import_graph()
    assert len(graph) > 30  # the walk found the package
    assert _cycles(graph) == []


def test_cycle_detection_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_only_the_registry_imports_mlflow() -> None:
    outside = [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for name, (path, tree) in _sources().items()
        if not name.startswith("promote.registry")
        for line, imported in _imports(tree)
        if imported.split(".")[0] == "mlflow"
    ]
    assert outside == []
    inside = [name for name, (_p, tree) in _sources().items() if "mlflow" in ast.unparse(tree)]
    assert any(name.startswith("promote.registry.") for name in inside)


def _github_variable_reads(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """`x.get("GITHUB_...")`, `getenv("GITHUB_...")`, `environ["GITHUB_..."]`."""

    def github_name(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value if node.value.startswith("GITHUB_") else None
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            function = node.func
            called = function.attr if isinstance(function, ast.Attribute) else None
            if called in ("get", "getenv", "pop", "setdefault"):
                name = github_name(node.args[0])
                if name:
                    yield node.lineno, name
        elif isinstance(node, ast.Subscript):
            name = github_name(node.slice)
            if name:
                yield node.lineno, name


def test_github_variables_are_read_in_one_module() -> None:
    reads = {
        name: [variable for _line, variable in _github_variable_reads(tree)]
        for name, (_path, tree) in _sources().items()
    }
    assert {name for name, found in reads.items() if found} == {"promote.github.context"}
    assert {"GITHUB_TOKEN", "GITHUB_EVENT_PATH", "GITHUB_RUN_ID"} <= set(
        reads["promote.github.context"]
    )


# Besides the CLI, the one program promote runs elsewhere: a Ray job's entrypoint, which exits
# with its training's own code.
TRAINING_EXIT = ("promote.build.compute.remote", "sys.exit(main())")


def test_exit_codes_are_named_once_and_used_by_the_cli_only() -> None:
    offenders = []
    for name, (path, tree) in _sources().items():
        for node in ast.walk(tree):
            text = ast.unparse(node) if isinstance(node, ast.Call) else ""
            exits = text.startswith(("typer.Exit(", "sys.exit(", "SystemExit(", "exit("))
            if exits and name != "promote.cli" and (name, text) != TRAINING_EXIT:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text}")
            literal = any(
                isinstance(part, ast.Constant) and isinstance(part.value, int)
                for part in ast.walk(node)
            )
            if exits and name == "promote.cli" and literal:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: literal {text}")
            uses_codes = isinstance(node, ast.Name) and node.id == "ExitCode"
            if uses_codes and name not in ("promote.cli", "promote.errors"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: ExitCode")
    assert offenders == []


def test_every_error_class_lives_in_errors() -> None:
    errors_module = _sources()["promote.errors"][1]
    error_names = {n.name for n in errors_module.body if isinstance(n, ast.ClassDef)}
    error_names |= {"Exception", "RuntimeError", "ValueError", "KeyError", "OSError"}
    elsewhere = [
        f"{path.relative_to(ROOT)}: class {node.name}"
        for name, (path, tree) in _sources().items()
        if name != "promote.errors"
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(ast.unparse(base).split(".")[-1] in error_names for base in node.bases)
    ]
    assert elsewhere == []


def test_the_cli_starts_without_mlflow() -> None:
    probe = (
        "import sys, promote.cli; print(sorted(m for m in sys.modules if m.startswith('mlflow')))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert completed.stdout.strip() == "[]"
