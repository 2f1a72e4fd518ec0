"""Approval enforced by `promote apply`: replayed merge events, approvals that do and do not count.

Each scenario starts from the promoted story, adds an approval rule to prod, and merges a pull
request that changes the prod manifest; the fake GitHub on loopback holds that PR and reviews.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.github_fake import FakeGitHub
from support.world import MODEL, World

from promote.build import git
from promote.errors import ApprovalRefused, InputError, PromoteError
from promote.github.approval import (
    TAG_APPROVERS,
    TAG_BREAK_GLASS,
    TAG_PULL_REQUEST,
)
from promote.github.context import CiContext
from promote.registry.entities import TAG_MERGE_COMMIT
from promote.scaffold.quickstart import merge

FIXTURES = Path(__file__).parent / "fixtures"
TEAM = ("acme", "release-approvers")
PR = 12
PROD_MANIFEST = f"environments/prod/{MODEL}.yaml"
PROD_ENVIRONMENT = "environments/prod/environment.yaml"
CI_VARIABLES = (
    "GITHUB_ACTIONS",
    "GITHUB_EVENT_NAME",
    "GITHUB_EVENT_PATH",
    "GITHUB_REF",
    "GITHUB_SHA",
)


@dataclass
class MergedChange:
    """A pull request that changed the prod manifest, merged into main."""

    world: World
    github: FakeGitHub
    branch_commit: str
    merge_commit: str
    earlier_commit: str
    event_path: Path

    def context(self, **changes: str | bool) -> CiContext:
        fields: dict[str, str | bool] = {
            "github_actions": True,
            "event_name": "push",
            "event_path": str(self.event_path),
            "ref": "refs/heads/main",
            "sha": self.merge_commit,
            "repository": self.github.full_name,
        }
        fields.update(changes)
        return CiContext(**fields)  # type: ignore[arg-type]

    def review(self, reviewer: str, state: str = "APPROVED", commit: str | None = None) -> None:
        self.github.add_review(PR, reviewer, state, commit or self.branch_commit)

    def at(self, sha: str, **changes: str | bool) -> CiContext:
        """The merge workflow's context for a push of `sha` to main."""
        folder = self.event_path.parent / sha[:12]
        folder.mkdir(exist_ok=True)
        return self.context(sha=sha, event_path=str(push_event(folder, sha)), **changes)

    def merge_pull(self, number: int, files: dict[str, str], author: str = "alice") -> str:
        """Merge a pull request that changes `files` into main, as GitHub would record it;
        main's tip is then its merge commit. Returns the pull request's final commit."""
        repo = self.world.repo
        branch = f"change-{number}"
        commit = git.commit_files_on_branch(
            repo, branch, git.head_commit(repo), files, f"Change {number}"
        )
        merge(repo, branch, f"Merge pull request #{number}")
        merged = git.head_commit(repo)
        self.github.add_pull(
            number, author, commit, head_ref=branch, merge_commit_sha=merged, commits=(commit,)
        )
        self.github.branches["main"] = merged
        return commit

    def file(self, relative: str, change: Callable[[dict[str, Any]], None]) -> str:
        """`relative` at main's tip with `change` applied, as YAML text."""
        body = yaml.safe_load((self.world.repo / relative).read_text())
        change(body)
        return yaml.safe_dump(body, sort_keys=False)


def push_event(directory: Path, sha: str, ref: str = "refs/heads/main") -> Path:
    """GitHub's push payload for `sha`, as the runner writes it to GITHUB_EVENT_PATH."""
    event = json.loads((FIXTURES / "push.json").read_text())
    event["after"] = event["head_commit"]["id"] = event["commits"][0]["id"] = sha
    event["ref"] = ref
    path = directory / "event.json"
    path.write_text(json.dumps(event))
    return path


