"""Compare desired state (manifests) with actual state (the registry). Reads only; never writes.

As argo-cd's state comparison does, planning is two steps: `gather` makes every read once (the
bulk registry read, the answers about pinned commits, the runs an interrupted apply left, the
stored artifacts when asked to verify); `decide` turns one manifest and that snapshot into a
`ModelState` without any I/O. `apply` acts on what `decide` says; `status` and `plan` print it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from promote.build import git, notebook
from promote.build.data import resolve_uri
from promote.build.listing import DataChange, RootListing, data_change, list_location
from promote.errors import ApprovalRefused, BadReference, ExternalError, PromoteError
from promote.github.checks import RequiredChecks
from promote.manifests.repository import ModelSpec, Repository
from promote.proof.cache import VerifiedCache, cache_path
from promote.proof.trust import Keyring
from promote.proof.versions import Proof, prove_model
from promote.registry.client import Registry
from promote.registry.entities import (
    PREVIOUS,
    TAG_CHAMPION_FROM,
    TAG_DATA_LISTING,
    TAG_EXPECTED_CHAMPION,
    TAG_EXPECTED_PREVIOUS,
    TAG_MANAGED,
    TAG_MANIFEST_DIGEST,
    TAG_MERGE_COMMIT,
    TAG_REASON,
    VERDICT_PASSED,
    VERDICT_PENDING,
    VERDICT_REJECTED,
    RegisteredModel,
    Version,
)
from promote.registry.lock import TAG_LOCK_EXPIRES, TAG_LOCK_OWNER, lock_name
from promote.runtime.forked import Background


class Action(str, Enum):
    """What apply does for one manifest; what each action means is asked of it, not spelled out
    at every call site."""

    NONE = "none"  # in sync
    DEV = "dev"  # a dev training template: `promote train` moves it, not apply
    BUILD = "build"  # rebuild (or copy) from the pinned commit
    REPOINT = "repoint"  # champion -> an existing version built from this very manifest
    RECORD = "record"  # in sync, but a crash kept the promotion out of the history
    RESUME = "resume"  # a version of this manifest was registered but its checks never finished
    REJECTED = "rejected"  # this manifest was built and rejected: change it to try again
    REFUSED = "refused"  # the manifest references something that may not be promoted

    @property
    def in_sync(self) -> bool:
        return self in (Action.NONE, Action.DEV)

    @property
    def blocked(self) -> bool:
        """Nothing will happen until the manifest changes."""
        return self in (Action.REJECTED, Action.REFUSED)

    @property
    def writes(self) -> bool:
        """Apply writes to the registry for it: it takes the model's lock, and it must be
        authorized (recording a promotion credits an approval too)."""
        return self in (Action.BUILD, Action.REPOINT, Action.RESUME, Action.RECORD)


@dataclass
class ModelState:
    """One model in one environment: what git wants, what the registry has, what to do."""

    spec: ModelSpec
    registered_name: str
    action: Action
    detail: str = ""
    registered: RegisteredModel | None = None  # the live registered model, as gathered
    target: int | None = None
    source: Version | None = None  # the version a BUILD or RESUME is validated against
    drift: list[str] = field(default_factory=list)
    refusal: PromoteError | None = None
    lock: str | None = None  # who holds this model's apply lock, if anyone
    reusable_run: str | None = None  # a finished training an interrupted apply left
    data_change: DataChange | None = None  # the champion's data since its training, if changed

    @property
    def environment(self) -> str:
        return self.spec.environment

    @property
    def model(self) -> str:
        return self.spec.model

    @property
    def champion(self) -> int | None:
        champion = self.registered.champion if self.registered else None
        return champion.version if champion else None

    @property
    def status(self) -> str:
        if self.drift:
            return "drifted"
        if self.data_changed and self.action.in_sync:
            return "data changed"
        if self.action.in_sync:
            return "in sync"
        if self.action.blocked:
            return self.action.value
        return "pending"

    @property
    def data_changed(self) -> bool:
        """The champion's data changed since its training (a root not listed is no change)."""
        return self.data_change is not None and self.data_change.problem is None

    def to_json(self) -> dict[str, object]:
        return {
            "environment": self.environment,
            "model": self.model,
            "registered_model": self.registered_name,
            "status": self.status,
            "action": self.action.value,
            # Whether apply would write for it: the apply workflow gives each such model a job.
            "writes": self.action.writes,
            "detail": self.detail,
            "champion": self.champion,
            "target_version": self.target,
            "manifest_digest": self.spec.digest if self.spec.managed else None,
            "commit": self.spec.commit,
            "drift": self.drift,
            "lock": self.lock,
            "data_change": self.data_change.to_json() if self.data_change else None,
        }


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

    def entrypoint_problem(self, location: str, commit: str, entrypoint: str) -> str | None:
        """Why the entrypoint at `commit` may not run as it is (a notebook with outputs)."""
        if not notebook.is_notebook(entrypoint):
            return None
        code_repo = self.repositories.get(location) or git.resolve_code_repository(
            self.root, location
        )
        text = git.file_at(code_repo, commit, entrypoint)
        return None if text is None else notebook.unstripped(text)


