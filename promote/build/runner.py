"""Runs a training entrypoint as a subprocess, from a pinned commit or the dev working tree."""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promote.build import git
from promote.build.data import resolve_uri
from promote.errors import BadReference, ExternalError
from promote.github.context import run_description
from promote.manifests.repository import ModelSpec
from promote.manifests.schema import EnvironmentConfig
from promote.registry.client import Registry
from promote.runtime.redact import redact
from promote.training import TrainingContext

OUTPUT_TAIL_LINES = 15


@dataclass
class BuildRequest:
    """One training to run: which code, which parameters, on which environment's data."""

    origin: str  # what asked for it, named in errors: a manifest's path, or a version's ref
    model: str
    environment: EnvironmentConfig
    code_repo: str
    commit: str
    entrypoint: str
    params: dict[str, Any]
    data_uri: str
    dirty: bool = False
    pinned_snapshot: list[dict[str, Any]] | None = None
    run_tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_spec(
        cls, repo_root: Path, spec: ModelSpec, commit: str, params: dict[str, Any], **extra: Any
    ) -> BuildRequest:
        """The training a manifest describes, at `commit`, on its environment's data."""
        manifest = spec.manifest
        config = spec.config
        return cls(
            origin=spec.display,
            model=spec.model,
            environment=config,
            code_repo=manifest.code.repo,
            commit=commit,
            entrypoint=manifest.code.entrypoint,
            params=params,
            data_uri=resolve_uri(repo_root, config.data_root, manifest.data.path),
            **extra,
        )


def who_runs() -> str:
    """Who or what ran a training: the CI run when there is one, else user@host."""
    ci_run = run_description()
    if ci_run is not None:
        return ci_run
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def build_at_commit(repo_root: Path, request: BuildRequest, registry: Registry) -> str:
    """Rebuild in an isolated export of the pinned commit; the user's checkout is never used."""
    code_repo = git.resolve_code_repository(repo_root, request.code_repo)
    if not git.commit_exists(code_repo, request.commit):
        raise BadReference(
            request.origin, "code.commit", f"commit {request.commit} is not in {request.code_repo}"
        )
    tree = git.tree_of(code_repo, request.commit)
    with tempfile.TemporaryDirectory(prefix="promote-build-") as scratch:
        checkout = Path(scratch) / "code"
        git.export_commit(code_repo, request.commit, checkout, request.origin)
        return _run(checkout, request, tree, registry)


def build_in_working_tree(repo_root: Path, request: BuildRequest, registry: Registry) -> str:
    """Dev training at HEAD from the user's checkout; a dirty tree is recorded, not hidden."""
    tree = git.tree_of(repo_root, request.commit)
    return _run(repo_root, request, tree, registry)


def _entrypoint_path(checkout: Path, request: BuildRequest) -> Path:
    entrypoint = request.entrypoint
    resolved = (checkout / entrypoint).resolve()
    if not resolved.is_relative_to(checkout.resolve()):
        raise BadReference(
            request.origin, "code.entrypoint", f"{entrypoint} leads outside the checkout"
        )
    if not resolved.is_file():
        raise BadReference(
            request.origin, "code.entrypoint", f"{entrypoint} does not exist at this commit"
        )
    return resolved


def _requirements_file(checkout: Path, entrypoint: Path) -> Path | None:
    for folder in (entrypoint.parent, checkout.resolve()):
        candidate = folder / "requirements.txt"
        if candidate.is_file() and candidate.resolve().is_relative_to(checkout.resolve()):
            return candidate
    return None


def _run(checkout: Path, request: BuildRequest, tree: str, registry: Registry) -> str:
    entrypoint = _entrypoint_path(checkout, request)
    requirements = _requirements_file(checkout, entrypoint)
    config = request.environment
    experiment_id = registry.experiment_id(config.name, config.artifact_root)
    with tempfile.TemporaryDirectory(prefix="promote-run-") as scratch:
        result_file = Path(scratch) / "result.json"
        context = TrainingContext(
            model=request.model,
            environment=config.name,
            tracking_uri=registry.tracking_uri,
            experiment_id=experiment_id,
            data_uri=request.data_uri,
            params=request.params,
            code_repo=request.code_repo,
            code_commit=request.commit,
            code_tree=tree,
            code_dirty=request.dirty,
            entrypoint=request.entrypoint,
            requirements=str(requirements) if requirements else None,
            result_file=str(result_file),
            trained_by=who_runs(),
            pinned_snapshot=request.pinned_snapshot,
            run_tags=request.run_tags,
        )
        python = config.python or sys.executable
        # Arguments go as a list and parameters as JSON: nothing from a manifest reaches a shell.
        completed = subprocess.run(
            [python, str(entrypoint)],
            cwd=str(checkout),
            env={**os.environ, **context.to_env(), "MLFLOW_TRACKING_URI": registry.tracking_uri},
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0 or not result_file.is_file():
            tail = (completed.stderr or completed.stdout).strip().splitlines()[-OUTPUT_TAIL_LINES:]
            # Training output can echo credentials (a URI, a failed client's request): mask them.
            detail = redact("\n  ".join(tail)) if tail else "no output"
            raise ExternalError(
                f"training {config.name}.{request.model} ({request.entrypoint}) failed "
                f"with exit code {completed.returncode}:\n  {detail}"
            )
        return str(json.loads(result_file.read_text(encoding="utf-8"))["run_id"])
