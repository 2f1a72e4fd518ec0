"""The GitHub REST client against the loopback fake: shapes, paging, retries, deadlines, the
GitHub App's token exchange, and whose comment is edited."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from support.github_fake import FakeGitHub, Fault, serve
from support.processes import free_port

from promote.errors import GitHubError, GitHubUnavailable, InputError
from promote.github.app import READ_PERMISSIONS, WRITE_PERMISSIONS
from promote.github.client import CheckRun, CommitStatus, GitHubClient
from promote.github.context import ApiSettings

HEAD = "a" * 40
MERGE = "b" * 40
TOKEN = "ghs_test-token-never-printed"
APP_ID = 12345
MARKER = "<!-- promote plan -->"


def client(backoff: float = 0.2) -> GitHubClient:
    """A client as `from_environ` makes it, backing off briefly so retries stay fast."""
    return GitHubClient("acme/models", ApiSettings.from_environ(), backoff=backoff)


def review_paths(github: FakeGitHub) -> list[str]:
    return [path for method, path, _ in github.requests if "/reviews" in path]


def one_line_without_token(error: pytest.ExceptionInfo[Exception]) -> str:
    message = str(error.value)
    assert "\n" not in message and TOKEN not in message
    return message


# -- shapes --------------------------------------------------------------------------------


def test_pull_requests_of_a_commit_and_their_reviews(github: FakeGitHub) -> None:
    github.add_pull(7, "alice", HEAD, merge_commit_sha=MERGE)
    for index in range(130):  # more than one page of 100
        github.add_review(7, f"user{index}", "COMMENTED", HEAD)
    github.add_review(7, "bob", "APPROVED", HEAD)
    api = client()
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
    api = client()
    assert api.is_team_member("acme", "release-approvers", "bob")
    assert not api.is_team_member("acme", "release-approvers", "carol")
    assert not api.is_team_member("acme", "release-approvers", "mallory")


def test_open_pull_request_is_found_by_owner_and_branch(github: FakeGitHub) -> None:
    api = client()
    assert api.open_pull_request("promote/prod/churn-v1") is None
    created = api.create_pull_request("promote/prod/churn-v1", "main", "Promote", "body")
    found = api.open_pull_request("promote/prod/churn-v1")
    assert found is not None and found.number == created.number
    api.update_pull_request(created.number, "Promote again", "new body")
    assert github.pulls[created.number]["body"] == "new body"


def test_branch_tip_check_runs_and_commit_statuses(github: FakeGitHub) -> None:
    github.branches["release/prod"] = MERGE
    for index in range(150):  # check runs come in an object, paged like a list
        github.add_check_run(HEAD, f"job{index}", "success")
    github.add_check_run(HEAD, "tests", None)
    github.add_status(HEAD, "ci/lint", "failure")
    github.add_status(HEAD, "ci/lint", "success")
    api = client()
    assert api.branch_tip("release/prod") == MERGE
    runs = api.check_runs(HEAD)
    assert len(runs) == 151 and runs[0] == CheckRun("job0", "completed", "success")
    assert runs[-1] == CheckRun("tests", "in_progress", None)
    assert api.commit_statuses(HEAD) == [
        CommitStatus("ci/lint", "success"),
        CommitStatus("ci/lint", "failure"),
    ]
    assert api.check_runs(MERGE) == [] and api.commit_statuses(MERGE) == []
    with pytest.raises(GitHubError, match="HTTP 404"):
        api.branch_tip("main")


def test_a_branch_tip_that_is_not_a_commit_sha_is_refused(github: FakeGitHub) -> None:
    github.branches["main"] = "not-a-sha"
    with pytest.raises(GitHubError, match="did not answer the commit of main"):
        client().branch_tip("main")


# -- paging --------------------------------------------------------------------------------


def test_every_page_is_read_by_its_link_header(github: FakeGitHub) -> None:
    github.add_pull(7, "alice", HEAD)
    for index in range(2500):  # 25 pages of 100
        state = "CHANGES_REQUESTED" if index == 2005 else "COMMENTED"  # on page 21
        github.add_review(7, f"user{index}", state, HEAD)
    reviews = client().reviews(7)
    assert len(reviews) == 2500
    assert [r.reviewer for r in reviews if r.state == "CHANGES_REQUESTED"] == ["user2005"]
    paths = review_paths(github)
    assert len(paths) == 25
    assert "per_page=100" in paths[0] and "page=25" in paths[-1]


def test_a_list_past_the_bound_is_refused_not_cut(github: FakeGitHub) -> None:
    github.add_pull(7, "alice", HEAD)
    for index in range(10_001):
        github.add_review(7, f"user{index}", "APPROVED", HEAD)
    with pytest.raises(GitHubError) as error:
        client().reviews(7)
    message = one_line_without_token(error)
    assert "/pulls/7/reviews" in message and "more than 10000 items" in message
    assert "refusing rather than reading part of it" in message
    assert len(review_paths(github)) == 100


def test_a_next_page_on_another_host_is_refused_without_the_token(github: FakeGitHub) -> None:
    elsewhere = FakeGitHub()
    server, thread = serve(elsewhere)
    try:
        github.link_base = elsewhere.url
        github.add_pull(7, "alice", HEAD)
        for index in range(150):
            github.add_review(7, f"user{index}", "APPROVED", HEAD)
        with pytest.raises(GitHubError) as error:
            client().reviews(7)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    message = one_line_without_token(error)
    assert "refusing to send the token there" in message
    assert elsewhere.requests == []


# -- retries and deadlines -----------------------------------------------------------------


def test_a_server_error_is_retried(github: FakeGitHub) -> None:
    github.add_pull(7, "alice", HEAD)
    github.add_review(7, "bob", "APPROVED", HEAD)
    github.faults.append(Fault(502, path="/reviews"))
    assert [r.reviewer for r in client().reviews(7)] == ["bob"]
    assert len(review_paths(github)) == 2


def test_retry_after_is_honoured(github: FakeGitHub) -> None:
    github.faults.append(Fault(429, {"Retry-After": "1"}, "Too many requests", "/reviews"))
    started = time.monotonic()
    assert client(backoff=0.0).reviews(7) == []
    assert time.monotonic() - started >= 0.9  # GitHub's wait, not the (zero) backoff
    assert len(review_paths(github)) == 2


def test_a_spent_rate_limit_waits_for_its_reset(
    github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMOTE_GITHUB_RETRY_BUDGET", "5")
    reset = int(time.time()) + 2  # a whole second, 1 to 2 s away
    github.faults.append(
        Fault(
            403,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
            "API rate limit exceeded for installation ID 4242.",
            "/reviews",
        )
    )
    started = time.monotonic()
    assert client(backoff=0.0).reviews(7) == []
    assert time.monotonic() - started >= 0.9
    assert time.time() >= reset - 0.1
    assert len(review_paths(github)) == 2


def test_a_secondary_rate_limit_is_retried(github: FakeGitHub) -> None:
    message = "You have exceeded a secondary rate limit. Please wait a few minutes."
    github.faults.append(Fault(403, message=message, path="/reviews"))
    assert client().reviews(7) == []
    assert len(review_paths(github)) == 2


def test_a_wait_past_the_budget_fails_at_once(github: FakeGitHub) -> None:
    github.faults.append(Fault(429, {"Retry-After": "30"}, "Too many requests", "/reviews"))
    started = time.monotonic()
    with pytest.raises(GitHubUnavailable) as error:
        client().reviews(7)
    assert time.monotonic() - started < 1.5
    assert error.value.exit_code == 3
    message = one_line_without_token(error)
    assert "HTTP 429" in message and "GitHub asked to wait 30s" in message
    assert "retry later" in message
    assert len(review_paths(github)) == 1


def test_github_failing_past_the_budget_is_unavailable(github: FakeGitHub) -> None:
    github.fail_status = 500
    started = time.monotonic()
    with pytest.raises(GitHubUnavailable) as error:
        client().pulls_for_commit(MERGE)
    elapsed = time.monotonic() - started
    assert 2 <= elapsed < 5  # the budget (2 s) was spent, and not much more
    assert error.value.exit_code == 3
    message = one_line_without_token(error)
    attempts = len(github.requests)
    assert attempts > 2 and f"after {attempts} attempts" in message
    assert "HTTP 500" in message and "/commits/" in message and "retry later" in message


def test_a_hanging_api_times_out_and_is_unavailable(github: FakeGitHub) -> None:
    github.hang_seconds = 1.0
    with pytest.raises(GitHubUnavailable, match=r"timed out after 0\.5s"):
        client().reviews(1)


def test_an_answer_that_drips_fails_at_the_deadline(
    github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each byte comes well within the timeout; the whole answer does not."""
    monkeypatch.setenv("PROMOTE_GITHUB_TIMEOUT", "1")
    monkeypatch.setenv("PROMOTE_GITHUB_RETRY_BUDGET", "0")
    github.faults.append(Fault(drip_seconds=0.25, path="/reviews"))
    started = time.monotonic()
    with pytest.raises(GitHubUnavailable) as error:
        client().reviews(7)
    assert time.monotonic() - started < 5
    assert "timed out after 1s" in one_line_without_token(error)
    assert github.drips[0] >= 10  # what waiting for the whole answer would have taken


