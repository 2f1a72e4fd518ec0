"""IAM policies per environment, generated from the environment files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promote.build.data import split_s3
from promote.manifests.repository import Repository
from promote.manifests.schema import EnvironmentConfig

if TYPE_CHECKING:
    pass

POLICY_VERSION = "2012-10-17"

READ_OBJECTS = ["s3:GetObject", "s3:GetObjectVersion"]

LIST_BUCKET = ["s3:ListBucket", "s3:ListBucketVersions"]

WRITE_OBJECTS = ["s3:PutObject"]

# What the data-scientist role is explicitly denied above dev (wins over any other Allow).
DENIED_ARTIFACT_WRITES = ["s3:PutObject*", "s3:DeleteObject*", "s3:RestoreObject"]

DENIED_DATA_READS = ["s3:GetObject*"]


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
