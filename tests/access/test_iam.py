"""IAM, proven against a moto server that enforces it: the generated policies are attached to
roles, the story runs with each role's credentials, and the data scientist is refused prod.

The moto server runs in its own process: the platform team's setup (buckets, roles, policies)
is done before IAM enforcement is switched on through moto's INITIAL_NO_AUTH_ACTION_COUNT
setting (`/moto-api/reset-auth`); from then on every request is signed by a role's credentials
and checked against its policies.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from support.processes import Environ, free_port
from support.world import MODEL, World
from typer.testing import CliRunner

from promote.access.iam import ci_policy, data_scientist_policy
from promote.access.preflight import AccessDenied, preflight
from promote.build.data import split_s3
from promote.cli import app
from promote.errors import CheckFailed
from promote.manifests.loader import load_repository
from promote.manifests.repository import Repository
from promote.manifests.schema import EnvironmentConfig
from promote.scaffold.quickstart import create_sandbox
from promote.verify import verify

ACCOUNT = "123456789012"
REGION = "us-east-1"
ENVIRONMENTS = ("dev", "staging", "prod")
# The key of a file of an MLflow 3 logged model: [<experiment root>/]models/<id>/artifacts/...
LOGGED_MODEL_FILE = re.compile(r"(^|/)models/[^/]+/artifacts/")
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def data_bucket(env: str) -> str:
    return f"acme-{env}-data"


def artifact_bucket(env: str) -> str:
    return f"acme-{env}-artifacts"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None

    def env(self) -> dict[str, str | None]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_SESSION_TOKEN": self.session_token,  # None: unset, not inherited
        }


class IamMoto:
    """A moto server in a subprocess; IAM is enforced once `enforce()` is called."""

    def __init__(self, log: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "moto_server"),
                    "-H",
                    "127.0.0.1",
                    "-p",
                    port,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"moto server did not start; see {log}") from None
                time.sleep(0.1)

    def client(self, service: str, credentials: Credentials) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            aws_session_token=credentials.session_token,
        )

    def enforce(self) -> None:
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=b"0",  # INITIAL_NO_AUTH_ACTION_COUNT = 0: authenticate every request from now on
            method="POST",
            headers={"Content-Type": "application/octet-stream"},
        )
        urllib.request.urlopen(request, timeout=5).close()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Platform:
    """What the platform team sets up: buckets, data, and one IAM role per generated policy."""

    def __init__(self, moto: IamMoto) -> None:
        self.moto = moto
        self.setup = Credentials("setup", "setup-secret")  # accepted while IAM is not enforced
        self.iam = moto.client("iam", self.setup)
        self.roles: dict[str, Credentials] = {}
        self.admin = self._user("admin", ADMIN_POLICY)

    def _user(self, name: str, policy: dict[str, Any]) -> Credentials:
        self.iam.create_user(UserName=name)
        self.iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        return Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    def role(self, name: str, policy: dict[str, Any]) -> None:
        """A role with the generated policy, assumable by one user who may do nothing else."""
        assume = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
        }
        user = f"{name}-person"
        self.roles[name] = self._user(user, assume)
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{user}"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        self.iam.put_role_policy(
            RoleName=name, PolicyName="promote", PolicyDocument=json.dumps(policy)
        )

    def assume(self, name: str) -> Credentials:
        sts = self.moto.client("sts", self.roles[name])
        found = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{name}", RoleSessionName=name)
        value = found["Credentials"]
        return Credentials(value["AccessKeyId"], value["SecretAccessKey"], value["SessionToken"])


@contextmanager
def acting_as(credentials: Credentials) -> Iterator[None]:
    """Run with one identity's AWS credentials, in this process and in training subprocesses.

    boto3's default session and MLflow's S3 client cache the first credentials they see; a CLI
    process has one identity for its life, these tests switch identities within one process.
    """
    import boto3
    from mlflow.store.artifact.s3_artifact_repo import _cached_get_s3_client

    boto3.DEFAULT_SESSION = None
    _cached_get_s3_client.cache_clear()
    try:
        with Environ(credentials.env()):
            yield
    finally:
        boto3.DEFAULT_SESSION = None
        _cached_get_s3_client.cache_clear()


@dataclass
class AwsStory:
    """Dev trained and staging applied, each by its own role; prod proposed and merged."""

    world: World
    moto: IamMoto
    platform: Platform
    generated: dict[str, Any]

    def s3(self, credentials: Credentials) -> Any:
        return self.moto.client("s3", credentials)

    @property
    def scientist(self) -> Credentials:
        return self.platform.assume("data-scientist")

    def ci(self, env: str) -> Credentials:
        return self.platform.assume(self.generated["iam"]["ci"][env]["role"])

    def model_file(self, env: str) -> str:
        """The largest file of a model logged in an environment's artifact store: the model."""
        listing = self.s3(self.platform.admin).list_objects_v2(Bucket=artifact_bucket(env))
        files = [item for item in listing["Contents"] if LOGGED_MODEL_FILE.search(item["Key"])]
        return str(max(files, key=lambda item: item["Size"])["Key"])

    def keys(self, bucket: str) -> dict[str, str]:
        """Every object in a bucket with its ETag, read with the admin's credentials."""
        listing = self.s3(self.platform.admin).list_objects_v2(Bucket=bucket)
        return {item["Key"]: item["ETag"] for item in listing.get("Contents", [])}