@dataclass
class Snapshot:
    """Everything `decide` reads, gathered once: the repository (desired state) and the answers
    of the registry, git and storage (actual state)."""

    repo: Repository
    models: dict[str, RegisteredModel]
    listed: dict[str, list[str]] = field(default_factory=dict)  # prefix -> registered names
    code_problems: dict[tuple[str, str, str], str | None] = field(default_factory=dict)
    entrypoint_problems: dict[tuple[str, str, str], str | None] = field(default_factory=dict)
    check_problems: dict[tuple[str, str], str | None] = field(default_factory=dict)
    # Commits recorded on champions' promotions that this checkout does not contain, and why.
    unseen_promotions: dict[str, str] = field(default_factory=dict)
    reusable_runs: dict[tuple[str, str], str] = field(default_factory=dict)  # (env, digest)
    stored_digests: dict[str, str] | None = None  # version ref -> digest; None: not verified
    keyring: Keyring | None = None  # None: the repository's own
    # Verifications made before on this machine; None (apply under the lock): verify all.
    verified: VerifiedCache | None = None
    # Environment -> its data root and the root's listing (or why it could not be listed),
    # each root listed once; None: freshness was not asked.
    data_roots: dict[str, tuple[str, RootListing | str]] | None = None
    _proofs: dict[str, dict[int, Proof]] = field(default_factory=dict, repr=False)
    # (environment, model) -> verdict -> the version built from its manifest (`_built`).
    built: dict[tuple[str, str], dict[str | None, Version]] = field(
        default_factory=dict, repr=False
    )

    def registered(self, environment: str, model: str) -> RegisteredModel | None:
        return self.models.get(self.repo.registered_name(environment, model))

    def proofs(self, environment: str, model: RegisteredModel | None) -> dict[int, Proof]:
        """What the signatures prove of each version of `model`, an `environment`'s; checked
        once per snapshot (signatures are verified in memory, from the tags read)."""
        if model is None:
            return {}
        if model.name not in self._proofs:
            if self.keyring is None:
                self.keyring = Keyring(self.repo.environments)
            self._proofs[model.name] = prove_model(
                model, self.keyring.trust(environment), self.verified
            )
        return self._proofs[model.name]

    def source_version(self, spec: ModelSpec) -> Version | None:
        """The version a manifest names as its source, if the registry has it."""
        if spec.source is None:
            return None
        source_model = self.registered(spec.source.environment, spec.model)
        return source_model.version(spec.source.version) if source_model else None


