"""The GitHub REST client against the loopback fake: shapes, paging, errors, timeouts."""

from __future__ import annotations

import pytest
from support.github_fake import FakeGitHub

from promote.github.client import GitHubClient, GitHubError

HEAD = "a" * 40
MERGE = "b" * 40
TOKEN = "ghs_test-token-never-printed"


def client(github: FakeGitHub) -> GitHubClient:
    return GitHubClient.from_environ(github.full_name)


def test_pull_requests_of_a_commit_and_their_reviews(github: FakeGitHub) -> None:
    github.add_pull(7, "alice", HEAD, merge_commit_sha=MERGE)
    for index in range(130):  # more than one page of 100
        github.add_review(7, f"user{index}", "COMMENTED", HEAD)
    github.add_review(7, "bob", "APPROVED", HEAD)
    api = client(github)
    [pull] = api.pulls_for_commit(MERGE)
    assert (pull.number, pull.author, pull.head_sha, pull.merged, pull.base_ref) == (
        7,
        "alice",
        HEAD,
        True,
        "main",
    )
    reviews = api.reviews(7)
    assert len(reviews) == 131
    assert (reviews[-1].reviewer, reviews[-1].state, reviews[-1].commit_id) == (
        "bob",
        "APPROVED",
        HEAD,
    )
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth in github.requests)


def test_team_membership_is_active_membership_only(github: FakeGitHub) -> None:
    github.add_team_member("acme", "release-approvers", "bob")
    github.add_team_member("acme", "release-approvers", "carol", state="pending")
    api = client(github)
    assert api.is_team_member("acme", "release-approvers", "bob")
    assert not api.is_team_member("acme", "release-approvers", "carol")
    assert not api.is_team_member("acme", "release-approvers", "mallory")


def test_one_comment_is_created_then_edited_in_place(github: FakeGitHub) -> None:
    github.add_pull(3, "alice", HEAD)
    api = client(github)
    first = api.upsert_comment(3, "<!-- marker -->", "<!-- marker -->\nplan one")
    second = api.upsert_comment(3, "<!-- marker -->", "<!-- marker -->\nplan two")
    assert first == second
    assert [c["body"] for c in github.comments[3]] == ["<!-- marker -->\nplan two"]


def test_open_pull_request_is_found_by_owner_and_branch(github: FakeGitHub) -> None:
    api = client(github)
    assert api.open_pull_request("promote/prod/churn-v1") is None
    created = api.create_pull_request("promote/prod/churn-v1", "main", "Promote", "body")
    found = api.open_pull_request("promote/prod/churn-v1")
    assert found is not None and found.number == created.number
    api.update_pull_request(created.number, "Promote again", "new body")
    assert github.pulls[created.number]["body"] == "new body"


def test_server_errors_are_one_line_and_never_show_the_token(github: FakeGitHub) -> None:
    github.fail_status = 500
    with pytest.raises(GitHubError) as error:
        client(github).pulls_for_commit(MERGE)
    message = str(error.value)
    assert "HTTP 500" in message and "/commits/" in message and "\n" not in message
    assert TOKEN not in message


def test_a_hanging_api_times_out_quickly(github: FakeGitHub) -> None:
    github.hang_seconds = 1.0
    with pytest.raises(GitHubError, match=r"timed out after 0\.5s"):
        client(github).reviews(1)
