"""plan: gather asks each question once per plan; decide reaches every action without I/O."""

from __future__ import annotations

import builtins
import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import proofs
from support.world import World

from promote.build import git
from promote.manifests.repository import ModelSpec, Repository
from promote.manifests.schema import Code, Data, EnvironmentConfig, Manifest, Source
from promote.plan import Action, CodeChecks, ModelState, Snapshot, decide
from promote.registry.entities import (
    CHAMPION,
    EVENT_PREFIX,
    TAG_EXPECTED_CHAMPION,
    TAG_MANAGED,
    TAG_REASON,
    VERDICT_PASSED,
    VERDICT_PENDING,
    VERDICT_REJECTED,
    RegisteredModel,
)


def test_pinned_commits_are_checked_once_per_plan(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = git.head_commit(world.repo)
    git.run_git(world.repo, "checkout", "--quiet", "-b", "feature")
    (world.repo / "notes.txt").write_text("not merged\n")
    unmerged = world.commit("Work in progress")

    git_calls: list[list[str]] = []
    real = subprocess.run

    def counting(command: list[str], *args: Any, **kwargs: Any) -> Any:
        git_calls.append(command)
        return real(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting)
    checks = CodeChecks(world.repo)
    assert checks.problem(".", head, "main") is None
    asked = len(git_calls)
    assert asked >= 2  # the commit exists, and is on the protected branch
    for _ in range(100):  # a hundred manifests pinned to the same commit
        assert checks.problem(".", head, "main") is None
    assert len(git_calls) == asked

    assert checks.problem(".", "f" * 40, "main") == "ffffffffffff does not exist"
    on_feature = checks.problem(".", unmerged, "main")
    assert on_feature == f"{unmerged[:12]} is not on the protected branch main"


# -- decide: every action and refusal, from a snapshot alone -----------------------------------

COMMIT = "a" * 40
OTHER_COMMIT = "b" * 40
CODE_KEY = (".", COMMIT, "main")


def _repository() -> Repository:
    environments = {
        "dev": EnvironmentConfig(name="dev", data_root="data/dev", signing=proofs.signing()),
        "staging": EnvironmentConfig(
            name="staging", promotes_from="dev", data_root="data/stg", signing=proofs.signing()
        ),
    }
    return Repository(root=Path("/nonexistent"), environments=environments)


def _staging_spec(repo: Repository, source_version: int = 1) -> ModelSpec:
    manifest = Manifest(
        model="churn",
        source=Source(environment="dev", version=source_version),
        code=Code(commit=COMMIT, entrypoint="train.py"),
        data=Data(path="churn"),
    )
    return ModelSpec.of(repo.environments["staging"], manifest, Path("environments/staging/x"))


def _source_model(verdict: str = VERDICT_PASSED, **signed: Any) -> RegisteredModel:
    claims = proofs.claims("dev.churn", 1, **{"commit": COMMIT, **signed})
    version = proofs.signed_version(claims, 1, verdict, **{TAG_REASON: "gate"})
    return RegisteredModel("dev.churn", {CHAMPION: 1}, {TAG_MANAGED: "true"}, [version])


def _target_model(
    digest: str, verdicts: dict[int, str], champion: int | None, logged: bool = True
) -> RegisteredModel:
    versions = [
        proofs.signed_version(
            proofs.claims("staging.churn", n, manifest_digest=digest, source="dev.churn/1"),
            n,
            verdict,
        )
        for n, verdict in sorted(verdicts.items())
    ]
    tags = {TAG_MANAGED: "true"}
    if champion is not None:
        tags[TAG_EXPECTED_CHAMPION] = str(champion)
        if logged:
            tags[f"{EVENT_PREFIX}0001"] = json.dumps({"version": champion})
    aliases = {CHAMPION: champion} if champion is not None else {}
    return RegisteredModel("staging.churn", aliases, tags, versions)


def _snapshot(
    repo: Repository,
    target: RegisteredModel | None,
    source: RegisteredModel | None,
    code_problem: str | None = None,
) -> Snapshot:
    models = {m.name: m for m in (target, source) if m is not None}
    return Snapshot(repo, models, code_problems={CODE_KEY: code_problem})


def _case(name: str) -> tuple[ModelState, ModelSpec]:
    repo = _repository()
    spec = _staging_spec(repo)
    digest = spec.digest
    source = _source_model()
    cases: dict[str, Snapshot] = {
        "build": _snapshot(repo, None, source),
        "none": _snapshot(repo, _target_model(digest, {1: VERDICT_PASSED}, champion=1), source),
        "record": _snapshot(
            repo, _target_model(digest, {1: VERDICT_PASSED}, champion=1, logged=False), source
        ),
        "repoint": _snapshot(
            repo, _target_model(digest, {1: VERDICT_PASSED, 2: "other"}, champion=None), source
        ),
        "resume": _snapshot(repo, _target_model(digest, {1: VERDICT_PENDING}, None), source),
        "rejected": _snapshot(repo, _target_model(digest, {1: VERDICT_REJECTED}, None), source),
        "no source": _snapshot(repo, None, None),
        "source rejected": _snapshot(repo, None, _source_model(VERDICT_REJECTED)),
        "source pending": _snapshot(repo, None, _source_model(VERDICT_PENDING)),
        "source dirty": _snapshot(repo, None, _source_model(dirty=True)),
        "other commit": _snapshot(repo, None, _source_model(commit=OTHER_COMMIT)),
        "commit off branch": _snapshot(repo, None, source, "aaaa is not on the protected branch"),
    }
    return decide(spec, cases[name]), spec


@pytest.mark.parametrize(
    ("case", "action", "detail"),
    [
        ("build", Action.BUILD, "rebuild dev v1 at aaaaaaaaaaaa"),
        ("none", Action.NONE, "champion v1 is this manifest"),
        ("record", Action.RECORD, "record the promotion an interrupted apply did not log"),
        ("repoint", Action.REPOINT, "champion -> v1 (already built from this manifest)"),
        ("resume", Action.RESUME, "finish the checks of v1"),
        ("rejected", Action.REJECTED, "v1 was rejected"),
        ("no source", Action.REFUSED, "source.version: dev.churn/1 does not exist"),
        ("source rejected", Action.REFUSED, "dev.churn/1 was rejected: gate"),
        ("source pending", Action.REFUSED, "dev.churn/1 has not passed its gates"),
        ("source dirty", Action.REFUSED, "trained from a dirty working tree"),
        ("other commit", Action.REFUSED, "is not the commit dev.churn/1 was trained from"),
        ("commit off branch", Action.REFUSED, "code.commit: aaaa is not on the protected branch"),
    ],
)
def test_decide_reaches_every_action_from_the_snapshot_alone(
    case: str, action: Action, detail: str
) -> None:
    state, spec = _case(case)
    assert state.action is action
    assert detail in state.detail
    if action is Action.REFUSED:
        assert state.refusal is not None
        assert state.refusal.message.startswith(spec.display + ": ")
        assert state.status == "refused"


def test_what_each_action_means() -> None:
    assert {a for a in Action if a.writes} == {
        Action.BUILD,
        Action.REPOINT,
        Action.RESUME,
        Action.RECORD,
    }
    assert {a for a in Action if a.in_sync} == {Action.NONE, Action.DEV}
    assert {a for a in Action if a.blocked} == {Action.REJECTED, Action.REFUSED}


def test_decide_reports_drift_and_a_build_reusing_a_run() -> None:
    repo = _repository()
    spec = _staging_spec(repo)
    moved = _target_model("another digest", {1: VERDICT_PASSED}, champion=1)
    moved = RegisteredModel(moved.name, {CHAMPION: 1}, {TAG_MANAGED: "true"}, moved.versions)
    snapshot = _snapshot(repo, moved, _source_model())
    snapshot.reusable_runs[("staging", spec.digest)] = "0123456789abcdef"
    state = decide(spec, snapshot)
    assert state.action is Action.BUILD and state.reusable_run == "0123456789abcdef"
    assert "reuses run 01234567" in state.detail
    assert state.status == "drifted"
    assert state.drift == ["champion moved by hand to v1 (the pipeline never set it)"]
    stored = {"staging.churn/1": "tampered"}
    snapshot.stored_digests = stored
    assert "champion v1 artifact changed in storage" in decide(spec, snapshot).drift


def test_decide_does_no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of decisions with every outside door shut: no file, process or socket."""

    def shut(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("decide did I/O")

    for target in (subprocess, "Popen"), (socket, "socket"), (builtins, "open"):
        monkeypatch.setattr(*target, shut)
    names = ("build", "none", "record", "repoint", "resume", "rejected", "no source")
    for _ in range(100):
        decided = {_case(name)[0].action for name in names}
    assert decided == {
        Action.BUILD,
        Action.NONE,
        Action.RECORD,
        Action.REPOINT,
        Action.RESUME,
        Action.REJECTED,
        Action.REFUSED,
    }
