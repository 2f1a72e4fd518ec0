"""Compare desired state (manifests) with actual state (the registry). Reads only; never writes.

`apply` acts on what this module decides; `status` and `plan` only print it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from promote import git
from promote.errors import BadReference
from promote.lock import TAG_LOCK_EXPIRES, TAG_LOCK_OWNER, lock_name
from promote.manifests import ModelSpec, Repository
from promote.registry import (
    REQUIRED_VERSION_TAGS,
    TAG_ARTIFACT_DIGEST,
    TAG_CHAMPION_FROM,
    TAG_COMMIT,
    TAG_DIRTY,
    TAG_EXPECTED_CHAMPION,
    TAG_MANAGED,
    TAG_MANIFEST_DIGEST,
    TAG_REASON,
    VERDICT_PASSED,
    VERDICT_PENDING,
    VERDICT_REJECTED,
    RegisteredModel,
    Registry,
    Version,
)

_REQUIRED_TAGS = frozenset(REQUIRED_VERSION_TAGS)


class Action(str, Enum):
    NONE = "none"  # in sync
    DEV = "dev"  # a dev training template: `promote train` moves it, not apply
    BUILD = "build"  # rebuild (or copy) from the pinned commit
    REPOINT = "repoint"  # champion -> an existing version built from this very manifest
    RECORD = "record"  # in sync, but a crash kept the promotion out of the history
    RESUME = "resume"  # a version of this manifest was registered but its checks never finished
    REJECTED = "rejected"  # this manifest was built and rejected: change it to try again
    REFUSED = "refused"  # the manifest references something that may not be promoted


@dataclass
class ModelState:
    """One model in one environment: what git wants, what the registry has, what to do."""

    spec: ModelSpec
    registered_name: str
    action: Action
    detail: str = ""
    champion: int | None = None
    target: int | None = None
    drift: list[str] = field(default_factory=list)
    refusal: BadReference | None = None
    lock: str | None = None  # who holds this model's apply lock, if anyone

    @property
    def environment(self) -> str:
        return self.spec.environment

    @property
    def model(self) -> str:
        return self.spec.model

    @property
    def status(self) -> str:
        if self.drift:
            return "drifted"
        if self.action in (Action.NONE, Action.DEV):
            return "in sync"
        if self.action in (Action.REJECTED, Action.REFUSED):
            return self.action.value
        return "pending"

    def to_json(self) -> dict[str, object]:
        return {
            "environment": self.environment,
            "model": self.model,
            "registered_model": self.registered_name,
            "status": self.status,
            "action": self.action.value,
            "detail": self.detail,
            "champion": self.champion,
            "target_version": self.target,
            "manifest_digest": self.spec.digest if self.spec.managed else None,
            "commit": self.spec.commit,
            "drift": self.drift,
            "lock": self.lock,
        }


def drift_of(model: RegisteredModel | None, registry: Registry, verify: bool) -> list[str]:
    """What in the registry the pipeline did not put there (moved aliases, foreign versions)."""
    if model is None:
        return []
    problems = []
    if model.tags.get(TAG_MANAGED) != "true":
        problems.append("registered model was not created by the pipeline (no promote.managed)")
    champion = model.champion
    expected = model.tags.get(TAG_EXPECTED_CHAMPION)
    live = str(champion.version) if champion is not None else None
    moved = live != expected if live is not None else bool(expected)
    if moved and not _interrupted_move(model, expected, live):
        if live is not None:
            was = f"pipeline set v{expected}" if expected else "the pipeline never set it"
            problems.append(f"champion moved by hand to v{live} ({was})")
        else:
            problems.append(f"champion alias removed by hand (pipeline set v{expected})")
    for version in model.versions:
        if version.tags.keys() >= _REQUIRED_TAGS:
            continue
        missing = next(t for t in REQUIRED_VERSION_TAGS if t not in version.tags)
        problems.append(f"v{version.version} was not registered by the pipeline (no {missing})")
    if verify and champion is not None and TAG_ARTIFACT_DIGEST in champion.tags:
        digest, _ = registry.stored_artifact(champion)
        if digest != champion.tags[TAG_ARTIFACT_DIGEST]:
            problems.append(f"champion v{champion.version} artifact changed in storage")
    return problems


def _interrupted_move(model: RegisteredModel, expected: str | None, live: str | None) -> bool:
    """A move the pipeline recorded (intent tags) but whose history event never came is a crash
    mid-move: apply finishes it. Anything else off the recorded champion was done by hand."""
    completed = expected is not None and expected in {str(v) for v in model.logged_versions}
    return not completed and (live is None or model.tags.get(TAG_CHAMPION_FROM) == live)


def check_source(
    repo: Repository,
    registry: Registry,
    spec: ModelSpec,
    models: dict[str, RegisteredModel] | None = None,
    code: CodeChecks | None = None,
) -> Version:
    """The source version a manifest promotes, if it may be promoted; else BadReference."""
    manifest = spec.manifest
    display = spec.display
    assert manifest.source is not None and manifest.code.commit is not None
    source_name = repo.registered_name(manifest.source.environment, spec.model)
    ref = f"{source_name}/{manifest.source.version}"
    source_model = models.get(source_name) if models is not None else registry.model(source_name)
    source = source_model.version(manifest.source.version) if source_model else None
    if source is None:
        raise BadReference(display, "source.version", f"{ref} does not exist")
    if source.verdict == VERDICT_REJECTED:
        reason = source.tags.get(TAG_REASON, "no reason recorded")
        raise BadReference(display, "source.version", f"{ref} was rejected: {reason}")
    if source.verdict != VERDICT_PASSED:
        raise BadReference(display, "source.version", f"{ref} has not passed its gates")
    if source.tags.get(TAG_DIRTY) == "true":
        raise BadReference(
            display,
            "source.version",
            f"{ref} was trained from a dirty working tree and cannot be promoted",
        )
    if source.tags.get(TAG_COMMIT) != manifest.code.commit:
        raise BadReference(
            display,
            "code.commit",
            f"{manifest.code.commit[:12]} is not the commit {ref} was trained from "
            f"({source.tags.get(TAG_COMMIT, 'unknown')[:12]})",
        )
    config = repo.environment(spec.environment)
    problem = (code or CodeChecks(repo.root)).problem(
        manifest.code.repo, manifest.code.commit, config.protected_branch
    )
    if problem is not None:
        raise BadReference(display, "code.commit", problem)
    return source


class CodeChecks:
    """Whether pinned commits exist on their protected branch, each asked of git once per plan:
    a large promotion pins many manifests to one repository (fetched once) and commit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repositories: dict[str, Path] = {}
        self.answers: dict[tuple[str, str, str], str | None] = {}

    def problem(self, location: str, commit: str, branch: str) -> str | None:
        """Why `commit` of the code at `location` may not be promoted, or None."""
        key = (location, commit, branch)
        if key not in self.answers:
            if location not in self.repositories:
                self.repositories[location] = git.resolve_code_repository(self.root, location)
            code_repo = self.repositories[location]
            if not git.commit_exists(code_repo, commit):
                self.answers[key] = f"{commit[:12]} does not exist"
            elif not git.is_on_branch(code_repo, commit, branch):
                self.answers[key] = f"{commit[:12]} is not on the protected branch {branch}"
            else:
                self.answers[key] = None
        return self.answers[key]


