"""required_checks: a pinned commit is built only once GitHub says its checks passed."""

from __future__ import annotations

import json

import yaml
from support.github_fake import FakeGitHub
from support.world import MODEL, World

STAGING = "environments/staging/environment.yaml"
STAGING_MANIFEST = f"environments/staging/{MODEL}.yaml"


def staging_needs_a_build(world: World, checks: list[str]) -> str:
    """Require `checks` in staging and change its manifest; the pinned commit."""
    world.edit_yaml(STAGING, lambda body: body.update(required_checks=checks))
    world.edit_yaml(
        STAGING_MANIFEST,
        lambda body: body.setdefault("gates", {}).update(max_artifact_mb=39),
    )
    manifest = yaml.safe_load((world.repo / STAGING_MANIFEST).read_text())
    return str(manifest["code"]["commit"])


def test_a_commit_whose_checks_did_not_pass_is_refused_naming_them(
    promoted: World, github: FakeGitHub
) -> None:
    commit = staging_needs_a_build(promoted, ["tests", "lint", "types"])
    github.add_check_run(commit, "tests", "success")
    github.add_check_run(commit, "tests", "failure")  # a re-run that failed: failed
    github.add_check_run(commit, "types", None)
    before = promoted.snapshot()
    refused = promoted.cli("plan", "--env", "staging", "--json")
    assert refused.returncode == 1, refused.stderr
    [state] = json.loads(refused.stdout)
    assert state["action"] == "refused"
    assert state["detail"] == (
        f"{STAGING_MANIFEST}: code.commit: {commit[:12]} has not passed the required checks: "
        "'tests' is failure; 'lint' never ran on it; 'types' is in progress"
    )
    applied = promoted.cli("apply", "--env", "staging")
    assert applied.returncode == 1
    assert "'lint' never ran on it" in applied.stderr
    assert promoted.snapshot() == before
    assert any(f"/commits/{commit}/check-runs" in path for _, path, _ in github.requests)


def test_check_runs_and_commit_statuses_both_count(promoted: World, github: FakeGitHub) -> None:
    commit = staging_needs_a_build(promoted, ["tests", "ci/lint"])
    github.add_check_run(commit, "tests", "skipped")  # as branch protection counts it
    github.add_status(commit, "ci/lint", "failure")
    github.add_status(commit, "ci/lint", "success")  # the newest status is its state
    planned = promoted.cli("plan", "--env", "staging", "--json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    [state] = json.loads(planned.stdout)
    assert state["action"] == "build"
