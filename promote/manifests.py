"""Desired state: environment configs and model manifests, loaded from `environments/`.

Everything here is validated on load; any problem becomes an `InputError` naming the file and
the field, before anything is read from or written to the registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import VERSION as PYDANTIC_VERSION
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from promote.errors import InputError, PromoteError
from promote.manifest_cache import ManifestCache

ENVIRONMENTS_DIR = "environments"
ENVIRONMENT_FILE = "environment.yaml"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
COMMIT_PATTERN = r"^[0-9a-f]{40}$"
# Already normal and safely relative: no empty, `.` or `..` part, no `~`, no backslash.
_PLAIN_RELATIVE_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
# The same safe subset of YAML, through libyaml when PyYAML was built with it.
_FAST_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ParamValue = str | int | float | bool
_READ_SIZE = 1 << 16
# Validating a manifest costs about 0.3 ms (YAML, then pydantic): from this many manifests to
# validate, a pool of processes starting in ~0.1 s pays for itself.
PARALLEL_FROM = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative_path(value: str, what: str) -> str:
    """Paths in manifests stay inside the checkout or data root: no absolute paths, no `..`."""
    if _PLAIN_RELATIVE_PATH.fullmatch(value):
        return value  # the common case, decided without pathlib: thousands of manifests
    path = PurePosixPath(value)
    if (
        not value
        or path.is_absolute()
        or "\\" in value
        or ".." in path.parts
        or value.startswith("~")
    ):
        raise ValueError(f"{what} must be a relative path inside the repository, without '..'")
    return str(path)


class Threshold(_Strict):
    # strict: YAML's `true` is not the number 1 (pydantic would otherwise accept it).
    min: float | None = Field(default=None, strict=True)
    max: float | None = Field(default=None, strict=True)

    def strictest(self, other: Threshold) -> Threshold:
        lows = [v for v in (self.min, other.min) if v is not None]
        highs = [v for v in (self.max, other.max) if v is not None]
        return Threshold.model_construct(
            min=max(lows) if lows else None, max=min(highs) if highs else None
        )

    @model_validator(mode="after")
    def _bounded(self) -> Threshold:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        return self


class NoRegression(_Strict):
    """The new version may not be worse than the current champion by more than `tolerance`."""

    metric: str
    tolerance: float = Field(default=0.0, ge=0, strict=True)
    higher_is_better: bool = True


class Gates(_Strict):
    metrics: dict[str, Threshold] = Field(default_factory=dict)
    no_regression: NoRegression | None = None
    max_artifact_mb: float | None = Field(default=None, gt=0, strict=True)

    def merged_over(self, base: Gates) -> Gates:
        """A manifest's gates add to its environment's; where both bound a value, the stricter
        bound holds, so a manifest can tighten an environment's floor but never relax it."""
        metrics = dict(base.metrics)
        for name, threshold in self.metrics.items():
            floor = metrics.get(name)
            metrics[name] = threshold if floor is None else floor.strictest(threshold)
        budgets = [b for b in (base.max_artifact_mb, self.max_artifact_mb) if b is not None]
        return Gates(
            metrics=metrics,
            no_regression=self.no_regression or base.no_regression,
            max_artifact_mb=min(budgets) if budgets else None,
        )


class ApprovalRule(_Strict):
    """Who must approve the pull request that changes this environment's manifests."""

    required: int = Field(default=1, ge=1, description="Approvals needed on the PR's final commit")
    team: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="organisation/team-slug whose members' approvals count",
    )

    @property
    def organisation(self) -> str:
        return self.team.split("/", 1)[0]

    @property
    def team_slug(self) -> str:
        return self.team.split("/", 1)[1]


