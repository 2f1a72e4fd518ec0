"""`promote retrain`: a reviewed rebuild of prod's champion on prod's current data, with real
git, a real training, the drift report in the pull request, and refusals that write nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from support.github_fake import FakeGitHub
from support.world import MODEL, World

from promote import plan
from promote.build import git
from promote.build.lineage import compare
from promote.manifests.loader import load_repository
from promote.plan import Action
from promote.scaffold.quickstart import merge

PROD = f"prod.{MODEL}"
BRANCH = f"promote/prod/{MODEL}-retrain"
MANIFEST = f"environments/prod/{MODEL}.yaml"


def _age_shifted(world: World) -> None:
    """Prod's data as a new month brings it: every customer 30 years older (age does not
    drive churn, so the model's quality holds while its data has drifted)."""
    for name in ("train.csv", "test.csv"):
        path = world.sandbox.data("prod") / name
        frame = pd.read_csv(path)
        frame["age"] += 30
        frame.to_csv(path, index=False)


def _retrain(world: World, *args: str) -> dict[str, Any]:
    completed = world.cli("retrain", MODEL, "--env", "prod", "--json", *args)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return dict(json.loads(completed.stdout))


def test_a_merged_retrain_rebuilds_the_same_commit_on_the_current_data(promoted: World) -> None:
    _age_shifted(promoted)
    head = git.head_commit(promoted.repo)
    before = yaml.safe_load((promoted.repo / MANIFEST).read_text())
    result = _retrain(promoted)
    assert result["branch"] == BRANCH and result["champion"] == f"{PROD}/1"
    assert result["drift"]["drifted"] is True
    drifted = {
        f["column"] for d in result["drift"]["datasets"] for f in d["features"] if f["drifted"]
    }
    assert drifted == {"age"}
    # The checkout is untouched; the branch changes the manifest's data.as_of and nothing else.
    assert git.head_commit(promoted.repo) == head and not git.is_dirty(promoted.repo)
    changed = git.run_git(promoted.repo, "diff", "--name-only", f"main...{BRANCH}").split()
    assert changed == [MANIFEST]
    proposed = yaml.safe_load(git.run_git(promoted.repo, "show", f"{BRANCH}:{MANIFEST}"))
    as_of = proposed["data"].pop("as_of")
    assert isinstance(as_of, str) and as_of.endswith("Z")
    assert proposed == before

    # Nothing retrains until the branch is merged: main's plan has nothing to do.
    [state] = plan.compute(load_repository(promoted.repo), promoted.registry, "prod")
    assert state.action is Action.NONE
    merge(promoted.repo, BRANCH, f"Merge {BRANCH}")
    [state] = plan.compute(load_repository(promoted.repo), promoted.registry, "prod")
    assert state.action is Action.BUILD and state.spec.commit == before["code"]["commit"]

    outcome = promoted.pipeline().apply("prod")
    assert outcome.ok, promoted.lines
    registered = promoted.registry.model(PROD)
    assert registered is not None and registered.champion is not None
    assert registered.champion.version == 2
    rebuilt = promoted.registry.lineage(registered.champion.run_id)
    first = promoted.registry.lineage(registered.version(1).run_id)  # type: ignore[union-attr]
    staging = promoted.registry.model(f"staging.{MODEL}")
    assert staging is not None and staging.champion is not None
    source = promoted.registry.lineage(staging.champion.run_id)
    # The lineage match: the same code, parameters and libraries as the source; prod's own data,
    # as it is now (not the data the first prod build read).
    assert compare(source, rebuilt, str(promoted.sandbox.root / "data" / "prod"), False) == []
    assert any("prod.churn: lineage match ok" in line for line in promoted.lines)
    assert (rebuilt.code_commit, rebuilt.params) == (first.code_commit, first.params)
    assert rebuilt.data_digest != first.data_digest
    assert (
        rebuilt.profile["datasets"][0]["columns"]["age"]
        != first.profile["datasets"][0]["columns"]["age"]
    )
    # Apply gated the rebuild against the champion it replaces: v1 is `previous` now.
    assert registered.aliases.get("previous") == 1
    # The retrained champion watches the data it was retrained on: no drift now.
    assert promoted.cli("drift", MODEL, "--env", "prod").returncode == 0
    # And a rollback brings the champion before the retrain back, without rebuilding.
    rollback = promoted.cli("rollback", MODEL, "--env", "prod", "--json")
    assert rollback.returncode == 0, rollback.stderr
    merge(promoted.repo, json.loads(rollback.stdout)["branch"], "Merge the rollback")
    assert promoted.pipeline().apply("prod").ok
    registered = promoted.registry.model(PROD)
    assert registered is not None and registered.champion is not None
    assert registered.champion.version == 1