def _best_matches(
    model: RegisteredModel | None, proofs: dict[int, Proof], digest: str
) -> dict[str | None, Version]:
    """Verdict -> the version of this manifest with that verdict, among those the signatures
    vouch for: a passed one only with its signed verification, any other only with its
    provenance. The one the pipeline made champion is preferred, else the latest."""
    if model is None:
        return {}
    matching: dict[str | None, list[Version]] = {}
    for version in model.versions:
        if version.tags.get(TAG_MANIFEST_DIGEST) != digest:
            continue
        verdict = version.verdict
        proof = proofs.get(version.version)
        if proof is not None and (proof.passed if verdict == VERDICT_PASSED else proof.genuine):
            matching.setdefault(verdict, []).append(version)
    expected = model.tags.get(TAG_EXPECTED_CHAMPION)
    best = {}
    for verdict, versions in matching.items():
        preferred = [v for v in versions if str(v.version) == expected]
        best[verdict] = (preferred or versions)[-1]
    return best


def _built(spec: ModelSpec, snapshot: Snapshot, verdict: str) -> Version | None:
    """The version built from this very manifest with this verdict, if the registry has one."""
    key = (spec.environment, spec.model)
    if key not in snapshot.built:
        model = snapshot.registered(spec.environment, spec.model)
        proofs = snapshot.proofs(spec.environment, model)
        snapshot.built[key] = _best_matches(model, proofs, spec.digest)
    return snapshot.built[key].get(verdict)


def _needs_source(spec: ModelSpec, snapshot: Snapshot) -> bool:
    """Whether deciding this manifest reaches its source (a build or a resume): only those
    manifests cost the code and run look-ups."""
    if not spec.managed:
        return False
    return _built(spec, snapshot, VERDICT_PASSED) is None and (
        _built(spec, snapshot, VERDICT_REJECTED) is None
    )


def gather(
    repo: Repository,
    registry: Registry,
    specs: Iterable[ModelSpec],
    verify: bool = False,
    verified: VerifiedCache | None = None,
    listed: Iterable[str] = (),
    freshness: bool = False,
) -> Snapshot:
    """Every read `decide` needs for `specs`, each made once; `verified`: signatures checked
    before on this machine, which a report may trust (apply's decision under the lock never
    does); `listed`: name prefixes whose every registered name is read too; `freshness`: list
    the data roots of champions that recorded a listing, each root once."""
    specs = list(specs)
    # Local data roots are listed on another core while the registry is read: most status runs
    # compare every champion's listing. S3 roots are listed below, only where one is compared.
    roots = _data_roots(repo, specs) if freshness else {}
    local = sorted({root for root in roots.values() if not root.startswith("s3://")})
    listing = Background(lambda: _listed(local), fork=bool(local))
    try:
        snapshot = _gather(repo, registry, specs, verify, verified, list(listed))
        if freshness:
            snapshot.data_roots = _roots_compared(snapshot, specs, roots, listing.result())
    finally:
        listing.close()
    return snapshot


def _gather(
    repo: Repository,
    registry: Registry,
    specs: list[ModelSpec],
    verify: bool,
    verified: VerifiedCache | None,
    listed: list[str],
) -> Snapshot:
    names = {repo.registered_name(s.environment, s.model) for s in specs}
    names |= {
        repo.registered_name(s.source.environment, s.model) for s in specs if s.source is not None
    }
    names |= {lock_name(name) for name in names}
    read = registry.survey(sorted(names), listed) if specs or listed else None
    snapshot = Snapshot(
        repo, read.models if read else {}, read.listed if read else {}, verified=verified
    )
    reaching = [s for s in specs if _needs_source(s, snapshot)]
    code = CodeChecks(repo.root)
    checks: RequiredChecks | None = None
    for spec in reaching:
        try:
            _registered_source(spec, snapshot)
        except BadReference:
            continue  # refused on what the registry says: git is not asked
        key = _code_key(spec)
        snapshot.code_problems[key] = code.problem(*key)
        location, commit, _ = key
        entrypoint = spec.manifest.code.entrypoint
        snapshot.entrypoint_problems[location, commit, entrypoint] = code.entrypoint_problem(
            location, commit, entrypoint
        )
        if spec.config.required_checks and snapshot.code_problems[key] is None:
            checks = checks or RequiredChecks(repo.root)
            snapshot.check_problems[location, commit] = checks.problem(
                location, commit, spec.config.required_checks
            )
    building = [s for s in reaching if _built(s, snapshot, VERDICT_PENDING) is None]
    for environment in sorted({s.environment for s in building}):
        digests = {s.digest for s in building if s.environment == environment}
        for digest, run_id in registry.reusable_runs(environment, digests).items():
            snapshot.reusable_runs[environment, digest] = run_id
    snapshot.unseen_promotions = _unseen_promotions(repo.root, snapshot, specs)
    if verify:
        snapshot.stored_digests = {}
        for spec in specs:
            model = snapshot.registered(spec.environment, spec.model)
            champion = model.champion if model else None
            if champion is not None:
                snapshot.stored_digests[champion.ref] = registry.stored_artifact(champion)[0]
    return snapshot


