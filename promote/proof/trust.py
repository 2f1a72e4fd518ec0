"""Who may sign an environment's models, and checking that they did.

An environment's config lists its public keys and, optionally, the GitHub Actions workflow whose
Sigstore certificate may sign (keyless). Statements are DSSE envelopes: with a key, promote's
own (`proof.dsse`); keyless, a Sigstore bundle. The model folder itself is signed in the OpenSSF
Model Signing format (`model_signing`), so standard tools verify it without promote.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from promote.build.digest import DOWNLOAD_ONLY_FILES
from promote.errors import InputError, ProofInvalid
from promote.manifests.repository import environment_file
from promote.manifests.schema import EnvironmentConfig, KeylessIdentity
from promote.proof import dsse, keys

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
SIGSTORE_BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"


def keyless_identity(identity: KeylessIdentity) -> str:
    """The certificate identity (SAN) GitHub's OIDC token gives that workflow at that ref."""
    return f"https://github.com/{identity.repository}/{identity.workflow}@{identity.ref}"


@contextmanager
def _key_file(pem: bytes) -> Iterator[Path]:
    """model-signing reads keys from files: a private temporary one, removed after use."""
    with tempfile.TemporaryDirectory(prefix="promote-key-") as folder:
        path = Path(folder) / "key.pem"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        yield path


@dataclass(frozen=True)
class Trust:
    """What verifies one environment's signatures: its public keys, its keyless identity."""

    environment: str
    keys: dict[str, ec.EllipticCurvePublicKey] = field(default_factory=dict)
    keyless: KeylessIdentity | None = None

    @classmethod
    def of(cls, config: EnvironmentConfig, location: str) -> Trust:
        """`location` names the config file in errors; an environment with no signer is bad
        input, since nothing it builds could ever be verified."""
        found: dict[str, ec.EllipticCurvePublicKey] = {}
        for index, pem in enumerate(config.signing.public_keys):
            try:
                key = keys.public_key(pem)
            except ValueError as exc:
                raise InputError(location, f"signing.public_keys.{index}", str(exc)) from None
            found[keys.key_id(key)] = key
        if not found and config.signing.keyless is None:
            raise InputError(
                location,
                "signing",
                "names no public key and no keyless identity: nothing could verify its models "
                "(`promote keygen --env ENV` makes a key)",
            )
        return cls(config.name, found, config.signing.keyless)

    @cached_property
    def fingerprint(self) -> str:
        """Names what this trust accepts: a verification cached under it holds only for it."""
        identity = keyless_identity(self.keyless) if self.keyless else ""
        return ",".join([*sorted(self.keys), identity])

    def open(self, envelope: str) -> dict[str, Any]:
        """The statement inside a signed envelope; `ProofInvalid` unless this environment's key
        or keyless identity signed it."""
        if _is_sigstore_bundle(envelope):
            return dsse.statement_of(self._open_keyless(envelope))
        return dsse.statement_of(dsse.open_envelope(envelope, self.keys))

    def _open_keyless(self, bundle_text: str) -> bytes:
        if self.keyless is None:
            raise ProofInvalid(f"signed keyless, but {self.environment} names no keyless identity")
        from sigstore.models import Bundle
        from sigstore.verify import Verifier, policy

        try:
            bundle = Bundle.from_json(bundle_text)
            identity = policy.Identity(
                identity=keyless_identity(self.keyless), issuer=GITHUB_ISSUER
            )
            payload_type, payload = Verifier.production().verify_dsse(bundle, identity)
        except Exception as exc:  # sigstore raises many kinds; any of them means "not proven"
            raise ProofInvalid(f"Sigstore bundle does not verify: {exc}") from None
        if payload_type != dsse.IN_TOTO_PAYLOAD_TYPE:
            raise ProofInvalid(f"payload type {payload_type!r} is not an in-toto statement")
        return payload

    def verify_model(self, model_dir: Path, signature: Path) -> None:
        """The OpenSSF model signature of a downloaded model folder; `ProofInvalid` if not."""
        from model_signing import verifying

        problems = []
        if _is_sigstore_bundle(signature.read_text(encoding="utf-8", errors="replace")):
            if self.keyless is None:
                raise ProofInvalid(f"model signed keyless; {self.environment} names no identity")
            config = verifying.Config().use_sigstore_verifier(
                identity=keyless_identity(self.keyless), oidc_issuer=GITHUB_ISSUER
            )
            try:
                config.verify(model_dir, signature)
                return
            except Exception as exc:  # any failure of the library is a failed proof
                raise ProofInvalid(f"model signature does not verify: {exc}") from None
        for key in self.keys.values():
            with _key_file(keys.public_pem(key).encode()) as path:
                try:
                    verifying.Config().use_elliptic_key_verifier(public_key=path).verify(
                        model_dir, signature
                    )
                    return
                except Exception as exc:  # the next key may be the one
                    problems.append(str(exc))
        raise ProofInvalid(
            f"model signature does not verify with {self.environment}'s keys: "
            f"{problems[-1] if problems else 'no key'}"
        )


