"""The workflow rules every promotion repository's GitHub workflows must pass: hardened,
pinned, zizmor-clean, plan on pull requests / apply in order on merge, watch on a schedule.

tests/github/test_workflows.py holds this repository's own workflows to them, and
tests/scaffold/test_scaffold.py the ones `promote init` writes. This repository's .github/ files
are OWN_SETTINGS rendered: `python tests/support/workflows.py` regenerates them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from promote.scaffold.init import ScaffoldSettings, render_github_files

ROOT = Path(__file__).resolve().parents[2]

ACCOUNT = "123456789012"
# This repository's own settings; its .github/ files are these rendered.
# Regenerate them with: python tests/support/workflows.py
OWN_SETTINGS = ScaffoldSettings(
    organisation="promote-dev",
    approvers_team="release-approvers",
    registry_uri="https://mlflow.example.internal",
    data_roots={env: f"s3://promote-example-{env}/data" for env in ("dev", "staging", "prod")},
    roles={env: f"arn:aws:iam::{ACCOUNT}:role/promote-{env}" for env in ("dev", "staging", "prod")},
    promote_requirement="-e .",
    code_paths=("models/**", "promote/**"),
    python_version="3.12",
)


def regenerate() -> None:
    for relative, content in render_github_files(OWN_SETTINGS).items():
        (ROOT / relative).write_text(content, encoding="utf-8")


PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
ENVIRONMENT_ORDER = ["dev", "staging", "prod"]
READ_ONLY = {"read", "none"}


def load(path: Path) -> dict[str, Any]:
    workflow = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def assert_hardened(directory: Path) -> None:
    """Every rule of the issue, on every workflow under `directory/.github/workflows`."""
    paths = sorted((directory / ".github" / "workflows").glob("*.yml"))
    assert paths, "no workflows"
    for path in paths:
        text = path.read_text()
        workflow = load(path)
        where = path.name
        assert "pull_request_target" not in text, where
        top = workflow.get("permissions")
        assert isinstance(top, dict) and set(top.values()) <= READ_ONLY, where
        for line in text.splitlines():
            if line.strip().startswith(("- uses:", "uses:")):
                reference = line.split("uses:", 1)[1].split("#", 1)[0].strip()
                assert PINNED.match(reference), f"{where}: {line.strip()} is not pinned by sha"
                assert re.search(r"# v\d+\.\d+\.\d+$", line), f"{where}: {line} lacks # vX.Y.Z"
        for name, job in workflow["jobs"].items():
            job_text = yaml.safe_dump(job)
            for step in steps(job):
                assert "${{" not in str(step.get("run", "")), f"{where}/{name}: expression in run"
                if str(step.get("uses", "")).startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, f"{where}/{name}"
            if "secrets." in job_text:
                assert job.get("environment"), f"{where}/{name}: secrets outside an environment"
            assert "aws-access-key-id" not in job_text and "aws-secret-access-key" not in job_text
        assert "github.event" not in "".join(
            str(step.get("run", "")) for job in workflow["jobs"].values() for step in steps(job)
        )


def assert_promotion_workflows(directory: Path, settings: ScaffoldSettings) -> None:
    """The plan workflow on pull requests, the apply workflow on merges, dev -> staging -> prod."""
    workflows = directory / ".github" / "workflows"
    plan = load(workflows / "promote-plan.yml")
    assert set(plan["on"]) == {"pull_request", "push"}
    assert "environments/**" in plan["on"]["pull_request"]["paths"]
    assert set(settings.code_paths) <= set(plan["on"]["pull_request"]["paths"])
    assert plan["on"]["push"] == {
        "branches": [settings.protected_branch],
        "paths": ["environments/**"],
    }
    [plan_job] = plan["jobs"].values()
    runs = [str(step.get("run", "")) for step in steps(plan_job)]
    assert "promote plan" in runs and "promote report --summary --comment" in runs
    assert plan_job["permissions"] == {"contents": "read", "pull-requests": "write"}
    # The facts index: restored before the plan; saved from the protected branch alone, so a
    # pull request never writes what the next one reads; no comment without a pull request.
    named = {step.get("name"): step for step in steps(plan_job)}
    restore, save = named["Restore the facts index"], named["Save the facts index"]
    assert str(restore["uses"]).startswith("actions/cache/restore@")
    assert str(save["uses"]).startswith("actions/cache/save@")
    assert restore["with"]["path"] == save["with"]["path"] == "~/.cache/promote"
    assert "github.event_name == 'push'" in save["if"]
    names = [step.get("name") for step in steps(plan_job)]
    assert names.index("Restore the facts index") < runs.index("promote plan")
    comment = [s for s in steps(plan_job) if "--comment" in str(s.get("run", ""))]
    assert all("github.event_name == 'pull_request'" in s["if"] for s in comment)

    apply = load(workflows / "promote-apply.yml")
    assert apply["on"] == {
        "push": {"branches": [settings.protected_branch], "paths": ["environments/**"]}
    }
    assert apply["concurrency"]["cancel-in-progress"] is False
    jobs = apply["jobs"]
    # Per environment, in order: its plan, then one apply job per model with something to write.
    assert list(jobs) == [job for env in ENVIRONMENT_ORDER for job in (f"plan-{env}", env)]
    for index, name in enumerate(ENVIRONMENT_ORDER):
        planner, job = jobs[f"plan-{name}"], jobs[name]
        assert planner["environment"] == "plan"
        assert planner["permissions"] == {"contents": "read"}
        assert planner.get("needs") == (ENVIRONMENT_ORDER[index - 1] if index else None)
        if index:
            # The environment before may have had nothing to apply: its skipped jobs do not
            # skip this one, its failed ones do.
            assert planner["if"] == "${{ !failure() && !cancelled() }}"
        assert f"promote plan --env {name} --json" in pending_models_script(apply, name)
        assert planner["outputs"]["models"] == "${{ steps.pending.outputs.models }}"
        assert job["environment"] == name
        assert job["needs"] == f"plan-{name}"
        assert job["if"] == "${{ needs.plan-" + name + ".outputs.models != '[]' }}"
        assert job["strategy"] == {
            "fail-fast": False,
            "matrix": {"model": "${{ fromJSON(needs.plan-" + name + ".outputs.models) }}"},
        }
        [apply_step] = [
            s for s in steps(job) if s.get("run") == f'promote apply --env {name} --model "$MODEL"'
        ]
        assert apply_step["env"]["MODEL"] == "${{ matrix.model }}"
        for secret in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            assert apply_step["env"][secret] == "${{ secrets." + secret + " }}"
        credentials = [
            s for s in steps(job) if "configure-aws-credentials" in str(s.get("uses", ""))
        ]
        # Every apply job may sign keyless (Sigstore) and record the hand-off's GitHub
        # deployment; only jobs with a role assume it.
        assert job["permissions"] == {
            "contents": "read",
            "id-token": "write",
            "deployments": "write",
        }
        token = apply_step["env"]["GITHUB_TOKEN"]
        if index:  # staging and prod: under approval, their token reads the approvers team
            assert token == "${{ secrets.PROMOTE_GITHUB_TOKEN }}"
        else:
            assert token == "${{ secrets.PROMOTE_GITHUB_TOKEN || github.token }}"
        assert apply_step["env"]["PROMOTE_SIGNING_KEY"] == "${{ secrets.PROMOTE_SIGNING_KEY }}"
        if name in settings.roles:
            assert [s["with"]["role-to-assume"] for s in credentials] == [settings.roles[name]]
        else:
            assert credentials == []


def watch_command(directory: Path, environment: str) -> tuple[list[str], dict[str, str]]:
    """The watch workflow's promote command for `environment`, as argv, and its step's env."""
    job = load(directory / ".github" / "workflows" / "promote-watch.yml")["jobs"][environment]
    [step] = [s for s in steps(job) if str(s.get("run", "")).startswith("promote watch")]
    return shlex.split(step["run"]), dict(step["env"])


def assert_watch_workflow(directory: Path, settings: ScaffoldSettings) -> None:
    """On a schedule and on demand, one job per environment, in the `watch` GitHub environment
    (never an environment whose reviewers would hold it), that may write issues and no code."""
    watch = load(directory / ".github" / "workflows" / "promote-watch.yml")
    assert set(watch["on"]) == {"schedule", "workflow_dispatch"}
    [schedule] = watch["on"]["schedule"]
    assert len(schedule["cron"].split()) == 5
    jobs = watch["jobs"]
    assert list(jobs) == ENVIRONMENT_ORDER
    for name, job in jobs.items():
        assert job["environment"] == "watch" and "needs" not in job
        expected = {"contents": "read", "issues": "write"}
        if name in settings.roles:
            expected["id-token"] = "write"
        assert job["permissions"] == expected, name
        argv, env = watch_command(directory, name)
        assert argv == ["promote", "watch", "--env", name, "--summary", "--notify"]
        assert env["MLFLOW_TRACKING_URI"] == settings.registry_uri
        assert "GITHUB_TOKEN" in env
        credentials = [
            s for s in steps(job) if "configure-aws-credentials" in str(s.get("uses", ""))
        ]
        roles = [s["with"]["role-to-assume"] for s in credentials]
        assert roles == ([settings.roles[name]] if name in settings.roles else [])


def pending_models_script(apply: dict[str, Any], environment: str) -> str:
    """The shell script of the apply workflow's step that writes `environment`'s matrix."""
    [step] = [s for s in steps(apply["jobs"][f"plan-{environment}"]) if s.get("id") == "pending"]
    return str(step["run"])


def pending_models(script: str, repo: Path, scratch: Path) -> list[str]:
    """The models `script` (`pending_models_script`) puts in the matrix, run as the runner
    would run it: bash, in `repo`, with `promote` on PATH and a GITHUB_OUTPUT file."""
    output = scratch / "github_output"
    output.write_text("")
    environ = {name: value for name, value in os.environ.items() if name != "MLFLOW_TRACKING_URI"}
    completed = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        env={
            **environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}",
            "GITHUB_OUTPUT": str(output),
            "RUNNER_TEMP": str(scratch),
        },
    )
    assert completed.returncode == 0, completed.stderr
    [line] = output.read_text().splitlines()
    name, _, value = line.partition("=")
    assert name == "models"
    return list(json.loads(value))


def zizmor_executable() -> str:
    return shutil.which("zizmor") or str(Path(sys.executable).parent / "zizmor")


def zizmor_findings(directory: Path) -> list[Any]:
    """zizmor offline, schema-checked, every audit at its most suspicious persona: findings."""
    completed = subprocess.run(
        [
            zizmor_executable(),
            "--offline",
            "--no-config",
            "--strict-collection",  # schema errors fail too
            "--persona",
            "auditor",
            "--format",
            "json",
            str(directory / ".github" / "workflows"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return list(json.loads(completed.stdout))


if __name__ == "__main__":
    regenerate()
