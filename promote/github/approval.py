"""Approval enforced by the tool itself, not only by branch protection.

For an environment with an `approval` rule, `promote apply` only acts inside the merge workflow
(a push to the protected branch, in GitHub Actions, on the pushed commit), and only for manifests
whose last change came from a merged pull request with enough approvals: from active members
of the approvers team, on the pull request's final commit, by someone other than its author.
Anything it cannot verify (no event, API error, timeout) is a refusal, never a promotion.

An explicit break-glass reason skips these checks; it is recorded in the history and the tags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from promote.build import git
from promote.errors import ApprovalRefused, InputError
from promote.github.client import GitHubClient, GitHubError, PullRequest, Review
from promote.github.context import CiContext, read_event
from promote.manifests.repository import ModelSpec, Repository
from promote.manifests.schema import ApprovalRule
from promote.registry.entities import TAG_APPROVERS, TAG_BREAK_GLASS, TAG_PULL_REQUEST

MERGE_EVENT = "push"

# A reviewer's latest review in one of these states is their verdict; comments do not change it.
DECISIVE_STATES = ("APPROVED", "CHANGES_REQUESTED", "DISMISSED")


@dataclass(frozen=True)
class Authorization:
    """Why one manifest may be applied: its approved pull request, or a break-glass reason."""

    environment: str
    model: str
    pull_request_url: str = ""
    approvers: tuple[str, ...] = ()
    break_glass: str = ""

    def tags(self) -> dict[str, str]:
        if self.break_glass:
            return {TAG_BREAK_GLASS: self.break_glass[:5000]}
        return {TAG_PULL_REQUEST: self.pull_request_url, TAG_APPROVERS: ",".join(self.approvers)}

    def event_fields(self) -> dict[str, Any]:
        return {
            "pull_request": self.pull_request_url,
            "approvers": list(self.approvers),
            "break_glass": self.break_glass,
        }


def authorize(
    repo: Repository,
    specs: list[ModelSpec],
    context: CiContext,
    break_glass: str | None = None,
) -> dict[tuple[str, str], Authorization]:
    """The authorization of every spec whose environment has an approval rule, or a refusal."""
    guarded = [s for s in specs if repo.environment(s.environment).approval is not None]
    if break_glass is not None and not break_glass.strip():
        raise InputError("--break-glass", None, "give the reason for bypassing approval")
    if not guarded:
        return {}
    if break_glass is not None:
        reason = " ".join(break_glass.split())
        return {
            (s.environment, s.model): Authorization(s.environment, s.model, break_glass=reason)
            for s in guarded
        }
    environments = sorted({s.environment for s in guarded})
    for name in environments:
        _require_merge_workflow(repo, name, context)
    api = GitHubClient.from_environ(context.repository).require_token(
        "checking the approval of " + ", ".join(environments)
    )
    return {(s.environment, s.model): _authorize_spec(repo, s, api) for s in guarded}


def _require_merge_workflow(repo: Repository, environment: str, context: CiContext) -> None:
    """Refuse unless this is the merge workflow: a push to the protected branch, on that commit."""
    branch = repo.environment(environment).protected_branch
    expected_ref = f"refs/heads/{branch}"
    escape = "(an emergency needs --break-glass REASON, which is recorded)"

    def refuse(why: str) -> ApprovalRefused:
        return ApprovalRefused(
            f"{environment}: refusing to promote outside the merge workflow: {why} {escape}"
        )

    if not context.github_actions:
        raise refuse("not running in GitHub Actions (GITHUB_ACTIONS is not 'true')")
    if context.event_name != MERGE_EVENT:
        raise refuse(f"event {context.event_name or 'none'!r} is not a push to {branch}")
    if context.ref != expected_ref:
        raise refuse(f"ref {context.ref or 'none'!r} is not {expected_ref}")
    event = read_event(context.event_path)
    for field, expected in (("ref", context.ref), ("after", context.sha)):
        if event.get(field) != expected:
            raise InputError(context.event_path, field, f"does not match the run's {expected!r}")
    full_name = (event.get("repository") or {}).get("full_name")
    if full_name != context.repository:
        raise InputError(
            context.event_path, "repository.full_name", f"is not {context.repository!r}"
        )
    head = git.head_commit(repo.root)
    if head != context.sha:
        raise refuse(f"the checkout is at {head[:12]}, not the pushed commit {context.sha[:12]}")
    if git.run_git(repo.root, "status", "--porcelain", "--", "environments"):
        raise refuse("environments/ has uncommitted changes")


def _authorize_spec(repo: Repository, spec: ModelSpec, api: GitHubClient) -> Authorization:
    config = repo.environment(spec.environment)
    rule = config.approval
    assert rule is not None
    display = repo.relative(spec.path)
    commits = _commits_that_brought(repo, display)
    if not commits:
        raise ApprovalRefused(f"{display}: no commit on {config.protected_branch} changed it")
    commit = commits[0]
    try:
        pull = _merged_pull_request(api, commits, config.protected_branch)
        if pull is None:
            raise ApprovalRefused(
                f"{display}: changed by {commit[:12]}, which no merged pull request into "
                f"{config.protected_branch} contains: {spec.environment} needs an approved PR"
            )
        reviews = api.reviews(pull.number)
        approvers, rejections = count_approvals(
            pull,
            reviews,
            rule,
            lambda login: api.is_team_member(rule.organisation, rule.team_slug, login),
        )
    except GitHubError as exc:
        raise ApprovalRefused(
            f"{display}: cannot verify its approval, refusing: {exc.message}"
        ) from None
    if len(approvers) < rule.required:
        why = "; ".join(rejections) or "nobody approved it"
        raise ApprovalRefused(
            f"{display}: PR #{pull.number} has {len(approvers)} of {rule.required} required "
            f"approvals from {rule.team} on its final commit {pull.head_sha[:12]} ({why})"
        )
    return Authorization(spec.environment, spec.model, pull.url or f"#{pull.number}", approvers)


def _commits_that_brought(repo: Repository, relative: str) -> list[str]:
    """The commit that last changed `relative`, then the merge that brought it onto the branch.

    GitHub associates a pull request with both; asking about the change first and the merge
    second finds it whether the PR was merged, squashed or rebased.
    """
    change = git.run_git(repo.root, "log", "-1", "--format=%H", "HEAD", "--", relative)
    if not change:
        return []
    first_parents = git.run_git(repo.root, "rev-list", "--first-parent", "HEAD").split()
    if change in first_parents:
        return [change]
    descendants = set(
        git.run_git(repo.root, "rev-list", "--ancestry-path", f"{change}..HEAD").split()
    )
    merges = [c for c in first_parents if c in descendants]  # newest first
    return [change, merges[-1]] if merges else [change]


def _merged_pull_request(api: GitHubClient, commits: list[str], branch: str) -> PullRequest | None:
    """The latest pull request merged into `branch` that GitHub associates with the commits."""
    for commit in commits:
        merged = [p for p in api.pulls_for_commit(commit) if p.merged and p.base_ref == branch]
        if merged:
            return max(merged, key=lambda p: p.number)
    return None


def count_approvals(
    pull: PullRequest,
    reviews: list[Review],
    rule: ApprovalRule,
    is_member: Callable[[str], bool],
) -> tuple[tuple[str, ...], list[str]]:
    """The approvers that count, and why each other reviewer's verdict does not."""
    latest: dict[str, Review] = {}
    for review in reviews:  # GitHub lists reviews oldest first
        if review.state in DECISIVE_STATES:
            latest[review.reviewer] = review
    approvers: list[str] = []
    rejections: list[str] = []
    for login, review in sorted(latest.items()):
        if review.state != "APPROVED":
            verdict = review.state.lower().replace("_", " ")
            rejections.append(f"{login}'s latest review is {verdict}")
        elif login == pull.author:
            rejections.append(f"{login} approved their own pull request")
        elif review.commit_id != pull.head_sha:
            rejections.append(
                f"{login} approved {review.commit_id[:12]}, before the last push (stale)"
            )
        elif not is_member(login):
            rejections.append(f"{login} is not an active member of {rule.team}")
        else:
            approvers.append(login)
    return tuple(approvers), rejections
