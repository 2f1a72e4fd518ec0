"""Every refusal the pipeline owes: the registry stays as it was, or gains one rejected version."""

from __future__ import annotations

import stat
import sys
from math import inf, nan
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.files import file_states
from support.world import MODEL, World

from promote.build import git
from promote.errors import InputError
from promote.manifests.loader import load_repository
from promote.plan import Action, compute
from promote.registry.entities import (
    CHAMPION,
    TAG_DIRTY,
    TAG_REASON,
    TAG_VERDICT,
    VERDICT_REJECTED,
)
from promote.train import train

STAGING_MANIFEST = f"environments/staging/{MODEL}.yaml"
PROD_MANIFEST = f"environments/prod/{MODEL}.yaml"
DEV_MANIFEST = f"environments/dev/{MODEL}.yaml"
DEV_ENVIRONMENT = "environments/dev/environment.yaml"
PROD_ENVIRONMENT = "environments/prod/environment.yaml"


def refused_apply(world: World, environment: str, expected: str) -> None:
    """`promote apply` exits 2 naming the problem, and not one registry row changes."""
    before = world.snapshot()
    result = world.cli("apply", "--env", environment)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert world.snapshot() == before


def rejected_apply(world: World, environment: str, expected: str) -> None:
    """The rebuild ran and failed a check: one new version tagged rejected, champion unmoved."""
    name = f"{environment}.{MODEL}"
    before = world.registry.model(name)
    result = world.pipeline().apply(environment)
    assert not result.ok
    after = world.registry.model(name)
    assert after is not None
    old_champion = before.aliases.get(CHAMPION) if before else None
    assert after.aliases.get(CHAMPION) == old_champion
    new = [v for v in after.versions if before is None or before.version(v.version) is None]
    assert len(new) == 1
    assert new[0].tags[TAG_VERDICT] == VERDICT_REJECTED
    assert expected in new[0].tags[TAG_REASON], new[0].tags[TAG_REASON]
    if before is not None:
        for version in before.versions:
            assert after.version(version.version) == version
    # Re-running does not rebuild a rejected manifest.
    snapshot = world.snapshot()
    again = world.pipeline().apply(environment)
    assert not again.ok and [o.action for o in again.outcomes if o.environment == environment] == [
        "rejected"
    ]
    assert world.snapshot() == snapshot


def pin_staging_by_hand(world: World, dev_version: int, commit: str) -> None:
    """A staging manifest written without `promote model`, as a person could."""
    world.edit_yaml(
        STAGING_MANIFEST,
        lambda body: body.update(
            model=MODEL,
            source={"environment": "dev", "version": dev_version},
            code={"entrypoint": f"models/{MODEL}/train.py", "commit": commit, "params": {}},
            data={"path": MODEL},
        ),
    )


def test_a_dirty_build_is_registered_and_marked_but_never_champion(trained: World) -> None:
    entrypoint = trained.repo / "models" / MODEL / "train.py"
    entrypoint.write_text(entrypoint.read_text() + "\n# an uncommitted experiment\n")
    (trained.repo / "notes.txt").write_text("scratch\n")
    # What promote writes itself, and data under a data root in the repository, are no change.
    (trained.repo / ".promote" / "scratch").write_text("x\n")
    outcome = train(load_repository(trained.repo), trained.registry, MODEL, "dev", {})
    assert not outcome.ok and outcome.version == 2
    assert outcome.detail == (
        "rejected: trained from uncommitted changes (2: models/churn/train.py, notes.txt): "
        "recorded as dirty, never champion; commit them and train again"
    )
    dev = trained.registry.model(f"dev.{MODEL}")
    assert dev is not None and dev.champion is not None and dev.champion.version == 1
    dirty = dev.version(2)
    assert dirty is not None and dirty.tags[TAG_DIRTY] == "true"
    assert dirty.verdict == "rejected"
    described = trained.registry.client.get_model_version(f"dev.{MODEL}", "2").description
    assert described.startswith("**Rejected**: trained from uncommitted changes (2: ")
    assert "- **Source**: trained in dev at commit" in described
    assert "with uncommitted changes" in described
    # A manifest written by hand for the dirty version is refused by apply.
    git.run_git(trained.repo, "checkout", "--", ".")
    commit = git.head_commit(trained.repo)
    pin_staging_by_hand(trained, 2, commit)
    refused_apply(trained, "staging", "trained from uncommitted changes")