def _recorded_listing(spec: ModelSpec, snapshot: Snapshot) -> str | None:
    """The champion's listing tag, if it has one, it is proven and it was trained on this
    environment's data (a copy was trained on another's)."""
    model = snapshot.registered(spec.environment, spec.model)
    champion = model.champion if model else None
    if champion is None:
        return None
    proof = snapshot.proofs(spec.environment, model).get(champion.version)
    tag = champion.tags.get(TAG_DATA_LISTING)
    return None if proof is None or not proof.genuine or proof.copied else tag


def _data_roots(repo: Repository, specs: list[ModelSpec]) -> dict[str, str]:
    """Environment -> its data root, for the environments of `specs`."""
    configs = {spec.environment: spec.config for spec in specs}
    return {
        name: resolve_uri(repo.root, config.data_root, "").rstrip("/")
        for name, config in configs.items()
    }


def _listed(roots: Iterable[str]) -> dict[str, RootListing | str]:
    """Each root's listing, or why it could not be listed."""
    listings: dict[str, RootListing | str] = {}
    for root in roots:
        try:
            listings[root] = RootListing(list_location(root))
        except ExternalError as exc:
            listings[root] = exc.message
    return listings


def _roots_compared(
    snapshot: Snapshot,
    specs: list[ModelSpec],
    roots: dict[str, str],
    listings: dict[str, RootListing | str],
) -> dict[str, tuple[str, RootListing | str]]:
    """The data root of every environment where a champion recorded a listing, with its
    listing: each root listed once for all the models under it (environments may share one)."""
    compared = {}
    for spec in specs:
        if spec.environment in compared or _recorded_listing(spec, snapshot) is None:
            continue
        root = roots[spec.environment]
        if root not in listings:
            listings.update(_listed([root]))
        compared[spec.environment] = (root, listings[root])
    return compared


def _unseen_promotions(root: Path, snapshot: Snapshot, specs: list[ModelSpec]) -> dict[str, str]:
    """Of the commits champions were promoted from, those this checkout does not contain.

    Applying from such a checkout would undo newer work with older manifests: a re-run of an
    old workflow, a stale clone. Each distinct commit is asked of git once.
    """
    recorded: set[str] = set()
    for spec in specs:
        model = snapshot.registered(spec.environment, spec.model)
        champion = model.champion if model else None
        if champion is not None and champion.tags.get(TAG_MERGE_COMMIT):
            recorded.add(champion.tags[TAG_MERGE_COMMIT])
    if not recorded or not git.is_repository(root):
        return {}
    head = git.head_commit(root)
    unseen = {}
    for commit in sorted(recorded - {head}):
        if not git.commit_exists(root, commit):
            unseen[commit] = f"{commit[:12]} is not in this clone (fetch the whole history)"
        elif git.is_ancestor(root, head, commit):
            unseen[commit] = f"this checkout {head[:12]} is older than {commit[:12]}"
        elif not git.is_ancestor(root, commit, head):
            unseen[commit] = f"this checkout {head[:12]} does not contain {commit[:12]}"
    return unseen


