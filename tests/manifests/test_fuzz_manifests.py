"""Manifests and environment files, fuzzed: every invalid file ends in exit 2 with one line.

Three generators, 560 cases in all: arbitrary text (syntax, non-mappings, wrong shapes, keys
named twice, nesting past the bound, tags their values cannot be), structured mutations of a
valid file that each break one rule (unknown or missing fields, wrong types, escaping paths, bad
names, unknown environments, numbers that are not finite, gates looser than the environment's,
model name templates, interpreters that do not exist, data outside the repository), and the
same mutations through the real CLI, which must print exactly one line on stderr, no traceback,
and write nothing.
"""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from promote.cli import app
from promote.errors import InputError
from promote.manifests.loader import load_repository
from promote.manifests.schema import COMMIT_PATTERN
from promote.scaffold.quickstart import create_sandbox

MANIFEST = "environments/staging/churn.yaml"
ENVIRONMENT = "environments/staging/environment.yaml"
# No example database: the suite leaves nothing behind in the checkout.
FUZZ = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

VALID_MANIFEST: dict[str, Any] = {
    "model": "churn",
    "source": {"environment": "dev", "version": 1},
    "code": {
        "repo": ".",
        "commit": "a" * 40,
        "entrypoint": "models/churn/train.py",
        "params": {"C": 0.5},
    },
    "data": {"path": "churn"},
    "gates": {"metrics": {"roc_auc": {"min": 0.6}}, "max_artifact_mb": 10},
}

ESCAPING_PATHS = st.sampled_from(
    ["../x.py", "/etc/passwd.py", "~/x.py", "a/../../x.py", "..", "models\\..\\x.py", ""]
)
BAD_NAMES = st.one_of(
    st.sampled_from(["../prod", "Churn", "a b", "-x", "x/y", "", "é", "a" * 64, "x;rm -rf /"]),
    st.text(min_size=1, max_size=20).filter(lambda s: not s.isascii() or not s.islower()),
)
NOT_A_STRING = st.one_of(
    st.integers(), st.floats(allow_nan=True), st.booleans(), st.lists(st.integers(), max_size=3)
)
NOT_A_MAPPING = st.one_of(st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=3))
NOT_A_COMMIT = st.one_of(
    st.text(max_size=45), st.text("0123456789abcdefABCDEFG ", min_size=40, max_size=40)
).filter(lambda text: not re.fullmatch(COMMIT_PATTERN, text))
NOT_A_NUMBER = st.one_of(st.text(max_size=10), st.lists(st.integers(), max_size=2), st.booleans())
NOT_FINITE = st.sampled_from([float("nan"), float("inf"), float("-inf")])
# The staging environment's budget (the quickstart's) is 50 MB; VALID_MANIFEST asks for 10.
ENVIRONMENT_BUDGET = 50


def _set(path: tuple[str, ...], value: Any) -> Any:
    def change(body: dict[str, Any]) -> None:
        node = body
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _data_outside(data_root: str) -> Any:
    def change(body: dict[str, Any]) -> None:
        body["data_root"] = data_root
        body.pop("allow_data_outside_repository", None)

    return change


def _delete(path: tuple[str, ...]) -> Any:
    def change(body: dict[str, Any]) -> None:
        node = body
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