def test_the_dirty_message_lists_at_most_ten_changes(trained: World) -> None:
    for number in range(12):
        (trained.repo / f"scratch{number:02d}.py").write_text("x = 1\n")
    outcome = train(load_repository(trained.repo), trained.registry, MODEL, "dev", {})
    listed = outcome.detail.split("(12: ", 1)[1].split(")", 1)[0]
    assert listed.endswith(" ...") and listed.count(", ") == 9


def test_commit_not_on_the_protected_branch_is_refused(trained: World) -> None:
    git.run_git(trained.repo, "checkout", "--quiet", "-b", "experiment")
    (trained.repo / "NOTES.md").write_text("side branch\n")
    trained.commit("Side-branch change")
    side_version = trained.train_dev()
    side_commit = git.head_commit(trained.repo)
    git.run_git(trained.repo, "checkout", "--quiet", "main")
    pin_staging_by_hand(trained, side_version, side_commit)
    refused_apply(trained, "staging", "is not on the protected branch main")


def test_manifest_commit_must_be_the_source_versions_commit(trained: World) -> None:
    trained.propose_and_merge("staging")
    other_commit = git.run_git(trained.repo, "rev-parse", "HEAD")
    trained.edit_yaml(STAGING_MANIFEST, lambda body: body["code"].update(commit=other_commit))
    refused_apply(trained, "staging", "is not the commit dev.churn/1 was trained from")


@pytest.mark.parametrize(
    ("source", "expected"),
    [({"environment": "dev", "version": 42}, "dev.churn/42 does not exist")],
)
def test_missing_source_version_is_refused(
    trained: World, source: dict[str, Any], expected: str
) -> None:
    trained.propose_and_merge("staging")
    trained.edit_yaml(STAGING_MANIFEST, lambda body: body.update(source=source))
    refused_apply(trained, "staging", expected)


def test_rejected_source_version_is_refused(promoted: World) -> None:
    promoted.edit_yaml(
        STAGING_MANIFEST,
        lambda body: body["gates"]["metrics"].update(roc_auc={"min": 0.999}),
    )
    rejected_apply(promoted, "staging", "gate metric roc_auc: FAIL")
    rejected = promoted.registry.model(f"staging.{MODEL}")
    assert rejected is not None and rejected.versions[-1].version == 2
    promoted.edit_yaml(PROD_MANIFEST, lambda body: body["source"].update(version=2))
    refused_apply(promoted, "prod", "staging.churn/2 was rejected")


def test_skipping_an_environment_is_bad_input(trained: World) -> None:
    trained.propose_and_merge("staging")
    commit = git.head_commit(trained.repo)
    trained.edit_yaml(
        PROD_MANIFEST,
        lambda body: body.update(
            model=MODEL,
            source={"environment": "dev", "version": 1},
            code={"entrypoint": f"models/{MODEL}/train.py", "commit": commit},
            data={"path": MODEL},
        ),
    )
    result = trained.cli("apply")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {PROD_MANIFEST}: source.environment: prod promotes only from staging, "
        "not dev (environments cannot be skipped)"
    )


def test_changed_schema_in_prod_data_is_rejected_after_rebuild(promoted: World) -> None:
    for name in ("train.csv", "test.csv"):
        path = promoted.sandbox.data("prod") / name
        lines = path.read_text().splitlines()
        path.write_text(
            "\n".join([lines[0] + ",region"] + [line + ",west" for line in lines[1:]]) + "\n"
        )
    promoted.train_dev(C=0.3)
    promoted.promote("staging")
    promoted.propose_and_merge("prod")
    rejected_apply(promoted, "prod", "schema_fingerprint differs")


def _python_with_other_library_version(folder: Path, library_version: str) -> str:
    """An interpreter on which scikit-learn reports another version: a different library set."""
    fake = folder / "site" / f"scikit_learn-{library_version}.dist-info"
    fake.mkdir(parents=True)
    (fake / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: scikit-learn\nVersion: {library_version}\n"
    )
    wrapper = folder / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{folder / "site"}" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return str(wrapper)


