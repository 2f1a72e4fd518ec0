"""`promote init DIR`: a repository promote itself loads, whose workflows pass the same lint."""

from __future__ import annotations

import shlex
import stat
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from support.workflows import (
    assert_hardened,
    assert_promotion_workflows,
    assert_watch_workflow,
    zizmor_findings,
)

from promote.build import git
from promote.manifests.loader import load_repository
from promote.proof import keys
from promote.proof.trust import keyless_identity
from promote.registry.client import Registry
from promote.scaffold.init import ScaffoldSettings

ROLES = {env: f"arn:aws:iam::210987654321:role/ml-{env}" for env in ("staging", "prod")}
ARGUMENTS = [
    "--org",
    "acme",
    "--approvers-team",
    "ml-release",
    "--registry-uri",
    "https://mlflow.acme.internal",
    "--data-root",
    "staging=s3://acme-ml-staging/data",
    "--data-root",
    "prod=s3://acme-ml-prod/data",
    "--role",
    f"staging={ROLES['staging']}",
    "--role",
    f"prod={ROLES['prod']}",
    "--required-approvals",
    "2",
]


def promote_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promote", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_init_renders_a_repository_promote_loads_with_hardened_workflows(tmp_path: Path) -> None:
    target = tmp_path / "models-repo"
    completed = promote_cli("init", str(target), *ARGUMENTS, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "wrote" in completed.stdout

    repo = load_repository(target)
    assert [e.name for e in repo.ordered_environments()] == ["dev", "staging", "prod"]
    assert repo.environments["dev"].approval is None
    for name in ("staging", "prod"):
        config = repo.environments[name]
        assert config.approval is not None
        assert (config.approval.team, config.approval.required) == ("acme/ml-release", 2)
        assert config.role == ROLES[name]
    assert repo.environments["prod"].data_root == "s3://acme-ml-prod/data"
    assert repo.environments["dev"].data_root == "data/dev"
    assert ("dev", "example") in repo.specs
    assert (target / "models" / "example" / "train.py").is_file()
    assert (
        "/environments/prod/** @acme/ml-release" in (target / ".github" / "CODEOWNERS").read_text()
    )

    settings = ScaffoldSettings("acme", "ml-release", "https://mlflow.acme.internal", roles=ROLES)
    assert_hardened(target)
    assert_promotion_workflows(target, settings)
    assert_watch_workflow(target, settings)
    assert zizmor_findings(target) == []
    assert git.head_commit(target) and not git.is_dirty(target)


def test_the_printed_next_steps_work_with_no_edits(tmp_path: Path) -> None:
    """A new team's first hour: init, then the steps init prints, as printed."""
    target = tmp_path / "repo"
    minimal = ["--org", "acme", "--approvers-team", "ml-release", "--registry-uri", "https://m.x"]
    initialised = promote_cli("init", str(target), *minimal, cwd=tmp_path)
    assert initialised.returncode == 0, initialised.stderr
    steps = [
        line.strip()[2:].split("  #")[0]
        for line in initialised.stdout.splitlines()
        if line.strip().startswith("$ promote ")
    ]
    assert [step.split()[1] for step in steps] == ["train", "model", "apply", "status"]
    for data in ("dev", "staging", "prod"):  # each environment's own sample, not committed
        assert (target / "data" / data / "example" / "train.csv").is_file()
    assert not git.is_dirty(target)
    requirements = (target / "models" / "example" / "requirements.txt").read_text()
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in requirements.splitlines()
    for step in steps:
        arguments = shlex.split(step)[1:]
        completed = promote_cli(*arguments, cwd=target)
        assert completed.returncode == 0, (step, completed.stdout, completed.stderr)
        if arguments[0] == "model":  # the pull request, reviewed and merged
            branch = "promote/staging/example-v1"
            git.run_git(target, "merge", "--quiet", "--no-ff", branch, "-m", f"Merge {branch}")
    registry = Registry.for_repository(target)
    staging = registry.model("staging.example")
    assert staging is not None and staging.champion is not None
    assert staging.champion.tags["promote.break_glass"]  # outside CI: recorded as such


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (["--data-root", "qa=data/qa"], "--data-root: unknown environment 'qa'"),
        (["--role", "prod=not-an-arn"], "--role: prod: 'not-an-arn' is not an IAM role ARN"),
        (["--registry-uri", "https://ml:hunter2@mlflow.acme"], "--registry-uri: holds a password"),
        (["--org", "acme corp"], "--org: 'acme corp' is not a GitHub organisation"),
        (["--data-root", "dev"], "--data-root: 'dev' is not ENV=VALUE"),
    ],
    ids=["unknown-env", "bad-role", "password", "bad-org", "no-value"],
)
def test_bad_input_is_refused_and_nothing_is_written(
    tmp_path: Path, changes: list[str], expected: str
) -> None:
    target = tmp_path / "repo"
    completed = promote_cli("init", str(target), *ARGUMENTS, *changes, cwd=tmp_path)
    assert completed.returncode == 2
    assert expected in completed.stderr
    assert "hunter2" not in completed.stderr
    assert not target.exists()


