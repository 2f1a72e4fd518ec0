"""Signed versions for tests that build registry snapshots by hand, and forgeries of them.

The key is a test key of this module: a repository whose environments list `PUBLIC_PEM`
believes what it signs, exactly as it believes what the pipeline signs with its own key.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from promote.manifests.schema import Signing
from promote.proof import dsse, keys
from promote.proof.statement import Claims, verification_summary
from promote.registry.entities import (
    TAG_PROVENANCE,
    TAG_VERDICT,
    TAG_VERIFICATION,
    VERDICT_PASSED,
    Version,
)


def new_key() -> keys.PrivateKey:
    """A fresh key; one no environment lists is what an attacker signs with."""
    return keys.PrivateKey.from_pem(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


_KEY = new_key()
PUBLIC_PEM = keys.public_pem(_KEY.key.public_key())


def signing() -> Signing:
    return Signing(public_keys=[PUBLIC_PEM])


def sign(statement: dict[str, Any], key: keys.PrivateKey = _KEY) -> str:
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    return dsse.sign(payload, key.key, key.key_id)


def claims(name: str, number: int, **fields: Any) -> Claims:
    """Claims of version `number` of `name`, on run r{number}; any field can be given."""
    environment, _, model = name.partition(".")
    values: dict[str, Any] = {
        "registered_name": name,
        "artifact_digest": "d" * 64,
        "artifact_uri": f"runs:/r{number}/model",
        "run_id": f"r{number}",
        "environment": environment,
        "model": model,
        "code_repo": ".",
        "commit": "a" * 40,
        "tree": "t" * 40,
        "dirty": False,
        "entrypoint": "train.py",
        "params": {},
        "libraries_digest": "l" * 64,
        "python_version": "3.11.7",
        "data_uri": f"/data/{environment}/{model}",
        "data_digest": "e" * 64,
        "manifest_digest": "m" * 64,
        "source": "",
        "lineage_digest": "f" * 64,
        "invocation": "tester@host",
        "copied_from": None,
    }
    values.update(fields)
    return Claims(**values)


def signed_version(
    signed: Claims, number: int, verdict: str, key: keys.PrivateKey = _KEY, **tags: str
) -> Version:
    """A version as the pipeline registers it; `verdict` passed comes with its summary."""
    provenance = sign(signed.statement(), key)
    all_tags = {**signed.tags(), TAG_PROVENANCE: provenance, TAG_VERDICT: verdict}
    if verdict == VERDICT_PASSED:
        summary = verification_summary(signed.registered_name, number, signed, provenance)
        all_tags[TAG_VERIFICATION] = sign(summary, key)
    all_tags.update(tags)
    return Version(signed.registered_name, number, signed.artifact_uri, signed.run_id, all_tags)