def test_a_closed_port_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("PROMOTE_GITHUB_RETRY_BUDGET", "0.5")
    with pytest.raises(GitHubUnavailable) as error:
        client(backoff=0.1).reviews(7)
    assert "cannot connect" in one_line_without_token(error)


@pytest.mark.parametrize(
    ("status", "message"),
    [(401, "Bad credentials"), (403, "Must have admin rights"), (422, "Validation Failed")],
)
def test_a_refusal_fails_at_once(github: FakeGitHub, status: int, message: str) -> None:
    github.faults.append(Fault(status, message=message, path="/reviews"))
    with pytest.raises(GitHubError) as error:
        client().reviews(7)
    assert not isinstance(error.value, GitHubUnavailable) and error.value.exit_code == 1
    assert f"HTTP {status} ({message})" in one_line_without_token(error)
    assert len(github.requests) == 1


# -- credentials and identity --------------------------------------------------------------


def test_without_credentials_the_refusal_names_both_kinds(
    github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    with pytest.raises(InputError) as error:
        client().require_token("--comment")
    assert error.value.exit_code == 2
    assert "GITHUB_TOKEN" in error.value.message
    assert "PROMOTE_GITHUB_APP_ID" in error.value.message


def test_the_identity_of_a_token(github: FakeGitHub) -> None:
    assert client().identity() == "github-actions[bot]"  # /user refuses Actions' token
    github.user_login = "release-bot"
    assert client().identity() == "release-bot"


def test_only_a_comment_these_credentials_wrote_is_edited(github: FakeGitHub) -> None:
    github.add_pull(3, "alice", HEAD)
    planted = github.add_comment(3, "mallory", f"{MARKER}\nall green, merge away")
    api = client()
    first = api.upsert_comment(3, MARKER, f"{MARKER}\nplan one")
    second = api.upsert_comment(3, MARKER, f"{MARKER}\nplan two")
    assert first == second != planted["id"]
    assert [(c["user"]["login"], c["body"]) for c in github.comments[3]] == [
        ("mallory", f"{MARKER}\nall green, merge away"),
        ("github-actions[bot]", f"{MARKER}\nplan two"),
    ]


# -- GitHub App ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def app(
    github: FakeGitHub, app_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeGitHub]:
    """The fake in App mode, and the App's id and key in the environment (GITHUB_TOKEN too)."""
    github.register_app(APP_ID, app_key.public_key())
    monkeypatch.setenv("PROMOTE_GITHUB_APP_ID", str(APP_ID))
    monkeypatch.setenv("PROMOTE_GITHUB_APP_PRIVATE_KEY", pem(app_key))
    yield github