@pytest.fixture
def change(promoted: World, github: FakeGitHub, tmp_path: Path) -> MergedChange:
    promoted.edit_yaml(
        "environments/prod/environment.yaml",
        lambda body: body.update(approval={"required": 1, "team": "/".join(TEAM)}),
    )
    repo = promoted.repo
    manifest = yaml.safe_load((repo / PROD_MANIFEST).read_text())
    manifest.setdefault("gates", {})["max_artifact_mb"] = 40
    base = git.head_commit(repo)
    earlier = git.commit_files_on_branch(
        repo, "promote/prod/churn-size", base, {"README.md": "draft\n"}, "Draft"
    )
    branch_commit = git.commit_files_on_branch(
        repo,
        "promote/prod/churn-size",
        earlier,
        {PROD_MANIFEST: yaml.safe_dump(manifest, sort_keys=False)},
        "Tighten the prod size budget",
    )
    merge(repo, "promote/prod/churn-size", f"Merge pull request #{PR}")
    merge_commit = git.head_commit(repo)
    github.add_pull(
        PR,
        "alice",
        branch_commit,
        head_ref="promote/prod/churn-size",
        merge_commit_sha=merge_commit,
        commits=(earlier, branch_commit),
    )
    github.branches["main"] = merge_commit
    github.add_team_member(*TEAM, "bob")
    github.add_team_member(*TEAM, "alice")
    github.add_team_member(*TEAM, "carol", state="pending")
    return MergedChange(
        promoted, github, branch_commit, merge_commit, earlier, push_event(tmp_path, merge_commit)
    )


def budget(megabytes: int) -> Callable[[dict[str, Any]], None]:
    return lambda manifest: manifest.setdefault("gates", {}).update(max_artifact_mb=megabytes)


def raise_required(count: int) -> Callable[[dict[str, Any]], None]:
    return lambda body: body.update(approval={"required": count, "team": "/".join(TEAM)})


def actions_environment(change: MergedChange) -> dict[str, str]:
    """What GitHub Actions sets for the merge workflow of main's tip."""
    head = git.head_commit(change.world.repo)
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": change.at(head).event_path,
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_SHA": head,
    }


def refused(change: MergedChange, context: CiContext, break_glass: str | None = None) -> str:
    """Apply prod; assert it refused and wrote nothing; return the refusal's message."""
    before = change.world.snapshot()
    with pytest.raises((ApprovalRefused, InputError)) as refusal:
        change.world.pipeline().apply("prod", break_glass=break_glass, context=context)
    assert change.world.snapshot() == before
    message = str(refusal.value)
    assert "\n" not in message
    return message


def prod_champion(world: World) -> int | None:
    model = world.registry.model(f"prod.{MODEL}")
    assert model is not None and model.champion is not None
    return model.champion.version


def test_an_approval_from_the_team_on_the_final_commit_promotes(change: MergedChange) -> None:
    change.review("dave", "COMMENTED")
    change.review("bob")
    result = change.world.pipeline().apply("prod", context=change.context())
    assert result.ok, result.outcomes
    assert prod_champion(change.world) == 2
    model = change.world.registry.model(f"prod.{MODEL}")
    assert model is not None and model.champion is not None
    assert model.champion.tags[TAG_PULL_REQUEST] == f"https://github.com/acme/models/pull/{PR}"
    assert model.champion.tags[TAG_APPROVERS] == "bob"
    assert TAG_BREAK_GLASS not in model.champion.tags
    event = model.events()[-1]
    assert (event["action"], event["approvers"], event["break_glass"]) == ("promote", ["bob"], "")


@pytest.mark.parametrize(
    ("reviews", "expected"),
    [
        ([], "0 of 1 required approvals"),
        ([("bob", "APPROVED", "earlier")], "bob approved"),
        ([("alice", "APPROVED", "final")], "alice approved their own pull request"),
        (
            [("carol", "APPROVED", "final")],
            "carol is not an active member of acme/release-approvers",
        ),
        ([("mallory", "APPROVED", "final")], "mallory is not an active member"),
        (
            [("bob", "APPROVED", "final"), ("bob", "CHANGES_REQUESTED", "final")],
            "bob's latest review is changes requested",
        ),
        ([("bob", "DISMISSED", "final")], "bob's latest review is dismissed"),
    ],
    ids=["none", "stale", "self", "pending-member", "outsider", "changes-requested", "dismissed"],
)
def test_approvals_that_do_not_count_refuse(
    change: MergedChange, reviews: list[tuple[str, str, str]], expected: str
) -> None:
    for reviewer, state, which in reviews:
        change.review(reviewer, state, change.earlier_commit if which == "earlier" else None)
    message = refused(change, change.context())
    assert f"{PROD_MANIFEST}: PR #{PR} has 0 of 1 required approvals" in message
    assert expected in message
    if reviews and reviews[0][2] == "earlier":
        assert "before the last push (stale)" in message


