"""Dev training: `promote train NAME --env dev` runs the entrypoint at HEAD of the working tree.

It is not a promotion: nothing is approved, rebuilt or matched. The candidate still gets a
lineage record and the environment's gates, and becomes dev's champion only if they pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promote.apply import Outcome, Promoter, Report
from promote.build import git, runner
from promote.build.compute.local import check_interpreter
from promote.errors import InputError
from promote.manifests.repository import Repository
from promote.manifests.schema import EnvironmentConfig
from promote.proof.trust import Keyring
from promote.registry import lock
from promote.registry.client import Registry
from promote.registry.entities import EventKind
from promote.serving.handoff import Handoffs

MAX_LISTED = 10


def _not_code(repo: Repository, config: EnvironmentConfig) -> list[Path]:
    """Folders whose untracked files are no change to the code: promote's own, and a local
    data root inside the repository."""
    folders = [repo.root / ".promote"]
    if not config.data_root.startswith("s3://"):
        folders.append(repo.root / config.data_root)
    return folders


def train(
    repo: Repository,
    registry: Registry,
    model: str,
    environment: str,
    overrides: dict[str, Any],
    report: Report = lambda _: None,
    lock_wait: float = 900.0,
) -> Outcome:
    """Train at HEAD of the working tree and, if its gates pass, make it the champion."""
    config = repo.environment(environment)
    if config.promotes_from is not None:
        raise InputError(
            "--env",
            None,
            f"{environment} is built by the pipeline from an approved manifest; "
            f"train in an environment that promotes from none (such as dev)",
        )
    spec = repo.spec(environment, model)
    commit = git.head_commit(repo.root)
    changed = git.changed_paths(repo.root, _not_code(repo, config))
    dirty = bool(changed)
    refusal = []
    if dirty:
        listed = ", ".join(changed[:MAX_LISTED]) + (" ..." if len(changed) > MAX_LISTED else "")
        refusal = [
            f"trained from uncommitted changes ({len(changed)}: {listed}): recorded as dirty, "
            "never champion; commit them and train again"
        ]
        report(f"working tree is dirty: {refusal[0]}")
    manifest = spec.manifest
    params = {**manifest.code.params, **overrides}
    request = runner.BuildRequest.of_spec(
        repo.root, spec, commit, params, dirty=dirty, on_output=report
    )
    check_interpreter(config)
    runner.entrypoint_path(repo.root, request)  # bad input refused before the lock is written
    keyring = Keyring(repo.environments)
    signer = keyring.signer(environment)
    signer.check()  # before training: a run this machine cannot sign would only be forged
    handoffs = Handoffs(repo, registry, report)
    handoffs.check(environment)  # a hand-off that could never be sent: refused before training
    report(f"training {model} in {environment} at {commit[:12]} ({manifest.code.entrypoint})")
    name = repo.registered_name(environment, model)
    # Two trainings of one model conclude one after the other, each against the champion the
    # other left; under the lock, runs a killed training left RUNNING are closed.
    with lock.hold(registry, name, lock_wait, on_wait=report):
        closed = registry.close_abandoned_runs(environment, model)
        if closed:
            report(f"{name}: marked KILLED {len(closed)} run(s) a killed training left")
        run_id = runner.build_in_working_tree(repo.root, request, registry, signer)
        lineage = registry.lineage(run_id)
        promoter = Promoter(registry, report, keyring, handoffs=handoffs)
        candidate = promoter.register(name, lineage, spec.digest, source="")
        return promoter.conclude(spec, candidate, lineage, refusal, EventKind.TRAIN)
