"""What the registry holds, as the pipeline reads it: versions, registered models, tag names."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Any

CHAMPION = "champion"
PREVIOUS = "previous"

# Version tags (contract: other tools rely on these names).
TAG_COMMIT = "promote.code.commit"
TAG_ARTIFACT_DIGEST = "promote.artifact_digest"
TAG_LINEAGE_DIGEST = "promote.lineage_digest"
TAG_MANIFEST_DIGEST = "promote.manifest_digest"
TAG_SOURCE = "promote.source"
TAG_DATA_URI = "promote.data.uri"
TAG_DATA_DIGEST = "promote.data.digest"
# The files under the data URI at training, as listed (`promote.build.listing.listing_tag`).
TAG_DATA_LISTING = "promote.data.listing"
# How far a rebuild's training data is from its source's (`promote.drift.promotion`).
TAG_DATA_DRIFT = "promote.data.drift"
TAG_DIRTY = "promote.code.dirty"
TAG_VERDICT = "promote.verdict"
TAG_REASON = "promote.reason"
# The signed proof (DSSE envelopes): provenance, set when the version is created, and the
# verification summary, set when it passes. Every other promote.* tag is only a claim.
TAG_PROVENANCE = "promote.provenance"
TAG_VERIFICATION = "promote.verification"
# Why a version was allowed: its approved pull request, or the break-glass reason.
TAG_PULL_REQUEST = "promote.pull_request"
TAG_APPROVERS = "promote.approvers"
# The commit of the GitOps repository the promotion applied (in CI, the merge at the tip).
TAG_MERGE_COMMIT = "promote.merge_commit"
TAG_BREAK_GLASS = "promote.break_glass"

# Run tags: which model, environment and reproduction a training run is for.
TAG_RUN_MODEL = "promote.model"
TAG_RUN_ENVIRONMENT = "promote.environment"
TAG_REPRODUCTION_OF = "promote.reproduction_of"
# Set on a run once a version is registered from it: runs without it are an interrupted
# apply's leftovers, listed without reading every run the environment ever trained.
TAG_RUN_REGISTERED = "promote.registered_as"

# Registered-model tags.
TAG_MANAGED = "promote.managed"
TAG_EXPECTED_CHAMPION = "promote.champion"
TAG_CHAMPION_FROM = "promote.champion.from"
TAG_EXPECTED_PREVIOUS = "promote.previous"
# The apply lock's owner and expiry, on the lock's registered model.
TAG_LOCK_OWNER = "promote.lock.owner"
TAG_LOCK_EXPIRES = "promote.lock.expires"
EVENT_PREFIX = "promote.event."

# Each environment's runs are logged in one experiment of this name.
EXPERIMENT_PREFIX = "promote/"


def experiment_name(environment: str) -> str:
    return f"{EXPERIMENT_PREFIX}{environment}"


VERDICT_PENDING = "pending"

VERDICT_PASSED = "passed"

VERDICT_REJECTED = "rejected"


class EventKind(str, Enum):
    """What a history event records."""

    TRAIN = "train"  # a dev training became champion (or was rejected)
    PROMOTE = "promote"  # a rebuild or copy above dev became champion
    REPOINT = "repoint"  # champion moved to an existing version of the manifest
    ROLLBACK = "rollback"  # the same, to an older version
    REJECT = "reject"  # a candidate failed its checks; champion stayed
    REPAIR = "repair"  # champion moved back where the pipeline had set it (drift undone)
    HANDOFF = "handoff"  # one attempt to tell serving infrastructure of the champion

    @property
    def moves_champion(self) -> bool:
        return self not in (EventKind.REJECT, EventKind.HANDOFF)


@dataclass(frozen=True)
class Experiment:
    name: str
    experiment_id: str
    artifact_location: str


@dataclass(frozen=True)
class LoggedModel:
    """The model a training run logged, as MLflow 3 holds it: its id and its artifacts' place."""

    model_id: str
    artifact_uri: str


