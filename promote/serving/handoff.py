"""The hand-off to the serving infrastructure a team already runs: after `champion` moves, the
environment's `handoff:` targets are told which version now serves, and how to check it.

Two kinds of target: a webhook, POSTed a JSON body signed with HMAC-SHA256 under a shared
secret (`X-Promote-Signature-256: sha256=...`, as GitHub signs its own webhooks), and a GitHub
deployment of the merge commit with its status. Each target is tried with exponential backoff,
bounded in attempts and in time, honouring Retry-After. A hand-off never blocks or undoes a
promotion: a target that is down is a warning, and `promote handoff` sends again later. Every
attempt, delivered or not, is an event in the model's history.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from promote.errors import InputError
from promote.github.client import Answer, GitHubClient
from promote.github.context import repository_name, run_url
from promote.manifests.repository import Repository, environment_file
from promote.manifests.schema import Handoff, HandoffRetry, Webhook
from promote.registry.client import Registry
from promote.registry.entities import CHAMPION, EventKind
from promote.runtime.redact import redact

SIGNATURE_HEADER = "X-Promote-Signature-256"
DELIVERY_HEADER = "X-Promote-Delivery"
TIMESTAMP_HEADER = "X-Promote-Timestamp"
EVENT_HEADER = "X-Promote-Event"
# The event a notification sent again by `promote handoff` carries.
RESENT = "resend"
JITTER = 0.1  # up to 10% more on each wait, so targets are not hit in step by parallel applies
# Statuses worth another try: the receiver is failing, overloaded, or asks to slow down.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

Report = Callable[[str], None]


@dataclass(frozen=True)
class Notice:
    """What a hand-off says: which version of which model now serves where, and how to get it."""

    event: str
    model: str
    environment: str
    registered_name: str
    version: int
    previous: int | None
    digest: str
    run: str
    merge_commit: str

    @property
    def model_uri(self) -> str:
        return f"models:/{self.registered_name}@{CHAMPION}"

    def payload(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "model": self.model,
            "environment": self.environment,
            "registered_model": self.registered_name,
            "version": self.version,
            "previous": self.previous,
            "digest": self.digest,
            "run": self.run,
            "model_uri": self.model_uri,
            "merge_commit": self.merge_commit,
        }


@dataclass(frozen=True)
class Reply:
    """What one attempt got: an HTTP status, or why there was none; and how long the target
    asked to wait before the next (Retry-After)."""

    status: int | None
    error: str = ""
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def transient(self) -> bool:
        """Worth trying again: no answer at all, or one that says "later". A 4xx such as 401 (a
        wrong secret) or 404 would answer the same to every try."""
        return self.status is None or self.status in TRANSIENT_STATUSES

    def describe(self) -> str:
        if self.status is None:
            return self.error
        return f"HTTP {self.status}" + (f" ({self.error})" if self.error else "")

    @classmethod
    def of_github(cls, answer: Answer | str) -> Reply:
        if isinstance(answer, str):
            return cls(None, answer)
        # GitHub's own transient answers (a 403 marked as rate limiting) count as 429.
        status = 429 if answer.is_transient() and answer.status == 403 else answer.status
        return cls(status, answer.message(), answer.asked_wait())


@dataclass
class Delivery:
    """One target's hand-off: each attempt's reply, in order."""

    target: str
    delivery_id: str
    replies: list[Reply] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return bool(self.replies) and self.replies[-1].delivered

    def summary(self) -> str:
        tries = len(self.replies)
        last = self.replies[-1].describe() if self.replies else "not tried"
        verdict = "delivered" if self.delivered else "FAILED"
        return f"{self.target}: {verdict} after {tries} attempt{'s' * (tries != 1)} ({last})"

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "delivery": self.delivery_id,
            "delivered": self.delivered,
            "attempts": [
                {"status": r.status, "error": r.error, "retry_after": r.retry_after}
                for r in self.replies
            ],
        }


class Target:
    """Somewhere a notice goes; `send` makes one attempt."""

    name: str

    def send(self, notice: Notice, delivery_id: str) -> Reply:
        raise NotImplementedError


class WebhookTarget(Target):
    def __init__(self, webhook: Webhook, secret: bytes, timeout: float) -> None:
        self.name = f"webhook {webhook.url}"
        self.url = webhook.url
        self.secret = secret
        self.timeout = timeout
        # A redirect is not followed: the body would go to wherever the answer points.
        self._opener = urllib.request.build_opener(_NoRedirects())
        self._signed: dict[str, tuple[bytes, dict[str, str]]] = {}

    def send(self, notice: Notice, delivery_id: str) -> Reply:
        # Every attempt of one delivery sends the same bytes: a receiver dedupes by its id.
        if delivery_id not in self._signed:
            self._signed[delivery_id] = signed_body(notice, delivery_id, self.secret, time.time())
        body, headers = self._signed[delivery_id]
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                answer.read()
                return Reply(answer.status)
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, str(exc.reason or ""), _seconds(exc.headers.get("Retry-After")))
        except (OSError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            return Reply(None, f"cannot connect ({reason or type(exc).__name__})")


def signed_body(
    notice: Notice, delivery_id: str, secret: bytes, now: float
) -> tuple[bytes, dict[str, str]]:
    """The exact body bytes and the headers that sign them. The delivery id and timestamp are
    inside the signed body (and repeated in headers), so a replay cannot pass them off as new."""
    timestamp = int(now)
    payload = {**notice.payload(), "delivery": delivery_id, "timestamp": timestamp}
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "User-Agent": "promote",
        SIGNATURE_HEADER: f"sha256={signature}",
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        EVENT_HEADER: notice.event,
    }


class DeploymentTarget(Target):
    """A GitHub deployment of the merge commit, then its status. A retry after the deployment
    was created only sets its status: one move makes one deployment."""

    def __init__(
        self,
        client: GitHubClient,
        deployment_environment: str,
        environment_url: str | None,
        log_url: str | None,
    ) -> None:
        self.name = f"github deployment {deployment_environment}"
        self.client = client
        self.deployment_environment = deployment_environment
        self.environment_url = environment_url
        self.log_url = log_url
        self.state = "success"  # `failure` once the webhook beside it was not delivered
        self.created: dict[str, int] = {}  # delivery id -> deployment id

    def send(self, notice: Notice, delivery_id: str) -> Reply:
        deployment_id = self.created.get(delivery_id)
        if deployment_id is None:
            if not notice.merge_commit:
                return Reply(None, "no merge commit to deploy")
            answer = self.client.create_deployment(
                notice.merge_commit,
                self.deployment_environment,
                {**notice.payload(), "delivery": delivery_id},
                f"{notice.registered_name} v{notice.version} is {CHAMPION}",
            )
            created = answer.json() if isinstance(answer, Answer) else None
            new_id = created.get("id") if isinstance(created, dict) else None
            if not isinstance(new_id, int) or isinstance(answer, str) or answer.status != 201:
                return Reply.of_github(answer)
            deployment_id = self.created[delivery_id] = new_id
        description = (
            f"v{notice.version} is {CHAMPION}"
            if self.state == "success"
            else f"v{notice.version} is {CHAMPION}; the webhook hand-off failed"
        )
        return Reply.of_github(
            self.client.create_deployment_status(
                deployment_id, self.state, description, self.environment_url, self.log_url
            )
        )


class Handoffs:
    """Every environment's hand-off: checked before apply writes, sent after each move."""

    def __init__(
        self,
        repo: Repository,
        registry: Registry,
        report: Report,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.repo = repo
        self.registry = registry
        self.report = report
        self.environ = os.environ if environ is None else environ
        self.sleep = sleep
        self._github: GitHubClient | None = None

    def config(self, environment: str) -> Handoff | None:
        return self.repo.environment(environment).handoff

    def check(self, environment: str) -> None:
        """What the hand-off will need is there (the webhook's secret, GitHub credentials):
        InputError otherwise, before anything is written."""
        handoff = self.config(environment)
        if handoff is None:
            return
        if handoff.webhook is not None:
            self._secret(environment, handoff.webhook)
        if handoff.github_deployment is not False:
            self._github_client(environment)

    def announce(self, notice: Notice) -> list[Delivery]:
        """Tell every target of the notice's environment; each attempt goes into the history."""
        handoff = self.config(notice.environment)
        if handoff is None:
            return []
        deliveries = []
        webhook_delivered = True
        for target in self._targets(notice, handoff):
            if isinstance(target, DeploymentTarget) and not webhook_delivered:
                target.state = "failure"
            delivery = self._deliver(target, notice, handoff.retry)
            if isinstance(target, WebhookTarget):
                webhook_delivered = delivery.delivered
            deliveries.append(delivery)
        return deliveries

    def _targets(self, notice: Notice, handoff: Handoff) -> list[Target]:
        environment = notice.environment
        targets: list[Target] = []
        if handoff.webhook is not None:
            secret = self._secret(environment, handoff.webhook)
            targets.append(WebhookTarget(handoff.webhook, secret, handoff.retry.timeout_seconds))
        if handoff.github_deployment is not False:
            name = environment if handoff.github_deployment is True else handoff.github_deployment
            targets.append(
                DeploymentTarget(
                    self._github_client(environment), name, self._environment_url(notice), run_url()
                )
            )
        return targets

    def _deliver(self, target: Target, notice: Notice, retry: HandoffRetry) -> Delivery:
        """Attempts with exponential backoff until delivered, a reply no retry would change,
        `retry.attempts` tries, or `retry.max_seconds` in all."""
        delivery = Delivery(target.name, uuid.uuid4().hex)
        started = time.monotonic()
        while True:
            reply = target.send(notice, delivery.delivery_id)
            delivery.replies.append(reply)
            self._record(notice, delivery, reply)
            if reply.delivered or not reply.transient or len(delivery.replies) >= retry.attempts:
                break
            backoff = retry.backoff_seconds * 2 ** (len(delivery.replies) - 1)
            wait = reply.retry_after if reply.retry_after is not None else backoff
            wait *= 1 + random.random() * JITTER
            if time.monotonic() - started + wait + retry.timeout_seconds > retry.max_seconds:
                break  # the next try could end after the hand-off's time is up
            self.sleep(wait)
        if delivery.delivered:
            self.report(f"{notice.registered_name}: hand-off {delivery.summary()}")
        else:
            self.report(
                f"WARNING: {notice.registered_name}: hand-off {delivery.summary()}; champion "
                f"v{notice.version} stands: send it again with `promote handoff "
                f"{notice.model} --env {notice.environment}`"
            )
        return delivery

    def _record(self, notice: Notice, delivery: Delivery, reply: Reply) -> None:
        attempt = len(delivery.replies)
        outcome = "delivered" if reply.delivered else "failed"
        self.registry.append_event(
            notice.registered_name,
            {
                "action": EventKind.HANDOFF.value,
                "version": notice.version,
                "previous": notice.previous,
                "commit": "",
                "merge_commit": notice.merge_commit,
                "actor": "promote",
                "event": notice.event,
                "target": delivery.target,
                "delivery": delivery.delivery_id,
                "attempt": attempt,
                "attempted_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "status": reply.status,
                "error": reply.error,
                "reason": f"{delivery.target}: attempt {attempt} {outcome} ({reply.describe()})",
            },
        )

    def _secret(self, environment: str, webhook: Webhook) -> bytes:
        secret = self.environ.get(webhook.secret_env, "")
        if not secret:
            raise InputError(
                environment_file(environment),
                "handoff.webhook.secret_env",
                f"{webhook.secret_env} is not set: the webhook's HMAC secret is read from it",
            )
        return secret.encode()

    def _github_client(self, environment: str) -> GitHubClient:
        if self._github is None:
            try:
                repository = repository_name(self.repo.root)
            except InputError as exc:
                raise InputError(
                    environment_file(environment),
                    "handoff.github_deployment",
                    f"which GitHub repository? {exc.problem}",
                ) from None
            client = GitHubClient.from_environ(repository)
            self._github = client.require_token(
                f"the GitHub deployment of {environment_file(environment)} "
                "(handoff.github_deployment)"
            )
        return self._github

    def _environment_url(self, notice: Notice) -> str | None:
        """Where a person sees the champion: its page in the MLflow UI, when the registry is a
        server (a database or a file has no page)."""
        uri = self.registry.tracking_uri
        if not uri.startswith(("http://", "https://")):
            return None
        page = f"/#/models/{notice.registered_name}/versions/{notice.version}"
        return redact(uri.rstrip("/")) + page


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises the 3xx as an HTTPError: a reply, not a delivery


def _seconds(value: str | None) -> float | None:
    """A Retry-After given in seconds (its date form is not used by webhook receivers)."""
    text = (value or "").strip()
    return float(text) if text.isdigit() else None
