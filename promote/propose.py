"""`promote model NAME --to ENV`: write the manifest that promotes a champion, on a new branch.

Proposing reads only the source environment; it needs no access to the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from promote.build import git
from promote.errors import BadReference, InputError
from promote.manifests.digest import manifest_digest
from promote.manifests.repository import (
    ENVIRONMENTS_DIR,
    ModelSpec,
    Repository,
    environment_file,
)
from promote.manifests.schema import (
    Code,
    Data,
    EnvironmentConfig,
    Gates,
    Manifest,
    Source,
    dump_manifest,
    parse,
    parse_yaml,
)
from promote.proof.trust import Keyring
from promote.proof.versions import prove_model, proven_claims
from promote.registry.client import Registry
from promote.registry.entities import (
    PREVIOUS,
    TAG_DIRTY,
    TAG_MANIFEST_DIGEST,
    TAG_PROVENANCE,
    TAG_VERDICT,
    Version,
)


@dataclass
class Proposal:
    environment: str
    model: str
    branch: str | None
    commit: str | None
    path: str
    manifest: Manifest
    source_ref: str

    def to_json(self) -> dict[str, object]:
        return {
            "environment": self.environment,
            "model": self.model,
            "branch": self.branch,
            "commit": self.commit,
            "path": self.path,
            "source": self.source_ref,
            "manifest": self.manifest.model_dump(mode="json"),
        }


def _carried_gates(gates: Gates, config: EnvironmentConfig) -> Gates:
    """The template's gates that the target environment accepts: a bound that would loosen
    the target's own floor (dev's tolerance onto prod, say) is left to that floor."""

    def accepted(part: Gates) -> bool:
        return part.refinement_problem(config.gates, config.name) is None

    if accepted(gates):
        return gates
    rule, budget = gates.no_regression, gates.max_artifact_mb
    return Gates(
        metrics={n: t for n, t in gates.metrics.items() if accepted(Gates(metrics={n: t}))},
        no_regression=rule if accepted(Gates(no_regression=rule)) else None,
        max_artifact_mb=budget if accepted(Gates(max_artifact_mb=budget)) else None,
    )


def propose(repo: Repository, registry: Registry, model: str, target: str) -> Proposal:
    config = repo.environment(target)
    if config.promotes_from is None:
        raise InputError(
            "--to", None, f"{target} promotes from no environment: train there instead"
        )
    source_env = config.promotes_from
    source_name = repo.registered_name(source_env, model)
    registered = registry.model(source_name)
    champion = registered.champion if registered else None
    if champion is None:
        raise BadReference(
            source_name, "champion", "no champion to promote: train or promote one first"
        )
    assert registered is not None
    proof = prove_model(registered, Keyring(repo.environments).trust(source_env))[champion.version]
    if proof.claims is None:
        raise BadReference(champion.ref, TAG_PROVENANCE, f"the champion is forged: {proof.problem}")
    if not proof.passed:
        raise BadReference(champion.ref, TAG_VERDICT, "the champion has not passed its gates")
    if proof.claims.dirty:  # the signed record's flag: the tag is anyone's to edit
        raise BadReference(
            champion.ref,
            TAG_DIRTY,
            "trained from a dirty working tree: commit the code, train again, then propose",
        )
    lineage = registry.lineage(champion.run_id)
    problems = proof.claims.lineage_problems(lineage)
    if problems:
        raise BadReference(champion.ref, TAG_PROVENANCE, problems[0])
    existing = repo.specs.get((target, model))
    template = existing or repo.specs.get((source_env, model))
    manifest = Manifest(
        model=model,
        source=Source(environment=source_env, version=champion.version),
        code=Code(
            repo=lineage.code_repo,
            commit=lineage.code_commit,
            entrypoint=lineage.entrypoint,
            params=lineage.params,
        ),
        data=template.manifest.data if template else Data(path=model),
        gates=_carried_gates(template.manifest.gates, config) if template else Gates(),
    )
    relative = f"{ENVIRONMENTS_DIR}/{target}/{model}.yaml"
    if existing is not None and manifest_digest(manifest, config) == existing.digest:
        return Proposal(target, model, None, None, relative, manifest, champion.ref)
    branch = f"promote/{target}/{model}-v{champion.version}"
    base = git.resolve_ref(repo.root, config.protected_branch) or git.head_commit(repo.root)
    message = (
        f"Promote {model} to {target}: {champion.ref} at {lineage.code_commit[:12]}\n\n"
        f"Source: {champion.ref}\nCommit: {lineage.code_commit}\n"
        f"Lineage digest: {lineage.lineage_digest}\n"
    )
    commit = git.commit_files_on_branch(
        repo.root, branch, base, {relative: dump_manifest(manifest)}, message
    )
    return Proposal(target, model, branch, commit, relative, manifest, champion.ref)


def _manifest_built_as(
    repo: Repository, spec: ModelSpec, digest: str | None
) -> tuple[str, str, Manifest] | None:
    """The newest commit of `spec`'s file whose manifest, under the environment's current
    settings, has `digest`: that commit, the file's text there, and its manifest."""
    relative = repo.relative(spec.path)
    history = git.run_git(repo.root, "log", "--format=%H", "--", relative).split()
    for commit in history:
        text = git.run_git(repo.root, "show", f"{commit}:{relative}", check=False)
        if not text:
            continue
        display = f"{relative}@{commit[:12]}"
        manifest: Manifest = parse(Manifest, parse_yaml(text, display), display)
        if manifest_digest(manifest, spec.config) == digest:
            return commit, text, manifest
    return None


