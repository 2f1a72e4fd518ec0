"""Runs a training entrypoint, from a pinned commit or the dev working tree, on an engine.

The training gets an allowlisted environment (`TRAINING_ENVIRONMENT`) and an output folder, as
a subprocess here or as a job on a cluster (`build.compute`). It never talks to the registry:
this process checks what it wrote there and logs the run.
"""

from __future__ import annotations

import getpass
import os
import socket
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from promote.build import git
from promote.build.compute import Engine, TrainingJob
from promote.build.compute.local import LocalEngine
from promote.build.data import resolve_uri
from promote.build.digest import artifact_digest
from promote.build.lineage import Lineage
from promote.errors import BadReference, ExternalError
from promote.github.context import run_description
from promote.manifests.repository import ModelSpec
from promote.manifests.schema import EnvironmentConfig, RayCompute
from promote.proof.trust import Signer
from promote.registry.client import Registry
from promote.registry.entities import TAG_RUN_ENVIRONMENT, TAG_RUN_MODEL
from promote.runtime.redact import redact
from promote.training import TrainingContext

# The variables a training subprocess inherits from this process: these names, and the names a
# pattern ending in `*` matches. Nothing else reaches training code, whatever the CI job
# exports. The runner adds the training context (`promote.training.CONTEXT_VARIABLE`) itself.
TRAINING_ENVIRONMENT = (
    # The process: where programs, home, user, locale, time zone and temporary files are.
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "XDG_CACHE_HOME",
    "VIRTUAL_ENV",
    "PYTHONHASHSEED",  # a fixed seed set for reproducible training is kept
    # Windows: Python itself fails without some of these.
    "SYSTEMROOT",
    "SYSTEMDRIVE",
    "WINDIR",
    "COMSPEC",
    "PATHEXT",
    "USERPROFILE",
    "USERNAME",
    "APPDATA",
    "LOCALAPPDATA",
    # TLS: a company's certificate authority.
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    # AWS: reading S3 data with the environment's role (keys, web identity, container, profile).
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CA_BUNDLE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_STS",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
)
# Never inherited, whatever TRAINING_ENVIRONMENT says: GitHub's and Actions' tokens (OIDC
# included), promote's own GitHub credentials, and the registry's address and credentials.
# Only this process talks to GitHub and to the registry.
NEVER_TO_TRAINING = ("GITHUB_*", "ACTIONS_*", "PROMOTE_GITHUB_*", "MLFLOW_TRACKING_*")


def training_environment(parent: Mapping[str, str]) -> dict[str, str]:
    """The variables of `parent` that a training subprocess may see."""

    def listed(name: str, patterns: tuple[str, ...]) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in patterns)

    # Names first, then each value with .get: MLflow's telemetry thread removes a variable of
    # its own at any moment, and iterating os.environ's items would then raise KeyError.
    allowed = [
        name
        for name in list(parent)
        if listed(name, TRAINING_ENVIRONMENT) and not listed(name, NEVER_TO_TRAINING)
    ]
    return {name: value for name in allowed if (value := parent.get(name)) is not None}


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
    on_output: Callable[[str], None] | None = None  # each line of the training's output

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
        # A runner's repository URL can carry a token; this text reaches the training's context
        # and every lineage record.
        return redact(ci_run)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def build_at_commit(
    repo_root: Path, request: BuildRequest, registry: Registry, signer: Signer | None
) -> str:
    """Rebuild in an isolated export of the pinned commit, on the environment's engine
    (`compute:`); the user's checkout is never used."""
    code_repo = git.resolve_code_repository(repo_root, request.code_repo)
    if not git.commit_exists(code_repo, request.commit):
        raise BadReference(
            request.origin, "code.commit", f"commit {request.commit} is not in {request.code_repo}"
        )
    tree = git.tree_of(code_repo, request.commit)
    with tempfile.TemporaryDirectory(prefix="promote-build-") as scratch:
        checkout = Path(scratch) / "code"
        git.export_commit(code_repo, request.commit, checkout, request.origin)
        engine = engine_for(request.environment)
        return _run(checkout, request, tree, registry, signer, engine)


def build_in_working_tree(
    repo_root: Path, request: BuildRequest, registry: Registry, signer: Signer
) -> str:
    """Dev training at HEAD from the user's checkout, always here; a dirty tree is recorded,
    not hidden."""
    tree = git.tree_of(repo_root, request.commit)
    return _run(repo_root, request, tree, registry, signer, LocalEngine(request.environment))