class EnvironmentConfig(_Strict):
    """`environments/<env>/environment.yaml`: how one environment trains and where its data is."""

    name: str = Field(pattern=NAME_PATTERN)
    promotes_from: str | None = Field(default=None, pattern=NAME_PATTERN)
    data_root: str = Field(
        description="Local folder (relative to the repository) or s3://bucket/prefix"
    )
    artifact_root: str | None = Field(
        default=None,
        description="Where this environment's training runs store artifacts (local folder or s3://)",
    )
    training: Literal["retrain", "copy"] = "retrain"
    protected_branch: str = "main"
    model_name: str = Field(default="{env}.{model}", description="Registered model name template")
    python: str | None = Field(default=None, description="Interpreter for training runs")
    role: str | None = Field(
        default=None, description="IAM role this environment's pipeline assumes"
    )
    gates: Gates = Field(default_factory=Gates)
    approval: ApprovalRule | None = Field(
        default=None,
        description="Enforced by promote apply: approvals of the merged PR, from a team",
    )

    @field_validator("model_name")
    @classmethod
    def _template(cls, value: str) -> str:
        if "{model}" not in value or "{env}" not in value:
            raise ValueError("must contain both {env} and {model}")
        return value

    @field_validator("data_root", "artifact_root")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and (not value or ("://" in value and not value.startswith("s3://"))):
            raise ValueError("must be a local folder or an s3:// URI")
        return value


class Source(_Strict):
    environment: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1, strict=True)


class Code(_Strict):
    repo: str = Field(default=".", description="'.' for this repository, or a git URL")
    commit: str | None = Field(default=None, pattern=COMMIT_PATTERN, description="Full commit sha")
    entrypoint: str
    params: dict[str, ParamValue] = Field(default_factory=dict)

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        # A URL with a user:password (or token) part would put a secret into git and lineage.
        if re.match(r"^[a-z][a-z0-9+.-]*://[^/@]*:[^/@]*@", value):
            raise ValueError("must not carry credentials: configure a git credential helper")
        if value.startswith("-"):
            raise ValueError("must be '.', a path or a git URL")
        return value

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        value = _relative_path(value, "entrypoint")
        if not value.endswith(".py"):
            raise ValueError("entrypoint must be a .py file")
        return value

    @field_validator("params")
    @classmethod
    def _param_names(cls, value: dict[str, ParamValue]) -> dict[str, ParamValue]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}", name):
                raise ValueError(f"parameter name {name!r} is not a plain identifier")
        return value


class Data(_Strict):
    path: str = Field(description="Folder under the environment's data root")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _relative_path(value, "data.path")


class Manifest(_Strict):
    """`environments/<env>/<model>.yaml`: the desired state of one model in one environment."""

    model: str = Field(pattern=NAME_PATTERN)
    source: Source | None = None
    code: Code
    data: Data
    gates: Gates = Field(default_factory=Gates)


class SourceRef(NamedTuple):
    environment: str
    version: int


class ManifestFacts(NamedTuple):
    """What planning reads of a validated manifest: small enough to cache as plain JSON."""

    model: str
    commit: str | None
    source: SourceRef | None
    digest: str

    @classmethod
    def of(cls, manifest: Manifest, config: EnvironmentConfig) -> ManifestFacts:
        source = manifest.source
        return cls(
            manifest.model,
            manifest.code.commit,
            SourceRef(source.environment, source.version) if source else None,
            manifest_digest(manifest, config),
        )

    @classmethod
    def from_json(cls, entry: Any) -> ManifestFacts | None:
        """Facts as `to_json` wrote them, or None for anything else (a damaged cache)."""
        if type(entry) is not list or len(entry) != 5:
            return None
        model, commit, source_environment, source_version, digest = entry
        if type(model) is not str or type(digest) is not str:
            return None
        if commit is not None and type(commit) is not str:
            return None
        if source_environment is None and source_version is None:
            return cls(model, commit, None, digest)
        if type(source_environment) is not str or type(source_version) is not int:
            return None
        return cls(model, commit, SourceRef(source_environment, source_version), digest)

    def to_json(self) -> list[Any]:
        environment, version = self.source or (None, None)
        return [self.model, self.commit, environment, version, self.digest]


def manifest_digest(manifest: Manifest, config: EnvironmentConfig) -> str:
    """What was approved: the manifest and the environment settings that shape the build.

    Machine-specific settings (the interpreter) stay out, so CI and laptops agree.
    """
    body = {
        "environment": config.name,
        "manifest": manifest.model_dump(mode="json"),
        "data_root": config.data_root,
        "training": config.training,
        "gates": manifest.gates.merged_over(config.gates).model_dump(mode="json"),
    }
    return canonical_digest(body)