def test_a_non_empty_folder_is_refused_untouched(tmp_path: Path) -> None:
    target = tmp_path / "repo"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")
    completed = promote_cli("init", str(target), *ARGUMENTS, cwd=tmp_path)
    assert completed.returncode == 2
    assert "exists and is not empty" in completed.stderr
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_init_gives_every_environment_a_key_whose_private_half_stays_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_folder = tmp_path / "keys"
    monkeypatch.setenv("PROMOTE_KEY_DIR", str(key_folder))
    target = tmp_path / "repo"
    completed = promote_cli(
        "init", str(target), *ARGUMENTS, "--github-repository", "acme/ml-gitops", cwd=tmp_path
    )
    assert completed.returncode == 0, completed.stderr
    repo = load_repository(target)
    private = sorted(key_folder.iterdir())
    assert len(private) == 3
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in private)
    assert not list(target.rglob("*.pem"))
    for name in ("dev", "staging", "prod"):
        config = repo.environment(name)
        [public] = config.signing.public_keys
        assert f"{keys.key_id(keys.public_key(public))}.pem" in {p.name for p in private}
        identity = config.signing.keyless
        if name == "dev":
            assert identity is None  # data scientists sign dev with their key, not CI's identity
        else:
            assert identity is not None
            assert keyless_identity(identity) == (
                "https://github.com/acme/ml-gitops/.github/workflows/promote-apply.yml"
                "@refs/heads/main"
            )


def test_a_bad_github_repository_writes_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMOTE_KEY_DIR", str(tmp_path / "keys"))
    target = tmp_path / "repo"
    completed = promote_cli(
        "init", str(target), *ARGUMENTS, "--github-repository", "acme", cwd=tmp_path
    )
    assert completed.returncode == 2
    assert completed.stderr.strip() == "error: --github-repository: 'acme' is not owner/name"
    assert not target.exists() and not (tmp_path / "keys").exists()


def test_a_local_data_root_outside_the_new_repository_is_allowed_explicitly(
    tmp_path: Path,
) -> None:
    target = tmp_path / "repo"
    completed = promote_cli(
        "init", str(target), *ARGUMENTS, "--data-root", "dev=../shared/dev", cwd=tmp_path
    )
    assert completed.returncode == 0, completed.stderr
    repo = load_repository(target)
    assert repo.environment("dev").allow_data_outside_repository is True
    assert repo.environment("staging").allow_data_outside_repository is False  # s3://


def test_the_workflows_install_a_wheel_pinned_by_digest(tmp_path: Path) -> None:
    digest = "0" * 64
    requirement = f"promote-gitops@https://artifacts.acme.internal/p.whl#sha256={digest}"
    target = tmp_path / "repo"
    completed = promote_cli(
        "init", str(target), *ARGUMENTS, "--promote-requirement", requirement, cwd=tmp_path
    )
    assert completed.returncode == 0, completed.stderr
    apply = (target / ".github" / "workflows" / "promote-apply.yml").read_text()
    assert f"python -m pip install {requirement}" in apply
    assert 'python -m pip install -r "$requirements"' in apply
    loose = promote_cli(
        "init", str(tmp_path / "other"), *ARGUMENTS, "--promote-requirement", "x#evil", cwd=tmp_path
    )
    assert loose.returncode == 2 and "is not a pip requirement" in loose.stderr
