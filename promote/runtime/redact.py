"""Secret redaction: every line promote prints, reports or writes to the registry passes here.

Secrets reach promote's text in three ways: from the environment (credentials a CI job exports),
inside URIs (`https://user:password@host`), and from libraries echoing them in error messages
and training output. Known shapes (GitHub tokens, AWS access key ids) are masked wherever they
appear; values of known secret variables are masked verbatim, whatever their shape.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

MASK = "***"
# Environment variables whose values are secrets, whatever they look like.
SECRET_VARIABLES = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "PROMOTE_GITHUB_TOKEN",
    "PROMOTE_GITHUB_APP_PRIVATE_KEY",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "DATABRICKS_TOKEN",
)
# Shorter values are left alone: masking "x" or "test" everywhere would garble normal output.
MIN_SECRET_LENGTH = 8
# scheme://user:password@host: a secret in a URL, wherever it is written (manifests refuse it).
URL_WITH_PASSWORD = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]*:(?P<secret>[^\s/@]+)@")

# Each pattern masks its `secret` group and keeps the rest (a header name, a separator). It
# runs only on text holding one of its markers (compared lowercased): most text holds none,
# and a pass over the table of thousands of models then costs a few substring searches.
_PATTERNS = (
    # GitHub tokens: classic (ghp_, gho_, ghu_, ghs_, ghr_) and fine-grained (github_pat_).
    (
        re.compile(r"(?P<secret>\bgh[pousr]_[A-Za-z0-9]{20,255}\b)"),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    ),
    (re.compile(r"(?P<secret>\bgithub_pat_[A-Za-z0-9_]{20,255}\b)"), ("github_pat_",)),
    # AWS access key ids: long-term (AKIA) and temporary (ASIA) credentials.
    (re.compile(r"(?P<secret>\b(?:AKIA|ASIA)[A-Z0-9]{16}\b)"), ("akia", "asia")),
    # `Authorization: Basic ...` / `Bearer ...` headers echoed by HTTP libraries.
    (
        re.compile(
            r"(?i)\bauthorization['\"]?\s*[:=]\s*['\"]?(?:basic|bearer|token)\s+(?P<secret>[^\s'\",]+)"
        ),
        ("authorization",),
    ),
    # aws_secret_access_key = ... in config files or debug output.
    (
        re.compile(
            r"(?i)aws_secret_access_key['\"]?\s*[=:]\s*['\"]?(?P<secret>[A-Za-z0-9/+=]{16,})"
        ),
        ("aws_secret_access_key",),
    ),
    # scheme://user:password@host -> scheme://user:***@host (the user name helps debugging).
    (URL_WITH_PASSWORD, ("://",)),
)


def _secret_values(environ: Mapping[str, str]) -> list[str]:
    values = {
        value
        for value in (environ.get(name, "") for name in SECRET_VARIABLES)
        if len(value) >= MIN_SECRET_LENGTH
    }
    # Longest first, so a secret that contains another is masked whole.
    return sorted(values, key=len, reverse=True)


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with every secret it contains replaced by `***`."""
    if not text:
        return text
    for value in _secret_values(os.environ if environ is None else environ):
        text = text.replace(value, MASK)
    lowered = text.lower()
    for pattern, markers in _PATTERNS:
        if any(marker in lowered for marker in markers):
            text = pattern.sub(_mask_secret_group, text)
    return text


def _mask_secret_group(match: re.Match[str]) -> str:
    start, end = match.start("secret") - match.start(), match.end("secret") - match.start()
    return f"{match.group(0)[:start]}{MASK}{match.group(0)[end:]}"


def redact_mapping(values: Mapping[str, str]) -> dict[str, str]:
    """Tag values as they may be written to the registry."""
    return {key: redact(value) for key, value in values.items()}


def redact_log_records() -> None:
    """Mask secrets in every log record created from now on, whichever library logs it."""
    factory = logging.getLogRecordFactory()
    if isinstance(factory, _RedactingFactory):
        return
    logging.setLogRecordFactory(_RedactingFactory(factory))


class _RedactingFactory:
    def __init__(self, wrapped: Callable[..., logging.LogRecord]) -> None:
        self.wrapped = wrapped

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.wrapped(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed call: logging reports it when it emits
            return record
        record.msg, record.args = redact(message), None
        return record