def _use_s3_roots(body: dict[str, Any], env: str) -> None:
    body.update(data_root=f"s3://{data_bucket(env)}", artifact_root=f"s3://{artifact_bucket(env)}")


def _build_story(moto: IamMoto, base: Path) -> AwsStory:
    world = World(create_sandbox(base / "sandbox"))
    platform = Platform(moto)
    s3 = moto.client("s3", platform.setup)
    for env in ENVIRONMENTS:
        s3.create_bucket(Bucket=data_bucket(env))
        s3.create_bucket(Bucket=artifact_bucket(env))
        for file in sorted(world.sandbox.data(env).iterdir()):
            s3.put_object(
                Bucket=data_bucket(env), Key=f"{MODEL}/{file.name}", Body=file.read_bytes()
            )
        world.edit_yaml(
            f"environments/{env}/environment.yaml",
            partial(_use_s3_roots, env=env),
        )
    # The documents exactly as `promote access` prints them for the platform team.
    printed = CliRunner().invoke(app, ["--repo", str(world.repo), "access", "--json"])
    assert printed.exit_code == 0, printed.output
    generated = json.loads(printed.stdout)
    platform.role(
        generated["iam"]["data_scientist"]["role"], generated["iam"]["data_scientist"]["policy"]
    )
    for env in ENVIRONMENTS:
        ci = generated["iam"]["ci"][env]
        platform.role(ci["role"], ci["policy"])
    moto.enforce()
    story = AwsStory(world, moto, platform, generated)
    with acting_as(story.scientist):
        world.train_dev()
        world.propose_and_merge("staging")
    with acting_as(story.ci("staging")):
        result = world.pipeline().apply("staging")
        assert result.ok, result.outcomes
    with acting_as(story.scientist):
        world.propose_and_merge("prod")
    return story


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStory]:
    base = tmp_path_factory.mktemp("iam")
    moto = IamMoto(base / "moto.log")
    endpoint = {"AWS_ENDPOINT_URL": moto.url, "AWS_DEFAULT_REGION": REGION, "AWS_PROFILE": None}
    try:
        with Environ(endpoint):
            yield _build_story(moto, base)
    finally:
        moto.stop()


def _denied(call: Any, **arguments: Any) -> str:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        call(**arguments)
    return str(caught.value.response["Error"]["Code"])


def test_policies_deny_the_data_scientist_everything_above_dev(aws: AwsStory) -> None:
    scientist = aws.generated["iam"]["data_scientist"]["policy"]["Statement"]
    denied = {arn for s in scientist if s["Effect"] == "Deny" for arn in s["Resource"]}
    assert {
        f"arn:aws:s3:::{data_bucket('prod')}/*",
        f"arn:aws:s3:::{artifact_bucket('prod')}/*",
    } <= denied
    prod = aws.generated["iam"]["ci"]["prod"]["policy"]["Statement"]
    writable = {arn for s in prod if "s3:PutObject" in s["Action"] for arn in s["Resource"]}
    assert writable == {f"arn:aws:s3:::{artifact_bucket('prod')}/*"}
    assert not any("Delete" in action for s in prod for action in s["Action"])


