"""Loading `environments/`: every file read, validated (or its cached facts reused), cross-checked.

Everything is validated on load; any problem becomes an `InputError` naming the file and
the field, before anything is read from or written to the registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import VERSION as PYDANTIC_VERSION

from promote.errors import InputError
from promote.manifests.cache import ManifestCache
from promote.manifests.repository import (
    ENVIRONMENT_FILE,
    ENVIRONMENTS_DIR,
    ManifestFacts,
    ModelSpec,
    Repository,
)
from promote.manifests.schema import (
    MAX_REGISTERED_NAME,
    MAX_YAML_BYTES,
    EnvironmentConfig,
    Manifest,
    check_size,
    parse,
    parse_yaml,
)
from promote.registry.lock import LOCK_PREFIX

_READ_SIZE = 1 << 16

# Opening a named pipe for reading would wait for a writer: open without waiting, then refuse it.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)

# Validating a manifest costs about 0.3 ms (YAML, then pydantic): from this many manifests to
# validate, a pool of processes starting in ~0.1 s pays for itself.
PARALLEL_FROM = 1000


def _read_bytes(path: Path | str, display: str, folder: int | None = None) -> bytes:
    """A whole file, through the bare system calls: thousands of manifests are read per load.

    `folder`, an open directory, spares the kernel resolving the whole path again per file.
    """
    try:
        descriptor = os.open(path, _OPEN_FLAGS, dir_fd=folder)
        try:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode):
                raise InputError(display, None, "is not a regular file")
            check_size(info.st_size, display)
            # A regular file reads short only at its end: a manifest takes one call. One that
            # grows while it is read stops past the bound, which parsing it then refuses.
            content = chunk = os.read(descriptor, _READ_SIZE)
            while len(chunk) == _READ_SIZE and len(content) <= MAX_YAML_BYTES:
                chunk = os.read(descriptor, _READ_SIZE)
                content += chunk
        finally:
            os.close(descriptor)
    except OSError as exc:
        raise InputError(display, None, f"cannot read file ({exc.__class__.__name__})") from None
    return content


def _decode(content: bytes, display: str) -> str:
    # YAML reads "\r\n" as a line break, as the newline translation of read_text would.
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(display, None, f"cannot read file ({exc.__class__.__name__})") from None


def _read_yaml(path: Path, display: str) -> dict[str, Any]:
    return parse_yaml(_decode(_read_bytes(path, display), display), display)


def load_repository(root: Path, parallel_from: int = PARALLEL_FROM) -> Repository:
    """Load and cross-check every environment and manifest under `root/environments`."""
    root = root.resolve()
    repo = Repository(root=root)
    base = root / ENVIRONMENTS_DIR
    if not base.is_dir():
        return repo
    for env_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        env_file = env_dir / ENVIRONMENT_FILE
        display = repo.relative(env_file)
        if not env_file.is_file():
            raise InputError(display, None, "missing: every environment folder needs one")
        _refuse_outside(root, env_file, display)
        config: EnvironmentConfig = parse(EnvironmentConfig, _read_yaml(env_file, display), display)
        if config.name != env_dir.name:
            raise InputError(display, "name", f"must match its folder name {env_dir.name!r}")
        _check_environment(config, root, display)
        repo.environments[config.name] = config
    _check_environment_order(repo)
    cache = ManifestCache.for_repository(root)
    reads = [read for config in repo.environments.values() for read in _read_all(root, config)]
    for read in reads:
        read.facts = ManifestFacts.from_json(cache.get(read.key))
    to_validate = [read for read in reads if read.facts is None and read.error is None]
    for read, outcome in zip(to_validate, _validate_all(to_validate, parallel_from), strict=True):
        if isinstance(outcome, InputError):
            read.error = outcome
        else:
            read.facts = outcome
            cache.put(read.key, outcome.to_json())
    # In file order, as one by one: the first problem found is the one reported.
    registered: dict[str, str] = {}
    for read in reads:
        if read.error is not None:
            raise read.error
        assert read.facts is not None and read.text is not None
        stem = read.file_name.rpartition(".")[0]
        if read.facts.model != stem:
            raise InputError(read.display, "model", f"must match the file name {stem!r}")
        spec = ModelSpec(read.config, read.folder, read.file_name, read.facts, read.text)
        _check_registered_name(repo.registered_name(spec.environment, spec.model), spec, registered)
        repo.specs[(read.config.name, spec.model)] = spec
    cache.save()
    return repo


def _inside(root: Path, path: Path) -> bool:
    """Whether `path`, its symlinks followed, is in `root` (itself resolved)."""
    return Path(os.path.realpath(path)).is_relative_to(root)


def _refuse_outside(root: Path, path: Path, display: str) -> None:
    """Refuse a file that a symlink (of its own or of a folder above it) takes out of `root`:
    what review approved in the repository would not be what is read."""
    if not _inside(root, path):
        raise InputError(display, None, "leads outside the repository through a symlink")


def _check_environment(config: EnvironmentConfig, root: Path, display: str) -> None:
    """What an environment file names: its local data, and the form of its interpreter."""
    if not (
        config.data_root.startswith("s3://")
        or config.allow_data_outside_repository
        or _inside(root, root / config.data_root)
    ):
        raise InputError(
            display,
            "data_root",
            f"{config.data_root!r} is outside the repository "
            "(set allow_data_outside_repository: true if it is meant to be)",
        )
    python = config.python
    # Training runs in an export of the pinned commit: a relative path would point into it.
    # Whether the interpreter exists is asked only before a training
    # (`compute.local.check_interpreter`): a laptop's plan need not have the interpreter CI
    # trains prod with.
    if python is not None and os.sep in python and not os.path.isabs(python):
        raise InputError(
            display, "python", f"{python!r} must be an absolute path or a command on PATH"
        )


def _check_registered_name(name: str, spec: ModelSpec, registered: dict[str, str]) -> None:
    """`name`, what `spec` registers as, is a name of its own: not too long for MLflow with
    promote's suffixes, not a lock's, and no other manifest's (which would share its versions,
    champion and permissions)."""
    if len(name) > MAX_REGISTERED_NAME:
        problem = f"registers as a name of {len(name)} characters, over {MAX_REGISTERED_NAME}"
    elif name.startswith(LOCK_PREFIX):
        problem = f"registers as {name!r}: names starting {LOCK_PREFIX!r} are promote's locks"
    elif registered.setdefault(name, spec.display) != spec.display:
        problem = f"registers as {name!r}, as {registered[name]} does"
    else:
        return
    raise InputError(spec.display, "model", f"{problem} (model_name of {spec.environment})")


@dataclass
class _ManifestRead:
    """One manifest file: its text, its key in the cache, what validating it gave (or why not)."""

    config: EnvironmentConfig
    folder: Path
    file_name: str
    display: str
    key: str = ""
    text: str | None = None
    facts: ManifestFacts | None = None
    error: InputError | None = None


def _read_all(root: Path, config: EnvironmentConfig) -> list[_ManifestRead]:
    folder = root / ENVIRONMENTS_DIR / config.name
    context = _validation_context(config)
    with os.scandir(folder) as entries:
        files = sorted(
            (entry.name, entry.is_symlink())
            for entry in entries
            if entry.name.endswith((".yaml", ".yml"))
            and entry.name != ENVIRONMENT_FILE
            and not entry.name.startswith(".")  # as a glob would skip them
        )
    reads = []
    # Where the platform opens files relative to an open directory (not Windows), do so.
    relative = os.open in os.supports_dir_fd
    directory = os.open(folder, os.O_RDONLY) if relative else None
    try:
        for file_name, symlink in files:
            display = f"{ENVIRONMENTS_DIR}/{config.name}/{file_name}"  # repo.relative, cheaper
            read = _ManifestRead(config, folder, file_name, display)
            path = file_name if relative else folder / file_name
            try:
                if symlink:  # the folder itself was checked with its environment file
                    _refuse_outside(root, folder / file_name, display)
                content = _read_bytes(path, display, directory)
                read.text = _decode(content, display)
            except InputError as exc:
                read.error = exc
            else:
                read.key = ManifestCache.key(context, content)
            reads.append(read)
    finally:
        if directory is not None:
            os.close(directory)
    return reads


def _validate_all(
    reads: list[_ManifestRead], parallel_from: int
) -> list[ManifestFacts | InputError]:
    """What validating each read gives: its facts, or the InputError it raises.

    From `parallel_from` manifests on (the first load of a large repository: a fresh clone, a
    CI runner), they are shared out among the cores in chunks of one environment each.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parallel = len(reads) >= parallel_from and (cores or 1) > 1
    size = max(200, len(reads) // ((cores or 1) * 4))
    chunks: list[tuple[EnvironmentConfig, list[tuple[str, str | None]]]] = []
    for read in reads:
        if not chunks or chunks[-1][0] is not read.config or len(chunks[-1][1]) >= size:
            chunks.append((read.config, []))
        chunks[-1][1].append((read.display, read.text))
    if not parallel:
        done = [_validate_chunk(config, items) for config, items in chunks]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork starts workers with all this already imported (spawn would import it again).
        fork = "fork" in multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if fork else None)
        with ProcessPoolExecutor(cores, mp_context=context) as pool:
            done = list(pool.map(_validate_chunk, *zip(*chunks, strict=True)))
    return [_outcome(outcome) for results in done for outcome in results]


