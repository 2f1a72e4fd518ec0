"""The one way serving gets a model: downloaded once, proven from those very files, then loaded.

The signed provenance must verify for the environment and a signed verification summary must say
the version passed (`proof.versions.proven_claims`); the digest recomputed from the downloaded
folder must be the signed one, and the OpenSSF model signature must verify over that folder.
Only then does MLflow load it, from the same folder, so nothing can change between the check
and the load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promote.build.digest import artifact_digest
from promote.errors import BadReference, CheckFailed, ProofInvalid
from promote.manifests.repository import Repository
from promote.proof.trust import Keyring
from promote.proof.versions import proven_claims, require_signed_digest
from promote.registry import pyfunc
from promote.registry.client import Registry
from promote.registry.entities import CHAMPION


@dataclass(frozen=True)
class VerifiedModel:
    """A version proven genuine and passed, loaded from the folder it was proven from."""

    environment: str
    model: str
    registered_name: str
    version: int
    digest: str
    run_id: str
    model_dir: Path
    loaded: pyfunc.LoadedModel

    @property
    def model_uri(self) -> str:
        return f"models:/{self.registered_name}/{self.version}"

    def describe(self) -> dict[str, Any]:
        """What scored an output or answers a request: the identity other tools can check."""
        return {
            "model": self.model,
            "environment": self.environment,
            "registered_model": self.registered_name,
            "version": self.version,
            "artifact_digest": self.digest,
            "run_id": self.run_id,
            "model_uri": self.model_uri,
        }


def load_verified(
    repo: Repository,
    registry: Registry,
    environment: str,
    model: str,
    destination: Path,
    version: int | None = None,
) -> VerifiedModel:
    """The environment's champion (or `version`, the one a follower saw the alias on), read
    live, downloaded into `destination` (a new folder the caller owns), proven and loaded.

    `ProofInvalid` when anything does not verify (nothing is loaded then), `CheckFailed` when
    MLflow cannot load what did.
    """
    name = repo.registered_name(environment, model)
    trust = Keyring(repo.environments).trust(environment)
    registered = registry.model(name)
    if registered is None:
        raise BadReference(name, None, "no such registered model")
    number = registered.aliases.get(CHAMPION) if version is None else version
    target = registered.version(number)
    if target is None:
        raise BadReference(
            name, None, "has no champion" if version is None else f"has no version {version}"
        )
    claims = proven_claims(registered, target, trust, passed=True)
    model_dir = registry.download_model(target, destination / "model")
    require_signed_digest(target, artifact_digest(model_dir), claims)
    signature = registry.download_model_signature(target.run_id, destination / "signature")
    if signature is None:
        raise ProofInvalid(f"{target.ref}: its run holds no OpenSSF model signature")
    try:
        trust.verify_model(model_dir, signature)
        loaded = pyfunc.load(model_dir)
    except CheckFailed as exc:  # ProofInvalid included: the message gains the version
        raise type(exc)(f"{target.ref}: {exc.message}") from None
    return VerifiedModel(
        environment=environment,
        model=model,
        registered_name=name,
        version=target.version,
        digest=claims.artifact_digest,
        run_id=target.run_id,
        model_dir=model_dir,
        loaded=loaded,
    )