# Each mutation breaks exactly one rule of a manifest.
MANIFEST_MUTATIONS = st.one_of(
    st.builds(_set, st.just(("code", "entrypoint")), ESCAPING_PATHS),
    st.builds(_set, st.just(("code", "entrypoint")), st.just("models/churn/train.sh")),
    st.builds(_set, st.just(("data", "path")), ESCAPING_PATHS),
    st.builds(_set, st.just(("model",)), BAD_NAMES),
    st.builds(_set, st.just(("source", "environment")), BAD_NAMES | st.just("prod")),
    st.builds(_set, st.just(("source", "version")), st.integers(max_value=0) | NOT_A_NUMBER),
    st.builds(_set, st.just(("code", "commit")), NOT_A_COMMIT),
    st.builds(_set, st.just(("code", "params")), NOT_A_MAPPING),
    st.builds(_set, st.just(("code", "params", "x y")), st.integers()),
    st.builds(
        _set, st.just(("code", "params", "C")), st.dictionaries(st.text(max_size=3), st.integers())
    ),
    st.builds(_set, st.just(("code",)), NOT_A_MAPPING),
    st.builds(_set, st.just(("gates", "metrics", "auc")), st.just({})),
    st.builds(_set, st.just(("gates", "metrics", "auc")), st.just({"min": 2, "max": 1})),
    st.builds(_set, st.just(("gates", "max_artifact_mb")), st.integers(max_value=0) | NOT_A_NUMBER),
    st.builds(_set, st.just(("gates", "max_artifact_mb")), NOT_FINITE),
    st.builds(
        _set,
        st.just(("gates", "max_artifact_mb")),
        st.floats(min_value=ENVIRONMENT_BUDGET, exclude_min=True, allow_infinity=False),
    ),
    st.builds(_set, st.just(("gates", "metrics", "roc_auc", "min")), NOT_FINITE),
    st.builds(
        _set,
        st.just(("gates", "no_regression")),
        NOT_FINITE.map(lambda value: {"metric": "roc_auc", "tolerance": value}),
    ),
    st.builds(
        _set,
        st.tuples(st.text(min_size=1, max_size=10).filter(lambda s: s not in VALID_MANIFEST)),
        st.integers(),
    ),
    st.builds(_set, st.just(("code", "unknown")), st.text(max_size=5)),
    st.builds(
        _delete,
        st.sampled_from(
            [
                ("model",),
                ("code",),
                ("data",),
                ("code", "entrypoint"),
                ("source",),
                ("code", "commit"),
            ]
        ),
    ),
)
ENVIRONMENT_MUTATIONS = st.one_of(
    st.builds(_set, st.just(("name",)), BAD_NAMES | st.just("prod")),
    st.builds(
        _set, st.just(("promotes_from",)), BAD_NAMES | st.just("nowhere") | st.just("staging")
    ),
    st.builds(
        _set, st.just(("data_root",)), st.sampled_from(["", "http://x/y", "file:///etc", "ftp://a"])
    ),
    st.builds(
        _set, st.just(("artifact_root",)), st.sampled_from(["", "https://bucket/x", "gs://b"])
    ),
    st.builds(
        _set,
        st.just(("training",)),
        st.text(max_size=10).filter(lambda s: s not in ("retrain", "copy")),
    ),
    st.builds(
        _set,
        st.just(("model_name",)),
        st.sampled_from(
            [
                "{model}",
                "{env}",
                "static",
                "{env}.{other}",
                "{env.__class__}.{model}",
                "{}.{env}.{model}",
                "{0}.{env}.{model}",
                "{env!r}.{model}",
                "{env:>300}.{model}",
                "{env}.{model}{",
                "{env}/{model}",
                "{env}:{model}",
                "{env} {model}",
                ".{env}.{model}",
            ]
        ),
    ),
    st.builds(
        _set,
        st.just(("python",)),
        st.sampled_from([".venv/bin/python", "bin/python3", "./python"]),
    ),
    st.builds(_data_outside, st.sampled_from(["../elsewhere", "/srv/data", "data/../../x"])),
    st.builds(_set, st.just(("gates",)), NOT_A_MAPPING),
    st.builds(_set, st.just(("gates", "max_artifact_mb")), NOT_A_NUMBER | NOT_FINITE),
    # An environment tightened past what the (valid) manifest asks for: the manifest loosens it.
    st.builds(
        _set,
        st.just(("gates", "max_artifact_mb")),
        st.floats(min_value=0.001, max_value=10, exclude_max=True),
    ),
    st.builds(
        _set,
        st.just(("gates", "metrics")),
        st.floats(min_value=0.6, max_value=1, exclude_min=True).map(
            lambda low: {"roc_auc": {"min": low}}
        ),
    ),
    st.builds(
        _set,
        st.tuples(
            st.text(min_size=1, max_size=10).filter(
                lambda s: (
                    s
                    not in {
                        "name",
                        "promotes_from",
                        "data_root",
                        "artifact_root",
                        "training",
                        "protected_branch",
                        "model_name",
                        "python",
                        "role",
                        "gates",
                        "approval",
                    }
                )
            )
        ),
        st.integers(),
    ),
    st.builds(_delete, st.sampled_from([("name",), ("data_root",)])),
)
# Text that is not a valid file of either kind: broken syntax, scalars, lists, random mappings.
ARBITRARY_TEXT = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
    st.sampled_from(
        [
            "[",
            "{a: 1",
            "a: [1, 2",
            "- 1\n- 2",
            "!!python/object/apply:os.system ['true']",
            "a: &x [*x]",
            "\t- x",
            "key: value\n  bad indent: 1",
            "\x00",
            "---\n---\na: 1",
            "a: 1\na: 2",
            "a: {b: 1, b: 2}",
            "a: !!int abc",
            "a: !!bool maybe",
            "a: !!timestamp soon",
            "[" * 100_000,
            "a: " + "{a: " * 20_000,
        ]
    ),
    st.integers(min_value=1, max_value=100_000).map(lambda depth: "a: " + "[" * depth),
    st.integers(min_value=1, max_value=5_000).map(lambda depth: "[" * depth + "]" * depth),
    st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4).map(
        yaml.safe_dump
    ),
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A valid repository with a staging manifest; each case edits one file and restores it."""
    repo = create_sandbox(tmp_path_factory.mktemp("fuzz") / "sandbox").repo
    (repo / MANIFEST).write_text(yaml.safe_dump(VALID_MANIFEST), encoding="utf-8")
    load_repository(repo)  # the starting point is valid: every failure below is the mutation's
    yield repo


class Edit:
    """Write one file for a case, restore it afterwards (hypothesis reuses the sandbox)."""

    def __init__(self, repo: Path, relative: str, text: str) -> None:
        self.path = repo / relative
        self.text = text

    def __enter__(self) -> str:
        self.original = self.path.read_bytes()
        self.path.write_text(self.text, encoding="utf-8", errors="surrogatepass")
        return str(self.path)

    def __exit__(self, *exc: object) -> None:
        self.path.write_bytes(self.original)


def _mutated(base: dict[str, Any], change: Any) -> str:
    body = copy.deepcopy(base)
    change(body)
    return yaml.safe_dump(body, allow_unicode=True)


def _assert_refused(repo: Path, relative: str, text: str) -> None:
    with Edit(repo, relative, text), pytest.raises(InputError) as refused:
        load_repository(repo)
    message = str(refused.value)
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(relative.split("/")[0]), message  # names the file it is about


def _environment(repo: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((repo / ENVIRONMENT).read_text(encoding="utf-8")))


@settings(FUZZ, max_examples=220)
@given(change=MANIFEST_MUTATIONS)
def test_every_broken_manifest_is_refused_with_one_line(sandbox: Path, change: Any) -> None:
    _assert_refused(sandbox, MANIFEST, _mutated(VALID_MANIFEST, change))


@settings(FUZZ, max_examples=120)
@given(change=ENVIRONMENT_MUTATIONS)
def test_every_broken_environment_file_is_refused_with_one_line(sandbox: Path, change: Any) -> None:
    _assert_refused(sandbox, ENVIRONMENT, _mutated(_environment(sandbox), change))


@settings(FUZZ, max_examples=120)
@given(text=ARBITRARY_TEXT, target=st.sampled_from([MANIFEST, ENVIRONMENT]))
def test_arbitrary_text_is_refused_with_one_line(sandbox: Path, text: str, target: str) -> None:
    _assert_refused(sandbox, target, text)


@settings(FUZZ, max_examples=100)
@given(
    text=st.one_of(
        MANIFEST_MUTATIONS.map(lambda change: _mutated(VALID_MANIFEST, change)), ARBITRARY_TEXT
    ),
    command=st.sampled_from(
        [
            ["plan"],
            ["status"],
            ["apply", "--env", "staging"],
            ["verify", "churn", "--env", "staging"],
        ]
    ),
)
def test_the_cli_exits_2_with_one_line_and_writes_nothing(
    sandbox: Path, text: str, command: list[str]
) -> None:
    state = sandbox / ".promote"
    shutil.rmtree(state, ignore_errors=True)
    with Edit(sandbox, MANIFEST, text):
        result = CliRunner().invoke(app, ["--repo", str(sandbox), *command])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {MANIFEST}"), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    assert not state.exists()  # not even the registry file