def credentials(github: FakeGitHub) -> list[tuple[str, str]]:
    """(route, kind of credentials) of every request: a JWT, a minted token, or GITHUB_TOKEN."""
    kinds = []
    for _method, path, authorization in github.requests:
        secret = (authorization or "").removeprefix("Bearer ")
        kind = (
            "jwt"
            if secret.count(".") == 2
            else "minted"
            if secret in github.minted
            else "GITHUB_TOKEN"
            if secret == TOKEN
            else "none"
        )
        kinds.append((path.split("?")[0], kind))
    return kinds


def test_an_app_mints_a_read_only_token_for_one_repository(app: FakeGitHub) -> None:
    app.add_pull(7, "alice", HEAD)
    app.add_review(7, "bob", "APPROVED", HEAD)
    app.add_team_member("acme", "release-approvers", "bob")
    api = client()
    assert [r.reviewer for r in api.reviews(7)] == ["bob"]
    assert api.is_team_member("acme", "release-approvers", "bob")
    assert credentials(app) == [
        ("/repos/acme/models/installation", "jwt"),
        ("/app/installations/4242/access_tokens", "jwt"),
        ("/repos/acme/models/pulls/7/reviews", "minted"),
        ("/orgs/acme/teams/release-approvers/memberships/bob", "minted"),
    ]
    assert app.token_requests == [{"repositories": ["models"], "permissions": READ_PERMISSIONS}]