def test_a_pull_request_that_raises_the_rule_is_judged_by_the_raised_rule(
    change: MergedChange,
) -> None:
    final = change.merge_pull(
        13,
        {
            PROD_ENVIRONMENT: change.file(PROD_ENVIRONMENT, raise_required(2)),
            PROD_MANIFEST: change.file(PROD_MANIFEST, budget(41)),
        },
    )
    change.github.add_review(13, "bob", "APPROVED", final)
    change.github.add_review(13, "alice", "APPROVED", final)
    message = refused(change, change.at(git.head_commit(change.world.repo)))
    assert "PR #13 has 1 of 2 required approvals" in message
    assert "alice approved their own pull request" in message


def test_a_pull_request_cannot_remove_the_rule_it_is_judged_by(change: MergedChange) -> None:
    """The rule is read from before the merge: deleting it in the same PR changes nothing."""
    change.merge_pull(
        13,
        {
            PROD_ENVIRONMENT: change.file(PROD_ENVIRONMENT, lambda body: body.pop("approval")),
            PROD_MANIFEST: change.file(PROD_MANIFEST, budget(41)),
        },
    )
    message = refused(change, change.at(git.head_commit(change.world.repo)))
    assert "PR #13 has 0 of 1 required approvals from acme/release-approvers" in message
    assert any("/pulls/13/reviews" in path for _, path, _ in change.github.requests)


def test_a_merge_that_only_changes_a_guarded_config_needs_that_rules_approval(
    change: MergedChange,
) -> None:
    """Loosening prod's gates promotes nothing by itself, yet it needs prod's approvers."""
    final = change.merge_pull(
        13, {PROD_ENVIRONMENT: change.file(PROD_ENVIRONMENT, lambda body: body.pop("gates"))}
    )
    head = git.head_commit(change.world.repo)
    message = refused(change, change.at(head))
    assert message.startswith(f"{PROD_ENVIRONMENT}: PR #13 has 0 of 1 required approvals")
    # Approved, the config change passes; PR #12's manifest is then judged on its own.
    change.github.add_review(13, "bob", "APPROVED", final)
    message = refused(change, change.at(head))
    assert message.startswith(f"{PROD_MANIFEST}: PR #{PR} has 0 of 1 required approvals")


def test_a_rerun_of_an_older_merge_changes_nothing(change: MergedChange) -> None:
    """PR #12 promotes v2, PR #13 rolls back to v1; re-running PR #12's workflow must not
    bring v2 back, on GitHub's word (main's tip) or, without it, on the registry's record."""
    change.review("bob")
    assert change.world.pipeline().apply("prod", context=change.context()).ok
    model = change.world.registry.model(f"prod.{MODEL}")
    assert model is not None and model.champion is not None
    assert model.champion.tags[TAG_MERGE_COMMIT] == change.merge_commit
    assert model.events()[-1]["merge_commit"] == change.merge_commit
    repo = change.world.repo
    original = git.file_at(repo, f"{change.merge_commit}^1", PROD_MANIFEST)
    assert original is not None
    final = change.merge_pull(13, {PROD_MANIFEST: original})
    change.github.add_review(13, "bob", "APPROVED", final)
    rollback = git.head_commit(repo)
    assert change.world.pipeline().apply("prod", context=change.at(rollback)).ok
    assert prod_champion(change.world) == 1

    git.run_git(repo, "checkout", "--quiet", "--detach", change.merge_commit)
    message = refused(change, change.context())
    assert f"main is now at {rollback[:12]}, and only its tip changes prod" in message
    # Where the tip is not asked (a laptop, break-glass), the commit recorded on v1 refuses.
    message = refused(change, change.context(github_actions=False), break_glass="INC-7")
    assert f"v1 became champion at {rollback[:12]}" in message
    assert f"this checkout {change.merge_commit[:12]} is older than" in message
    assert prod_champion(change.world) == 1


