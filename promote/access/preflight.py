"""Before apply writes anything: prove its credentials can do what the environment's apply needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from promote.access.grants import Principals
from promote.access.iam import S3Location
from promote.build.data import is_under, resolve_uri
from promote.errors import AccessDenied, CheckFailed, ExternalError
from promote.manifests.repository import ModelSpec, Repository
from promote.manifests.schema import EnvironmentConfig
from promote.registry.entities import experiment_name

if TYPE_CHECKING:
    from promote.registry.client import Registry

PREFLIGHT_KEY = ".promote-preflight"


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
    experiment = registry.experiments([config.name]).get(experiment_name(config.name))
    if experiment is None:
        return
    location = experiment.artifact_location
    root = config.artifact_root.rstrip("/")
    if not is_under(location, root):
        raise CheckFailed(
            f"{config.name}: experiment {experiment.name} stores artifacts in "
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

    from promote.build.data import s3_client

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

    from promote.build.data import s3_client

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