@dataclass(frozen=True)
class Version:
    name: str
    version: int
    source: str
    run_id: str
    tags: dict[str, str]

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def verdict(self) -> str | None:
        return self.tags.get(TAG_VERDICT)


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    aliases: dict[str, int]
    tags: dict[str, str]
    versions: list[Version] = field(default_factory=list)
    # The versions its history's events name, when the read took them out of the events' JSON
    # itself (SQLite does, in C); else `logged_versions` parses the event tags.
    event_versions: frozenset[Any] | None = field(default=None, compare=False, repr=False)

    @cached_property  # a read model does not change, and plan asks for it several times
    def champion(self) -> Version | None:
        return self.version(self.aliases.get(CHAMPION))

    def version(self, number: int | None) -> Version | None:
        for version in self.versions:
            if version.version == number:
                return version
        return None

    def events(self) -> list[dict[str, Any]]:
        keys = sorted(k for k in self.tags if k.startswith(EVENT_PREFIX))
        return [json.loads(self.tags[k]) for k in keys]

    def last_champion(self) -> int | None:
        """The version the history last made champion."""
        moves = [
            e
            for e in self.events()
            if e.get("action") in {kind.value for kind in EventKind if kind.moves_champion}
        ]
        return moves[-1].get("version") if moves else None

    @cached_property
    def logged_versions(self) -> frozenset[Any]:
        """Versions the history has an event for (read once: plan asks for every model)."""
        if self.event_versions is not None:
            return self.event_versions
        return frozenset(
            event.get("version")
            for key, value in self.tags.items()
            if key.startswith(EVENT_PREFIX)
            for event in (json.loads(value),)
        )


@dataclass(frozen=True)
class Survey:
    """Registered models read by name, and every name listed under some prefixes, in one read."""

    models: dict[str, RegisteredModel]
    listed: dict[str, list[str]]  # prefix -> every registered name starting with it, sorted


@dataclass
class Rows:
    """Registry rows as plain tuples: what both read paths produce, assembled one way."""

    models: set[str] = field(default_factory=set)
    aliases: list[tuple[str, str, int]] = field(default_factory=list)  # name, alias, version
    model_tags: list[tuple[str, str, str]] = field(default_factory=list)  # name, key, value
    versions: list[tuple[str, int, str, str]] = field(default_factory=list)  # name, v, source, run
    version_tags: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)
    # name -> versions its history events name, when the read extracted them (else None).
    event_versions: dict[str, set[Any]] | None = None

    def merge(self, other: Rows) -> None:
        """Add the rows of another read (one name prefix's): their models do not overlap."""
        self.models |= other.models
        self.aliases += other.aliases
        self.model_tags += other.model_tags
        self.versions += other.versions
        self.version_tags.update(other.version_tags)

    def assemble(self) -> dict[str, RegisteredModel]:
        # Rows of a model that was not among the models read (created between two pages, or
        # between two statements where the database allows phantoms) wait for the next read;
        # tags of a version not read (deleted, or not yet read) are left out with it.
        names = sorted(self.models)
        aliases: dict[str, dict[str, int]] = {name: {} for name in names}
        tags: dict[str, dict[str, str]] = {name: {} for name in names}
        versions: dict[str, list[Version]] = {name: [] for name in names}
        for name, alias, number in self.aliases:
            if name in aliases:
                aliases[name][alias] = number
        for name, key, value in self.model_tags:
            if name in tags:
                tags[name][key] = value
        version_tags = self.version_tags
        for name, number, source, run_id in sorted(self.versions):  # (name, version) is unique
            if name in versions:
                found = version_tags.get((name, number), {})
                versions[name].append(Version(name, number, source, run_id or "", found))
        logged = self.event_versions
        return {
            name: RegisteredModel(
                name,
                aliases[name],
                tags[name],
                versions[name],
                None if logged is None else frozenset(logged.get(name, ())),
            )
            for name in names
        }