def _prod_proposed_on_another_library_version(world: World, folder: Path) -> None:
    """Prod trains on an interpreter reporting scikit-learn 0.0.1; a new version is proposed."""
    python = _python_with_other_library_version(folder, "0.0.1")
    world.edit_yaml("environments/prod/environment.yaml", lambda body: body.update(python=python))
    world.train_dev(C=0.3)
    world.promote("staging")
    world.propose_and_merge("prod")


def test_pinned_library_mismatch_fails_the_rebuild_before_registering(
    promoted: World, tmp_path: Path
) -> None:
    _prod_proposed_on_another_library_version(promoted, tmp_path)
    before = promoted.snapshot()["model_versions"]
    result = promoted.cli("apply", "--env", "prod")
    assert result.returncode == 1
    assert "scikit-learn==" in result.stderr and "but 0.0.1 is installed" in result.stderr
    assert [row for row in promoted.snapshot()["model_versions"] if "prod.churn" in row] == [
        row for row in before if "prod.churn" in row
    ]


def test_unpinned_library_set_difference_fails_the_lineage_match(
    promoted: World, tmp_path: Path
) -> None:
    requirements = promoted.repo / "models" / MODEL / "requirements.txt"
    requirements.write_text("scikit-learn\npandas\n")
    promoted.commit("Unpin libraries")
    _prod_proposed_on_another_library_version(promoted, tmp_path)
    rejected_apply(promoted, "prod", "libraries differs: ")
    rejected = promoted.registry.model(f"prod.{MODEL}")
    assert rejected is not None
    assert "scikit-learn: '" in rejected.versions[-1].tags[TAG_REASON]
    assert "-> '0.0.1'" in rejected.versions[-1].tags[TAG_REASON]


def test_one_changed_byte_in_the_source_artifact_refuses_the_promotion(promoted: World) -> None:
    promoted.train_dev(C=0.3)
    promoted.promote("staging")
    staging = promoted.registry.model(f"staging.{MODEL}")
    assert staging is not None and staging.champion is not None
    artifact = Path(staging.champion.source.removeprefix("file://")) / "model.skops"
    payload = bytearray(artifact.read_bytes())
    payload[len(payload) // 2] ^= 0x01
    artifact.write_bytes(bytes(payload))
    promoted.propose_and_merge("prod")
    before = promoted.snapshot()
    result = promoted.pipeline().apply("prod")
    assert not result.ok
    assert "artifact in storage does not match its signed digest" in result.outcomes[-1].detail
    assert promoted.snapshot() == before


def test_a_changed_prod_artifact_fails_verify_and_status(promoted: World) -> None:
    prod = promoted.registry.model(f"prod.{MODEL}")
    assert prod is not None and prod.champion is not None
    artifact = Path(prod.champion.source.removeprefix("file://")) / "MLmodel"
    # The digest reads MLmodel as YAML, so a blank changes nothing it covers; the OpenSSF model
    # signature covers every byte, and still fails.
    artifact.write_text(artifact.read_text() + " ")
    verify = promoted.cli("verify", MODEL, "--env", "prod")
    assert verify.returncode == 1
    assert "ok   artifact digest" in verify.stdout and "FAIL model signature" in verify.stdout
    # Serving probabilities instead of classes: one field of MLmodel.
    artifact.write_text(
        artifact.read_text().replace("predict_fn: predict\n", "predict_fn: predict_proba\n")
    )
    verify = promoted.cli("verify", MODEL, "--env", "prod")
    assert verify.returncode == 1
    assert "FAIL artifact digest" in verify.stdout
    status = promoted.cli("status", "--verify")
    assert status.returncode == 1
    assert "champion v1 artifact changed in storage" in status.stdout
    assert promoted.cli("status").returncode == 0  # without --verify, no artifact is read


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("model: churn\ncode: [unclosed\n", "invalid YAML at line"),
        (
            "model: churn\ncode:\n  entrypoint: t.py\ndata: {path: churn}\ncolour: blue\n",
            "colour: unknown field",
        ),
        (
            "model: churn\ncode:\n  entrypoint: t.py\n  params: {C: [1, 2]}\ndata: {path: churn}\n",
            "code.params.C",
        ),
        (
            "model: churn\ncode:\n  entrypoint: ../outside.py\ndata: {path: churn}\n",
            "code.entrypoint",
        ),
        ("model: churn\ncode:\n  entrypoint: t.py\ndata: {path: /etc}\n", "data.path"),
        ("- just\n- a list\n", "must be a YAML mapping"),
    ],
)
def test_malformed_manifests_are_refused_before_any_write(
    world: World, content: str, expected: str
) -> None:
    (world.repo / "environments" / "dev" / f"{MODEL}.yaml").write_text(content)
    for command in (["plan"], ["apply"], ["train", MODEL], ["status"]):
        result = world.cli(*command)
        assert result.returncode == 2, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: environments/dev/{MODEL}.yaml: ")
        assert expected in lines[0]
    assert not (world.repo / ".promote").exists()


