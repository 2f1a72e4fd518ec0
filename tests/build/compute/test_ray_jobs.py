"""Rebuilds on a real local Ray head: `compute: {engine: ray}`, `promote apply --jobs`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.processes import free_port
from support.world import MODEL, World

from promote.apply import Pipeline
from promote.manifests.loader import load_repository
from promote.propose import propose
from promote.scaffold.quickstart import merge
from promote.train import train

SECOND = "churn_b"
# What a CI job holds that training code must never see, on the cluster either.
SECRETS = {
    "GITHUB_TOKEN": "ghs_never-to-a-cluster",
    "MLFLOW_TRACKING_PASSWORD": "registry-password-never-to-a-cluster",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-never-to-a-cluster",
}


def add_second_model(world: World) -> None:
    """`churn_b`: the example's code on a copy of its data, in every environment."""
    manifest = yaml.safe_load((world.repo / f"environments/dev/{MODEL}.yaml").read_text())
    manifest["model"] = SECOND
    manifest["data"]["path"] = SECOND
    (world.repo / f"environments/dev/{SECOND}.yaml").write_text(yaml.safe_dump(manifest))
    for environment in ("dev", "staging", "prod"):
        data = world.sandbox.data(environment)
        shutil.copytree(data, data.parent / SECOND)
    world.commit(f"Add {SECOND}")


def promote_both(world: World, target: str) -> None:
    for model in (MODEL, SECOND):
        proposal = propose(load_repository(world.repo), world.registry, model, target)
        assert proposal.branch is not None
        merge(world.repo, proposal.branch, f"Merge {proposal.branch}")


def on_ray(world: World, address: str, output_root: Path | str) -> None:
    def compute(body: dict[str, Any]) -> None:
        body["compute"] = {"engine": "ray", "address": address, "output_root": str(output_root)}

    world.edit_yaml("environments/prod/environment.yaml", compute)


def two_pending_in_prod(world: World) -> None:
    """From the promoted story: churn retrained in dev (v2) and a new churn_b, both rebuilt in
    staging two at a time, then proposed to prod: two rebuilds pending there."""
    add_second_model(world)
    world.train_dev(C=0.7)
    repo = load_repository(world.repo)
    assert train(repo, world.registry, SECOND, "dev", {}, world.lines.append).ok
    promote_both(world, "staging")
    staging = Pipeline(load_repository(world.repo), world.registry, world.lines.append, jobs=2)
    assert staging.apply("staging").ok, world.lines
    promote_both(world, "prod")


def champion(world: World, model: str) -> int | None:
    registered = world.registry.model(f"prod.{model}")
    return registered.champion.version if registered and registered.champion else None


def test_two_rebuilds_run_at_once_as_ray_jobs_and_are_promoted(
    promoted: World, ray_head: str, tmp_path: Path
) -> None:
    from ray.job_submission import JobSubmissionClient

    world = promoted
    two_pending_in_prod(world)
    output_root = tmp_path / "handoff"
    on_ray(world, ray_head, output_root)

    applied = world.cli("apply", "--env", "prod", "--jobs", "2", env=SECRETS)

    assert applied.returncode == 0, applied.stderr
    assert champion(world, MODEL) == 2 and champion(world, SECOND) == 1
    for model, version in ((MODEL, 2), (SECOND, 1)):
        verified = world.cli("verify", model, "--env", "prod", "--version", str(version))
        assert verified.returncode == 0, verified.stdout + verified.stderr
    # Each outcome is printed as it ends, then all of them in the table.
    assert f"prod.{MODEL}: ok: champion -> v2" in applied.stderr.splitlines()
    assert f"prod.{SECOND}: ok: champion -> v1" in applied.stderr.splitlines()
    assert "ok: champion -> v2" in applied.stdout and "ok: champion -> v1" in applied.stdout
    # Ray's client logs nothing of its own among promote's lines.
    assert "INFO" not in applied.stderr

    jobs = [
        job
        for job in JobSubmissionClient(ray_head).list_jobs()
        if (job.metadata or {}).get("promote") in (f"prod.{MODEL}", f"prod.{SECOND}")
        and job.start_time >= 0
    ]
    ours = sorted(jobs, key=lambda job: job.start_time)[-2:]
    assert {job.metadata["promote"] for job in ours} == {f"prod.{MODEL}", f"prod.{SECOND}"}
    assert all(str(job.status.value) == "SUCCEEDED" for job in ours)
    # Both ran at once: each started before the other ended.
    assert max(job.start_time for job in ours) < min(job.end_time for job in ours)
    for job in ours:
        variables = job.runtime_env["env_vars"]
        shipped = json.dumps(variables)
        assert not set(SECRETS) & set(variables)
        assert not any(secret in shipped for secret in SECRETS.values())
        assert "PATH" not in variables and "HOME" not in variables
    # The archives were fetched and removed: nothing is left on the shared storage.
    assert list(output_root.iterdir()) == []