@dataclass(frozen=True)
class ModelSpec:
    """A validated manifest with where it came from and the environment it is applied in.

    Loaded from a repository, a spec holds the file's text and the facts validating that
    text gave (in this load, or an earlier one: the manifest cache); `manifest` validates the
    text again only when something asks for it. Built `of` a Manifest, it holds that.
    """

    config: EnvironmentConfig
    folder: Path
    file_name: str  # apart from the folder: one Path per manifest costs more than its read
    facts: ManifestFacts
    text: str | None = field(default=None, repr=False, compare=False)
    validated: Manifest | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, config: EnvironmentConfig, manifest: Manifest, path: Path) -> ModelSpec:
        facts = ManifestFacts.of(manifest, config)
        return cls(config, path.parent, path.name, facts, validated=manifest)

    @property
    def path(self) -> Path:
        return self.folder / self.file_name

    @cached_property
    def manifest(self) -> Manifest:
        if self.validated is not None:
            return self.validated
        assert self.text is not None, "a spec holds a validated manifest or its text"
        return parse(Manifest, parse_yaml(self.text, self.display), self.display)

    def confirm(self) -> None:
        """Check the manifest's text gives the facts this spec was planned with.

        Apply calls this before it acts on a model, so cached facts never decide what runs.
        """
        if ManifestFacts.of(self.manifest, self.config) != self.facts:
            raise PromoteError(
                f"{self.display}: the manifest cache disagrees with this manifest; "
                "delete $XDG_CACHE_HOME/promote/manifests and run again"
            )

    @property
    def display(self) -> str:
        return f"{ENVIRONMENTS_DIR}/{self.config.name}/{self.file_name}"

    @property
    def environment(self) -> str:
        return self.config.name

    @property
    def gates(self) -> Gates:
        """The gates that apply: the manifest's, refining its environment's."""
        return self.manifest.gates.merged_over(self.config.gates)

    @property
    def model(self) -> str:
        return self.facts.model

    @property
    def commit(self) -> str | None:
        return self.facts.commit

    @property
    def source(self) -> SourceRef | None:
        return self.facts.source

    @property
    def digest(self) -> str:
        return self.facts.digest

    @property
    def managed(self) -> bool:
        """Pinned manifests are applied by the pipeline; unpinned ones are dev templates."""
        return self.facts.commit is not None


