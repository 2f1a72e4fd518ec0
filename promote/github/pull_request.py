"""`promote model --open-pr`: push the proposal's branch and open (or update) its pull request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from promote.build import git
from promote.github.client import GitHubClient
from promote.github.context import repository_name
from promote.github.report import render_pull_request_body
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
    assert proposal.branch is not None
    client = GitHubClient.from_environ(repository_name(repo.root, environ), environ)
    client.require_token("--open-pr")
    body = render_pull_request_body(repo, registry, proposal)
    title = f"Promote {proposal.model} to {proposal.environment}: {proposal.source_ref}"
    # The branch is rebuilt from the protected branch on every proposal: it belongs to promote.
    branch_ref = f"refs/heads/{proposal.branch}"
    git.run_git(repo.root, "push", "--force", "--quiet", "origin", f"{branch_ref}:{branch_ref}")
    existing = client.open_pull_request(proposal.branch)
    if existing is not None:
        updated = client.update_pull_request(existing.number, title, body)
        return OpenedPullRequest(updated.number, updated.url, created=False)
    base = repo.environment(proposal.environment).protected_branch
    created = client.create_pull_request(proposal.branch, base, title, body)
    return OpenedPullRequest(created.number, created.url, created=True)
