"""`promote watch`: real drift checks of every champion on real data, with the GitHub fake: one
issue per drifted model, updated in place on the next run; none for undrifted models; the
retrain pull request where the environment asks for it; the job summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support.github_fake import FakeGitHub
from support.workflows import ROOT, watch_command
from support.world import MODEL, World

from promote.build import git
from promote.drift.watch import DRIFT_LABEL

PROD = f"prod.{MODEL}"


def _shift_prod_age(world: World, years: int = 30) -> None:
    for name in ("train.csv", "test.csv"):
        path = world.sandbox.data("prod") / name
        frame = pd.read_csv(path)
        frame["age"] += years
        frame.to_csv(path, index=False)


def _watch(world: World, *args: str) -> tuple[int, dict[str, Any]]:
    completed = world.cli("watch", "--json", *args)
    try:
        return completed.returncode, dict(json.loads(completed.stdout))
    except json.JSONDecodeError:
        raise AssertionError(completed.stdout + completed.stderr) from None


def _posts(github: FakeGitHub, suffix: str) -> int:
    return sum(
        1 for method, path, _ in github.requests if method == "POST" and path.endswith(suffix)
    )


def test_a_drifted_model_gets_one_issue_updated_in_place_by_the_next_run(
    promoted: World, github: FakeGitHub
) -> None:
    _shift_prod_age(promoted)
    code, result = _watch(promoted, "--notify")
    assert code == 1
    verdicts = {m["registered_model"]: m["verdict"] for m in result["models"]}
    assert verdicts == {f"dev.{MODEL}": "ok", f"staging.{MODEL}": "ok", PROD: "drift"}
    [issue] = github.issues.values()
    assert issue["title"] == f"Data drift in {PROD}"
    assert [label["name"] for label in issue["labels"]] == [DRIFT_LABEL]
    assert (
        f"**{PROD}/1: DRIFT (train.csv: 1 of 5 features; test.csv: 1 of 5 features)**"
        in (issue["body"])
    )
    assert "| age | numeric |" in issue["body"]
    assert f"promote retrain {MODEL} --env prod --open-pr" in issue["body"]
    [prod] = [m for m in result["models"] if m["registered_model"] == PROD]
    assert prod["issue"] == {"number": issue["number"], "url": issue["html_url"], "created": True}
    first_body = issue["body"]

    code, result = _watch(promoted, "--notify")
    assert code == 1
    assert list(github.issues) == [issue["number"]] and _posts(github, "/issues") == 1
    [prod] = [m for m in result["models"] if m["registered_model"] == PROD]
    assert prod["issue"]["created"] is False
    assert github.issues[issue["number"]]["body"] != first_body  # this run's report

    # Data back to what the champion trained on: the open issue says so, and stays open.
    _shift_prod_age(promoted, -30)
    code, result = _watch(promoted, "--notify")
    assert code == 0, result
    assert _posts(github, "/issues") == 1
    assert f"found no drift in **{PROD}**" in github.issues[issue["number"]]["body"]
    assert github.issues[issue["number"]]["state"] == "open"

    # Closed, it stays closed: drift found after it is a new episode, with an issue of its own.
    github.issues[issue["number"]]["state"] = "closed"
    _shift_prod_age(promoted)
    _watch(promoted, "--notify")
    assert _posts(github, "/issues") == 2
    assert [i["state"] for i in github.issues.values()] == ["closed", "open"]


def test_undrifted_models_get_no_issue(promoted: World, github: FakeGitHub) -> None:
    code, result = _watch(promoted, "--notify")
    assert code == 0, result
    assert {m["verdict"] for m in result["models"]} == {"ok"}
    assert github.issues == {} and _posts(github, "/issues") == 0


def test_the_scheduled_workflows_command_writes_the_job_summary_and_the_issue(
    promoted: World, github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    _shift_prod_age(promoted)
    argv, _ = watch_command(ROOT, "prod")  # exactly what the prod job runs
    completed = promoted.cli(*argv[1:])
    assert completed.returncode == 1, completed.stderr
    [issue] = github.issues.values()
    assert completed.stdout.splitlines()[:2] == [
        f"{PROD}: drift: {PROD}/1: DRIFT (train.csv: 1 of 5 features; test.csv: 1 of 5 features)",
        f"  opened issue #{issue['number']} {issue['html_url']}",
    ]
    text = summary.read_text()
    assert text.startswith("# promote watch\n")
    assert f"| prod | churn | DRIFT | {PROD}/1: DRIFT" in text
    assert f"[#{issue['number']}]({issue['html_url']}) |" in text
    assert f"## Drift of {PROD}" in text and "### Data: train.csv" in text
    assert "| staging |" not in text  # --env prod: the staging job checks staging


def test_where_the_environment_allows_it_the_drifted_model_gets_its_retrain_pull_request(
    promoted: World, github: FakeGitHub, tmp_path: Path
) -> None:
    origin = tmp_path / "origin.git"
    git.run_git(tmp_path, "init", "--quiet", "--bare", str(origin))
    git.run_git(promoted.repo, "remote", "add", "origin", str(origin))
    promoted.edit_yaml(
        "environments/prod/environment.yaml",
        lambda body: body.update(watch={"on_drift": "retrain"}),
    )
    _shift_prod_age(promoted)
    code, result = _watch(promoted, "--notify")
    assert code == 1
    [prod] = [m for m in result["models"] if m["registered_model"] == PROD]
    assert prod["issue"] is None and prod["pull_request"]["created"] is True
    [pull] = github.pulls.values()
    assert pull["head"]["ref"] == f"promote/prod/{MODEL}-retrain"
    assert "| age | numeric |" in pull["body"]
    assert github.issues == {}
    _watch(promoted, "--notify")
    assert len(github.pulls) == 1 and _posts(github, "/pulls") == 1

    # A pending change to prod's manifest: no retrain of it is proposed; the issue says why.
    promoted.edit_yaml(
        f"environments/prod/{MODEL}.yaml", lambda body: body["code"]["params"].update(C=0.25)
    )
    code, result = _watch(promoted, "--notify")
    [prod] = [m for m in result["models"] if m["registered_model"] == PROD]
    assert prod["pull_request"] is None and prod["issue"]["created"] is True
    [issue] = github.issues.values()
    assert (
        "No retrain pull request: " in issue["body"]
        and "apply it (or revert it)" in (issue["body"])
    )


def test_notify_without_a_token_is_refused_before_anything_runs(
    promoted: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/models")
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    completed = promoted.cli("watch", "--notify")
    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [
        "error: GITHUB_TOKEN: not set: --notify needs GITHUB_TOKEN or a GitHub App "
        "(PROMOTE_GITHUB_APP_ID and its private key)"
    ]
    assert not (promoted.repo / ".promote" / "drift").exists()
