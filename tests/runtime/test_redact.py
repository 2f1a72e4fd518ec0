"""Secrets never leave promote: planted in the environment, in URIs and in training output, then
searched for in everything promote prints, logs and writes to the registry."""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.world import MODEL, World
from typer.testing import CliRunner

from promote.cli import app
from promote.runtime.redact import MASK, redact

GITHUB_TOKEN = "ghp_" + "Zq7Rk2Lm9Xw4" * 3  # 36 characters after the prefix, like a real one
FINE_GRAINED_TOKEN = "github_pat_11AAAAAAA0" + "x" * 60
ACCESS_KEY_ID = "AKIAZZTESTPLANTED007"
SESSION_KEY_ID = "ASIAZZTESTPLANTED008"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYPLANTEDKEY"
PASSWORD = "correct-horse-battery-staple"
PLANTED_ENV = {
    "GITHUB_TOKEN": GITHUB_TOKEN,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "MLFLOW_TRACKING_PASSWORD": PASSWORD,
}
EVERY_SECRET = (
    GITHUB_TOKEN,
    FINE_GRAINED_TOKEN,
    ACCESS_KEY_ID,
    SESSION_KEY_ID,
    SECRET_KEY,
    PASSWORD,
)


def _assert_clean(text: str) -> None:
    for secret in EVERY_SECRET:
        assert secret not in text


@pytest.mark.parametrize(
    "text",
    [
        f"pushing with {GITHUB_TOKEN}",
        f"token={FINE_GRAINED_TOKEN};",
        f"key id {ACCESS_KEY_ID} and {SESSION_KEY_ID}",
        f"aws_secret_access_key = {SECRET_KEY}",
        f"https://promote:{PASSWORD}@mlflow.internal:5000/api",
        f"postgresql://mlflow:{PASSWORD}@db/mlflow",
        f"Authorization: Basic {PASSWORD}",
    ],
)
def test_each_kind_of_secret_is_masked(text: str) -> None:
    masked = redact(text, environ={})
    _assert_clean(masked)
    assert MASK in masked


def test_values_of_secret_variables_are_masked_whatever_their_shape() -> None:
    assert redact(f"echo {PASSWORD}!", PLANTED_ENV) == f"echo {MASK}!"
    assert redact("short pw: abc", {"MLFLOW_TRACKING_PASSWORD": "abc"}) == "short pw: abc"


@pytest.mark.parametrize(
    "text",
    [
        "s3://acme-prod-artifacts/3/0a1b/artifacts/model",
        "http://127.0.0.1:5000/api/2.0/mlflow/registered-models/get",
        "sha256 " + "ab12" * 16,
        "the token expired; Basic auth is off",
        "prod.churn/3 champion v2 -> v3",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text, environ={}) == text


SURROUNDING = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)


@settings(max_examples=150, deadline=None, database=None)
@given(
    before=SURROUNDING,
    after=SURROUNDING,
    secret=st.sampled_from([GITHUB_TOKEN, FINE_GRAINED_TOKEN, ACCESS_KEY_ID, SECRET_KEY, PASSWORD]),
)
def test_a_planted_secret_never_survives_whatever_surrounds_it(
    before: str, after: str, secret: str
) -> None:
    assert secret not in redact(f"{before} {secret} {after}", PLANTED_ENV)


@settings(max_examples=100, deadline=None, database=None)
@given(
    password=st.text(
        st.characters(blacklist_categories=["Cs", "Z", "C"], blacklist_characters="/@"), min_size=8
    )
)
def test_any_password_inside_a_uri_is_masked(password: str) -> None:
    masked = redact(f"connecting to https://ci:{password}@mlflow.example:443/", environ={})
    assert masked == f"connecting to https://ci:{MASK}@mlflow.example:443/"