def propose_rollback(
    repo: Repository, registry: Registry, model: str, environment: str
) -> Proposal:
    """Write, on a new branch, the manifest that `previous` was built from: merged, apply
    re-points `champion` to it without rebuilding."""
    spec = repo.spec(environment, model)
    name = repo.registered_name(environment, model)
    registered = registry.model(name)
    previous = registered.version(registered.aliases.get(PREVIOUS)) if registered else None
    if previous is None:
        raise BadReference(name, "previous", "no previous version to roll back to")
    wanted = previous.tags.get(TAG_MANIFEST_DIGEST)
    relative = repo.relative(spec.path)
    config_file = environment_file(environment)
    found = _manifest_built_as(repo, spec, wanted)
    if found is None:
        raise BadReference(
            name,
            "previous",
            f"no commit of {relative} under the current {config_file} builds "
            f"v{previous.version}: restore its manifest (and environment settings) by hand",
        )
    commit, text, manifest = found
    branch = f"promote/{environment}/{model}-rollback-v{previous.version}"
    config = spec.config
    base = git.resolve_ref(repo.root, config.protected_branch) or git.head_commit(repo.root)
    message = (
        f"Roll back {model} in {environment} to v{previous.version}\n\n"
        f"Restores {relative} as of {commit}; apply re-points champion, no rebuild.\n"
    )
    created = git.commit_files_on_branch(repo.root, branch, base, {relative: text}, message)
    return Proposal(environment, model, branch, created, relative, manifest, previous.ref)


@dataclass(frozen=True)
class RetrainRequest:
    """A retrain checked and ready to write: the manifest as merged, with `data.as_of` set."""

    spec: ModelSpec
    champion: Version
    manifest: Manifest

    @property
    def branch(self) -> str:
        # One branch per model and environment: asking again updates the same proposal.
        return f"promote/{self.spec.environment}/{self.spec.model}-retrain"


def request_retrain(
    repo: Repository, registry: Registry, model: str, environment: str, as_of: datetime
) -> RetrainRequest:
    """Check that `model` may be retrained in `environment`, writing nothing: the environment
    rebuilds from one below it on its own data, and its champion is genuine, passed, and built
    from the manifest this checkout holds, `data.as_of` aside (so the retrain rebuilds what
    runs, not a pending change)."""
    config = repo.environment(environment)
    if config.promotes_from is None:
        raise InputError(
            "--env", None, f"{environment} promotes from no environment: retrain with promote train"
        )
    if config.training == "copy":
        raise InputError(
            "--env",
            None,
            f"{environment} copies the artifact validated below (training: copy): it trains "
            "on no data of its own",
        )
    spec = repo.spec(environment, model)
    name = repo.registered_name(environment, model)
    registered = registry.model(name)
    champion = registered.champion if registered else None
    if registered is None or champion is None:
        raise BadReference(name, "champion", "no champion to retrain: promote one first")
    trust = Keyring(repo.environments).trust(environment)
    claims = proven_claims(registered, champion, trust, passed=True)
    current = spec.manifest
    if claims.manifest_digest != spec.digest:
        # A retrain merged but rejected by its gates, or not applied yet, differs from the
        # champion's manifest by `data.as_of` alone: asking again asks for newer data.
        built = _manifest_built_as(repo, spec, claims.manifest_digest)
        if built is None or _without_as_of(built[2]) != _without_as_of(current):
            raise BadReference(
                spec.display,
                None,
                f"is not what champion {champion.ref} was built from: apply it (or revert it) "
                "first",
            )
    data = Data(path=current.data.path, as_of=as_of)
    return RetrainRequest(spec, champion, current.model_copy(update={"data": data}))


def _without_as_of(manifest: Manifest) -> Manifest:
    return manifest.model_copy(update={"data": Data(path=manifest.data.path)})


def propose_retrain(repo: Repository, request: RetrainRequest) -> Proposal:
    """Write the retrain's manifest on its branch, from the protected branch's tip."""
    spec, manifest = request.spec, request.manifest
    assert manifest.data.as_of is not None and manifest.code.commit is not None
    relative = spec.display
    base = git.resolve_ref(repo.root, spec.config.protected_branch) or git.head_commit(repo.root)
    message = (
        f"Retrain {spec.model} in {spec.environment} on its data as of "
        f"{manifest.data.as_of:%Y-%m-%dT%H:%M:%SZ}\n\n"
        f"Rebuilds {manifest.code.commit} (champion {request.champion.ref}) on "
        f"{spec.environment}'s current data once merged and approved.\n"
    )
    commit = git.commit_files_on_branch(
        repo.root, request.branch, base, {relative: dump_manifest(manifest)}, message
    )
    return Proposal(
        spec.environment,
        spec.model,
        request.branch,
        commit,
        relative,
        manifest,
        request.champion.ref,
    )
