"""The in-toto statements promote signs.

- Provenance (SLSA provenance v1), signed when a version is registered: what was built (the
  artifact digest), from what (commit and tree, the resolved library set, the data snapshot),
  asked by what (the manifest digest and params), and where (the environment, the run).
- Verification summary (SLSA VSA v1), signed when a version passes its checks and gates: only
  a version with one is ever champion, so a `promote.verdict` tag edited to "passed" proves
  nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from promote.build.lineage import LINEAGE_ARTIFACT, Lineage
from promote.build.listing import tag_digest
from promote.errors import ProofInvalid
from promote.registry.entities import (
    TAG_ARTIFACT_DIGEST,
    TAG_COMMIT,
    TAG_DATA_DIGEST,
    TAG_DATA_URI,
    TAG_DIRTY,
    TAG_LINEAGE_DIGEST,
    TAG_MANIFEST_DIGEST,
    TAG_SOURCE,
)

# The version tags that restate signed claims (`Claims.tags`).
CLAIMED_TAGS = (
    TAG_COMMIT,
    TAG_ARTIFACT_DIGEST,
    TAG_LINEAGE_DIGEST,
    TAG_MANIFEST_DIGEST,
    TAG_SOURCE,
    TAG_DATA_URI,
    TAG_DATA_DIGEST,
    TAG_DIRTY,
)

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PROVENANCE_TYPE = "https://slsa.dev/provenance/v1"
SUMMARY_TYPE = "https://slsa.dev/verification_summary/v1"
BUILD_TYPE = "urn:promote:build:v1"


def builder_id(environment: str) -> str:
    return f"urn:promote:environment:{environment}"


def version_uri(name: str, version: int) -> str:
    return f"models:/{name}/{version}"


def envelope_digest(envelope: str) -> str:
    return hashlib.sha256(envelope.encode()).hexdigest()


@dataclass(frozen=True)
class Claims:
    """What a verified provenance statement says about one registered version."""

    registered_name: str
    artifact_digest: str
    artifact_uri: str
    run_id: str
    environment: str
    model: str
    code_repo: str
    commit: str
    tree: str
    dirty: bool
    entrypoint: str
    params: dict[str, Any]
    libraries_digest: str
    python_version: str
    data_uri: str
    data_digest: str
    manifest_digest: str
    source: str
    lineage_digest: str
    invocation: str
    copied_from: str | None
    # The sha256 of the listing tag (`TAG_DATA_LISTING`); None for a record without a listing.
    data_listing_digest: str | None = None

    @classmethod
    def of(
        cls,
        lineage: Lineage,
        registered_name: str,
        artifact_uri: str,
        manifest_digest: str,
        source: str,
    ) -> Claims:
        return cls(
            registered_name=registered_name,
            artifact_digest=lineage.artifact_digest,
            artifact_uri=artifact_uri,
            run_id=lineage.run_id,
            environment=lineage.environment,
            model=lineage.model,
            code_repo=lineage.code_repo,
            commit=lineage.code_commit,
            tree=lineage.code_tree,
            dirty=lineage.code_dirty,
            entrypoint=lineage.entrypoint,
            params=lineage.params,
            libraries_digest=lineage.libraries_digest,
            python_version=lineage.python_version,
            data_uri=lineage.data_uri,
            data_digest=lineage.data_digest,
            manifest_digest=manifest_digest,
            source=source,
            lineage_digest=lineage.lineage_digest,
            invocation=lineage.trained_by,
            copied_from=lineage.copied_from,
            data_listing_digest=tag_digest(tag) if (tag := lineage.listing_tag) else None,
        )

    def tags(self) -> dict[str, str]:
        """The version tags these claims stand for: a tag that differs is a forgery."""
        values = (
            self.commit,
            self.artifact_digest,
            self.lineage_digest,
            self.manifest_digest,
            self.source,
            self.data_uri,
            self.data_digest,
            "true" if self.dirty else "false",
        )
        return dict(zip(CLAIMED_TAGS, values, strict=True))

    def lineage_problems(self, lineage: Lineage) -> list[str]:
        """Where a stored lineage record disagrees with what was signed."""
        recorded = Claims.of(
            lineage, self.registered_name, self.artifact_uri, self.manifest_digest, self.source
        )
        return [
            f"lineage record's {name} differs from the signed provenance"
            for name, value in asdict(recorded).items()
            if value != getattr(self, name)
        ]

    def statement(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.registered_name, "digest": {"sha256": self.artifact_digest}}],
            "predicateType": PROVENANCE_TYPE,
            "predicate": {
                "buildDefinition": {
                    "buildType": BUILD_TYPE,
                    "externalParameters": {
                        "manifestDigest": self.manifest_digest,
                        "model": self.model,
                        "environment": self.environment,
                        "entrypoint": self.entrypoint,
                        "params": self.params,
                        "source": self.source,
                    },
                    "internalParameters": {
                        "pythonVersion": self.python_version,
                        "copiedFrom": self.copied_from,
                    },
                    "resolvedDependencies": [
                        {
                            "name": "code",
                            "uri": f"git+{self.code_repo}@{self.commit}",
                            "digest": {"gitCommit": self.commit, "gitTree": self.tree},
                            "annotations": {"repository": self.code_repo, "dirty": self.dirty},
                        },
                        {
                            "name": "libraries",
                            "uri": "urn:promote:libraries",
                            "digest": {"sha256": self.libraries_digest},
                        },
                        self._data_dependency(),
                    ],
                },
                "runDetails": {
                    "builder": {"id": builder_id(self.environment)},
                    "metadata": {"invocationId": self.invocation},
                    "byproducts": [
                        {
                            "name": "model",
                            "uri": self.artifact_uri,
                            "digest": {"sha256": self.artifact_digest},
                        },
                        {
                            "name": "lineage",
                            "uri": f"runs:/{self.run_id}/{LINEAGE_ARTIFACT}",
                            "digest": {"sha256": self.lineage_digest},
                            "annotations": {"runId": self.run_id},
                        },
                    ],
                },
            },
        }

    def _data_dependency(self) -> dict[str, Any]:
        dependency: dict[str, Any] = {
            "name": "data",
            "uri": self.data_uri,
            "digest": {"sha256": self.data_digest},
        }
        if self.data_listing_digest is not None:
            # Only when recorded: a statement signed before listings existed stays the same.
            dependency["annotations"] = {"listingDigest": self.data_listing_digest}
        return dependency

    @classmethod
    def from_statement(cls, statement: dict[str, Any]) -> Claims:
        try:
            if statement["_type"] != STATEMENT_TYPE:
                raise ProofInvalid(f"statement type {statement['_type']!r} is not in-toto v1")
            if statement["predicateType"] != PROVENANCE_TYPE:
                raise ProofInvalid("statement is not SLSA provenance v1")
            (subject,) = statement["subject"]
            build = statement["predicate"]["buildDefinition"]
            run = statement["predicate"]["runDetails"]
            external = build["externalParameters"]
            internal = build["internalParameters"]
            code, libraries, data = build["resolvedDependencies"]
            model, lineage = run["byproducts"]
            claims = cls(
                registered_name=str(subject["name"]),
                artifact_digest=str(subject["digest"]["sha256"]),
                artifact_uri=str(model["uri"]),
                run_id=str(lineage["annotations"]["runId"]),
                environment=str(external["environment"]),
                model=str(external["model"]),
                code_repo=str(code["annotations"]["repository"]),
                commit=str(code["digest"]["gitCommit"]),
                tree=str(code["digest"]["gitTree"]),
                dirty=code["annotations"]["dirty"] is True,
                entrypoint=str(external["entrypoint"]),
                params=dict(external["params"]),
                libraries_digest=str(libraries["digest"]["sha256"]),
                python_version=str(internal["pythonVersion"]),
                data_uri=str(data["uri"]),
                data_digest=str(data["digest"]["sha256"]),
                manifest_digest=str(external["manifestDigest"]),
                source=str(external["source"]),
                lineage_digest=str(lineage["digest"]["sha256"]),
                invocation=str(run["metadata"]["invocationId"]),
                copied_from=internal["copiedFrom"],
                data_listing_digest=data.get("annotations", {}).get("listingDigest"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProofInvalid(f"provenance statement is malformed ({exc!r:.80})") from None
        if claims.statement() != statement:
            raise ProofInvalid("provenance statement holds fields promote does not sign")
        return claims


def verification_summary(
    name: str, version: int, claims: Claims, provenance_envelope: str
) -> dict[str, Any]:
    """The signed verdict: this version, built as `provenance_envelope` says, PASSED."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": claims.artifact_digest}}],
        "predicateType": SUMMARY_TYPE,
        "predicate": {
            "verifier": {"id": builder_id(claims.environment)},
            "timeVerified": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "resourceUri": version_uri(name, version),
            "policy": {
                "uri": "urn:promote:manifest",
                "digest": {"sha256": claims.manifest_digest},
            },
            "inputAttestations": [
                {
                    "uri": f"{version_uri(name, version)}#provenance",
                    "digest": {"sha256": envelope_digest(provenance_envelope)},
                }
            ],
            "verificationResult": "PASSED",
            "verifiedLevels": [],
            "slsaVersion": "1.0",
        },
    }


def summary_problem(
    statement: dict[str, Any], name: str, version: int, claims: Claims, provenance_envelope: str
) -> str | None:
    """Why a signed verification summary does not vouch for this version, or None."""
    try:
        predicate = statement["predicate"]
        checks = {
            "statement type": statement["_type"] == STATEMENT_TYPE
            and statement["predicateType"] == SUMMARY_TYPE,
            "subject": statement["subject"]
            == [{"name": name, "digest": {"sha256": claims.artifact_digest}}],
            "version": predicate["resourceUri"] == version_uri(name, version),
            "manifest": predicate["policy"]["digest"] == {"sha256": claims.manifest_digest},
            "provenance": [a["digest"] for a in predicate["inputAttestations"]]
            == [{"sha256": envelope_digest(provenance_envelope)}],
            "result": predicate["verificationResult"] == "PASSED",
        }
    except (KeyError, TypeError) as exc:
        return f"verification summary is malformed ({exc!r:.80})"
    wrong = [what for what, ok in checks.items() if not ok]
    return f"verification summary's {', '.join(wrong)} does not match" if wrong else None
