"""Pipeline signing keys: ECDSA P-256, one per environment (or several, for rotation).

The public key is committed in the environment's config, so anyone with the repository can
verify. The private key never enters the repository: `promote init` and `quickstart` write it
under the key folder (mode 0600), named by its key id; CI passes it as a secret in
`PROMOTE_SIGNING_KEY` (the PEM text).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY_VARIABLE = "PROMOTE_SIGNING_KEY"
KEY_FOLDER_VARIABLE = "PROMOTE_KEY_DIR"


def key_folder() -> Path:
    explicit = os.environ.get(KEY_FOLDER_VARIABLE)
    if explicit:
        return Path(explicit)
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "promote" / "keys"


def public_key(pem: str) -> ec.EllipticCurvePublicKey:
    """The key a config names; ValueError when it is not a P-256 public key in PEM."""
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an ECDSA P-256 public key")
    return key


def public_pem(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def key_id(key: ec.EllipticCurvePublicKey) -> str:
    """sha256 of the DER public key: names a key in envelopes and in the key folder."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class PrivateKey:
    key: ec.EllipticCurvePrivateKey
    key_id: str
    pem: bytes  # model-signing reads keys from files: it is written to a private temp file

    @classmethod
    def from_pem(cls, pem: bytes) -> PrivateKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("not an ECDSA P-256 private key")
        unencrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(key, key_id(key.public_key()), unencrypted)


def generate() -> tuple[str, Path]:
    """A new key pair: the private key saved in the key folder (0600), the public key's PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = PrivateKey.from_pem(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    folder = key_folder()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{private.key_id}.pem"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private.pem)
    return public_pem(key.public_key()), path


def find_private(key_ids: list[str]) -> PrivateKey | None:
    """The private key of one of `key_ids`: `PROMOTE_SIGNING_KEY` first, else the key folder.

    A key that is present but belongs to none of them is ignored, not used: signing with a key
    the environment does not list would only produce versions that never verify.
    """
    text = os.environ.get(KEY_VARIABLE, "").strip()
    if text:
        try:
            given = PrivateKey.from_pem(text.encode())
        except ValueError:
            given = None
        if given is not None and given.key_id in key_ids:
            return given
    for wanted in key_ids:
        path = key_folder() / f"{wanted}.pem"
        if path.is_file():
            found = PrivateKey.from_pem(path.read_bytes())
            if found.key_id == wanted:
                return found
    return None
