"""DSSE envelopes (github.com/secure-systems-lab/dsse, protocol v1) signed with ECDSA P-256.

The signature covers the pre-authentication encoding of the payload and its type, so neither
can be swapped under a valid signature.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from promote.errors import ProofInvalid

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pre_authentication_encoding(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign(payload: bytes, key: ec.EllipticCurvePrivateKey, key_id: str) -> str:
    signature = key.sign(
        pre_authentication_encoding(IN_TOTO_PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256())
    )
    envelope = {
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key_id, "sig": base64.b64encode(signature).decode()}],
    }
    return json.dumps(envelope, separators=(",", ":"))


def open_envelope(text: str, keys: dict[str, ec.EllipticCurvePublicKey]) -> bytes:
    """The payload, when one signature verifies with one of `keys` (by key id); else
    `ProofInvalid`. A signature's key id only selects the key: it is never trusted."""
    try:
        envelope = json.loads(text)
        payload_type = envelope["payloadType"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = [
            (entry.get("keyid", ""), base64.b64decode(entry["sig"], validate=True))
            for entry in envelope["signatures"]
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProofInvalid(f"not a DSSE envelope ({exc.__class__.__name__})") from None
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise ProofInvalid(f"payload type {payload_type!r} is not an in-toto statement")
    message = pre_authentication_encoding(payload_type, payload)
    for key_id, signature in signatures:
        key = keys.get(key_id)
        if key is None:
            continue
        try:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return payload
    raise ProofInvalid("no signature verifies with the environment's keys")


def payload_of(text: str) -> bytes:
    """The payload of an envelope whose signature was verified before (see `proof.cache`)."""
    return base64.b64decode(json.loads(text)["payload"])


def statement_of(payload: bytes) -> dict[str, Any]:
    try:
        statement = json.loads(payload)
    except ValueError:
        raise ProofInvalid("signed payload is not JSON") from None
    if not isinstance(statement, dict):
        raise ProofInvalid("signed payload is not an in-toto statement")
    return statement
