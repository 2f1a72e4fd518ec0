"""The runner: a build request from a manifest, a rebuild in an export of the pinned commit,
refusals that name the manifest, failures that carry the training's own (masked) output, the
allowlisted environment a training sees, and the output the runner checks and logs for it.

Builds that get as far as the registry start from the `trained` story, whose registry exists
already (creating one costs seconds); refusals come before the registry and use a fresh world.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import json
import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from support.world import MODEL, World, link_script_outside

from promote.build import git, runner
from promote.build.compute import OUTPUT_TAIL_LINES
from promote.build.runner import (
    BuildRequest,
    build_at_commit,
    training_environment,
    who_runs,
)
from promote.errors import BadReference, ExternalError
from promote.manifests.loader import load_repository
from promote.registry.entities import TAG_LINEAGE_DIGEST, TAG_RUN_ENVIRONMENT, TAG_RUN_MODEL
from promote.runtime.redact import MASK
from promote.training import CONTEXT_VARIABLE

ORIGIN = f"environments/dev/{MODEL}.yaml"
TINY = "tiny"
TINY_SCRIPT = """
from pathlib import Path

from sklearn.dummy import DummyClassifier

from promote import training

with training.start() as run:
    frame = run.read_csv("train.csv")
    model = DummyClassifier(strategy=run.params["strategy"])
    model.fit(frame[["x"]], frame["label"])
    run.log_metrics({
        "rows": len(frame),
        "in_checkout": float(Path.cwd() == Path(__file__).resolve().parents[2]),
        "in_users_checkout": float(Path.cwd() == Path(run.params["users_checkout"])),
    })
    run.log_model(model, input_example=frame[["x"]].head(2))
