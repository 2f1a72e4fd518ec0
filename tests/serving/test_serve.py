"""`promote serve`: a real server process on loopback, answered over real HTTP while the
champion moves under it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from support.serving import ScoringServer, inputs_request, invoke, records, split_request
from support.world import MODEL, World

from promote.registry.entities import CHAMPION, TAG_ARTIFACT_DIGEST, Version

STAGING = f"staging.{MODEL}"


def _champion(world: World) -> Version:
    model = world.registry.model(STAGING)
    assert model is not None and model.champion is not None
    return model.champion


def _model_file(version: Version) -> Path:
    stored = Path(unquote(urlsplit(version.source).path))
    return next(p for p in sorted(stored.rglob("*")) if p.suffix in (".pkl", ".skops"))


class Client(threading.Thread):
    """Scores the same rows again and again until told to stop, recording every answer: on one
    kept-alive connection, or on a new connection per request."""

    def __init__(self, server: ScoringServer, keep_alive: bool, payload: dict[str, object]):
        super().__init__(daemon=True)
        self.server, self.keep_alive, self.payload = server, keep_alive, payload
        self.answers: list[tuple[int, str | None, Any]] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        connection = self.server.connection()
        while not self.stopping.is_set():
            try:
                self.answers.append(invoke(connection, self.payload))
            except Exception as exc:  # a dropped request is what the test looks for
                self.failures.append(repr(exc))
            if not self.keep_alive:
                connection.close()
                connection = self.server.connection()
            # Paced, so the training and the apply in the test get the CPU too.
            self.stopping.wait(0.01)
        connection.close()

    def versions(self) -> list[str | None]:
        return [version for _, version, _ in self.answers]


def test_serve_follows_the_champion_without_failing_a_request_and_refuses_a_tampered_one(
    promoted: World,
) -> None:
    first = _champion(promoted)
    server = ScoringServer(promoted.repo, "staging", "--interval", "0.2")
    try:
        server.wait_ready()
        served = server.version()
        assert (served["version"], served["artifact_digest"]) == (
            1,
            first.tags[TAG_ARTIFACT_DIGEST],
        )
        assert served["refused"] == []
        assert server.get("/health")[0] == 200
        connection = server.connection()
        split = invoke(connection, split_request())
        assert split[:2] == (200, "1") and len(split[2]["predictions"]) == 3
        # Every JSON format of MLflow's scoring protocol, on one kept-alive connection.
        for payload in (inputs_request(), records("dataframe_records"), records("instances")):
            assert invoke(connection, payload) == split
        connection.close()

        clients = [Client(server, True, split_request()), Client(server, False, inputs_request())]
        for client in clients:
            client.start()
        promoted.train_dev(C=0.2)
        assert promoted.promote("staging").ok
        second = _champion(promoted)
        assert second.version == 2
        server.wait_for("served v2", lambda found: found["version"] == 2)
        for client in clients:
            # Enough answers from v2 on each connection kind to see the switch held.
            client_seen = len(client.answers)
            while len([v for v in client.versions()[client_seen:] if v == "2"]) < 5:
                assert client.is_alive() and not client.failures
                client.stopping.wait(0.05)
            client.stopping.set()
            client.join(timeout=30)

        for client in clients:
            assert client.failures == []
            assert {status for status, _, _ in client.answers} == {200}
            versions = client.versions()
            # Every answer came from v1 until the swap, from v2 after it: never torn, never back.
            assert versions == sorted(versions) and set(versions) == {"1", "2"}
            assert all(len(body["predictions"]) == 3 for _, _, body in client.answers)
        served = server.version()
        assert served["artifact_digest"] == second.tags[TAG_ARTIFACT_DIGEST]
        assert "now serving staging.churn v2" in server.log()

        # Champion moved back by hand onto v1, whose stored model was tampered with since.
        victim = _model_file(first)
        victim.write_bytes(victim.read_bytes() + b"\0")
        promoted.registry.client.set_registered_model_alias(STAGING, CHAMPION, "1")
        refused = server.wait_for("refused v1", lambda found: found["refused"])
        assert refused["version"] == 2
        assert [entry["version"] for entry in refused["refused"]] == [1]
        reason = refused["refused"][0]["reason"]
        # The signed digest or the model signature: whichever check sees the byte first.
        assert reason.startswith(f"{STAGING}/1: ") and ("signature" in reason or "digest" in reason)
        connection = server.connection()
        assert invoke(connection, split_request())[:2] == (200, "2")
        connection.close()
        assert f"refused {STAGING} v1: {reason}; still serving {STAGING} v2" in server.log()
    finally:
        code = server.stop()
    assert code == 0, server.log()
    assert server.log().splitlines()[-1] == f"stopped serving {STAGING}"