def test_a_promotion_finished_after_a_crash_is_authorized_too(
    change: MergedChange, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after `champion` moved leaves a `record` to do: it is checked like the rest."""
    change.review("bob")
    for name, value in actions_environment(change).items():
        monkeypatch.setenv(name, value)
    crashed = change.world.cli(
        "apply", "--env", "prod", env={"PROMOTE_FAILPOINT": "after-champion"}
    )
    assert crashed.returncode == 137, crashed.stderr
    assert prod_champion(change.world) == 2
    change.review("bob", "DISMISSED")
    refusal = change.world.cli("apply", "--env", "prod", "--json")
    assert refusal.returncode == 1, refusal.stderr
    error = json.loads(refusal.stdout)
    assert error["ok"] is False and error["error"]["kind"] == "ApprovalRefused"
    assert "bob's latest review is dismissed" in error["error"]["message"]
    model = change.world.registry.model(f"prod.{MODEL}")
    assert model is not None and 2 not in model.logged_versions
    change.review("bob")
    done = change.world.cli("apply", "--env", "prod")
    assert done.returncode == 0, done.stderr
    model = change.world.registry.model(f"prod.{MODEL}")
    assert model is not None and model.events()[-1]["approvers"] == ["bob"]


@pytest.mark.parametrize(
    ("status", "hang", "expected", "exit_code"),
    [
        (500, 0.0, "HTTP 500", 3),
        (None, 1.0, "timed out after 0.5s", 3),
        (403, 0.0, "HTTP 403", 1),
    ],
    ids=["server-error", "timeout", "forbidden"],
)
def test_github_failures_refuse(
    change: MergedChange, status: int | None, hang: float, expected: str, exit_code: int
) -> None:
    """GitHub down or slow is "could not ask" (exit 3, retry later); a refusal is exit 1."""
    change.review("bob")
    change.github.fail_status = status
    change.github.hang_seconds = hang
    before = change.world.snapshot()
    with pytest.raises(PromoteError) as failure:
        change.world.pipeline().apply("prod", context=change.context())
    assert change.world.snapshot() == before
    assert failure.value.exit_code == exit_code
    assert expected in failure.value.message and "\n" not in failure.value.message
    assert "ghs_test-token-never-printed" not in failure.value.message


def test_a_manifest_change_without_a_merged_pull_request_refuses(change: MergedChange) -> None:
    change.github.commit_pulls.clear()
    message = refused(change, change.context())
    assert "no merged pull request into main contains" in message


def test_the_pull_request_is_found_from_its_merge_commit_too(change: MergedChange) -> None:
    change.github.commit_pulls = {change.merge_commit: [PR]}
    message = refused(change, change.context())
    assert f"PR #{PR} has 0 of 1 required approvals" in message
    asked = [path for _, path, _ in change.github.requests if "/commits/" in path]
    assert len(asked) == 2
    assert change.branch_commit in asked[0] and change.merge_commit in asked[1]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"github_actions": False}, "not running in GitHub Actions"),
        ({"event_name": "pull_request"}, "event 'pull_request' is not a push to main"),
        ({"event_name": "workflow_dispatch"}, "event 'workflow_dispatch'"),
        ({"ref": "refs/heads/feature"}, "ref 'refs/heads/feature' is not refs/heads/main"),
        ({"sha": "c" * 40}, "does not match"),
    ],
    ids=["laptop", "pull-request", "dispatch", "wrong-branch", "event-mismatch"],
)
def test_prod_refuses_outside_the_merge_workflow(
    change: MergedChange, changes: dict[str, str | bool], expected: str
) -> None:
    change.review("bob")
    message = refused(change, change.context(**changes))
    assert expected in message


def test_a_checkout_that_is_not_the_pushed_commit_refuses(
    change: MergedChange, tmp_path: Path
) -> None:
    change.review("bob")
    (change.world.repo / PROD_MANIFEST).write_text(
        (change.world.repo / PROD_MANIFEST).read_text() + "# edited by hand\n"
    )
    message = refused(change, change.context())
    assert "environments/ has uncommitted changes" in message
    git.run_git(change.world.repo, "checkout", "--quiet", "--", PROD_MANIFEST)
    other = "c" * 40
    message = refused(
        change, change.context(sha=other, event_path=str(push_event(tmp_path, other)))
    )
    assert "not the pushed commit" in message


def test_a_broken_event_payload_is_bad_input(change: MergedChange) -> None:
    change.event_path.write_text("{not json")
    with pytest.raises(InputError, match="event payload is not JSON") as error:
        change.world.pipeline().apply("prod", context=change.context())
    assert error.value.exit_code == 2


def test_break_glass_promotes_from_a_laptop_and_is_recorded(
    change: MergedChange, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    refusal = change.world.cli("apply", "--env", "prod")
    assert refusal.returncode == 1
    assert "refusing to promote outside the merge workflow" in refusal.stderr
    assert "--break-glass" in refusal.stderr
    assert prod_champion(change.world) == 1

    with pytest.raises(InputError, match="give the reason") as empty:
        change.world.pipeline().apply("prod", break_glass="  ", context=change.context())
    assert empty.value.exit_code == 2

    done = change.world.cli("apply", "--env", "prod", "--break-glass", "INC-42: fraud spike")
    assert done.returncode == 0, done.stderr
    assert "BREAK-GLASS" in done.stderr
    model = change.world.registry.model(f"prod.{MODEL}")
    assert model is not None and model.champion is not None
    assert model.champion.version == 2
    assert model.champion.tags[TAG_BREAK_GLASS] == "INC-42: fraud spike"
    assert model.events()[-1]["break_glass"] == "INC-42: fraud spike"


def test_without_a_token_the_tip_is_asked_of_git_and_approval_cannot_be_checked(
    change: MergedChange, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    change.review("bob")
    change.github.branches.clear()
    repo = change.world.repo
    monkeypatch.delenv("GITHUB_TOKEN")
    message = refused(change, change.context())
    assert message == "prod: refusing: origin has no branch main"
    origin = tmp_path / "origin.git"
    git.run_git(tmp_path, "init", "--quiet", "--bare", str(origin))
    git.run_git(repo, "remote", "add", "origin", str(origin))
    git.run_git(repo, "push", "--quiet", "origin", f"{change.earlier_commit}:refs/heads/main")
    message = refused(change, change.context())
    assert f"main is now at {change.earlier_commit[:12]}" in message
    git.run_git(repo, "push", "--quiet", "--force", "origin", "HEAD:refs/heads/main")
    message = refused(change, change.context())
    assert message.startswith("GITHUB_TOKEN: not set: checking approvals needs")
    assert change.github.requests == []


@pytest.mark.parametrize(
    ("approval", "field", "problem"),
    [
        ({"required": 1, "team": "release-approvers"}, "approval.team", "should match pattern"),
        ({"required": 0, "team": "acme/release"}, "approval.required", "greater than or equal"),
        ({"team": "acme/release", "teams": []}, "approval.teams", "unknown field"),
    ],
    ids=["team-without-org", "zero-required", "unknown-field"],
)
def test_a_malformed_approval_rule_is_bad_input(
    world: World, approval: dict[str, object], field: str, problem: str
) -> None:
    world.edit_yaml(
        "environments/prod/environment.yaml", lambda body: body.update(approval=approval)
    )
    completed = world.cli("plan")
    assert completed.returncode == 2
    assert f"environments/prod/environment.yaml: {field}: " in completed.stderr
    assert problem in completed.stderr


def test_the_cli_reads_the_merge_event_from_the_actions_environment(
    change: MergedChange, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the apply workflow does: the context comes from GITHUB_* variables only."""
    change.review("bob", commit=change.earlier_commit)
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(change.event_path),
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_SHA": change.merge_commit,
    }.items():
        monkeypatch.setenv(name, value)
    before = change.world.snapshot()
    completed = change.world.cli("apply", "--env", "prod")
    assert completed.returncode == 1
    [line] = [text for text in completed.stderr.splitlines() if text.startswith("error:")]
    assert line.startswith(f"error: {PROD_MANIFEST}: PR #{PR} has 0 of 1 required approvals")
    assert "bob approved" in line and "(stale)" in line
    assert change.world.snapshot() == before