def drift_of(
    model: RegisteredModel | None,
    proofs: dict[int, Proof],
    stored_digests: dict[str, str] | None,
) -> list[str]:
    """What in the registry the pipeline did not put there (moved aliases, versions its
    signatures do not vouch for, a champion whose proof or artifact no longer holds)."""
    if model is None:
        return []
    problems = []
    if model.tags.get(TAG_MANAGED) != "true":
        problems.append("registered model was not created by the pipeline (no promote.managed)")
    champion = model.champion
    expected = model.tags.get(TAG_EXPECTED_CHAMPION)
    live = str(champion.version) if champion is not None else None
    moved = live != expected if live is not None else bool(expected)
    interrupted = _interrupted_move(model, expected, live)
    if moved and not interrupted:
        if live is not None:
            was = f"pipeline set v{expected}" if expected else "the pipeline never set it"
            problems.append(f"champion moved by hand to v{live} ({was})")
        else:
            problems.append(f"champion alias removed by hand (pipeline set v{expected})")
    previous = model.aliases.get(PREVIOUS)
    expected_previous = model.tags.get(TAG_EXPECTED_PREVIOUS)
    if not interrupted and str(previous or "") != (expected_previous or ""):
        if previous is None:
            problems.append(f"previous alias removed by hand (pipeline set v{expected_previous})")
        else:
            was = f"pipeline set v{expected_previous}" if expected_previous else "never set"
            problems.append(f"previous moved by hand to v{previous} ({was})")
    for version in model.versions:
        proof = proofs.get(version.version)
        what = "champion " if champion is not None and champion.version == version.version else ""
        if proof is None or not proof.genuine:
            why = proof.problem if proof is not None else "not proven"
            problems.append(f"{what}v{version.version} is forged: {why}")
        elif proof.passed_problem is not None and version.verdict == VERDICT_PASSED:
            problems.append(f"{what}v{version.version} claims passed: {proof.passed_problem}")
        elif what and not proof.passed:
            problems.append(f"champion v{version.version} has no signed verification")
    stored = (stored_digests or {}).get(champion.ref) if champion is not None else None
    if champion is not None and stored is not None:
        proof = proofs.get(champion.version)
        signed = proof.claims.artifact_digest if proof and proof.claims else None
        if signed is not None and stored != signed:
            problems.append(f"champion v{champion.version} artifact changed in storage")
    return problems


def _data_change_of(spec: ModelSpec, snapshot: Snapshot, recorded: str) -> DataChange | None:
    """How the champion's data location differs from its training's listing (no I/O: the
    roots were listed in `gather`)."""
    if snapshot.data_roots is None:
        return None
    root, listing = snapshot.data_roots[spec.environment]
    location = f"{root}/{spec.data_path}"
    if isinstance(listing, str):
        return DataChange(location, None, None, None, None, 0, 0, problem=listing)
    return data_change(location, recorded, listing.under(spec.data_path))


def _interrupted_move(model: RegisteredModel, expected: str | None, live: str | None) -> bool:
    """A move the pipeline recorded (intent tags) but whose history event never came is a crash
    mid-move: apply finishes it. Anything else off the recorded champion was done by hand."""
    completed = expected is not None and expected in {str(v) for v in model.logged_versions}
    return not completed and (live is None or model.tags.get(TAG_CHAMPION_FROM) == live)


def _code_key(spec: ModelSpec) -> tuple[str, str, str]:
    code = spec.manifest.code
    assert code.commit is not None
    return (code.repo, code.commit, spec.config.protected_branch)