@dataclass
class Repository:
    """Every environment and manifest of a GitOps repository, validated together."""

    root: Path
    environments: dict[str, EnvironmentConfig] = field(default_factory=dict)
    specs: dict[tuple[str, str], ModelSpec] = field(default_factory=dict)

    def ordered_environments(self) -> list[EnvironmentConfig]:
        """Environments in promotion order (dev before staging before prod)."""
        ordered: list[EnvironmentConfig] = []
        remaining = dict(self.environments)
        placed: set[str | None] = {None}
        while remaining:
            ready = sorted(n for n, e in remaining.items() if e.promotes_from in placed)
            for name in ready:
                ordered.append(remaining.pop(name))
                placed.add(name)
        return ordered

    def environment(self, name: str) -> EnvironmentConfig:
        if name not in self.environments:
            known = ", ".join(sorted(self.environments)) or "none"
            raise InputError("--env", None, f"unknown environment {name!r} (known: {known})")
        return self.environments[name]

    def spec(self, environment: str, model: str) -> ModelSpec:
        self.environment(environment)
        try:
            return self.specs[(environment, model)]
        except KeyError:
            path = self.relative(self.root / ENVIRONMENTS_DIR / environment / f"{model}.yaml")
            raise InputError(path, None, "no such manifest") from None

    def specs_in(self, environment: str) -> list[ModelSpec]:
        return [self.specs[key] for key in sorted(k for k in self.specs if k[0] == environment)]

    def registered_name(self, environment: str, model: str) -> str:
        template = self.environment(environment).model_name
        return template.format(env=environment, model=model)

    def relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def canonical_digest(body: Any) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _read_bytes(path: Path | str, display: str, folder: int | None = None) -> bytes:
    """A whole file, through the bare system calls: thousands of manifests are read per load.

    `folder`, an open directory, spares the kernel resolving the whole path again per file.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY, dir_fd=folder)
        try:
            # A regular file reads short only at its end: a manifest takes one call.
            content = chunk = os.read(descriptor, _READ_SIZE)
            while len(chunk) == _READ_SIZE:
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


def parse_yaml(text: str, display: str) -> dict[str, Any]:
    """Safe YAML to a mapping, or an InputError naming the file (and line) otherwise.

    libyaml's safe loader parses thousands of manifests about ten times faster; a document it
    refuses is parsed again by PyYAML's own, whose messages name the problem and line better.
    """
    try:
        data = yaml.load(text, Loader=_FAST_SAFE_LOADER)
    except yaml.YAMLError:
        data = _safe_load_or_refuse(text, display)
    if not isinstance(data, dict):
        raise InputError(display, None, "must be a YAML mapping")
    return data


def _safe_load_or_refuse(text: str, display: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise InputError(display, None, f"invalid YAML{where}: {problem}") from None


def _validation_message(exc: ValidationError) -> tuple[str | None, str]:
    error = exc.errors()[0]
    location = (
        ".".join(_printable(str(part)) for part in error["loc"] if part != "__root__") or None
    )
    kind = error["type"]
    if kind == "extra_forbidden":
        return location, "unknown field"
    if kind == "missing":
        return location, "required field is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    return location, " ".join(message.split())


def _printable(text: str) -> str:
    """A key as it can appear in a one-line message: quoted and escaped if it has to be."""
    return text if text.isprintable() else repr(text)


def parse(model_class: type[_Strict], data: dict[str, Any], display: str) -> Any:
    try:
        return model_class.model_validate(data)
    except ValidationError as exc:
        location, message = _validation_message(exc)
        raise InputError(display, location, message) from None


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
        config: EnvironmentConfig = parse(EnvironmentConfig, _read_yaml(env_file, display), display)
        if config.name != env_dir.name:
            raise InputError(display, "name", f"must match its folder name {env_dir.name!r}")
        repo.environments[config.name] = config
    _check_environment_order(repo)
    cache = ManifestCache.for_repository(root)
    reads = [read for config in repo.environments.values() for read in _read_all(base, config)]
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
    for read in reads:
        if read.error is not None:
            raise read.error
        assert read.facts is not None and read.text is not None
        stem = read.file_name.rpartition(".")[0]
        if read.facts.model != stem:
            raise InputError(read.display, "model", f"must match the file name {stem!r}")
        spec = ModelSpec(read.config, read.folder, read.file_name, read.facts, read.text)
        repo.specs[(read.config.name, spec.model)] = spec
    cache.save()
    return repo


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


def _read_all(base: Path, config: EnvironmentConfig) -> list[_ManifestRead]:
    folder = base / config.name
    context = _validation_context(config)
    with os.scandir(folder) as entries:
        files = sorted(
            entry.name
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
        for file_name in files:
            display = f"{ENVIRONMENTS_DIR}/{config.name}/{file_name}"  # repo.relative, cheaper
            read = _ManifestRead(config, folder, file_name, display)
            path = file_name if relative else folder / file_name
            try:
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


def _validation_context(config: EnvironmentConfig) -> bytes:
    """What a manifest's validation and facts depend on besides its text: the environment's
    settings and this module's code (a new version of the rules validates everything again)."""
    code = Path(__file__).read_bytes() + PYDANTIC_VERSION.encode()
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


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas for editors: `environment.yaml` and model manifests."""
    return {
        "environment": EnvironmentConfig.model_json_schema(),
        "manifest": Manifest.model_json_schema(),
    }


def dump_manifest(manifest: Manifest) -> str:
    body = manifest.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
    if not body.get("gates") or body["gates"] == Gates().model_dump(mode="json", exclude_none=True):
        body.pop("gates", None)
    return yaml.safe_dump(body, sort_keys=False)