"""
CI = {"GITHUB_RUN_ID": "4242", "GITHUB_REPOSITORY": "acme/ml-models", "GITHUB_ACTOR": "octocat"}


@pytest.fixture(autouse=True)
def outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CI:
        monkeypatch.delenv(name, raising=False)


def _request(world: World, model: str = MODEL, **changes: Any) -> BuildRequest:
    spec = load_repository(world.repo).spec("dev", model)
    request = BuildRequest.of_spec(
        world.repo, spec, git.head_commit(world.repo), dict(spec.manifest.code.params)
    )
    return dataclasses.replace(request, **changes)


def _commit_script(world: World, relative: str, text: str) -> str:
    path = world.repo / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return world.commit(f"Add {relative}")


def test_a_request_of_a_loaded_manifest_is_what_the_manifest_says(world: World) -> None:
    spec = load_repository(world.repo).spec("dev", MODEL)
    commit = git.head_commit(world.repo)
    request = BuildRequest.of_spec(
        world.repo, spec, commit, {"C": 2.0}, dirty=True, run_tags={"promote.note": "x"}
    )
    assert request.origin == ORIGIN == spec.display
    assert request.model == MODEL
    assert request.environment == spec.config and request.environment.name == "dev"
    assert request.code_repo == "."
    assert request.commit == commit
    assert request.entrypoint == spec.manifest.code.entrypoint == f"models/{MODEL}/train.py"
    assert request.params == {"C": 2.0}  # what the caller resolved, not the manifest's
    # The dev data root is `../data/dev`, taken from the repository root: an absolute folder.
    assert request.data_uri == str(world.sandbox.data("dev")) and Path(request.data_uri).is_dir()
    assert request.dirty is True and request.run_tags == {"promote.note": "x"}
    assert request.pinned_snapshot is None
    plain = BuildRequest.of_spec(world.repo, spec, commit, {})
    assert plain.dirty is False and plain.run_tags == {} and plain.pinned_snapshot is None


def test_a_request_on_an_s3_data_root_names_the_object_prefix(world: World) -> None:
    world.edit_yaml(
        "environments/dev/environment.yaml",
        lambda body: body.update(data_root="s3://ml-dev-data/prefix/"),
    )
    spec = load_repository(world.repo).spec("dev", MODEL)
    request = BuildRequest.of_spec(world.repo, spec, git.head_commit(world.repo), {})
    assert request.data_uri == f"s3://ml-dev-data/prefix/{MODEL}"


def test_a_rebuild_runs_the_pinned_commit_in_an_export_not_the_checkout(trained: World) -> None:
    data = trained.sandbox.root / "data" / "dev" / TINY
    data.mkdir(parents=True)
    (data / "train.csv").write_text("x,label\n1,0\n2,1\n3,1\n4,1\n")
    (trained.repo / "environments" / "dev" / f"{TINY}.yaml").write_text(
        f"model: {TINY}\n"
        f"code:\n  entrypoint: models/{TINY}/train.py\n  params: {{strategy: most_frequent}}\n"
        f"data:\n  path: {TINY}\n"
    )
    commit = _commit_script(trained, f"models/{TINY}/train.py", TINY_SCRIPT)
    # The checkout moves on and breaks; the rebuild still runs what the commit holds.
    (trained.repo / "models" / TINY / "train.py").write_text("raise SystemExit(3)\n")
    params = {"strategy": "most_frequent", "users_checkout": str(trained.repo)}

    request = _request(trained, TINY, commit=commit, params=params)
    run_id = build_at_commit(trained.repo, request, trained.registry, None)

    lineage = trained.registry.lineage(run_id)
    assert lineage.run_id == run_id
    assert (lineage.model, lineage.environment) == (TINY, "dev")
    assert lineage.code_commit == commit and lineage.code_tree == git.tree_of(trained.repo, commit)
    assert lineage.code_dirty is False
    assert lineage.entrypoint == f"models/{TINY}/train.py"
    assert lineage.params == params
    assert lineage.data_uri == str(data)
    assert lineage.flavor == "sklearn"
    assert lineage.metrics == {"rows": 4.0, "in_checkout": 1.0, "in_users_checkout": 0.0}
    assert lineage.trained_by == who_runs()
    assert (trained.repo / "models" / TINY / "train.py").read_text() == "raise SystemExit(3)\n"
    # The runner logged the run from the training's output: finished, tagged, with its values.
    run = trained.registry.client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[TAG_RUN_MODEL] == TINY and run.data.tags[TAG_RUN_ENVIRONMENT] == "dev"
    assert run.data.tags[TAG_LINEAGE_DIGEST] == lineage.lineage_digest
    assert run.data.params == {name: str(value) for name, value in params.items()}
    assert run.data.metrics == lineage.metrics


def test_an_entrypoint_leading_outside_the_checkout_is_refused(
    world: World, tmp_path: Path
) -> None:
    canary = link_script_outside(world.repo, tmp_path)
    commit = world.commit("A link out of the checkout")
    for entrypoint in (f"models/{MODEL}/linked.py", "../../outside.py"):
        request = _request(world, commit=commit, entrypoint=entrypoint)
        with pytest.raises(BadReference) as refused:
            build_at_commit(world.repo, request, world.registry, None)
        assert str(refused.value) == (
            f"{ORIGIN}: code.entrypoint: {entrypoint} leads outside the checkout"
        )
    assert not canary.exists()


def test_an_entrypoint_missing_at_the_commit_is_refused_though_it_is_in_the_checkout(
    world: World,
) -> None:
    (world.repo / "models" / MODEL / "uncommitted.py").write_text("print('not committed')\n")
    request = _request(world, entrypoint=f"models/{MODEL}/uncommitted.py")
    with pytest.raises(BadReference) as refused:
        build_at_commit(world.repo, request, world.registry, None)
    assert str(refused.value) == (
        f"{ORIGIN}: code.entrypoint: models/{MODEL}/uncommitted.py does not exist at this commit"
    )
    assert refused.value.source == ORIGIN and refused.value.field == "code.entrypoint"


def test_a_commit_that_is_not_in_the_code_repository_is_refused(world: World) -> None:
    missing = "ab" * 20
    with pytest.raises(BadReference) as refused:
        build_at_commit(world.repo, _request(world, commit=missing), world.registry, None)
    assert str(refused.value) == f"{ORIGIN}: code.commit: commit {missing} is not in ."


def test_a_failing_training_raises_with_the_tail_of_its_stderr(trained: World) -> None:
    lines = OUTPUT_TAIL_LINES + 10
    commit = _commit_script(
        trained,
        "models/failing/train.py",
        "import sys\n"
        "print('on stdout', flush=True)\n"
        f"for i in range({lines}):\n"
        "    print(f'stderr line {i}', file=sys.stderr)\n"
        "sys.exit(3)\n",
    )
    streamed: list[str] = []
    request = dataclasses.replace(
        _request(trained, commit=commit, entrypoint="models/failing/train.py"),
        on_output=streamed.append,
    )
    with pytest.raises(ExternalError) as failed:
        build_at_commit(trained.repo, request, trained.registry, None)
    message = str(failed.value)
    # The last line first (a Python training's exception), then the tail.
    first, *shown = message.split("\n  ")
    assert first == (
        f"training dev.{MODEL} (models/failing/train.py) failed with exit code 3: "
        f"stderr line {lines - 1}"
    )
    assert shown == [f"stderr line {i}" for i in range(lines - OUTPUT_TAIL_LINES, lines)]
    assert "on stdout" not in message
    # Every line was streamed as it came, stdout and stderr in order, prefixed.
    assert streamed[0] == f"dev.{MODEL} | on stdout"
    assert streamed[1:] == [f"dev.{MODEL} | stderr line {i}" for i in range(lines)]


def test_a_training_that_writes_no_result_fails_with_its_stdout(trained: World) -> None:
    commit = _commit_script(trained, "models/silent/train.py", "print('done, I think')\n")
    request = _request(trained, commit=commit, entrypoint="models/silent/train.py")
    with pytest.raises(ExternalError) as failed:
        build_at_commit(trained.repo, request, trained.registry, None)
    assert str(failed.value) == (
        f"training dev.{MODEL} (models/silent/train.py) failed with exit code 0: done, I think"
        "\n  done, I think"
    )


def test_secrets_in_a_failing_trainings_output_are_masked(
    trained: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "correct-horse-battery-staple"
    # A credential training code is given (to read its data) can still end up in its output.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", password)
    commit = _commit_script(
        trained,
        "models/leaky/train.py",
        "import os, sys\n"
        "print('password ' + os.environ['AWS_SECRET_ACCESS_KEY'], file=sys.stderr)\n"
        "print('connecting to https://ci:hunter2-hunter2@mlflow.example/', file=sys.stderr)\n"
        "print('key AKIAIOSFODNN7EXAMPLE', file=sys.stderr)\n"
        "sys.exit(1)\n",
    )
    request = _request(trained, commit=commit, entrypoint="models/leaky/train.py")
    with pytest.raises(ExternalError) as failed:
        build_at_commit(trained.repo, request, trained.registry, None)
    message = str(failed.value)
    for secret in (password, "hunter2-hunter2", "AKIAIOSFODNN7EXAMPLE"):
        assert secret not in message
    assert message.endswith(
        f"\n  password {MASK}\n  connecting to https://ci:{MASK}@mlflow.example/\n  key {MASK}"
    )


def test_who_runs_is_user_at_host_outside_ci() -> None:
    assert who_runs() == f"{getpass.getuser()}@{socket.gethostname()}"
    assert re.fullmatch(r"[^@\s]+@[^@\s]+", who_runs())


def test_who_runs_is_the_actions_run_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CI.items():
        monkeypatch.setenv(name, value)
    assert who_runs() == "octocat via github-actions acme/ml-models run 4242"
    monkeypatch.delenv("GITHUB_ACTOR")
    assert who_runs() == "github via github-actions acme/ml-models run 4242"


# -- what training code can see and do -----------------------------------------------------------

PROBE = "models/probe/train.py"
# A training that reports what it can see, then trains a model as any other would.
PROBE_SCRIPT = """
import hashlib, json, os
from pathlib import Path