def _registered_source(spec: ModelSpec, snapshot: Snapshot) -> Version:
    """The source version, if the registry says it may be promoted; else BadReference."""
    manifest = spec.manifest
    display = spec.display
    assert manifest.source is not None and manifest.code.commit is not None
    source_name = snapshot.repo.registered_name(manifest.source.environment, spec.model)
    ref = f"{source_name}/{manifest.source.version}"
    source = snapshot.source_version(spec)
    if source is None:
        raise BadReference(display, "source.version", f"{ref} does not exist")
    source_model = snapshot.registered(manifest.source.environment, spec.model)
    proof = snapshot.proofs(manifest.source.environment, source_model)[source.version]
    if proof.claims is None:
        raise BadReference(display, "source.version", f"{ref} is forged: {proof.problem}")
    if source.verdict == VERDICT_REJECTED:
        reason = source.tags.get(TAG_REASON, "no reason recorded")
        raise BadReference(display, "source.version", f"{ref} was rejected: {reason}")
    if not proof.passed:
        raise BadReference(display, "source.version", f"{ref} has not passed its gates")
    # What the signed provenance says, never what a tag says.
    if proof.claims.dirty:
        raise BadReference(
            display,
            "source.version",
            f"{ref} was trained from a dirty working tree and cannot be promoted",
        )
    if proof.claims.commit != manifest.code.commit:
        raise BadReference(
            display,
            "code.commit",
            f"{manifest.code.commit[:12]} is not the commit {ref} was trained from "
            f"({proof.claims.commit[:12]})",
        )
    return source


def source_of(spec: ModelSpec, snapshot: Snapshot) -> Version:
    """The source version a manifest promotes, if it may be promoted; else BadReference."""
    source = _registered_source(spec, snapshot)
    location, commit, _ = key = _code_key(spec)
    problem = snapshot.code_problems[key]
    if problem is not None:
        raise BadReference(spec.display, "code.commit", problem)
    entrypoint = spec.manifest.code.entrypoint
    problem = snapshot.entrypoint_problems.get((location, commit, entrypoint))
    if problem is not None:
        raise BadReference(spec.display, "code.entrypoint", f"{entrypoint} {problem}")
    problem = snapshot.check_problems.get((location, commit))
    if problem is not None:
        # Not bad input: the code may pass its checks later. A refusal, exit 1.
        raise ApprovalRefused(f"{spec.display}: code.commit: {problem}")
    return source


def decide(spec: ModelSpec, snapshot: Snapshot) -> ModelState:
    """Desired against actual for one manifest, from the gathered snapshot alone (no I/O)."""
    state = _compare(spec, snapshot)
    champion = state.registered.champion if state.registered else None
    promoted_at = champion.tags.get(TAG_MERGE_COMMIT, "") if champion else ""
    unseen = snapshot.unseen_promotions.get(promoted_at)
    if state.action.writes and unseen is not None:
        assert champion is not None
        state.refusal = ApprovalRefused(
            f"{spec.display}: refusing to change {spec.environment}: v{champion.version} became "
            f"champion at {promoted_at[:12]}, and {unseen}; an older commit never changes an "
            f"environment (roll back with a new commit)"
        )
        state.action, state.detail = Action.REFUSED, state.refusal.message
    return state


