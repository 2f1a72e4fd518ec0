"""The hand-off after `champion` moves: a signed webhook a real receiver on loopback checks, a
GitHub deployment with its status, retries with backoff in the history, and a promotion that
stands whatever the targets answer."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime
from itertools import pairwise
from typing import Any

import pytest
from conftest import WEBHOOK_SECRET
from support.github_fake import FakeGitHub, Fault
from support.processes import free_port
from support.webhook import Receiver
from support.world import MODEL, World

from promote.registry.entities import CHAMPION, TAG_ARTIFACT_DIGEST, TAG_MERGE_COMMIT

SECRET_VARIABLE = "PROMOTE_TEST_WEBHOOK_SECRET"


def _configure(
    world: World,
    environment: str,
    url: str | None = None,
    deployment: bool | str = False,
    **retry: float,
) -> None:
    handoff: dict[str, Any] = {
        "retry": {"attempts": 4, "backoff_seconds": 0.2, "max_seconds": 20, **retry}
    }
    if url is not None:
        handoff["webhook"] = {"url": url, "secret_env": SECRET_VARIABLE}
    if deployment:
        handoff["github_deployment"] = deployment
    world.edit_yaml(
        f"environments/{environment}/environment.yaml", lambda body: body.update(handoff=handoff)
    )


def _handoff_events(world: World, environment: str) -> list[dict[str, Any]]:
    model = world.registry.model(f"{environment}.{MODEL}")
    assert model is not None
    return [e for e in model.events() if e["action"] == "handoff"]


def test_a_training_that_becomes_champion_posts_a_notice_the_receiver_verifies(
    trained: World, receiver: Receiver
) -> None:
    receiver.start()
    _configure(trained, "dev", receiver.url)
    assert trained.train_dev(C=0.5) == 2
    champion = trained.registry.model(f"dev.{MODEL}")
    assert champion is not None and champion.champion is not None
    [notice] = receiver.accepted
    assert receiver.refused == []
    assert {k: notice[k] for k in ("event", "model", "environment", "version", "previous")} == {
        "event": "train",
        "model": MODEL,
        "environment": "dev",
        "version": 2,
        "previous": 1,
    }
    assert notice["digest"] == champion.champion.tags[TAG_ARTIFACT_DIGEST]
    assert notice["run"] == champion.champion.run_id
    assert notice["model_uri"] == f"models:/dev.{MODEL}@{CHAMPION}"
    [event] = _handoff_events(trained, "dev")
    assert event["target"] == f"webhook {receiver.url}"
    assert (event["attempt"], event["status"], event["version"]) == (1, 204, 2)
    assert event["delivery"] == notice["delivery"]
    history = trained.cli("history", MODEL, "--env", "dev")
    assert history.returncode == 0, history.stderr
    assert "attempt 1 delivered (HTTP 204)" in history.stdout
    assert WEBHOOK_SECRET not in history.stdout + json.dumps(champion.tags)


def test_a_receiver_down_then_up_gets_the_notice_and_every_attempt_is_in_the_history(
    trained: World, receiver: Receiver
) -> None:
    _configure(trained, "dev", receiver.url, attempts=8)
    pipeline = trained.pipeline()
    assert _handoff_events(trained, "dev") == []  # MLflow is loaded before the clock starts
    receiver.start_after(1.0)
    [delivery] = pipeline.hand_off_again("dev", MODEL)
    assert delivery.delivered
    [notice] = receiver.accepted
    assert (notice["event"], notice["version"]) == ("resend", 1)
    events = _handoff_events(trained, "dev")
    assert len(events) == len(delivery.replies) >= 2
    assert [e["attempt"] for e in events] == list(range(1, len(events) + 1))
    assert {e["delivery"] for e in events} == {notice["delivery"]}
    assert all(e["status"] is None and "cannot connect" in e["error"] for e in events[:-1])
    assert events[-1]["status"] == 204
    # Exponential backoff: the n-th wait is at least 0.2 s * 2**(n-1).
    times = [datetime.fromisoformat(e["attempted_at"]) for e in events]
    gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(times)]
    assert all(gap >= 0.2 * 2**n for n, gap in enumerate(gaps)), gaps


def test_an_overloaded_receiver_is_waited_for_as_its_retry_after_asks(
    trained: World, receiver: Receiver
) -> None:
    receiver.failures, receiver.retry_after = 1, "2"
    receiver.start()
    _configure(trained, "dev", receiver.url)
    started = time.monotonic()
    [delivery] = trained.pipeline().hand_off_again("dev", MODEL)
    assert delivery.delivered
    assert time.monotonic() - started >= 2.0  # not the 0.2 s backoff: what the answer asked
    assert [r.status for r in delivery.replies] == [503, 204]
    assert [e["status"] for e in _handoff_events(trained, "dev")] == [503, 204]


def test_a_wrong_secret_is_refused_by_the_receiver_and_not_retried(
    trained: World, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.start()
    _configure(trained, "dev", receiver.url)
    monkeypatch.setenv(SECRET_VARIABLE, "not-the-shared-secret")
    result = trained.cli("handoff", MODEL, "--env", "dev", "--json")
    assert result.returncode == 1
    [delivery] = json.loads(result.stdout)
    assert delivery["delivered"] is False
    assert delivery["attempts"] == [{"status": 401, "error": "Unauthorized", "retry_after": None}]
    assert receiver.accepted == [] and receiver.refused == [(401, "bad signature")]
    [event] = _handoff_events(trained, "dev")  # a 401 answers every retry the same
    assert (event["status"], event["attempt"]) == (401, 1)
    assert "not-the-shared-secret" not in result.stdout + result.stderr


def test_the_receiver_check_refuses_a_changed_body_and_a_replay(receiver: Receiver) -> None:
    """The check the README documents, on bodies signed as promote signs them."""
    from promote.serving.handoff import Notice, signed_body

    notice = Notice("promote", MODEL, "prod", f"prod.{MODEL}", 3, 2, "sha256:ab", "r1", "c" * 40)
    body, headers = signed_body(notice, "d1", WEBHOOK_SECRET.encode(), time.time())
    assert headers["X-Promote-Signature-256"] == (
        "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    )
    tampered = body.replace(b'"version":3', b'"version":2')
    assert tampered != body
    assert receiver.check(tampered, headers) == (401, "bad signature")
    assert receiver.check(body, headers) == (204, "accepted")
    assert receiver.check(body, headers) == (409, "replayed delivery")
    old, old_headers = signed_body(notice, "d2", WEBHOOK_SECRET.encode(), time.time() - 3600)
    assert receiver.check(old, old_headers) == (400, "stale timestamp")


def test_the_promotion_stands_when_every_attempt_fails_and_the_deployment_says_so(
    trained: World, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    closed = f"http://127.0.0.1:{free_port()}/hook"
    _configure(trained, "dev", closed, deployment=True, attempts=3, backoff_seconds=0.1)
    assert trained.train_dev(C=0.5) == 2  # train_dev asserts the outcome is ok
    dev = trained.registry.model(f"dev.{MODEL}")
    assert dev is not None and dev.aliases[CHAMPION] == 2
    events = _handoff_events(trained, "dev")
    webhook = [e for e in events if e["target"].startswith("webhook")]
    assert [e["attempt"] for e in webhook] == [1, 2, 3]
    assert all("cannot connect" in e["error"] for e in webhook)
    assert any(
        line.startswith("WARNING: dev.churn: hand-off webhook") and "champion v2 stands" in line
        for line in trained.lines
    )
    [deployment] = github.deployments
    assert deployment["environment"] == "dev"
    assert dev.champion is not None
    assert deployment["ref"] == trained.registry.lineage(dev.champion.run_id).code_commit
    assert deployment["payload"]["version"] == 2
    [status] = github.deployment_statuses[deployment["id"]]
    assert status["state"] == "failure"
    assert [e["status"] for e in events if e["target"] == "github deployment dev"] == [201]


def test_a_github_deployment_of_the_merge_commit_retried_past_githubs_outage(
    promoted: World, github: FakeGitHub
) -> None:
    _configure(promoted, "prod", deployment="production")
    github.faults.append(Fault(status=503, path="/deployments", times=2))
    deliveries = promoted.pipeline().hand_off_again("prod", MODEL)
    assert [d.delivered for d in deliveries] == [True]
    prod = promoted.registry.model(f"prod.{MODEL}")
    assert prod is not None and prod.champion is not None
    [deployment] = github.deployments
    assert deployment["ref"] == prod.champion.tags[TAG_MERGE_COMMIT]
    assert deployment["environment"] == "production"
    assert deployment["payload"]["model_uri"] == f"models:/prod.{MODEL}@{CHAMPION}"
    assert deployment["payload"]["digest"] == prod.champion.tags[TAG_ARTIFACT_DIGEST]
    assert [s["state"] for s in github.deployment_statuses[deployment["id"]]] == ["success"]
    events = _handoff_events(promoted, "prod")
    assert [(e["attempt"], e["status"]) for e in events] == [(1, 503), (2, 503), (3, 201)]
    posted = [path for method, path, _ in github.requests if method == "POST"]
    assert posted.count("/repos/acme/models/deployments") == 3  # the fault answered two


@pytest.mark.parametrize(
    ("handoff", "field", "problem"),
    [
        (
            {"webhook": {"url": "ftp://example.com/hook", "secret_env": "X"}},
            "handoff.webhook.url",
            "must be an http:// or https:// URL",
        ),
        (
            {"webhook": {"url": "https://x.example/hook", "secret_env": "X", "secret": "s3cr3t"}},
            "handoff.webhook.secret",
            "unknown field",
        ),
        ({"github_deployment": 3}, "handoff.github_deployment", "must be true, false or"),
        ({"retry": {"attempts": 5}}, "handoff", "give webhook, github_deployment or both"),
    ],
)
def test_a_bad_handoff_block_is_one_line_naming_the_file_and_field(
    trained: World, handoff: dict[str, Any], field: str, problem: str
) -> None:
    trained.edit_yaml(
        "environments/dev/environment.yaml", lambda body: body.update(handoff=handoff)
    )
    before = trained.snapshot()
    result = trained.cli("train", MODEL, "--env", "dev")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: environments/dev/environment.yaml: {field}: {problem}")
    assert trained.snapshot() == before


def test_a_missing_secret_is_refused_before_anything_is_written(
    trained: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(trained, "dev", "https://example.com/hook")
    monkeypatch.delenv(SECRET_VARIABLE, raising=False)
    before = trained.snapshot()
    result = trained.cli("train", MODEL, "--env", "dev")
    assert result.returncode == 2
    assert (
        "environments/dev/environment.yaml: handoff.webhook.secret_env: "
        f"{SECRET_VARIABLE} is not set"
    ) in result.stderr
    assert trained.snapshot() == before


def test_a_champion_moved_back_without_a_rebuild_is_handed_off_too(
    promoted: World, receiver: Receiver, github: FakeGitHub
) -> None:
    receiver.start()
    _configure(promoted, "staging", receiver.url, deployment=True)
    promoted.train_dev(C=0.2)
    assert promoted.promote("staging").ok
    promoted.registry.client.set_registered_model_alias(f"staging.{MODEL}", CHAMPION, "1")
    result = promoted.pipeline().apply("staging")  # puts back the v2 the pipeline had set
    assert result.ok and [o.action for o in result.outcomes] == ["repair"]
    assert [d["delivered"] for d in result.outcomes[0].handoff] == [True, True]
    assert [(n["event"], n["version"]) for n in receiver.accepted] == [
        ("promote", 2),
        ("repair", 2),
    ]
    staging = promoted.registry.model(f"staging.{MODEL}")
    assert staging is not None and staging.champion is not None
    assert [d["ref"] for d in github.deployments] == [staging.champion.tags[TAG_MERGE_COMMIT]] * 2
    assert [d["payload"]["event"] for d in github.deployments] == ["promote", "repair"]
    assert all(
        [s["state"] for s in github.deployment_statuses[d["id"]]] == ["success"]
        for d in github.deployments
    )


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"GITHUB_REPOSITORY": "acme/models"},
            "error: GITHUB_TOKEN: not set: the GitHub deployment of "
            "environments/dev/environment.yaml (handoff.github_deployment) needs GITHUB_TOKEN",
        ),
        (
            {"GITHUB_TOKEN": "ghs_test-token-never-printed"},
            "error: environments/dev/environment.yaml: handoff.github_deployment: which GitHub "
            "repository? set GITHUB_REPOSITORY=owner/name",
        ),
    ],
)
def test_a_deployment_that_could_never_be_made_is_refused_before_anything_is_written(
    trained: World, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    _configure(trained, "dev", deployment=True)
    for name in ("GITHUB_TOKEN", "GITHUB_REPOSITORY", "PROMOTE_GITHUB_APP_ID"):
        monkeypatch.delenv(name, raising=False)
    before = trained.snapshot()
    result = trained.cli("train", MODEL, "--env", "dev", env=variables)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert trained.snapshot() == before


def test_the_tries_end_within_max_seconds_however_many_attempts_are_allowed(
    trained: World, receiver: Receiver
) -> None:
    receiver.failures = 100
    receiver.start()
    _configure(
        trained,
        "dev",
        receiver.url,
        attempts=20,
        backoff_seconds=0.5,
        max_seconds=4,
        timeout_seconds=1,
    )
    [delivery] = trained.pipeline().hand_off_again("dev", MODEL)
    assert not delivery.delivered
    # Tries at 0, 0.5 and 1.5 s; the next (after a 2 s wait, then up to 1 s) could end too late.
    assert [r.status for r in delivery.replies] == [503, 503, 503]
    events = _handoff_events(trained, "dev")
    first, last = (datetime.fromisoformat(e["attempted_at"]) for e in (events[0], events[-1]))
    assert len(events) == 3 and (last - first).total_seconds() < 4.0