def test_wrong_types_name_the_field(world: World) -> None:
    (world.repo / "environments" / "prod" / "environment.yaml").write_text(
        "name: prod\npromotes_from: staging\ndata_root: ../data/prod\ntraining: rebuild\n"
    )
    with pytest.raises(InputError) as caught:
        load_repository(world.repo)
    assert str(caught.value).startswith("environments/prod/environment.yaml: training: ")


def test_plan_shows_refusals_without_writing(trained: World) -> None:
    trained.propose_and_merge("staging")
    trained.edit_yaml(STAGING_MANIFEST, lambda body: body["source"].update(version=9))
    states = compute(load_repository(trained.repo), trained.registry)
    assert [(s.environment, s.action) for s in states] == [
        ("dev", Action.DEV),
        ("staging", Action.REFUSED),
    ]
    before = trained.snapshot()
    result = trained.cli("plan")
    assert result.returncode == 2
    assert "dev.churn/9 does not exist" in result.stdout
    assert trained.snapshot() == before


REGRESSION_FLOOR = {"no_regression": {"metric": "roc_auc", "tolerance": 0.0}}


@pytest.mark.parametrize(
    ("floor", "manifest_gates", "expected"),
    [
        # Prod allows no regression at all; the manifest (as `promote model` copies it from
        # below) would let the champion's roc_auc drop by 0.03.
        (
            REGRESSION_FLOOR,
            {"no_regression": {"metric": "roc_auc", "tolerance": 0.03}},
            "gates.no_regression.tolerance: 0.03 loosens environment prod's 0.0",
        ),
        (
            REGRESSION_FLOOR,
            {"no_regression": {"metric": "accuracy", "tolerance": 0.0}},
            "gates.no_regression.metric: 'accuracy' loosens environment prod's 'roc_auc'",
        ),
        (
            REGRESSION_FLOOR,
            {"no_regression": {"metric": "roc_auc", "higher_is_better": False}},
            "gates.no_regression.higher_is_better: False loosens environment prod's True",
        ),
        (
            {"metrics": {"roc_auc": {"min": 0.7}}},
            {"metrics": {"roc_auc": {"min": 0.5}}},
            "gates.metrics.roc_auc.min: 0.5 loosens environment prod's 0.7",
        ),
        (
            {},
            {"max_artifact_mb": 500},
            "gates.max_artifact_mb: 500.0 loosens environment prod's 50.0",
        ),
    ],
)
def test_a_manifest_cannot_loosen_its_environments_gates(
    promoted: World, floor: dict[str, Any], manifest_gates: dict[str, Any], expected: str
) -> None:
    promoted.edit_yaml(PROD_ENVIRONMENT, lambda body: body["gates"].update(floor))
    promoted.edit_yaml(PROD_MANIFEST, lambda body: body["gates"].update(manifest_gates))
    refused_apply(promoted, "prod", f"error: {PROD_MANIFEST}: {expected}")
    assert promoted.cli("plan").returncode == 2


def _write(relative: str, text: str) -> Any:
    return lambda world, outside: (world.repo / relative).write_text(text)


