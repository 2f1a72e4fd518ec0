"""The repository's own workflows and CODEOWNERS: hardened, pinned, zizmor-clean, and exactly
what the scaffold templates render (so `promote init` repositories get the same)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.workflows import (
    OWN_SETTINGS,
    assert_hardened,
    assert_promotion_workflows,
    assert_watch_workflow,
    load,
    pending_models,
    pending_models_script,
    zizmor_executable,
    zizmor_findings,
)
from support.world import MODEL, World

from promote.scaffold.init import render_github_files

ROOT = Path(__file__).resolve().parents[2]


def test_own_workflows_are_hardened() -> None:
    assert_hardened(ROOT)


def test_own_workflows_plan_on_pull_requests_and_apply_in_order_on_merge() -> None:
    assert_promotion_workflows(ROOT, OWN_SETTINGS)


def test_own_watch_workflow_runs_every_environment_on_a_schedule() -> None:
    assert_watch_workflow(ROOT, OWN_SETTINGS)


def test_own_workflows_have_no_zizmor_findings() -> None:
    assert zizmor_findings(ROOT) == []


def test_the_apply_matrix_is_what_a_real_plan_says_to_write(trained: World, tmp_path: Path) -> None:
    """The step that builds each environment's matrix, run on `promote plan --json` of a real
    repository and registry; then one matrix job's command applies that model alone."""
    world = trained
    world.propose_and_merge("staging")  # staging's rebuild pending; dev trained, prod empty
    apply = load(ROOT / ".github" / "workflows" / "promote-apply.yml")

    matrices = {
        env: pending_models(pending_models_script(apply, env), world.repo, tmp_path)
        for env in ("dev", "staging", "prod")
    }

    assert matrices == {"dev": [], "staging": [MODEL], "prod": []}
    unknown = world.cli("apply", "--env", "staging", "--model", "nonesuch")
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines() == [
        "error: --model: no manifest of 'nonesuch' under environments/staging"
    ]
    applied = world.cli("apply", "--env", "staging", "--model", MODEL)
    assert applied.returncode == 0, applied.stderr
    registered = world.registry.model(f"staging.{MODEL}")
    assert registered is not None and registered.champion is not None
    assert pending_models(pending_models_script(apply, "staging"), world.repo, tmp_path) == []


def test_own_github_files_are_the_rendered_templates() -> None:
    for relative, content in render_github_files(OWN_SETTINGS).items():
        assert (ROOT / relative).read_text() == content, f"{relative}: run regenerate()"


def test_codeowners_give_every_rule_guarded_environments_and_the_pipeline_to_approvers() -> None:
    owners = {}
    for line in (ROOT / ".github" / "CODEOWNERS").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pattern, *teams = line.split()
            owners[pattern] = teams
    team = f"@{OWN_SETTINGS.team}"
    assert owners == {
        "/environments/*/environment.yaml": [team],
        "/environments/staging/**": [team],
        "/environments/prod/**": [team],
        "/.github/workflows/**": [team],
        "/.github/CODEOWNERS": [team],
    }


def test_the_lint_catches_what_it_claims(tmp_path: Path) -> None:
    """A workflow that breaks each rule fails the same checks (so they are not vacuous)."""
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    bad = (ROOT / ".github" / "workflows" / "promote-plan.yml").read_text()
    mutations = [
        ("persist-credentials: false", "persist-credentials: true"),
        ("run: promote plan", "run: echo ${{ github.event.pull_request.title }}"),
        ("contents: read\n\nconcurrency", "contents: write\n\nconcurrency"),
        ("    environment: plan\n", ""),
        ("@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2", "@v4"),
        ("  pull_request:", "  pull_request_target:"),
    ]
    for old, new in mutations:
        assert old in bad, old
        (workflows / "promote-plan.yml").write_text(bad.replace(old, new, 1))
        try:
            assert_hardened(tmp_path)
        except AssertionError:
            continue
        raise AssertionError(f"lint accepted: {new!r}")
    (workflows / "promote-plan.yml").write_text(
        bad.replace("          persist-credentials: false\n", "")
    )
    completed = subprocess.run(
        [zizmor_executable(), "--offline", "--no-config", str(workflows)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode != 0 and "artipacked" in completed.stdout
