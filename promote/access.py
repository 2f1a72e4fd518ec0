"""Who may touch what: IAM policies and MLflow registry grants, generated from the environments.

Two mechanisms enforce the promise that data scientists never need, nor have, access to prod:

- IAM (the platform team attaches the documents `promote access` prints): the data-scientist
  role reads and writes dev data and dev artifacts, reads the model artifacts above dev, and is
  explicitly denied reading data above dev and writing any artifact store above dev. Each
  environment's CI role reads its own data and the artifacts of the environment it promotes
  from, and writes its own artifact store; nothing grants deletes of artifacts (versions are
  immutable).
- MLflow basic-auth permissions (`promote access --apply` grants them): data scientists READ on
  every registered model above dev and EDIT on dev's; each environment's CI user MANAGE on its
  own models and experiment. MLflow grants are per model name (no prefix wildcard), so the
  grants are recomputed from the registry's current models on every run.

`preflight` proves, before apply writes anything, that the credentials it runs with can read
the environment's data and write its artifact store; a data scientist running `promote apply
--env prod` stops there with one line and no write anywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promote.data import resolve_uri, split_s3
from promote.errors import CheckFailed, ExternalError, InputError
from promote.manifests import EnvironmentConfig, ModelSpec, Repository

if TYPE_CHECKING:
    from promote.registry import Registry

POLICY_VERSION = "2012-10-17"
DEFAULT_DATA_SCIENTIST_ROLE = "data-scientist"
DEFAULT_DATA_SCIENTIST_USER = "data-scientist"
DEFAULT_CI_TEMPLATE = "promote-ci-{env}"
# The server-wide default the generated basic_auth.ini recommends: every authenticated user may
# read, nobody may write what they did not create or were not granted.
RECOMMENDED_DEFAULT_PERMISSION = "READ"
PREFLIGHT_KEY = ".promote-preflight"

READ_OBJECTS = ["s3:GetObject", "s3:GetObjectVersion"]
LIST_BUCKET = ["s3:ListBucket", "s3:ListBucketVersions"]
WRITE_OBJECTS = ["s3:PutObject"]
# What the data-scientist role is explicitly denied above dev (wins over any other Allow).
DENIED_ARTIFACT_WRITES = ["s3:PutObject*", "s3:DeleteObject*", "s3:RestoreObject"]
DENIED_DATA_READS = ["s3:GetObject*"]

READ, EDIT, MANAGE = "READ", "EDIT", "MANAGE"
EXPERIMENT_PREFIX = "promote/"


@dataclass(frozen=True)
class Principals:
    """Who access is generated for: the data-scientist role and users, CI per environment."""

    data_scientist_role: str = DEFAULT_DATA_SCIENTIST_ROLE
    data_scientists: tuple[str, ...] = (DEFAULT_DATA_SCIENTIST_USER,)
    ci_user_template: str = DEFAULT_CI_TEMPLATE

    def ci_user(self, environment: str) -> str:
        return self.ci_user_template.replace("{env}", environment)

    @staticmethod
    def ci_role(config: EnvironmentConfig) -> str:
        return config.role or DEFAULT_CI_TEMPLATE.format(env=config.name)


@dataclass(frozen=True)
class Grant:
    """One MLflow permission: `user` gets `permission` on one registered model or experiment."""

    user: str
    resource_type: str  # "registered_model" or "experiment"
    resource_id: str  # model name, or experiment id
    permission: str
    label: str  # what the grant is on, for people (an experiment's name, not its id)

    def to_json(self) -> dict[str, str]:
        return self.__dict__.copy()


@dataclass
class AccessPlan:
    """Everything `promote access` prints: IAM documents, MLflow grants, the server setting."""

    data_scientist_role: str
    data_scientist_policy: dict[str, Any]
    ci_roles: dict[str, str] = field(default_factory=dict)
    ci_policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)
    not_governed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "iam": {
                "data_scientist": {
                    "role": self.data_scientist_role,
                    "policy": self.data_scientist_policy,
                },
                "ci": {
                    env: {"role": self.ci_roles[env], "policy": policy}
                    for env, policy in self.ci_policies.items()
                },
            },
            "mlflow": {
                "basic_auth_ini": {"default_permission": RECOMMENDED_DEFAULT_PERMISSION},
                "grants": [g.to_json() for g in self.grants],
            },
            "not_governed_by_iam": self.not_governed,
        }


# -- IAM ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # no leading or trailing slash; empty for a whole bucket

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        bucket, key = split_s3(uri)
        return cls(bucket, key.strip("/"))

    @property
    def bucket_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}"

    @property
    def objects_arn(self) -> str:
        return f"{self.bucket_arn}/{self.prefix}/*" if self.prefix else f"{self.bucket_arn}/*"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def _statement(sid: str, effect: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": effect, "Action": actions, "Resource": sorted(set(resources))}


def _list_statement(sid: str, locations: list[S3Location]) -> list[dict[str, Any]]:
    """ListBucket on whole buckets, or restricted by `s3:prefix` when a root is a prefix."""
    whole = [loc for loc in locations if not loc.prefix]
    prefixed = [loc for loc in locations if loc.prefix]
    statements = []
    if whole:
        statements.append(_statement(sid, "Allow", LIST_BUCKET, [loc.bucket_arn for loc in whole]))
    for index, loc in enumerate(prefixed):
        statement = _statement(f"{sid}Prefix{index}", "Allow", LIST_BUCKET, [loc.bucket_arn])
        statement["Condition"] = {"StringLike": {"s3:prefix": [loc.prefix, f"{loc.prefix}/*"]}}
        statements.append(statement)
    return statements


def _sid(*words: str) -> str:
    return "".join(re.sub(r"[^A-Za-z0-9]", "", word.title()) for word in words)


def _policy(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": statements}


def _s3(uri: str | None) -> S3Location | None:
    return S3Location.parse(uri) if uri and uri.startswith("s3://") else None


def ci_policy(repo: Repository, config: EnvironmentConfig) -> dict[str, Any]:
    """What one environment's apply needs: its data (read), its artifacts (write), its source's
    artifacts (read, to re-verify the validated version's digest and lineage)."""
    statements: list[dict[str, Any]] = []
    data = _s3(config.data_root)
    artifacts = _s3(config.artifact_root)
    upstream = repo.environments.get(config.promotes_from or "")
    source_artifacts = _s3(upstream.artifact_root) if upstream else None
    readable = [loc for loc in (data, artifacts, source_artifacts) if loc is not None]
    if readable:
        statements.append(
            _statement(
                _sid("Read", config.name),
                "Allow",
                READ_OBJECTS,
                [loc.objects_arn for loc in readable],
            )
        )
        statements += _list_statement(_sid("List", config.name), readable)
    if artifacts is not None:
        statements.append(
            _statement(
                _sid("WriteArtifacts", config.name), "Allow", WRITE_OBJECTS, [artifacts.objects_arn]
            )
        )
    return _policy(statements)


def data_scientist_policy(repo: Repository) -> dict[str, Any]:
    """Read and write what dev owns; read model artifacts above dev; nothing else, by design."""
    own = [e for e in repo.environments.values() if e.promotes_from is None]
    above = [e for e in repo.environments.values() if e.promotes_from is not None]
    own_locations = [loc for e in own for loc in (_s3(e.data_root), _s3(e.artifact_root)) if loc]
    above_artifacts = [loc for e in above if (loc := _s3(e.artifact_root))]
    above_data = [loc for e in above if (loc := _s3(e.data_root))]
    statements: list[dict[str, Any]] = []
    if own_locations:
        statements.append(
            _statement(
                "DevReadWrite",
                "Allow",
                [*READ_OBJECTS, *WRITE_OBJECTS, "s3:DeleteObject"],
                [loc.objects_arn for loc in own_locations],
            )
        )
    if above_artifacts:
        # Model artifacts above dev are readable so that `promote verify` and proposals work.
        statements.append(
            _statement(
                "ReadModelArtifacts",
                "Allow",
                READ_OBJECTS,
                [loc.objects_arn for loc in above_artifacts],
            )
        )
    statements += _list_statement("List", own_locations + above_artifacts)
    if above_data:
        statements.append(
            _statement(
                "DenyDataAboveDev",
                "Deny",
                DENIED_DATA_READS,
                [loc.objects_arn for loc in above_data],
            )
        )
    if above_artifacts:
        statements.append(
            _statement(
                "DenyArtifactWritesAboveDev",
                "Deny",
                DENIED_ARTIFACT_WRITES,
                [loc.objects_arn for loc in above_artifacts],
            )
        )
    return _policy(statements)


# -- MLflow grants --------------------------------------------------------------------------


def _name_pattern(template: str, environment: str) -> re.Pattern[str]:
    """A regex matching registered names made from `template` for one environment."""
    escaped = re.escape(template)
    escaped = escaped.replace(re.escape("{env}"), re.escape(environment))
    return re.compile("^" + escaped.replace(re.escape("{model}"), ".+") + "$")


def compute_grants(
    repo: Repository,
    principals: Principals,
    model_names: Iterable[str],
    experiments: dict[str, str],
) -> list[Grant]:
    """Grants for every registered model and `promote/<env>` experiment that exists now.

    `experiments` maps experiment name to id. Data scientists get EDIT in environments that
    promote from none (dev), READ above; each CI user MANAGE on its environment and READ on the
    environment it promotes from (its source versions and their lineage).
    """
    names = sorted(set(model_names))
    grants: list[Grant] = []
    for config in repo.ordered_environments():
        pattern = _name_pattern(config.model_name, config.name)
        resources = [("registered_model", name, name) for name in names if pattern.match(name)]
        experiment = f"{EXPERIMENT_PREFIX}{config.name}"
        if experiment in experiments:
            resources.append(("experiment", experiments[experiment], experiment))
        scientists = EDIT if config.promotes_from is None else READ
        downstream = [e for e in repo.environments.values() if e.promotes_from == config.name]
        for resource_type, resource_id, label in resources:
            for user in principals.data_scientists:
                grants.append(Grant(user, resource_type, resource_id, scientists, label))
            grants.append(
                Grant(principals.ci_user(config.name), resource_type, resource_id, MANAGE, label)
            )
            for below in downstream:
                grants.append(
                    Grant(principals.ci_user(below.name), resource_type, resource_id, READ, label)
                )
    return grants


def plan(repo: Repository, principals: Principals, registry: Registry | None) -> AccessPlan:
    """IAM documents from the environment files; MLflow grants from the registry's models."""
    result = AccessPlan(principals.data_scientist_role, data_scientist_policy(repo))
    for config in repo.ordered_environments():
        result.ci_roles[config.name] = principals.ci_role(config)
        result.ci_policies[config.name] = ci_policy(repo, config)
        for what, uri in (("data_root", config.data_root), ("artifact_root", config.artifact_root)):
            if not (uri or "").startswith("s3://"):
                result.not_governed.append(f"{config.name}.{what}: {uri or 'default local store'}")
    if registry is not None:
        experiments = _experiments(registry, repo.environments)
        result.grants = compute_grants(repo, principals, registry.names(), experiments)
    return result


def _experiments(registry: Registry, environments: Iterable[str]) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    found: dict[str, str] = {}
    for environment in environments:
        name = f"{EXPERIMENT_PREFIX}{environment}"
        try:
            experiment = registry.client.get_experiment_by_name(name)
        except MlflowException as exc:
            raise ExternalError(
                f"registry: reading experiment {name} failed: {exc.message}"
            ) from None
        if experiment is not None:
            found[name] = str(experiment.experiment_id)
    return found


def apply_grants(tracking_uri: str, grants: list[Grant]) -> None:
    """Grant each permission on an MLflow server running with `--app-name basic-auth`.

    Runs with an admin's MLFLOW_TRACKING_USERNAME/PASSWORD. An existing grant on the same
    resource is replaced, so a model someone created by hand (its creator got MANAGE) is
    brought back to what this plan says.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        raise InputError(
            "--registry", None, "granting permissions needs an MLflow server (http:// or https://)"
        )
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    client = AuthServiceClient(tracking_uri)
    users = {grant.user for grant in grants}
    for user in sorted(users):
        try:
            client.get_user(user)
        except MlflowException as exc:
            raise ExternalError(
                f"registry: user {user!r} cannot be read on {tracking_uri} "
                f"({exc.error_code}): create it, and run this as an admin"
            ) from None
    for grant in grants:
        args = (grant.user, grant.resource_type, grant.resource_id)
        try:
            try:
                client.grant_user_permission(*args, grant.permission)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                client.revoke_user_permission(*args)
                client.grant_user_permission(*args, grant.permission)
        except MlflowException as exc:
            raise ExternalError(
                f"registry: granting {grant.permission} on {grant.label} to {grant.user} failed: "
                f"{exc.message.splitlines()[0]}"
            ) from None


def render(access: AccessPlan) -> str:
    """The plan as text: the IAM documents as JSON, the grants as a list."""
    lines = [f"# IAM policy for the data-scientist role ({access.data_scientist_role})"]
    lines.append(json.dumps(access.data_scientist_policy, indent=2))
    for env, policy in access.ci_policies.items():
        lines.append(f"# IAM policy for {env}'s CI role ({access.ci_roles[env]})")
        lines.append(json.dumps(policy, indent=2))
    lines.append(f"# MLflow basic_auth.ini: default_permission = {RECOMMENDED_DEFAULT_PERMISSION}")
    lines.append(f"# MLflow grants ({len(access.grants)})")
    lines += [f"{g.user}: {g.permission} on {g.resource_type} {g.label}" for g in access.grants]
    if access.not_governed:
        lines.append("# Local stores, not governed by IAM: " + "; ".join(access.not_governed))
    return "\n".join(lines)


# -- preflight ------------------------------------------------------------------------------


class AccessDenied(CheckFailed):
    """The credentials apply runs with may not do what the environment's apply needs."""


def preflight(repo: Repository, specs: list[ModelSpec], registry: Registry) -> None:
    """Before any write: prove these credentials can read each build's S3 data and write its
    environment's S3 artifact store, and that the environment's experiment logs there.

    Local folders are left to the operating system's permissions.
    """
    for environment in sorted({spec.environment for spec in specs}):
        config = repo.environment(environment)
        _check_experiment_location(registry, config)
        if config.artifact_root and config.artifact_root.startswith("s3://"):
            _check_writable(config, config.artifact_root)
        if config.training == "retrain" and config.data_root.startswith("s3://"):
            for spec in (s for s in specs if s.environment == environment):
                _check_readable(
                    resolve_uri(repo.root, config.data_root, spec.manifest.data.path), config
                )


def _denied(config: EnvironmentConfig, what: str, uri: str, cause: str) -> AccessDenied:
    return AccessDenied(
        f"{config.name}: these credentials cannot {what} {uri} ({cause}); "
        f"apply {config.name} with its CI role ({Principals.ci_role(config)}): nothing was written"
    )


def _check_experiment_location(registry: Registry, config: EnvironmentConfig) -> None:
    """Refuse an experiment whose artifacts go elsewhere than the environment's artifact store:
    whoever created it first would otherwise choose where prod's models are stored."""
    if not config.artifact_root:
        return
    found = _experiments(registry, [config.name])
    experiment_id = found.get(f"{EXPERIMENT_PREFIX}{config.name}")
    if experiment_id is None:
        return
    location = str(registry.client.get_experiment(experiment_id).artifact_location)
    root = config.artifact_root.rstrip("/")
    if location != root and not location.startswith(root + "/"):
        raise CheckFailed(
            f"{config.name}: experiment {EXPERIMENT_PREFIX}{config.name} stores artifacts in "
            f"{location}, not under artifact_root {root}: it was not created by the pipeline"
        )


def _caller() -> str:
    """The AWS identity in use, for the error message; best effort."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return str(boto3.client("sts").get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError):
        return "unknown identity"


def _check_writable(config: EnvironmentConfig, uri: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from promote.data import s3_client

    location = S3Location.parse(uri)
    key = f"{location.prefix}/{PREFLIGHT_KEY}" if location.prefix else PREFLIGHT_KEY
    try:
        # A fixed key, overwritten by every apply: proves PutObject without leaving litter.
        s3_client().put_object(Bucket=location.bucket, Key=key, Body=config.name.encode())
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise _denied(config, "write the artifact store", uri, f"{code} for {_caller()}") from None
    except BotoCoreError as exc:
        raise ExternalError(f"{config.name}: cannot reach {uri}: {exc}") from None


def _check_readable(uri: str, config: EnvironmentConfig) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from promote.data import s3_client

    location = S3Location.parse(uri)
    client = s3_client()
    try:
        listing = client.list_objects_v2(
            Bucket=location.bucket, Prefix=f"{location.prefix}/", MaxKeys=1
        )
        keys = [item["Key"] for item in listing.get("Contents", [])]
        if not keys:
            raise CheckFailed(f"{config.name}: no data under {uri}")
        client.head_object(Bucket=location.bucket, Key=keys[0])
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = (
            "AccessDenied"
            if error.get("Code") in ("403", "AccessDenied")
            else error.get("Code", "error")
        )
        raise _denied(config, "read the data", uri, f"{code} for {_caller()}") from None
    except BotoCoreError as exc:
        raise ExternalError(f"{config.name}: cannot reach {uri}: {exc}") from None