def test_the_pull_request_carries_the_drift_report_and_asking_again_updates_it(
    promoted: World, github: FakeGitHub, tmp_path: Path
) -> None:
    origin = tmp_path / "origin.git"
    git.run_git(tmp_path, "init", "--quiet", "--bare", str(origin))
    git.run_git(promoted.repo, "remote", "add", "origin", str(origin))
    _age_shifted(promoted)
    result = _retrain(promoted, "--open-pr")
    opened = result["pull_request"]
    assert opened["created"] is True
    assert git.run_git(origin, "rev-parse", f"refs/heads/{BRANCH}") == result["commit"]
    pull = github.pulls[opened["number"]]
    assert pull["title"] == f"Retrain {MODEL} in prod: {PROD}/1"
    assert pull["head"]["ref"] == BRANCH and pull["base"]["ref"] == "main"
    body = pull["body"]
    assert f"**{PROD}/1: DRIFT (train.csv: 1 of 5 features; test.csv: 1 of 5 features)**" in body
    assert "| age | numeric |" in body and "### Data: train.csv" in body
    assert "#### prod" in body and "**build**" in body  # the plan once merged
    assert result["manifest"]["code"]["commit"] in body

    again = promoted.cli("retrain", MODEL, "--env", "prod", "--open-pr")
    assert again.returncode == 0, again.stderr
    assert f"updated pull request #{opened['number']}" in again.stdout
    assert list(github.pulls) == [opened["number"]]


def test_refusals_are_one_line_exit_2_and_write_nothing(trained: World) -> None:
    branches = git.run_git(trained.repo, "branch", "--list")
    before = trained.snapshot()

    def refused(*args: str) -> str:
        completed = trained.cli("retrain", *args)
        assert completed.returncode == 2, completed.stdout + completed.stderr
        [line] = completed.stderr.splitlines()
        return line

    assert refused(MODEL, "--env", "qa") == (
        "error: --env: unknown environment 'qa' (known: dev, prod, staging)"
    )
    assert refused(MODEL, "--env", "dev") == (
        "error: --env: dev promotes from no environment: retrain with promote train"
    )
    trained.edit_yaml(
        "environments/staging/environment.yaml", lambda body: body.update(training="copy")
    )
    assert refused(MODEL, "--env", "staging") == (
        "error: --env: staging copies the artifact validated below (training: copy): it trains "
        "on no data of its own"
    )
    git.run_git(trained.repo, "reset", "--quiet", "--hard", "HEAD~1")
    assert refused("fraud", "--env", "staging") == (
        "error: environments/staging/fraud.yaml: no such manifest"
    )
    assert git.run_git(trained.repo, "branch", "--list") == branches
    assert trained.snapshot() == before
    trained.propose_and_merge("staging")  # merged, not applied: staging has no champion
    branches = git.run_git(trained.repo, "branch", "--list")
    assert refused(MODEL, "--env", "staging") == (
        f"error: staging.{MODEL}: champion: no champion to retrain: promote one first"
    )
    assert git.run_git(trained.repo, "branch", "--list") == branches
    assert trained.snapshot() == before
    assert not (trained.repo / ".promote" / "drift").exists()


def test_a_manifest_the_champion_was_not_built_from_is_applied_first(promoted: World) -> None:
    promoted.edit_yaml(MANIFEST, lambda body: body["code"]["params"].update(C=0.25))
    completed = promoted.cli("retrain", MODEL, "--env", "prod")
    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [
        f"error: {MANIFEST}: is not what champion {PROD}/1 was built from: apply it (or revert "
        "it) first"
    ]
    assert BRANCH not in git.run_git(promoted.repo, "branch", "--list")


def test_an_unmerged_retrain_is_not_applied_in_ci(promoted: World, github: FakeGitHub) -> None:
    """CI applies only the protected branch's tip: a retrain branch run as a checkout refuses."""
    _age_shifted(promoted)
    github.branches["main"] = git.head_commit(promoted.repo)
    branch_commit = _retrain(promoted)["commit"]
    git.run_git(promoted.repo, "checkout", "--quiet", BRANCH)
    before = promoted.snapshot()
    completed = promoted.cli("apply", "--env", "prod", env={"GITHUB_ACTIONS": "true"})
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert (
        f"prod: refusing to apply {branch_commit[:12]}: main is now at "
        f"{github.branches['main'][:12]}, and only its tip changes prod"
    ) in completed.stderr
    assert promoted.snapshot() == before


def test_a_merged_retrain_not_built_yet_can_be_asked_again_for_newer_data(
    promoted: World,
) -> None:
    """Merged but not applied (or rejected by its gates), a retrain differs from the champion's
    manifest by data.as_of alone: asking again proposes a newer as_of, not a refusal."""
    first = _retrain(promoted)
    merge(promoted.repo, BRANCH, f"Merge {BRANCH}")
    time.sleep(1)  # as_of counts seconds
    second = _retrain(promoted)
    assert second["manifest"]["data"]["as_of"] > first["manifest"]["data"]["as_of"]
    proposed = yaml.safe_load(git.run_git(promoted.repo, "show", f"{BRANCH}:{MANIFEST}"))
    assert proposed["data"]["as_of"] == second["manifest"]["data"]["as_of"]
