"""Approval enforced by the tool itself, not only by branch protection.

In CI, `promote apply` changes an environment only from the current tip of its protected branch
(asked of GitHub, else of `git ls-remote`): a re-run of an older workflow changes nothing.

For an environment with an `approval` rule, apply only acts inside the merge workflow (a push
to the protected branch, in GitHub Actions, on the pushed commit), and only for manifests whose
last change came from a merged pull request with enough approvals: from active members of the
approvers team, on the pull request's final commit, by someone other than its author. The rule
is read from before the merge (its first parent) as well as after, and the stricter applies,
so a pull request cannot relax the rule it is judged by; a merge that changes the
`environment.yaml` of a guarded environment needs that rule's approvals itself. Anything it
cannot verify is a refusal, never a promotion; GitHub unreachable is its own exit code.

An explicit break-glass reason skips the approval checks (not the tip of the branch in CI); it
is recorded in the history and the tags.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from promote.build import git
from promote.errors import ApprovalRefused, GitHubUnavailable, InputError
from promote.github.client import GitHubClient, GitHubError, PullRequest, Review
from promote.github.context import CiContext, read_event
from promote.manifests.repository import (
    ENVIRONMENT_FILE,
    ENVIRONMENTS_DIR,
    ModelSpec,
    Repository,
    environment_file,
)
from promote.manifests.schema import ApprovalRule, parse, parse_yaml
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


def strictest(rules: Iterable[ApprovalRule | None]) -> tuple[ApprovalRule, ...]:
    """Every rule that must hold, once per team: a team named twice needs the larger count."""
    by_team: dict[str, ApprovalRule] = {}
    for rule in rules:
        if rule is not None and (
            rule.team not in by_team or rule.required > by_team[rule.team].required
        ):
            by_team[rule.team] = rule
    return tuple(by_team[team] for team in sorted(by_team))


def rule_at(repo: Repository, environment: str, commit: str) -> ApprovalRule | None:
    """The approval rule `environment.yaml` held at `commit` (None: no rule, or no file)."""
    relative = environment_file(environment)
    text = git.file_at(repo.root, commit, relative)
    if text is None:
        return None
    display = f"{relative} at {commit[:12]}"
    try:
        block = parse_yaml(text, display).get("approval")
        return None if block is None else parse(ApprovalRule, block, display)
    except InputError as exc:
        # History cannot be fixed by the user: an unreadable rule is unknown, so refuse.
        raise ApprovalRefused(f"cannot read the approval rule: {exc.message}") from None


class Approvals:
    """The approval checks of one apply, each merge's pull request asked of GitHub once.

    `authorize` is asked again under each model's lock, for whatever action was decided there:
    what it answered before is reused, and anything new is checked then.
    """

    def __init__(
        self, repo: Repository, context: CiContext, break_glass: str | None = None
    ) -> None:
        if break_glass is not None and not break_glass.strip():
            raise InputError("--break-glass", None, "give the reason for bypassing approval")
        self.repo = repo
        self.context = context
        self.break_glass = " ".join(break_glass.split()) if break_glass is not None else None
        self.head = git.head_commit(repo.root)
        self._api: GitHubClient | None = None
        self._workflow_checked: set[str] = set()
        self._tips_checked: set[str] = set()
        self._approved: dict[tuple[tuple[str, ...], tuple[ApprovalRule, ...]], Approval] = {}
        self._authorized: dict[tuple[str, str], Authorization | None] = {}

    # -- what one apply must prove before it writes ------------------------------------------

    def check_run(self, environments: Iterable[str]) -> None:
        """Before anything is written: in CI the run is at the tip of each environment's
        protected branch, and a merge that changed a guarded environment's config is approved."""
        for environment in sorted(set(environments)):
            self.require_tip(environment)
        for relative in git.changed_files(self.repo.root, self.head):
            folder, _, name = relative.rpartition("/")
            environment = folder.removeprefix(f"{ENVIRONMENTS_DIR}/")
            if name != ENVIRONMENT_FILE or folder != f"{ENVIRONMENTS_DIR}/{environment}":
                continue
            rules = self.rules_for(environment, self.head)
            if rules and self.break_glass is None:
                self._require_merge_workflow(environment)
                self._pull_request_approval([self.head], rules, relative, environment)

    def authorize(self, spec: ModelSpec) -> Authorization | None:
        """Why this manifest may change its environment, or None when no rule guards it."""
        key = (spec.environment, spec.model)
        if key not in self._authorized:
            self._authorized[key] = self._authorize(spec)
        return self._authorized[key]

    @functools.cache  # noqa: B019 - one Approvals per apply: the cache dies with it
    def rules_for(self, environment: str, merge: str) -> tuple[ApprovalRule, ...]:
        """The rules a change merged at `merge` must meet: before the merge, at it, and now."""
        before = git.first_parent(self.repo.root, merge)
        current = self.repo.environments.get(environment)
        return strictest(
            [
                rule_at(self.repo, environment, before) if before else None,
                rule_at(self.repo, environment, merge),
                current.approval if current else None,
            ]
        )

    def require_tip(self, environment: str) -> None:
        """In CI, refuse unless this run is at the current tip of the protected branch."""
        branch = self.repo.environment(environment).protected_branch
        if not self.context.github_actions or branch in self._tips_checked:
            return
        api = self._client(required=False)
        try:
            tip = api.branch_tip(branch) if api else git.remote_tip(self.repo.root, branch)
        except GitHubUnavailable:
            raise
        except GitHubError as exc:
            raise ApprovalRefused(
                f"{environment}: cannot ask GitHub where {branch} is, refusing: {exc.message}"
            ) from None
        if tip is None:
            raise ApprovalRefused(f"{environment}: refusing: origin has no branch {branch}")
        if tip != self.head:
            raise ApprovalRefused(
                f"{environment}: refusing to apply {self.head[:12]}: {branch} is now at "
                f"{tip[:12]}, and only its tip changes {environment} (a re-run of an older "
                f"workflow never does; roll back with a new commit)"
            )
        self._tips_checked.add(branch)

    # -- the checks --------------------------------------------------------------------------

    def _authorize(self, spec: ModelSpec) -> Authorization | None:
        display = self.repo.relative(spec.path)
        commits = _commits_that_brought(self.repo, display)
        if not commits:
            branch = spec.config.protected_branch
            raise ApprovalRefused(f"{display}: no commit on {branch} changed it")
        rules = self.rules_for(spec.environment, commits[-1])
        if not rules:
            return None
        if self.break_glass is not None:
            return Authorization(spec.environment, spec.model, break_glass=self.break_glass)
        self._require_merge_workflow(spec.environment)
        approval = self._pull_request_approval(commits, rules, display, spec.environment)
        return Authorization(spec.environment, spec.model, approval.url, approval.approvers)

    def _client(self, required: bool = True) -> GitHubClient | None:
        if self._api is None:
            api = GitHubClient.from_environ(self.context.repository)
            if not api.has_credentials:
                if not required:
                    return None
                api.require_token("checking approvals")
            self._api = api
        return self._api

    def _require_merge_workflow(self, environment: str) -> None:
        """Refuse unless this is the merge workflow: a push to the protected branch, on that
        commit, at the branch's tip."""
        if environment in self._workflow_checked:
            return
        branch = self.repo.environment(environment).protected_branch
        expected_ref = f"refs/heads/{branch}"
        context = self.context
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
                raise InputError(
                    context.event_path, field, f"does not match the run's {expected!r}"
                )
        full_name = (event.get("repository") or {}).get("full_name")
        if full_name != context.repository:
            raise InputError(
                context.event_path, "repository.full_name", f"is not {context.repository!r}"
            )
        if self.head != context.sha:
            raise refuse(
                f"the checkout is at {self.head[:12]}, not the pushed commit {context.sha[:12]}"
            )
        if git.run_git(self.repo.root, "status", "--porcelain", "--", ENVIRONMENTS_DIR):
            raise refuse(f"{ENVIRONMENTS_DIR}/ has uncommitted changes")
        self.require_tip(environment)
        self._workflow_checked.add(environment)

    def _pull_request_approval(
        self,
        commits: list[str],
        rules: tuple[ApprovalRule, ...],
        display: str,
        environment: str,
    ) -> Approval:
        """The merged pull request that brought `commits`, approved under every one of `rules`."""
        key = (tuple(commits), rules)
        if key in self._approved:
            return self._approved[key]
        branch = self.repo.environment(environment).protected_branch
        api = self._client()
        assert api is not None
        try:
            pull = _merged_pull_request(api, commits, branch)
            if pull is None:
                raise ApprovalRefused(
                    f"{display}: changed by {commits[0][:12]}, which no merged pull request "
                    f"into {branch} contains: {environment} needs an approved PR"
                )
            reviews = api.reviews(pull.number)
            counted: list[str] = []
            for rule in rules:
                approvers, rejections = count_approvals(
                    pull,
                    reviews,
                    rule,
                    functools.partial(api.is_team_member, *rule.team.split("/")),
                )
                if len(approvers) < rule.required:
                    why = "; ".join(rejections) or "nobody approved it"
                    raise ApprovalRefused(
                        f"{display}: PR #{pull.number} has {len(approvers)} of {rule.required} "
                        f"required approvals from {rule.team} on its final commit "
                        f"{pull.head_sha[:12]} ({why})"
                    )
                counted += [login for login in approvers if login not in counted]
        except GitHubUnavailable as exc:
            raise GitHubUnavailable(
                f"{display}: cannot verify its approval now: {exc.message}"
            ) from None
        except GitHubError as exc:
            raise ApprovalRefused(
                f"{display}: cannot verify its approval, refusing: {exc.message}"
            ) from None
        approval = Approval(pull.url or f"#{pull.number}", tuple(counted))
        self._approved[key] = approval
        return approval


@dataclass(frozen=True)
class Approval:
    """A merged pull request and the reviewers whose approvals counted."""

    url: str
    approvers: tuple[str, ...]


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