def _compare(spec: ModelSpec, snapshot: Snapshot) -> ModelState:
    name = snapshot.repo.registered_name(spec.environment, spec.model)
    model = snapshot.models.get(name)
    state = ModelState(spec, name, Action.NONE, registered=model)
    proofs = snapshot.proofs(spec.environment, model)
    state.drift = drift_of(model, proofs, snapshot.stored_digests)
    listing = _recorded_listing(spec, snapshot)
    if listing is not None:
        assert model is not None and model.champion is not None
        forged = proofs[model.champion.version].listing_problem
        if forged is not None:
            state.drift.append(f"champion {forged}")
        else:
            state.data_change = _data_change_of(spec, snapshot, listing)
    held = snapshot.models.get(lock_name(name))
    if held is not None:
        state.lock = f"locked by {held.tags.get(TAG_LOCK_OWNER, 'unknown')} until " + held.tags.get(
            TAG_LOCK_EXPIRES, "?"
        )
    champion = model.champion if model else None
    if not spec.managed:
        state.action = Action.DEV
        state.detail = (
            f"trained with promote train; champion v{champion.version}"
            if champion
            else "not trained yet"
        )
        return state
    digest = spec.digest
    passed = _built(spec, snapshot, VERDICT_PASSED)
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
    rejected = _built(spec, snapshot, VERDICT_REJECTED)
    if rejected is not None:
        state.action, state.target = Action.REJECTED, rejected.version
        state.detail = f"v{rejected.version} was rejected: {rejected.tags.get(TAG_REASON, '')}"
        return state
    try:
        state.source = source_of(spec, snapshot)
    except (BadReference, ApprovalRefused) as exc:
        state.refusal = exc
    pending = _built(spec, snapshot, VERDICT_PENDING)
    if pending is not None:
        # Its source is checked again when apply resumes it: a refusal then stops apply.
        state.action, state.target = Action.RESUME, pending.version
        state.detail = f"finish the checks of v{pending.version}"
        return state
    if state.refusal is not None:
        state.action, state.detail = Action.REFUSED, state.refusal.message
        return state
    assert spec.source is not None and spec.commit is not None
    state.action = Action.BUILD
    verb = "rebuild" if spec.config.training == "retrain" else "copy"
    state.detail = f"{verb} {spec.source.environment} v{spec.source.version} at {spec.commit[:12]}"
    state.reusable_run = snapshot.reusable_runs.get((spec.environment, digest))
    if state.reusable_run is not None:
        state.detail += f" (reuses run {state.reusable_run[:8]}, left by an interrupted apply)"
    return state


def selected_specs(repo: Repository, environment: str | None = None) -> list[ModelSpec]:
    """Every manifest (of one environment, if given), in promotion order."""
    if environment is not None:
        repo.environment(environment)
    return [
        spec
        for config in repo.ordered_environments()
        if environment in (None, config.name)
        for spec in repo.specs_in(config.name)
    ]


def compute(
    repo: Repository, registry: Registry, environment: str | None = None, verify: bool = False
) -> list[ModelState]:
    """The state of every manifest (of one environment, if given), in promotion order."""
    return _states(repo, registry, environment, verify, {}, freshness=False)[0]


def survey(
    repo: Repository, registry: Registry, environment: str | None = None, verify: bool = False
) -> tuple[list[ModelState], list[Unmanaged]]:
    """`compute`, and the registered models no manifest declares, from the same read; the
    champions' data is checked against the listings their trainings recorded."""
    prefixes = _listed_prefixes(repo, environment)
    return _states(repo, registry, environment, verify, prefixes, freshness=True)


def _states(
    repo: Repository,
    registry: Registry,
    environment: str | None,
    verify: bool,
    prefixes: dict[str, str],
    freshness: bool,
) -> tuple[list[ModelState], list[Unmanaged]]:
    specs = selected_specs(repo, environment)
    if not specs and not prefixes:
        return [], []
    verified = VerifiedCache(cache_path())
    snapshot = gather(
        repo, registry, specs, verify, verified, listed=prefixes.values(), freshness=freshness
    )
    states = [decide(spec, snapshot) for spec in specs]
    verified.save()
    listings = {env: snapshot.listed[prefix] for env, prefix in prefixes.items()}
    return states, undeclared(repo, listings)


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


def _listed_prefixes(repo: Repository, environment: str | None) -> dict[str, str]:
    """Environment -> the name prefix of its registered models, for environments above dev whose
    names are grouped by a prefix (others cannot be listed by one)."""
    prefixes = {}
    for config in repo.ordered_environments():
        if config.promotes_from is None or environment not in (None, config.name):
            continue
        prefix = config.model_name.format(env=config.name, model="")
        if config.model_name.endswith("{model}") and prefix:
            prefixes[config.name] = prefix
    return prefixes


def undeclared(repo: Repository, listed: dict[str, list[str]]) -> list[Unmanaged]:
    """Of the names listed per environment, those no manifest declares (no I/O)."""
    found = []
    for environment, names in listed.items():
        declared = {repo.registered_name(environment, s.model) for s in repo.specs_in(environment)}
        found += [Unmanaged(environment, name) for name in names if name not in declared]
    return found