def _outcome(outcome: list[Any] | tuple[str, str | None, str]) -> ManifestFacts | InputError:
    if isinstance(outcome, tuple):
        return InputError(*outcome)
    facts = ManifestFacts.from_json(outcome)
    assert facts is not None, "facts written by _validate_chunk read back"
    return facts


def _validate_chunk(
    config: EnvironmentConfig, items: list[tuple[str, str | None]]
) -> list[list[Any] | tuple[str, str | None, str]]:
    """Facts as plain JSON, or an error as (source, field, problem): what crosses processes."""
    outcomes: list[list[Any] | tuple[str, str | None, str]] = []
    for display, text in items:
        assert text is not None, "only manifests that were read are validated"
        try:
            manifest: Manifest = parse(Manifest, parse_yaml(text, display), display)
            _check_manifest_against_environment(manifest, config, display)
        except InputError as exc:
            outcomes.append((exc.source, exc.field, exc.problem))
        else:
            outcomes.append(ManifestFacts.of(manifest, config).to_json())
    return outcomes


# The modules whose code decides what validating a manifest concludes.
_RULES_CODE = b"".join(
    (Path(__file__).parent / module).read_bytes()
    for module in ("schema.py", "digest.py", "loader.py", "repository.py")
)


def _validation_context(config: EnvironmentConfig) -> bytes:
    """What a manifest's validation and facts depend on besides its text: the environment's
    settings and the code of the rules (a new version of them validates everything again)."""
    code = _RULES_CODE + PYDANTIC_VERSION.encode()
    settings = json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(code + b"\0" + settings).digest()