def test_cli_errors_do_not_print_a_password_in_the_tracking_uri(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.processes import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = f"http://promote:{PASSWORD}@127.0.0.1:{free_port()}"
    completed = world.cli("--registry", uri, "status")
    assert completed.returncode == 1
    assert completed.stderr.startswith("error: registry ")
    assert "unreachable, gave up after retries" in completed.stderr
    _assert_clean(completed.stdout + completed.stderr)


def test_log_records_of_any_library_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    assert CliRunner().invoke(app, ["schema"]).exit_code == 0  # any command installs the mask
    with caplog.at_level(logging.WARNING):
        logging.getLogger("botocore.test").warning(
            "retrying with %s and %s", ACCESS_KEY_ID, GITHUB_TOKEN
        )
    _assert_clean(caplog.text)
    assert MASK in caplog.text


def _registry_text(world: World) -> str:
    """Every tag the registry holds, model and version, as one text to search."""
    with sqlite3.connect(world.repo / ".promote" / "registry.db") as db:
        rows = db.execute("SELECT key, value FROM registered_model_tags").fetchall()
        rows += db.execute("SELECT key, value FROM model_version_tags").fetchall()
    return "\n".join(f"{key}={value}" for key, value in rows)


def test_training_output_and_registry_tags_never_carry_planted_secrets(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in PLANTED_ENV.items():
        monkeypatch.setenv(name, value)
    # A CI runner that puts a token in the repository URL: it reaches the audit history's actor.
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_ACTOR", "release-bot")
    monkeypatch.setenv(
        "GITHUB_REPOSITORY", f"https://x-access-token:{GITHUB_TOKEN}@github.com/acme/ml"
    )

    trained = world.cli("train", MODEL, "--env", "dev")
    assert trained.returncode == 0, trained.stderr
    _assert_clean(trained.stdout + trained.stderr)
    tags = _registry_text(world)
    assert "x-access-token:***@github.com" in tags  # the leak path was taken, and masked
    _assert_clean(tags)

    # A training script that fails while printing everything it can find.
    script = world.repo / "models" / MODEL / "train.py"
    script.write_text(
        "import os, sys\n"
        "say = lambda *words: print(*words, file=sys.stderr)\n"
        f"say('key {ACCESS_KEY_ID} secret', os.environ['AWS_SECRET_ACCESS_KEY'])\n"
        # Not inherited by training code any more; printed all the same, should they come back.
        "say('token', os.environ.get('GITHUB_TOKEN'), os.environ.get('MLFLOW_TRACKING_PASSWORD'))\n"
        f"say('tracking https://ci:{PASSWORD}@mlflow/ down')\n"
        "sys.exit(3)\n"
    )
    world.commit("A training script that leaks")
    failed = world.cli("train", MODEL, "--env", "dev")
    assert failed.returncode == 1
    assert "failed with exit code 3" in failed.stderr and "secret ***" in failed.stderr
    _assert_clean(failed.stdout + failed.stderr)
    _assert_clean(_registry_text(world))


def test_tags_written_through_the_registry_are_masked(trained: World) -> None:
    model = trained.registry.model(f"dev.{MODEL}")
    assert model is not None and model.champion is not None
    trained.registry.tag_version(
        model.champion, {"promote.reason": f"fetch https://x:{PASSWORD}@h failed"}
    )
    trained.registry.append_event(f"dev.{MODEL}", {"action": "note", "detail": GITHUB_TOKEN})
    text = _registry_text(trained)
    assert f"https://x:{MASK}@h failed" in text
    _assert_clean(text)


def test_pull_request_bodies_and_comments_leave_without_secrets(
    github: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promote.github.client import GitHubClient

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    github.add_pull(7, "alice", "a" * 40, head_ref="promote/prod/churn-v2", base_ref="main")
    client = GitHubClient.from_environ(github.full_name)
    leaky = f"plan with key {SECRET_KEY}, token {GITHUB_TOKEN} via http://u:{PASSWORD}@host"
    client.upsert_comment(7, "<!-- promote plan -->", f"<!-- promote plan -->\n{leaky}")
    client.update_pull_request(7, "Promote churn", leaky)
    sent = json.dumps([github.comments, github.pulls])
    _assert_clean(sent)
    assert MASK in sent
