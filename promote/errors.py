"""Typed errors. Each carries the one-line message a user sees; only the CLI maps them to exits."""

from __future__ import annotations


class PromoteError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(PromoteError):
    """Bad input: a manifest, a config file, a CLI argument. Nothing has been written."""

    exit_code = 2

    def __init__(self, source: str, field: str | None, problem: str) -> None:
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.field = field
        self.problem = problem


class BadReference(InputError):
    """A manifest is well formed but points at something that may not be promoted."""


class CheckFailed(PromoteError):
    """A lineage match, gate or digest check failed; live state was left as it was."""


class OutOfSync(PromoteError):
    """Desired and actual state differ where they must not (drift)."""


class ExternalError(PromoteError):
    """A dependency (git, the registry, storage, a training subprocess) failed."""