def _check_environment_order(repo: Repository) -> None:
    def display(config: EnvironmentConfig) -> str:
        return repo.relative(repo.root / ENVIRONMENTS_DIR / config.name / ENVIRONMENT_FILE)

    # Every link first: the cycle walk below may only follow environments that exist.
    for config in repo.environments.values():
        if config.promotes_from is not None and config.promotes_from not in repo.environments:
            raise InputError(
                display(config), "promotes_from", f"unknown environment {config.promotes_from!r}"
            )
    for config in repo.environments.values():
        seen = {config.name}
        upstream = config.promotes_from
        while upstream is not None:
            if upstream in seen:
                raise InputError(
                    display(config), "promotes_from", "environments promote in a cycle"
                )
            seen.add(upstream)
            upstream = repo.environments[upstream].promotes_from


def _check_manifest_against_environment(
    manifest: Manifest, config: EnvironmentConfig, display: str
) -> None:
    refinement = manifest.gates.refinement_problem(config.gates, config.name)
    if refinement is not None:
        field, problem = refinement
        raise InputError(display, f"gates.{field}", problem)
    if config.promotes_from is None:
        if manifest.source is not None:
            raise InputError(display, "source", f"{config.name} promotes from no environment")
        return
    if manifest.source is None:
        raise InputError(
            display, "source", f"required: {config.name} promotes from {config.promotes_from}"
        )
    if manifest.source.environment != config.promotes_from:
        raise InputError(
            display,
            "source.environment",
            f"{config.name} promotes only from {config.promotes_from}, "
            f"not {manifest.source.environment} (environments cannot be skipped)",
        )
    if manifest.code.commit is None:
        raise InputError(
            display, "code.commit", f"required in {config.name}: pin a full commit sha"
        )
