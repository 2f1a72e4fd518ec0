"""A loaded GitOps repository: its environments and its model specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from promote.errors import InputError, PromoteError
from promote.manifests.digest import manifest_digest
from promote.manifests.schema import EnvironmentConfig, Gates, Manifest, parse, parse_yaml

ENVIRONMENTS_DIR = "environments"

ENVIRONMENT_FILE = "environment.yaml"


def environment_file(environment: str) -> str:
    """Where an environment's config lives, relative to the repository."""
    return f"{ENVIRONMENTS_DIR}/{environment}/{ENVIRONMENT_FILE}"


class SourceRef(NamedTuple):
    environment: str
    version: int


class ManifestFacts(NamedTuple):
    """What planning reads of a validated manifest: small enough to cache as plain JSON."""

    model: str
    commit: str | None
    source: SourceRef | None
    digest: str
    data_path: str  # the folder under the environment's data root: status lists it

    @classmethod
    def of(cls, manifest: Manifest, config: EnvironmentConfig) -> ManifestFacts:
        source = manifest.source
        return cls(
            manifest.model,
            manifest.code.commit,
            SourceRef(source.environment, source.version) if source else None,
            manifest_digest(manifest, config),
            manifest.data.path,
        )

    @classmethod
    def from_json(cls, entry: Any) -> ManifestFacts | None:
        """Facts as `to_json` wrote them, or None for anything else (a damaged cache)."""
        if type(entry) is not list or len(entry) != 6:
            return None
        model, commit, source_environment, source_version, digest, data_path = entry
        if type(model) is not str or type(digest) is not str or type(data_path) is not str:
            return None
        if commit is not None and type(commit) is not str:
            return None
        if source_environment is None and source_version is None:
            return cls(model, commit, None, digest, data_path)
        if type(source_environment) is not str or type(source_version) is not int:
            return None
        source = SourceRef(source_environment, source_version)
        return cls(model, commit, source, digest, data_path)

    def to_json(self) -> list[Any]:
        environment, version = self.source or (None, None)
        return [self.model, self.commit, environment, version, self.digest, self.data_path]


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
    def data_path(self) -> str:
        return self.facts.data_path

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
    # (environment, model) -> registered name: a status asks it of every model several times.
    _registered_names: dict[tuple[str, str], str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

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
        """The name `model` registers as in `environment` (environments are fixed once loaded)."""
        key = (environment, model)
        name = self._registered_names.get(key)
        if name is None:
            template = self.environment(environment).model_name
            name = self._registered_names[key] = template.format(env=environment, model=model)
        return name

    def relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)