def _is_sigstore_bundle(text: str) -> bool:
    """A keyless signature: a Sigstore bundle carrying a certificate. (Key-based model
    signatures are bundles too, but name a public key instead.)"""
    try:
        body = json.loads(text)
    except ValueError:
        return False
    if not isinstance(body, dict) or not str(body.get("mediaType", "")).startswith(
        SIGSTORE_BUNDLE_PREFIX
    ):
        return False
    material = body.get("verificationMaterial")
    return isinstance(material, dict) and "publicKey" not in material


class Signer:
    """Signs for one environment: with its private key where one is available (the key folder,
    or `PROMOTE_SIGNING_KEY` in CI), else keyless with the ambient GitHub Actions identity."""

    def __init__(self, trust: Trust, location: str) -> None:
        self.trust = trust
        self._location = location
        self._private: keys.PrivateKey | None = None
        self._credential: str | None = None  # the ambient OIDC token, for keyless

    def _key(self) -> keys.PrivateKey | None:
        if self._private is None:
            self._private = keys.find_private(list(self.trust.keys))
        return self._private

    def _keyless_credential(self) -> str:
        if self._credential is None:
            from sigstore.oidc import detect_credential

            credential = detect_credential() if self.trust.keyless is not None else None
            if credential is None:
                ids = ", ".join(k[:12] for k in self.trust.keys) or "none"
                raise InputError(
                    self._location,
                    "signing",
                    f"no private key for {self.trust.environment}'s keys ({ids}) in "
                    f"{keys.key_folder()} or {keys.KEY_VARIABLE}, and no keyless identity "
                    "(GitHub Actions with id-token: write)",
                )
            self._credential = credential
        return self._credential

    def check(self) -> None:
        """Raise now, before anything is written, when this environment cannot sign here."""
        if self._key() is None:
            self._keyless_credential()

    def sign_statement(self, statement: dict[str, Any]) -> str:
        payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
        private = self._key()
        if private is not None:
            return dsse.sign(payload, private.key, private.key_id)
        from sigstore.dsse import Statement
        from sigstore.models import ClientTrustConfig
        from sigstore.oidc import IdentityToken
        from sigstore.sign import SigningContext

        context = SigningContext.from_trust_config(ClientTrustConfig.production())
        with context.signer(IdentityToken(self._keyless_credential())) as signer:
            return str(signer.sign_dsse(Statement(payload)).to_json())

    @staticmethod
    def import_libraries() -> None:
        """The model-signing library, imported before builds sign in several threads (see
        `registry.loading.import_for_threads`)."""
        import model_signing.hashing
        import model_signing.signing  # noqa: F401

    def sign_model(self, model_dir: Path, signature: Path) -> None:
        from model_signing import hashing, signing

        # The signature names the files MLflow adds to a model folder it downloads (into the
        # stored folder itself, from a local store), so that verifiers leave them out.
        config = signing.Config().set_hashing_config(
            hashing.Config().set_ignored_paths(paths=sorted(DOWNLOAD_ONLY_FILES))
        )
        private = self._key()
        if private is not None:
            with _key_file(private.pem) as path:
                config.use_elliptic_key_signer(private_key=path).sign(model_dir, signature)
            return
        config.use_sigstore_signer(identity_token=self._keyless_credential()).sign(
            model_dir, signature
        )


class Keyring:
    """The trust and the signer of each environment of a repository, each built once."""

    def __init__(self, environments: dict[str, EnvironmentConfig]) -> None:
        self._environments = environments
        self._trust: dict[str, Trust] = {}
        self._signers: dict[str, Signer] = {}

    def trust(self, environment: str) -> Trust:
        if environment not in self._trust:
            self._trust[environment] = Trust.of(
                self._environments[environment], environment_file(environment)
            )
        return self._trust[environment]

    def signer(self, environment: str) -> Signer:
        if environment not in self._signers:
            self._signers[environment] = Signer(
                self.trust(environment), environment_file(environment)
            )
        return self._signers[environment]