def _best_match(model: RegisteredModel | None, digest: str, verdict: str) -> Version | None:
    if model is None:
        return None
    matching = [
        v
        for v in model.versions
        if v.tags.get(TAG_MANIFEST_DIGEST) == digest and v.verdict == verdict
    ]
    expected = model.tags.get(TAG_EXPECTED_CHAMPION)
    preferred = [v for v in matching if str(v.version) == expected]
    candidates = preferred or matching
    return candidates[-1] if candidates else None


def model_state(
    repo: Repository,
    registry: Registry,
    spec: ModelSpec,
    verify: bool,
    models: dict[str, RegisteredModel] | None = None,
    code: CodeChecks | None = None,
) -> ModelState:
    """Desired against actual for one manifest; `models` is a bulk read of the registry, and
    `code` the answers about pinned commits, if they are shared with other manifests."""
    name = repo.registered_name(spec.environment, spec.model)
    model = models.get(name) if models is not None else registry.model(name)
    champion = model.champion if model else None
    state = ModelState(spec, name, Action.NONE, champion=champion.version if champion else None)
    state.drift = drift_of(model, registry, verify)
    held = models.get(lock_name(name)) if models is not None else registry.model(lock_name(name))
    if held is not None:
        state.lock = f"locked by {held.tags.get(TAG_LOCK_OWNER, 'unknown')} until " + held.tags.get(
            TAG_LOCK_EXPIRES, "?"
        )
    if not spec.managed:
        state.action = Action.DEV
        state.detail = (
            f"trained with promote train; champion v{state.champion}"
            if champion
            else "not trained yet"
        )
        return state
    digest = spec.digest
    passed = _best_match(model, digest, VERDICT_PASSED)
    if passed is not None:
        assert model is not None
        recorded = model.tags.get(TAG_EXPECTED_CHAMPION) == str(passed.version)
        if champion is not None and champion.version == passed.version and recorded:
            state.detail = f"champion v{passed.version} is this manifest"
            if passed.version not in model.logged_versions:
                state.action = Action.RECORD
                state.target = passed.version
                state.detail += "; record the promotion an interrupted apply did not log"
        else:
            state.action, state.target = Action.REPOINT, passed.version
            state.detail = f"champion -> v{passed.version} (already built from this manifest)"
        return state
    rejected = _best_match(model, digest, VERDICT_REJECTED)
    if rejected is not None:
        state.action, state.target = Action.REJECTED, rejected.version
        state.detail = f"v{rejected.version} was rejected: {rejected.tags.get(TAG_REASON, '')}"
        return state
    pending = _best_match(model, digest, VERDICT_PENDING)
    if pending is not None:
        state.action, state.target = Action.RESUME, pending.version
        state.detail = f"finish the checks of v{pending.version}"
        return state
    try:
        check_source(repo, registry, spec, models, code)
    except BadReference as exc:
        state.action, state.detail, state.refusal = Action.REFUSED, exc.message, exc
        return state
    mode = repo.environment(spec.environment).training
    assert spec.source is not None and spec.commit is not None
    state.action = Action.BUILD
    verb = "rebuild" if mode == "retrain" else "copy"
    state.detail = f"{verb} {spec.source.environment} v{spec.source.version} at {spec.commit[:12]}"
    return state


