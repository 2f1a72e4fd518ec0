"""promote model NAME --to ENV: a manifest on a new branch, the working tree untouched."""

from __future__ import annotations

import yaml
from support.world import MODEL, World

from promote.build import git
from promote.manifests.loader import load_repository
from promote.propose import propose
from promote.scaffold.quickstart import merge


def test_propose_writes_the_manifest_on_a_branch_without_touching_the_checkout(
    trained: World,
) -> None:
    head = git.head_commit(trained.repo)
    result = trained.cli("model", MODEL, "--to", "staging")
    assert result.returncode == 0, result.stderr
    assert f"on branch promote/staging/{MODEL}-v1" in result.stdout
    assert git.head_commit(trained.repo) == head
    assert git.run_git(trained.repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert not git.is_dirty(trained.repo)
    assert not (trained.repo / "environments" / "staging" / f"{MODEL}.yaml").exists()
    text = git.run_git(
        trained.repo, "show", f"promote/staging/{MODEL}-v1:environments/staging/{MODEL}.yaml"
    )
    manifest = yaml.safe_load(text)
    lineage = trained.registry.lineage(trained.registry.model(f"dev.{MODEL}").champion.run_id)  # type: ignore[union-attr]
    assert manifest["source"] == {"environment": "dev", "version": 1}
    assert manifest["code"]["commit"] == lineage.code_commit == head
    assert manifest["code"]["params"] == lineage.params
    assert manifest["data"] == {"path": MODEL}
    parent = git.run_git(trained.repo, "rev-parse", f"promote/staging/{MODEL}-v1^")
    assert parent == head


def test_proposing_what_is_already_merged_proposes_nothing(trained: World) -> None:
    trained.propose_and_merge("staging")
    branches = git.run_git(trained.repo, "branch", "--list")
    result = trained.cli("model", MODEL, "--to", "staging", "--json")
    assert result.returncode == 0, result.stderr
    assert '"branch": null' in result.stdout
    assert git.run_git(trained.repo, "branch", "--list") == branches


def test_propose_needs_a_source_champion(world: World) -> None:
    result = world.cli("model", MODEL, "--to", "staging")
    assert result.returncode == 2
    assert "no champion to promote" in result.stderr


def test_propose_to_the_bottom_environment_is_bad_input(trained: World) -> None:
    result = trained.cli("model", MODEL, "--to", "dev")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "error: --to: dev promotes from no environment: train there instead"
    )


def test_a_proposal_carries_over_only_the_gates_the_target_accepts(trained: World) -> None:
    """dev's manifest may be looser than staging's floor; the proposal must still load."""
    trained.edit_yaml(
        "environments/staging/environment.yaml",
        lambda body: body.update(
            gates={**body.get("gates", {}), "no_regression": {"metric": "accuracy"}}
        ),
    )
    proposal = propose(load_repository(trained.repo), trained.registry, MODEL, "staging")
    gates = proposal.manifest.gates
    assert gates.no_regression is None  # dev's roc_auc rule would loosen staging's floor
    assert set(gates.metrics) == {"roc_auc", "accuracy"}  # dev's tightening bounds stay
    assert proposal.branch is not None
    merge(trained.repo, proposal.branch, "Merge")
    spec = load_repository(trained.repo).spec("staging", MODEL)
    assert spec.gates.no_regression is not None
    assert spec.gates.no_regression.metric == "accuracy"