def test_an_app_comments_as_its_bot_with_a_token_that_may_write(
    app: FakeGitHub, app_key: rsa.RSAPrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "app.pem"
    key_file.write_text(pem(app_key))
    monkeypatch.delenv("PROMOTE_GITHUB_APP_PRIVATE_KEY")
    monkeypatch.setenv("PROMOTE_GITHUB_APP_PRIVATE_KEY_FILE", str(key_file))
    monkeypatch.setenv("PROMOTE_GITHUB_APP_INSTALLATION_ID", "4242")
    app.add_pull(3, "alice", HEAD)
    app.add_comment(3, "github-actions[bot]", f"{MARKER}\nfrom before the App")
    api = client()
    first = api.upsert_comment(3, MARKER, f"{MARKER}\nplan one")
    assert api.upsert_comment(3, MARKER, f"{MARKER}\nplan two") == first
    assert [(c["user"]["login"], c["body"]) for c in app.comments[3]] == [
        ("github-actions[bot]", f"{MARKER}\nfrom before the App"),
        ("promote-app[bot]", f"{MARKER}\nplan two"),
    ]
    assert api.identity() == "promote-app[bot]"
    assert [body["permissions"] for body in app.token_requests] == [
        READ_PERMISSIONS,
        WRITE_PERMISSIONS,
    ]  # once each: a read-only token for reading, one that may write for the writes
    seen = credentials(app)
    assert all(kind == "jwt" for route, kind in seen if route.startswith("/app"))
    assert all(kind == "minted" for route, kind in seen if route.startswith("/repos/"))
    assert ("/repos/acme/models/installation", "jwt") not in seen


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("PROMOTE_GITHUB_APP_PRIVATE_KEY", "not a key", "not a readable"),
        ("PROMOTE_GITHUB_APP_ID", "promote-app", "is not a number"),
        ("PROMOTE_GITHUB_APP_INSTALLATION_ID", "first", "is not a number"),
    ],
)
def test_bad_app_settings_are_bad_input(
    app: FakeGitHub, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(InputError) as error:
        client()
    assert error.value.exit_code == 2
    assert error.value.message.startswith(f"{variable}: ") and problem in error.value.message
    assert "PRIVATE KEY" not in error.value.message
    assert app.requests == []


def test_a_key_github_does_not_know_is_bad_input(
    app: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    monkeypatch.setenv("PROMOTE_GITHUB_APP_PRIVATE_KEY", pem(stranger))
    with pytest.raises(InputError) as error:
        client().reviews(7)
    assert error.value.exit_code == 2
    message = error.value.message
    assert message.startswith("PROMOTE_GITHUB_APP_ID: GitHub refused the App's JWT")
    assert "PROMOTE_GITHUB_APP_PRIVATE_KEY" in message and "HTTP 401" in message
    assert len(app.requests) == 1 and app.minted == {}