def _note_reusable_runs(states: list[ModelState], registry: Registry) -> None:
    """Point out the training runs an interrupted apply left, which the next apply reuses."""
    for environment in sorted({s.environment for s in states if s.action is Action.BUILD}):
        building = [s for s in states if s.action is Action.BUILD and s.environment == environment]
        reusable = registry.reusable_runs(environment, {s.spec.digest for s in building})
        for state in building:
            if state.spec.digest in reusable:
                run_id = reusable[state.spec.digest]
                state.detail += f" (reuses run {run_id[:8]}, left by an interrupted apply)"


def compute(
    repo: Repository, registry: Registry, environment: str | None = None, verify: bool = False
) -> list[ModelState]:
    """The state of every manifest (of one environment, if given), in promotion order."""
    if environment is not None:
        repo.environment(environment)
    specs = [
        spec
        for config in repo.ordered_environments()
        if environment in (None, config.name)
        for spec in repo.specs_in(config.name)
    ]
    if not specs:
        return []
    names = {repo.registered_name(s.environment, s.model) for s in specs}
    names |= {
        repo.registered_name(s.source.environment, s.model) for s in specs if s.source is not None
    }
    names |= {lock_name(name) for name in names}
    models = registry.models(list(names))
    code = CodeChecks(repo.root)
    states = [model_state(repo, registry, spec, verify, models, code) for spec in specs]
    _note_reusable_runs(states, registry)
    return states


@dataclass(frozen=True)
class Unmanaged:
    """A registered model in a pipeline-owned environment that no manifest declares."""

    environment: str
    registered_name: str

    @property
    def problem(self) -> str:
        return (
            f"{self.registered_name} was registered outside the pipeline: no manifest declares it"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "environment": self.environment,
            "registered_model": self.registered_name,
            "status": "drifted",
            "drift": [self.problem],
        }


def unmanaged(
    repo: Repository, registry: Registry, environment: str | None = None
) -> list[Unmanaged]:
    """Registered models under an environment above dev that no manifest declares.

    MLflow lets anyone with create rights register `prod.anything`; only the pipeline should.
    """
    found = []
    for config in repo.ordered_environments():
        if config.promotes_from is None or environment not in (None, config.name):
            continue
        prefix = config.model_name.format(env=config.name, model="")
        if not config.model_name.endswith("{model}") or not prefix:
            continue  # names not grouped by a prefix cannot be listed by one
        declared = {repo.registered_name(config.name, s.model) for s in repo.specs_in(config.name)}
        found += [
            Unmanaged(config.name, name) for name in registry.names(prefix) if name not in declared
        ]
    return found