def test_data_scientist_is_denied_prod_data_and_prod_artifact_writes(aws: AwsStory) -> None:
    s3 = aws.s3(aws.scientist)
    # The same credentials work where they should: dev data, staging's model artifacts.
    assert s3.get_object(Bucket=data_bucket("dev"), Key=f"{MODEL}/train.csv")["Body"].read()
    staging_artifacts = aws.keys(artifact_bucket("staging"))
    assert staging_artifacts
    s3.get_object(Bucket=artifact_bucket("staging"), Key=next(iter(staging_artifacts)))

    assert (
        _denied(s3.get_object, Bucket=data_bucket("prod"), Key=f"{MODEL}/train.csv")
        == "AccessDenied"
    )
    assert (
        _denied(s3.get_object, Bucket=data_bucket("staging"), Key=f"{MODEL}/train.csv")
        == "AccessDenied"
    )
    assert (
        _denied(s3.put_object, Bucket=artifact_bucket("prod"), Key="x/model.pkl", Body=b"x")
        == "AccessDenied"
    )
    assert (
        _denied(s3.put_object, Bucket=artifact_bucket("staging"), Key="x", Body=b"x")
        == "AccessDenied"
    )
    existing = next(iter(staging_artifacts))
    assert (
        _denied(s3.delete_object, Bucket=artifact_bucket("staging"), Key=existing) == "AccessDenied"
    )
    assert existing in aws.keys(artifact_bucket("staging"))


def test_apply_prod_as_data_scientist_fails_in_one_line_and_writes_nothing(aws: AwsStory) -> None:
    world = aws.world
    registry_before = world.snapshot()
    artifacts_before = aws.keys(artifact_bucket("prod"))
    with acting_as(aws.scientist):
        completed = world.cli("apply", "--env", "prod")
    assert completed.returncode == 1, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in completed.stderr, completed.stderr
    assert lines[0].startswith("error: prod: these credentials cannot write the artifact store")
    assert "AccessDenied" in lines[0] and "assumed-role/data-scientist" in lines[0]
    assert world.snapshot() == registry_before
    assert aws.keys(artifact_bucket("prod")) == artifacts_before


def test_preflight_names_the_data_the_credentials_cannot_read(aws: AwsStory) -> None:
    """A role that may write prod's artifacts but not read prod's data is stopped too."""
    repo = load_repository(aws.world.repo)
    with acting_as(aws.ci("staging")), pytest.raises(AccessDenied) as refused:
        preflight(repo, repo.specs_in("prod"), aws.world.registry)
    assert "cannot write the artifact store s3://acme-prod-artifacts" in refused.value.message
    # The staging role reads its own data: preflight of staging passes without a write to data.
    with acting_as(aws.ci("staging")):
        preflight(repo, repo.specs_in("staging"), aws.world.registry)


@pytest.fixture(scope="module")
def prod_applied(aws: AwsStory) -> AwsStory:
    with acting_as(aws.ci("prod")):
        result = aws.world.pipeline().apply("prod")
    assert result.ok, result.outcomes
    return aws


def test_prod_ci_role_can_do_everything_a_prod_apply_needs(prod_applied: AwsStory) -> None:
    world = prod_applied.world
    prod = world.registry.model(f"prod.{MODEL}")
    assert prod is not None and prod.champion is not None
    assert prod.champion.source.startswith(f"s3://{artifact_bucket('prod')}/")
    assert f"{split_s3(prod.champion.source)[1]}/MLmodel" in prod_applied.keys(
        artifact_bucket("prod")
    )
    with acting_as(prod_applied.ci("prod")):
        report = verify(load_repository(world.repo), world.registry, "prod", MODEL, None)
    assert report.ok, report.to_json()


