"""`--open-pr`: push a proposal's branch (a promotion, a retrain) and open or update its pull
request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from promote.build import git
from promote.github.client import GitHubClient
from promote.github.context import CiContext, repository_name
from promote.github.report import render_pull_request_body, render_retrain_body
from promote.manifests.repository import Repository
from promote.propose import Proposal
from promote.registry.client import Registry


@dataclass(frozen=True)
class OpenedPullRequest:
    number: int
    url: str
    created: bool


def open_pull_request(
    repo: Repository,
    registry: Registry,
    proposal: Proposal,
    environ: Mapping[str, str] | None = None,
) -> OpenedPullRequest:
    """Push the proposal's branch and open its PR, or update the one already open for it."""
    client = _client(repo, environ)
    body = render_pull_request_body(repo, registry, proposal)
    title = f"Promote {proposal.model} to {proposal.environment}: {proposal.source_ref}"
    return _push_and_open(repo, client, proposal, title, body, environ)


def open_retrain_pull_request(
    repo: Repository,
    registry: Registry,
    proposal: Proposal,
    drift_report: str,
    environ: Mapping[str, str] | None = None,
) -> OpenedPullRequest:
    """Push a retrain's branch and open its PR (or update the open one), the drift report of
    the environment's current data in its body."""
    client = _client(repo, environ)
    body = render_retrain_body(repo, registry, proposal, drift_report)
    title = f"Retrain {proposal.model} in {proposal.environment}: {proposal.source_ref}"
    return _push_and_open(repo, client, proposal, title, body, environ)


def _client(repo: Repository, environ: Mapping[str, str] | None) -> GitHubClient:
    client = GitHubClient.from_environ(repository_name(repo.root, environ), environ)
    return client.require_token("--open-pr")


def push_environment(
    repo: Repository, client: GitHubClient, environ: Mapping[str, str] | None = None
) -> dict[str, str] | None:
    """What git needs to push to an https `origin` from a GitHub Actions job: the token, as an
    extra header in git's environment (never in its arguments, which any process may list).
    The workflows check out without persisting credentials, so git has none of its own. Off
    Actions, or to another kind of remote, git's own credentials push."""
    url = git.run_git(repo.root, "remote", "get-url", "origin", check=False)
    if not CiContext.from_environ(environ).github_actions or not url.startswith("https://"):
        return None
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{url}.extraheader",
        "GIT_CONFIG_VALUE_0": client.git_push_header(),
    }


def _push_and_open(
    repo: Repository,
    client: GitHubClient,
    proposal: Proposal,
    title: str,
    body: str,
    environ: Mapping[str, str] | None,
) -> OpenedPullRequest:
    assert proposal.branch is not None
    # The branch is rebuilt from the protected branch on every proposal: it belongs to promote.
    branch_ref = f"refs/heads/{proposal.branch}"
    git.run_git(
        repo.root,
        "push",
        "--force",
        "--quiet",
        "origin",
        f"{branch_ref}:{branch_ref}",
        env=push_environment(repo, client, environ),
    )
    existing = client.open_pull_request(proposal.branch)
    if existing is not None:
        updated = client.update_pull_request(existing.number, title, body)
        return OpenedPullRequest(updated.number, updated.url, created=False)
    base = repo.environment(proposal.environment).protected_branch
    created = client.create_pull_request(proposal.branch, base, title, body)
    return OpenedPullRequest(created.number, created.url, created=True)
