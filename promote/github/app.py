"""A GitHub App as promote's credentials: the JWT that proves the App, and what its
installation tokens may do.

The client trades the JWT for an installation token once per run (`GitHubClient`): a token
that lives an hour, reaches one repository and holds only the permissions asked for here.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from promote.errors import GitHubError, InputError
from promote.github.context import AppSettings

# GitHub's own advice: backdate iat for clock drift; exp at most 10 minutes after iat.
JWT_BACKDATE_SECONDS = 60
JWT_LIFETIME_SECONDS = 540
# What reading approvals, tips and checks needs. `members` is an organisation permission: the
# team membership of approvers. Asking for permissions limits the token to them.
READ_PERMISSIONS: Mapping[str, str] = {
    "contents": "read",
    "pull_requests": "read",
    "checks": "read",
    "statuses": "read",
    "members": "read",
}
# Plan comments and proposal pull requests; minted only when such a write is made.
WRITE_PERMISSIONS: Mapping[str, str] = {**READ_PERMISSIONS, "pull_requests": "write"}


class GitHubApp:
    """The App's identity: its id and RSA private key, checked when the App is configured."""

    def __init__(self, settings: AppSettings) -> None:
        self.app_id = settings.app_id
        self.installation_id = settings.installation_id
        self.key_variable = settings.key_variable
        self._key = _load_private_key(settings.private_key, settings.key_variable)

    def jwt(self) -> str:
        """A JSON Web Token (RS256) that authenticates as the App for the next nine minutes."""
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT"}
        claims = {
            "iat": now - JWT_BACKDATE_SECONDS,
            "exp": now + JWT_LIFETIME_SECONDS,
            "iss": self.app_id,
        }
        signing_input = f"{_b64url_json(header)}.{_b64url_json(claims)}".encode()
        signature = self._key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{_b64url(signature)}"


@dataclass(frozen=True)
class InstallationToken:
    """A minted installation token and when (epoch seconds) GitHub stops accepting it."""

    token: str = field(repr=False)
    expires_at: float

    @classmethod
    def from_api(cls, body: Any) -> InstallationToken:
        try:
            token = body["token"]
            expires_at = datetime.fromisoformat(str(body["expires_at"]).replace("Z", "+00:00"))
        except (KeyError, TypeError, ValueError):
            raise GitHubError(
                "GitHub API: an installation token without token or expires_at"
            ) from None
        if not isinstance(token, str) or not token or expires_at.tzinfo is None:
            raise GitHubError("GitHub API: an installation token without token or expires_at")
        return cls(token, expires_at.timestamp())


def _load_private_key(pem: str, variable: str) -> rsa.RSAPrivateKey:
    text = pem.strip()
    if "\n" not in text:  # a PEM pasted into a one-line secret, with literal "\n" for newlines
        text = text.replace("\\n", "\n")
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InputError(
            variable, None, "not a readable, unencrypted PEM private key of a GitHub App"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InputError(variable, None, "not an RSA key: GitHub App keys are RSA")
    return key


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64url_json(value: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())