def test_outputs_cross_through_s3_with_the_clusters_own_credentials(
    promoted: World, ray_head: str, s3: Any
) -> None:
    """A real cluster shares no disk with CI: each job leaves its archive in S3 with the
    cluster's role, and promote fetches it with its own and deletes it there."""
    from ray.job_submission import JobSubmissionClient

    world = promoted
    two_pending_in_prod(world)
    s3.create_bucket(Bucket="handoff")
    on_ray(world, ray_head, "s3://handoff/prod")

    applied = world.cli("apply", "--env", "prod", "--jobs", "2")

    assert applied.returncode == 0, applied.stderr
    assert champion(world, MODEL) == 2 and champion(world, SECOND) == 1
    for model, version in ((MODEL, 2), (SECOND, 1)):
        verified = world.cli("verify", model, "--env", "prod", "--version", str(version))
        assert verified.returncode == 0, verified.stdout + verified.stderr
    jobs = [
        job
        for job in JobSubmissionClient(ray_head).list_jobs()
        if (job.metadata or {}).get("promote") in (f"prod.{MODEL}", f"prod.{SECOND}")
    ]
    ours = sorted(jobs, key=lambda job: job.start_time)[-2:]
    outputs = [job.runtime_env["env_vars"]["PROMOTE_OUTPUT_URI"] for job in ours]
    assert all(uri.startswith("s3://handoff/prod/promote-prod.") for uri in outputs), outputs
    for job in ours:
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(job.runtime_env["env_vars"])
    # Fetched, then deleted: nothing is left in the bucket.
    assert s3.list_objects_v2(Bucket="handoff").get("KeyCount") == 0


def test_a_failed_ray_job_is_reported_by_its_last_line_and_not_promoted(
    promoted: World, ray_head: str, tmp_path: Path
) -> None:
    world = promoted
    two_pending_in_prod(world)
    on_ray(world, ray_head, tmp_path / "handoff")
    # prod's churn data lost its columns: that one training fails on the cluster.
    (world.sandbox.data("prod") / "train.csv").write_text("id,note\n1,a\n2,b\n")

    applied = world.cli("apply", "--env", "prod", "--jobs", "2")

    assert applied.returncode == 1, applied.stderr
    [failure] = [
        line for line in applied.stderr.splitlines() if line.startswith(f"prod.{MODEL}: FAILED")
    ]
    assert f"training prod.{MODEL} (models/{MODEL}/train.py) failed with exit code 1" in failure
    assert "(Ray job promote-prod.churn-" in failure
    assert failure.rstrip().endswith('are in the [columns]"')
    assert "KeyError" in failure
    # Its log came back line by line, prefixed as a local training's is.
    assert f"prod.{MODEL} | Traceback (most recent call last):" in applied.stderr
    # Nothing was promoted for it, and the other build went on.
    registered = world.registry.model(f"prod.{MODEL}")
    assert registered is not None and registered.version(2) is None
    assert champion(world, MODEL) == 1
    assert champion(world, SECOND) == 1


def test_an_unreachable_cluster_is_named_and_nothing_is_written(
    trained: World, tmp_path: Path
) -> None:
    world = trained
    world.propose_and_merge("staging")
    address = f"http://127.0.0.1:{free_port()}"
    world.edit_yaml(
        "environments/staging/environment.yaml",
        lambda body: body.update(
            compute={"engine": "ray", "address": address, "output_root": str(tmp_path)}
        ),
    )
    before = world.snapshot()

    applied = world.cli("apply", "--env", "staging")

    assert applied.returncode == 1
    [line] = applied.stderr.splitlines()
    assert line.startswith(
        "error: environments/staging/environment.yaml: compute.address: "
        f"no Ray cluster answers at {address} ("
    )
    assert line.endswith("nothing was written")
    assert world.snapshot() == before


@pytest.mark.parametrize(
    ("compute", "field", "problem"),
    [
        ({"engine": "ray", "output_root": "/shared"}, "compute.address", "required field"),
        (
            {"engine": "ray", "address": "ftp://head:8265", "output_root": "/shared"},
            "compute.address",
            "http://",
        ),
        (
            {"engine": "ray", "address": "http://head:8265", "output_root": "handoff"},
            "compute.output_root",
            "absolute folder",
        ),
        ({"engine": "kubernetes"}, "compute.engine", "'local', 'ray'"),
        ({"engine": "local", "address": "http://head:8265"}, "compute.address", "unknown field"),
    ],
)
def test_a_bad_compute_config_is_one_line_naming_the_field(
    trained: World, compute: dict[str, str], field: str, problem: str
) -> None:
    world = trained
    world.propose_and_merge("staging")
    world.edit_yaml(
        "environments/staging/environment.yaml", lambda body: body.update(compute=compute)
    )
    before = world.snapshot()

    applied = world.cli("apply", "--env", "staging")

    assert applied.returncode == 2
    [line] = applied.stderr.splitlines()
    assert line.startswith(f"error: environments/staging/environment.yaml: {field}: "), line
    assert problem in line
    assert world.snapshot() == before