def test_prod_ci_role_reaches_nothing_outside_prod(prod_applied: AwsStory) -> None:
    s3 = prod_applied.s3(prod_applied.ci("prod"))
    assert (
        _denied(s3.get_object, Bucket=data_bucket("staging"), Key=f"{MODEL}/train.csv")
        == "AccessDenied"
    )
    assert (
        _denied(s3.put_object, Bucket=artifact_bucket("staging"), Key="x", Body=b"x")
        == "AccessDenied"
    )
    champion_key = next(
        k for k in prod_applied.keys(artifact_bucket("prod")) if k.endswith("MLmodel")
    )
    assert (
        _denied(s3.delete_object, Bucket=artifact_bucket("prod"), Key=champion_key)
        == "AccessDenied"
    )


def test_overwritten_prod_artifact_is_refused_by_verify_and_apply(prod_applied: AwsStory) -> None:
    """Whoever can write the artifact store (here the admin) cannot slip a model past the digest."""
    world, admin = prod_applied.world, prod_applied.s3(prod_applied.platform.admin)
    admin.put_object(
        Bucket=artifact_bucket("prod"), Key=prod_applied.model_file("prod"), Body=b"not validated"
    )
    with acting_as(prod_applied.ci("prod")):
        completed = world.cli("verify", MODEL, "--env", "prod")
    assert completed.returncode == 1
    assert "FAIL artifact digest" in completed.stdout

    # Apply re-verifies the source before building on it: tamper staging's, change prod's manifest.
    admin.put_object(
        Bucket=artifact_bucket("staging"), Key=prod_applied.model_file("staging"), Body=b"x"
    )
    world.edit_yaml(
        f"environments/prod/{MODEL}.yaml",
        lambda body: body.setdefault("gates", {}).update(max_artifact_mb=40),
    )
    before = world.registry.model(f"prod.{MODEL}")
    assert before is not None
    with acting_as(prod_applied.ci("prod")):
        result = world.pipeline().apply("prod")
    assert not result.ok
    assert "does not match its signed digest" in result.outcomes[0].detail
    prod = world.registry.model(f"prod.{MODEL}")
    assert prod is not None and len(prod.versions) == len(before.versions)


def test_an_experiment_created_by_someone_else_cannot_redirect_artifacts(trained: World) -> None:
    """Whoever creates `promote/<env>` first chooses where its runs store artifacts: a prod
    experiment logging anywhere but prod's artifact store is refused before anything is built."""
    trained.edit_yaml(
        "environments/staging/environment.yaml",
        lambda body: body.update(artifact_root="s3://acme-staging-artifacts"),
    )
    trained.registry.client.create_experiment(
        "promote/staging", artifact_location="s3://acme-dev-artifacts/elsewhere"
    )
    trained.propose_and_merge("staging")
    before = trained.snapshot()
    with pytest.raises(CheckFailed) as refused:
        trained.pipeline().apply("staging")
    assert "stores artifacts in s3://acme-dev-artifacts/elsewhere" in refused.value.message
    assert trained.snapshot() == before


def test_roots_under_a_prefix_are_listed_under_that_prefix_only(tmp_path: Path) -> None:
    """Shared buckets: ListBucket is narrowed by `s3:prefix` (AWS evaluates it; moto does not,
    so the enforcing tests above give each environment whole buckets)."""
    environments = {
        "dev": EnvironmentConfig(name="dev", data_root="s3://shared/dev/data"),
        "prod": EnvironmentConfig(
            name="prod",
            promotes_from="dev",
            data_root="s3://shared/prod/data",
            artifact_root="s3://shared/prod/artifacts",
        ),
    }
    repo = Repository(root=tmp_path, environments=environments)
    lists = [
        s
        for s in ci_policy(repo, environments["prod"])["Statement"]
        if "s3:ListBucket" in s["Action"]
    ]
    assert {tuple(s["Condition"]["StringLike"]["s3:prefix"]) for s in lists} == {
        ("prod/data", "prod/data/*"),
        ("prod/artifacts", "prod/artifacts/*"),
    }
    assert all(s["Resource"] == ["arn:aws:s3:::shared"] for s in lists)
    denied = [s for s in data_scientist_policy(repo)["Statement"] if s["Effect"] == "Deny"]
    assert {arn for s in denied for arn in s["Resource"]} == {
        "arn:aws:s3:::shared/prod/data/*",
        "arn:aws:s3:::shared/prod/artifacts/*",
    }