def entrypoint_path(checkout: Path, request: BuildRequest) -> Path:
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


def engine_for(config: EnvironmentConfig) -> Engine:
    """The engine `config.compute` names; Ray's module is imported only when it is used."""
    compute = config.compute
    if isinstance(compute, RayCompute):
        from promote.build.compute.ray_jobs import RayEngine

        return RayEngine(config.name, compute)
    return LocalEngine(config)


def check_ready(config: EnvironmentConfig) -> None:
    """Refuse, before anything is written, a rebuild its engine cannot run: a missing
    interpreter here, a cluster that does not answer."""
    engine_for(config).check()


def _run(
    checkout: Path,
    request: BuildRequest,
    tree: str,
    registry: Registry,
    signer: Signer | None,
    engine: Engine,
) -> str:
    """Train on `engine`, check its output, sign the model
    folder (`signer`: None only for a reproduction, which is compared, never registered), and
    log it as one run."""
    entrypoint = entrypoint_path(checkout, request)
    requirements = _requirements_file(checkout, entrypoint)
    config = request.environment
    label = f"{config.name}.{request.model}"
    training = f"training {label} ({request.entrypoint})"
    experiment_id = registry.experiment_id(config.name, config.artifact_root)
    with tempfile.TemporaryDirectory(prefix="promote-run-") as scratch:
        output = Path(scratch) / "output"
        output.mkdir()
        context = TrainingContext(
            model=request.model,
            environment=config.name,
            data_uri=request.data_uri,
            params=request.params,
            code_repo=request.code_repo,
            code_commit=request.commit,
            code_tree=tree,
            code_dirty=request.dirty,
            entrypoint=request.entrypoint,
            requirements=str(requirements) if requirements else None,
            output_dir=str(output),
            trained_by=who_runs(),
            pinned_snapshot=request.pinned_snapshot,
        )
        job = TrainingJob(
            label=label,
            description=training,
            checkout=checkout,
            entrypoint=entrypoint,
            python=config.python,
            environment=training_environment(os.environ),
            context=context,
            on_output=request.on_output,
        )
        produced = engine.run(job, Path(scratch))
        lineage = _checked_output(replace(context, output_dir=str(produced)), training)
        signature = None
        if signer is not None:
            signature = Path(scratch) / "model.sig"
            signer.sign_model(context.model_dir, signature)
        return registry.log_run(
            experiment_id,
            {TAG_RUN_MODEL: request.model, TAG_RUN_ENVIRONMENT: config.name, **request.run_tags},
            request.params,
            context.model_dir,
            lineage,
            signature,
        )


# What the runner told the training, which its lineage record must repeat.
_GIVEN_FIELDS = (
    "model",
    "environment",
    "code_repo",
    "code_commit",
    "code_tree",
    "code_dirty",
    "entrypoint",
    "data_uri",
    "trained_by",
)


def _checked_output(context: TrainingContext, training: str) -> Lineage:
    """The lineage record a training wrote, once its output proves to be what it claims.

    Training code could rewrite its output after the helper wrote it: the record must parse,
    describe the training that was asked for, and state the digest of the model folder beside
    it, recomputed here. Otherwise nothing is logged.
    """
    try:
        lineage = Lineage.from_json(context.lineage_file.read_text(encoding="utf-8"))
    except Exception as exc:  # whatever is wrong with the record, the training wrote it
        first_line = (str(exc).splitlines() or [""])[0]
        raise ExternalError(
            f"{training} wrote an unreadable lineage record "
            f"({exc.__class__.__name__}: {first_line}); nothing was logged"
        ) from None
    differing = [n for n in _GIVEN_FIELDS if getattr(lineage, n) != getattr(context, n)]
    if differing:
        raise ExternalError(
            f"{training} wrote the lineage record of another training "
            f"({', '.join(differing)} differs); nothing was logged"
        )
    if not context.model_dir.is_dir() or not any(context.model_dir.iterdir()):
        raise ExternalError(f"{training} wrote no model; nothing was logged")
    digest = artifact_digest(context.model_dir)
    if digest != lineage.artifact_digest:
        raise ExternalError(
            f"{training} wrote a model whose digest does not match its lineage record "
            f"({digest[:12]} != {lineage.artifact_digest[:12]}); nothing was logged"
        )
    return lineage
