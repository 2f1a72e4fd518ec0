"""Every error promote raises on purpose, each with the one-line message a user sees, and the
exit code it means. Only the CLI turns them into exits."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What `promote` exits with: the contract other tools and checks rely on."""

    OK = 0
    FAILED = 1  # a check failed, or state is out of sync
    BAD_INPUT = 2  # usage, a manifest, a reference: nothing was written
    UNAVAILABLE = 3  # a service promote must ask (GitHub) could not be asked: retry later
    INTERNAL = 70  # a bug in promote (sysexits' EX_SOFTWARE): run with --traceback


class PromoteError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code = ExitCode.FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(PromoteError):
    """Bad input: a manifest, a config file, a CLI argument. Nothing has been written."""

    exit_code = ExitCode.BAD_INPUT

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


class ProofInvalid(CheckFailed):
    """A signature, statement or signed record that does not prove what it claims."""


class ApprovalRefused(CheckFailed):
    """The approval a change needs could not be established: nothing was written."""


class AccessDenied(CheckFailed):
    """The credentials apply runs with may not do what the environment's apply needs."""


class LockHeld(CheckFailed):
    """Another apply holds the model's lock (or left it behind when it died)."""


class ExternalError(PromoteError):
    """A dependency (git, the registry, storage, a training subprocess) failed."""


class GitHubError(ExternalError):
    """The GitHub API refused a request or answered something unexpected."""


class GitHubUnavailable(GitHubError):
    """GitHub could not be asked (timeouts, 5xx, rate limits, past the retry budget): nothing
    was decided, so a later run may succeed."""

    exit_code = ExitCode.UNAVAILABLE


class SchemaUnknown(Exception):
    """The registry's tables are not the ones this MLflow version writes: the bulk read hands
    over to the client. Never reaches a user."""


class TrainingError(RuntimeError):
    """A training script used the helper wrongly; the message says how to fix it.

    Raised inside the training subprocess, whose failure apply reports as an ExternalError.
    """