from sklearn.dummy import DummyClassifier

from promote import training

with training.start() as run:
    Path(run.params["report"]).write_text(json.dumps({
        "names": sorted(os.environ),
        "values": {name: os.environ.get(name) for name in run.params["shown"].split(",")},
        "value_digests": [hashlib.sha256(v.encode()).hexdigest() for v in os.environ.values()],
    }))
    frame = run.read_csv("train.csv")
    model = DummyClassifier().fit(frame[["age"]], frame["churned"])
    run.log_model(model, input_example=frame[["age"]].head(2))
"""
# Credentials a CI job exports for promote itself: GitHub's, Actions' OIDC, the registry's.
PLANTED_SECRETS = {
    "GITHUB_TOKEN": "ghs_" + "P1antedGitHubToken" * 2,
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "planted-actions-oidc-request-token",
    "ACTIONS_ID_TOKEN_REQUEST_URL": "https://pipelines.actions.example/oidc?planted=1",
    "PROMOTE_GITHUB_TOKEN": "ghp_" + "P1antedPromoteToken" * 2,
    "MLFLOW_TRACKING_PASSWORD": "planted-registry-password",
    "MLFLOW_TRACKING_TOKEN": "planted-registry-token",
    "MY_SECRET": "planted-arbitrary-secret",
}
# What a data read through a role needs: training code keeps it.
DATA_ACCESS = {"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIAPROBEDATAREADER0"}


def _probe(trained: World, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """Run the probe through the runner; its run id and what it saw."""
    report = tmp_path / "seen.json"
    shown = [*PLANTED_SECRETS, *DATA_ACCESS, "PATH", "MLFLOW_TRACKING_URI", CONTEXT_VARIABLE]
    request = _request(
        trained,
        commit=_commit_script(trained, PROBE, PROBE_SCRIPT),
        entrypoint=PROBE,
        params={"report": str(report), "shown": ",".join(shown)},
    )
    run_id = build_at_commit(trained.repo, request, trained.registry, None)
    return run_id, json.loads(report.read_text())


def test_training_code_sees_the_allowlisted_environment_and_no_credential_of_promote(
    trained: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**PLANTED_SECRETS, **DATA_ACCESS}.items():
        monkeypatch.setenv(name, value)
    # A CI runner that puts its token in the repository URL, which names who trained.
    token = PLANTED_SECRETS["GITHUB_TOKEN"]
    for name, value in {**CI, "GITHUB_REPOSITORY": f"https://x:{token}@github.com/a/m"}.items():
        monkeypatch.setenv(name, value)

    _, seen = _probe(trained, tmp_path)

    digests = set(seen["value_digests"])
    for name, value in PLANTED_SECRETS.items():
        assert name not in seen["names"] and seen["values"][name] is None
        assert hashlib.sha256(value.encode()).hexdigest() not in digests  # under no other name
    handed = seen["values"][CONTEXT_VARIABLE]
    assert f"x:{MASK}@github.com" in handed and token not in handed
    assert {name: seen["values"][name] for name in DATA_ACCESS} == DATA_ACCESS
    assert seen["values"]["PATH"] == os.environ["PATH"]
    assert not [n for n in seen["names"] if n.startswith(("GITHUB_", "ACTIONS_", "MLFLOW_"))]


def test_the_denylist_wins_over_any_allowlist_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = {**PLANTED_SECRETS, **DATA_ACCESS, "LC_ALL": "C.UTF-8", "GITHUB_ACTIONS": "true"}
    assert training_environment(parent) == {**DATA_ACCESS, "LC_ALL": "C.UTF-8"}
    # Even an allowlist that let everything through keeps CI and registry credentials out.
    monkeypatch.setattr(runner, "TRAINING_ENVIRONMENT", ("*",))
    assert training_environment(parent) == {
        **DATA_ACCESS,
        "LC_ALL": "C.UTF-8",
        "MY_SECRET": PLANTED_SECRETS["MY_SECRET"],
    }


def test_training_code_is_given_no_way_to_the_registry(
    trained: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.registry.tracking_uri)

    run_id, seen = _probe(trained, tmp_path)

    assert "MLFLOW_TRACKING_URI" not in seen["names"]
    handed = seen["values"][CONTEXT_VARIABLE]
    registry_file = trained.registry.tracking_uri.removeprefix("sqlite:///")
    assert registry_file not in handed and "tracking" not in handed and "experiment" not in handed
    # The run exists all the same: the runner logged it from the training's output.
    assert trained.registry.lineage(run_id).run_id == run_id


def _runs_in_dev(trained: World) -> list[str]:
    experiment = trained.registry.experiment_id("dev", None)
    return [run.info.run_id for run in trained.registry.client.search_runs([experiment])]


@pytest.mark.parametrize(
    "ending",
    [
        pytest.param("raise RuntimeError('the data looked wrong')", id="raises"),
        pytest.param("os.kill(os.getpid(), signal.SIGKILL)", id="is-killed"),
    ],
)
def test_a_training_that_fails_or_is_killed_leaves_no_run(trained: World, ending: str) -> None:
    before = _runs_in_dev(trained)
    script = (
        "import os, signal\n"
        "from promote import training\n"
        "with training.start() as run:\n"
        "    run.log_metrics({'rows': len(run.read_csv('train.csv'))})\n"
        f"    {ending}\n"
    )
    request = _request(trained, commit=_commit_script(trained, PROBE, script), entrypoint=PROBE)
    with pytest.raises(ExternalError, match=rf"^training dev\.{MODEL} \({PROBE}\) failed"):
        build_at_commit(trained.repo, request, trained.registry, None)
    assert _runs_in_dev(trained) == before


# Each rewrites, after a clean training, what the runner checks: the model, or the record.
TAMPERING = {
    "model": (
        "(context.model_dir / 'MLmodel').write_text('flavors: {}\\n')\n",
        "wrote a model whose digest does not match its lineage record",
    ),
    "commit": (
        "from dataclasses import replace\n"
        "from promote.build.lineage import Lineage\n"
        "lineage = Lineage.from_json(context.lineage_file.read_text())\n"
        "context.lineage_file.write_text(replace(lineage, code_commit='f' * 40).to_json())\n",
        "wrote the lineage record of another training (code_commit differs)",
    ),
    "record": (
        "context.lineage_file.write_text('{not json')\n",
        "wrote an unreadable lineage record",
    ),
}


@pytest.mark.parametrize("tampered", sorted(TAMPERING))
def test_a_training_output_that_does_not_check_out_is_refused_unlogged(
    trained: World, tampered: str
) -> None:
    rewrite, complaint = TAMPERING[tampered]
    script = PROBE_SCRIPT.split("with training.start()")[0] + (
        "with training.start() as run:\n"
        "    frame = run.read_csv('train.csv')\n"
        "    model = DummyClassifier().fit(frame[['age']], frame['churned'])\n"
        "    run.log_model(model, input_example=frame[['age']].head(2))\n"
        "context = training.TrainingContext.from_env()\n" + rewrite
    )
    before = _runs_in_dev(trained)
    request = _request(trained, commit=_commit_script(trained, PROBE, script), entrypoint=PROBE)
    with pytest.raises(ExternalError) as refused:
        build_at_commit(trained.repo, request, trained.registry, None)
    message = str(refused.value)
    assert message.startswith(f"training dev.{MODEL} ({PROBE}) {complaint}")
    assert "\n" not in message
    assert _runs_in_dev(trained) == before


class VanishingEnvironment(dict[str, str]):
    """An environment from which a variable disappears while it is listed, as MLflow's
    telemetry thread unsets `_MLFLOW_TELEMETRY_SESSION_ID` while a training starts."""

    def __iter__(self) -> Any:
        names = list(super().__iter__())
        self.pop("LC_VANISHING", None)
        return iter(names)

    def items(self) -> Any:
        return [(name, self[name]) for name in self]  # as os.environ's items do


def test_a_variable_unset_while_the_environment_is_copied_is_left_out() -> None:
    parent = VanishingEnvironment(PATH="/bin", LC_VANISHING="session")
    assert training_environment(parent) == {"PATH": "/bin"}