def _append(relative: str, text: str) -> Any:
    def change(world: World, outside: Path) -> None:
        path = world.repo / relative
        path.write_text(path.read_text() + text)

    return change


def _edit(relative: str, change: Any) -> Any:
    def edit(world: World, outside: Path) -> None:
        path = world.repo / relative
        body = yaml.safe_load(path.read_text())
        change(body)
        path.write_text(yaml.safe_dump(body, sort_keys=False))

    return edit


def _link_outside(relative: str) -> Any:
    """Move `relative` out of the repository, unchanged, and leave a symlink to it."""

    def link(world: World, outside: Path) -> None:
        path = world.repo / relative
        target = outside / path.name
        target.write_text(path.read_text())
        path.unlink()
        path.symlink_to(target)

    return link


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_append(DEV_MANIFEST, "data: {path: elsewhere}\n"), f"{DEV_MANIFEST}: data: named twice"),
        (_append(DEV_ENVIRONMENT, "training: copy\n"), f"{DEV_ENVIRONMENT}: training: named twice"),
        (
            _edit(DEV_MANIFEST, lambda body: body["gates"]["metrics"]["roc_auc"].update(min=nan)),
            f"{DEV_MANIFEST}: gates.metrics.roc_auc.min: Input should be a finite number",
        ),
        (
            _edit(DEV_MANIFEST, lambda body: body["gates"]["no_regression"].update(tolerance=inf)),
            f"{DEV_MANIFEST}: gates.no_regression.tolerance: Input should be a finite number",
        ),
        (
            _edit(DEV_ENVIRONMENT, lambda body: body.update(gates={"max_artifact_mb": inf})),
            f"{DEV_ENVIRONMENT}: gates.max_artifact_mb: Input should be a finite number",
        ),
        (
            _edit(DEV_ENVIRONMENT, lambda body: body.update(model_name="{env.__class__}.{model}")),
            f"{DEV_ENVIRONMENT}: model_name: may hold only the fields {{env}} and {{model}}",
        ),
        (
            _edit(DEV_ENVIRONMENT, lambda body: body.update(model_name="{env}/{model}")),
            f"{DEV_ENVIRONMENT}: model_name: must render a name of letters, digits",
        ),
        (_write(DEV_MANIFEST, "a: " + "[" * 100_000), f"{DEV_MANIFEST}: nested deeper than 32"),
        (
            _append(DEV_MANIFEST, "#" + "x" * (1 << 20) + "\n"),
            f"{DEV_MANIFEST}: larger than 1 MiB, the bound on a YAML file",
        ),
        (
            _edit(DEV_ENVIRONMENT, lambda body: body.pop("allow_data_outside_repository")),
            f"{DEV_ENVIRONMENT}: data_root: '../data/dev' is outside the repository",
        ),
        (
            _link_outside(DEV_MANIFEST),
            f"{DEV_MANIFEST}: leads outside the repository through a symlink",
        ),
        (
            _link_outside(DEV_ENVIRONMENT),
            f"{DEV_ENVIRONMENT}: leads outside the repository through a symlink",
        ),
    ],
)
def test_bad_input_is_refused_with_one_line_and_nothing_written(
    world: World, tmp_path: Path, change: Any, expected: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    change(world, outside)
    before = file_states(world.sandbox.root), file_states(outside)
    for command in (["plan"], ["apply"], ["train", MODEL]):
        result = world.cli(*command)
        assert result.returncode == 2, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {expected}"), result.stderr
    assert (file_states(world.sandbox.root), file_states(outside)) == before
    assert not (world.repo / ".promote").exists()


def test_an_interpreter_this_machine_lacks_refuses_training_not_planning(world: World) -> None:
    world.edit_yaml(DEV_ENVIRONMENT, lambda body: body.update(python="/nonexistent/bin/python3"))
    before = file_states(world.sandbox.root)
    assert world.cli("plan").returncode == 0  # CI's interpreter need not exist on a laptop
    result = world.cli("train", MODEL)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {DEV_ENVIRONMENT}: python: '/nonexistent/bin/python3' is not an executable "
        "on this machine"
    )
    assert file_states(world.sandbox.root) == before
