"""Act on the comparison `plan` made: build, check, and move `champion` only when all checks pass.

A failure at any check tags the candidate rejected with the reason and leaves `champion` where
it was. Nothing here decides *what* to do; `plan.compute` does.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promote import gates
from promote.access.preflight import preflight
from promote.build import runner
from promote.build.data import resolve_uri
from promote.build.lineage import Lineage, compare
from promote.description import Conclusion, version_description
from promote.errors import CheckFailed, InputError, PromoteError, ProofInvalid
from promote.github.approval import Approvals, Authorization
from promote.github.context import CiContext
from promote.manifests.repository import ModelSpec, Repository, environment_file
from promote.plan import Action, ModelState, compute, decide, gather
from promote.proof.statement import Claims, verification_summary
from promote.proof.trust import Keyring, Signer
from promote.proof.versions import prove_model, proven_claims, require_signed_digest
from promote.registry import footprint, lock
from promote.registry.client import Registry
from promote.registry.entities import (
    TAG_CHAMPION_FROM,
    TAG_COMMIT,
    TAG_DATA_DRIFT,
    TAG_DATA_LISTING,
    TAG_MANIFEST_DIGEST,
    TAG_MERGE_COMMIT,
    TAG_PROVENANCE,
    TAG_REASON,
    TAG_RUN_ENVIRONMENT,
    TAG_RUN_MODEL,
    TAG_VERDICT,
    TAG_VERIFICATION,
    VERDICT_PASSED,
    VERDICT_PENDING,
    VERDICT_REJECTED,
    EventKind,
    RegisteredModel,
    Version,
)
from promote.registry.loading import import_for_threads
from promote.runtime.faults import failpoint
from promote.runtime.parallel import bounded
from promote.serving.handoff import RESENT, Delivery, Handoffs, Notice

if TYPE_CHECKING:
    from promote.drift.promotion import PromotionDrift
    from promote.manifests.schema import DriftRules

Report = Callable[[str], None]


@dataclass
class Outcome:
    environment: str
    model: str
    action: str
    version: int | None
    ok: bool
    detail: str
    # Each hand-off target's attempts after champion moved: a failed one is only a warning.
    handoff: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class ApplyResult:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)


@dataclass(frozen=True)
class Verified:
    """A version whose signed provenance holds and whose stored artifact is the signed one."""

    version: Version
    claims: Claims
    size: int


def only_model(states: list[ModelState], model: str, environment: str | None) -> list[ModelState]:
    """The states of `model`; an `InputError` when no manifest declares it."""
    chosen = [state for state in states if state.model == model]
    if not chosen:
        where = f"environments/{environment}" if environment else "environments/"
        raise InputError("--model", None, f"no manifest of {model!r} under {where}")
    return chosen


class Pipeline:
    """The write side: every registry change a promotion makes."""

    def __init__(
        self,
        repo: Repository,
        registry: Registry,
        report: Report = lambda _: None,
        lock_wait: float = 900.0,
        jobs: int = 1,
    ) -> None:
        self.repo = repo
        self.registry = registry
        self.report = report
        self.lock_wait = lock_wait
        self.jobs = jobs  # how many models are acted on at once, each under its own lock
        self.keyring = Keyring(repo.environments)
        self.handoffs = Handoffs(repo, registry, report)
        self.promoter = Promoter(registry, report, self.keyring, handoffs=self.handoffs)

    # -- apply -------------------------------------------------------------------------------

    def apply(
        self,
        environment: str | None = None,
        break_glass: str | None = None,
        context: CiContext | None = None,
        model: str | None = None,
    ) -> ApplyResult:
        """`break_glass` (a reason) bypasses approval rules and is recorded; `context` is CI's;
        `model`: only that model's manifest (one job of the apply workflow's matrix)."""
        states = compute(self.repo, self.registry, environment)
        if model is not None:
            states = only_model(states, model, environment)
        # Approval comes first: a change nobody approved reads and writes nothing.
        approvals = Approvals(self.repo, context or CiContext.from_environ(), break_glass)
        approvals.check_run(s.environment for s in states)
        self.promoter.merge_commit = approvals.head
        for state in states:
            if state.action.writes:
                self._authorize(approvals, state.spec)
        for authorization in self.promoter.authorizations.values():
            if authorization.break_glass:
                self.report(
                    f"{authorization.environment}.{authorization.model}: BREAK-GLASS, approval "
                    f"bypassed and recorded: {authorization.break_glass}"
                )
        refused = [s for s in states if s.action is Action.REFUSED]
        if refused:
            # Bad references are bad input: refuse the whole apply before any write.
            assert refused[0].refusal is not None
            raise refused[0].refusal
        # An environment this machine cannot sign for stops here too: it could only forge.
        for environment in sorted({s.environment for s in states if s.action.writes}):
            self.keyring.signer(environment).check()
            self.handoffs.check(environment)  # a hand-off that could never be sent: bad input
        for state in states:
            if state.action is Action.BUILD and state.spec.config.training == "retrain":
                runner.check_ready(state.spec.config)
        # Credentials that cannot read the data or write the artifact store stop here, unwritten.
        preflight(self.repo, [s.spec for s in states if s.action is Action.BUILD], self.registry)
        if self.jobs <= 1:
            return ApplyResult([self._act(state, approvals) for state in states])
        import_for_threads()
        Signer.import_libraries()
        return ApplyResult(
            bounded(states, lambda state: self._isolated(state, approvals), self.jobs, self._ended)
        )

    def _isolated(self, planned: ModelState, approvals: Approvals) -> Outcome:
        """`_act`, with any failure this model's own outcome: the builds beside it go on."""
        try:
            return self._act(planned, approvals)
        except PromoteError as exc:
            return _failed(planned, exc.message)

    def _ended(self, outcome: Outcome) -> None:
        verdict = "ok" if outcome.ok else "FAILED"
        self.report(f"{outcome.environment}.{outcome.model}: {verdict}: {outcome.detail}")

    def _act(self, planned: ModelState, approvals: Approvals) -> Outcome:
        if not planned.action.writes:
            return self._settled(planned)
        name = planned.registered_name
        planned.spec.confirm()  # before the lock: an altered cache stops apply unwritten
        try:
            with lock.hold(self.registry, name, self.lock_wait, on_wait=self.report):
                # Another applier may have acted while this one waited: decide again, live.
                spec = planned.spec
                closed = self.registry.close_abandoned_runs(spec.environment, spec.model)
                if closed:
                    self.report(f"{name}: marked KILLED {len(closed)} run(s) a killed apply left")
                state = decide(spec, gather(self.repo, self.registry, [spec]))
                if state.action.writes:
                    self._authorize(approvals, spec)  # what is decided here is authorized here
                if state.action is Action.REPOINT:
                    assert state.target is not None
                    return self._repoint(state, state.target)
                if state.action is Action.RESUME:
                    assert state.target is not None
                    return self._resume(state, state.target)
                if state.action is Action.BUILD:
                    return self._build(state)
                if state.action is Action.RECORD:
                    return self._record(state)
                return self._settled(state)
        except CheckFailed as exc:
            self.report(f"{name}: {exc.message}")
            return _failed(planned, exc.message)

    def hand_off_again(self, environment: str, model: str) -> list[Delivery]:
        """`promote handoff`: the current champion's notice, sent again (for a receiver that was
        down), once the champion proves to be the one the history last made champion."""
        spec = self.repo.spec(environment, model)
        if self.handoffs.config(environment) is None:
            raise InputError(
                environment_file(environment), "handoff", "not configured: nothing to notify"
            )
        self.handoffs.check(environment)
        name = self.repo.registered_name(environment, model)
        registered = self.registry.model(name)
        champion = registered.champion if registered else None
        if registered is None or champion is None:
            raise CheckFailed(f"{name} has no champion to hand off")
        if champion.version != registered.last_champion():
            raise CheckFailed(
                f"{name}: champion v{champion.version} is not where the history put it "
                f"(v{registered.last_champion()}): run promote apply first"
            )
        verified = self.promoter.verified(name, champion.version, environment, passed=True)
        self.promoter.merge_commit = champion.tags.get(TAG_MERGE_COMMIT) or None
        previous = registered.tags.get(TAG_CHAMPION_FROM) or None
        return self.promoter.hand_off(RESENT, spec, verified, int(previous) if previous else None)

    def _authorize(self, approvals: Approvals, spec: ModelSpec) -> None:
        authorization = approvals.authorize(spec)
        if authorization is not None:
            self.promoter.authorizations[spec.environment, spec.model] = authorization

    @staticmethod
    def _settled(state: ModelState) -> Outcome:
        """Nothing to write: in sync, a dev template, or a manifest already rejected."""
        ok = state.action.in_sync
        version = state.champion if ok else state.target
        return Outcome(
            state.environment, state.model, state.action.value, version, ok, state.detail
        )

    def _record(self, state: ModelState) -> Outcome:
        """Log the promotion a crash kept out of the history (the aliases had already moved)."""
        name = state.registered_name
        model = state.registered
        assert model is not None and state.target is not None
        version = model.version(state.target)
        assert version is not None
        came_from = model.tags.get(TAG_CHAMPION_FROM) or None
        previous = int(came_from) if came_from else None
        self.registry.append_event(
            name,
            self.promoter.event(
                EventKind.PROMOTE,
                state.spec,
                version.version,
                previous,
                version.tags.get(TAG_COMMIT, ""),
            ),
        )
        self.report(f"{name}: recorded the promotion of v{version.version} in the history")
        return Outcome(
            state.environment, state.model, "record", version.version, True, state.detail
        )

    def _repoint(self, state: ModelState, number: int) -> Outcome:
        name = state.registered_name
        model = state.registered
        verified = self.promoter.verified(name, number, state.environment, passed=True)
        version = verified.version
        previous = state.champion
        self.registry.tag_version(version, self.promoter.promotion_tags(state.spec))
        self.registry.move_champion(name, number, previous)
        if model is None or number not in model.logged_versions:
            kind = EventKind.PROMOTE  # finishing a promotion that a crash interrupted
        elif state.drift and number == model.last_champion():
            kind = EventKind.REPAIR  # undoing a hand-made change, not choosing an older model
        elif previous is not None and number < previous:
            kind = EventKind.ROLLBACK
        else:
            kind = EventKind.REPOINT
        self.registry.append_event(
            name,
            self.promoter.event(
                kind, state.spec, number, previous, version.tags.get(TAG_COMMIT, "")
            ),
        )
        self.report(f"{name}: champion v{previous} -> v{number} ({kind.value}, no rebuild)")
        deliveries = self.promoter.hand_off(kind.value, state.spec, verified, previous)
        return Outcome(
            state.environment,
            state.model,
            kind.value,
            number,
            True,
            f"champion -> v{number}",
            [d.to_json() for d in deliveries],
        )

    def _build(self, state: ModelState) -> Outcome:
        spec = state.spec
        manifest = spec.manifest
        assert manifest.source is not None and manifest.code.commit is not None
        source = state.source
        assert source is not None, "decide gives a build its source"
        source_lineage = self._source_lineage(spec, source)
        rules = self._drift_rules(spec, source_lineage)  # bad rules stop it before training
        config = spec.config
        failpoint("before-training")
        reusable = state.reusable_run
        if reusable is not None:
            self.report(
                f"{state.registered_name}: reusing run {reusable[:8]}, finished for this "
                f"manifest by an apply that stopped before registering it"
            )
            run_id = reusable
        elif config.training == "copy":
            self.report(f"{state.registered_name}: copying {source.ref}")
            run_id = self._copy(spec, source, source_lineage)
        else:
            self.report(
                f"{state.registered_name}: rebuilding {manifest.code.entrypoint} at "
                f"{manifest.code.commit[:12]} on {spec.environment} data"
            )
            request = runner.BuildRequest.of_spec(
                self.repo.root,
                spec,
                manifest.code.commit,
                dict(manifest.code.params),
                run_tags={TAG_MANIFEST_DIGEST: spec.digest},
                on_output=self.report,
            )
            run_id = runner.build_at_commit(
                self.repo.root, request, self.registry, self.keyring.signer(spec.environment)
            )
        failpoint("after-training")
        lineage = self.registry.lineage(run_id)
        candidate = self.promoter.register(
            state.registered_name, lineage, spec.digest, source=source.ref
        )
        problems = self._lineage_problems(spec, source_lineage, lineage)
        drift = self._promotion_drift(candidate, source, source_lineage, lineage, rules)
        return self.promoter.conclude(spec, candidate, lineage, problems, EventKind.PROMOTE, drift)

    def _resume(self, state: ModelState, number: int) -> Outcome:
        """Finish the checks of a version a crashed apply registered but did not conclude."""
        spec = state.spec
        candidate = state.registered.version(number) if state.registered else None
        if candidate is None:
            raise CheckFailed(f"{state.registered_name}/{number} disappeared from the registry")
        if state.refusal is not None:
            raise state.refusal
        source = state.source
        assert source is not None
        source_lineage = self._source_lineage(spec, source)
        lineage = self.registry.lineage(candidate.run_id)
        problems = self._lineage_problems(spec, source_lineage, lineage)
        rules = self._drift_rules(spec, source_lineage)
        drift = self._promotion_drift(candidate, source, source_lineage, lineage, rules)
        return self.promoter.conclude(spec, candidate, lineage, problems, EventKind.PROMOTE, drift)

    @staticmethod
    def _drift_rules(spec: ModelSpec, source_lineage: Lineage) -> DriftRules:
        """The target environment's drift rules, refined by the manifest's, checked against
        the source's training profile (a rule naming no column of it is bad input)."""
        from promote.drift.check import drift_rules  # lazy: pandas, for builds only

        if not source_lineage.profile:
            return spec.config.drift  # nothing to compare: nothing for rules to name
        return drift_rules(spec, source_lineage.profile, source_lineage)

    def _promotion_drift(
        self,
        candidate: Version,
        source: Version,
        source_lineage: Lineage,
        lineage: Lineage,
        rules: DriftRules,
    ) -> PromotionDrift:
        """How far the candidate's training data is from its source's, feature by feature."""
        from promote.drift.promotion import promotion_drift

        drift = promotion_drift(source.ref, source_lineage.profile, lineage.profile, rules)
        self.report(f"{candidate.name}: data drift {drift.summary}")
        return drift

    def _source_lineage(self, spec: ModelSpec, source: Version) -> Lineage:
        """The validated version's lineage record, once its signatures and storage prove it."""
        assert spec.source is not None
        verified = self.promoter.verified(
            source.name, source.version, spec.source.environment, passed=True
        )
        lineage = self.registry.lineage(source.run_id)
        problems = verified.claims.lineage_problems(lineage)
        if problems:
            raise ProofInvalid(f"{source.ref}: {problems[0]}")
        return lineage

    def _lineage_problems(self, spec: ModelSpec, source: Lineage, rebuilt: Lineage) -> list[str]:
        config = spec.config
        data_root = resolve_uri(self.repo.root, config.data_root, "")
        problems = compare(source, rebuilt, data_root.rstrip("/"), copied=config.training == "copy")
        name = self.repo.registered_name(spec.environment, spec.model)
        if problems:
            self.report(f"{name}: lineage match FAILED: {'; '.join(problems)}")
        else:
            self.report(
                f"{name}: lineage match ok: same code, params, libraries, Python, schema, "
                f"signature and flavor as {source.environment}; data is {spec.environment}'s own"
            )
        return problems

    def _copy(self, spec: ModelSpec, source: Version, source_lineage: Lineage) -> str:
        """Copy mode: the validated artifact itself, logged anew under this environment."""
        config = spec.config
        experiment_id = self.registry.experiment_id(config.name, config.artifact_root)
        copied_lineage = replace(
            source_lineage,
            environment=config.name,
            trained_by=runner.who_runs(),
            copied_from=source.ref,
        )
        with tempfile.TemporaryDirectory() as scratch:
            model_dir = self.registry.download_model(source, Path(scratch) / "download")
            signature = Path(scratch) / "model.sig"
            self.keyring.signer(spec.environment).sign_model(model_dir, signature)
            return self.registry.log_run(
                experiment_id,
                {
                    TAG_RUN_MODEL: spec.model,
                    TAG_RUN_ENVIRONMENT: config.name,
                    TAG_MANIFEST_DIGEST: spec.digest,
                },
                source_lineage.params,
                model_dir,
                copied_lineage,
                signature,
            )


class Promoter:
    """Every registry write that concludes a build: register the candidate, run its checks and
    gates, then move `champion` to it or reject it, and append the history."""

    def __init__(
        self,
        registry: Registry,
        report: Report,
        keyring: Keyring,
        authorizations: dict[tuple[str, str], Authorization] | None = None,
        handoffs: Handoffs | None = None,
    ) -> None:
        self.registry = registry
        self.report = report
        self.keyring = keyring
        self.authorizations = authorizations if authorizations is not None else {}
        self.handoffs = handoffs
        # The commit apply runs at, recorded on every promotion: an older one is never applied.
        self.merge_commit: str | None = None

    def register(self, name: str, lineage: Lineage, manifest_digest: str, source: str) -> Version:
        """A new version, created with its signed provenance: it is never unsigned, even for a
        moment a crash could freeze."""
        model = self.registry.logged_model(lineage.run_id)
        claims = Claims.of(lineage, name, model.artifact_uri, manifest_digest, source)
        envelope = self.keyring.signer(lineage.environment).sign_statement(claims.statement())
        tags = {**claims.tags(), TAG_PROVENANCE: envelope, TAG_VERDICT: VERDICT_PENDING}
        listing = lineage.listing_tag
        if listing is not None:
            tags[TAG_DATA_LISTING] = listing
        version = self.registry.register(name, model, lineage.run_id, tags)
        self.report(f"{name}: registered v{version.version} (run {lineage.run_id[:8]})")
        failpoint("after-register")
        return version

    def verified(self, name: str, number: int, environment: str, passed: bool) -> Verified:
        """Read live, the version `number` of `name`, proven: its provenance signed for
        `environment`, its tags the signed ones, not a copy of another version's run, its
        stored artifact the signed digest and, when `passed`, a signed verification summary.
        Every alias move goes through here; `ProofInvalid` otherwise."""
        model = self.registry.model(name)
        version = model.version(number) if model else None
        if model is None or version is None:
            raise CheckFailed(f"{name}/{number} disappeared from the registry")
        claims = proven_claims(model, version, self.keyring.trust(environment), passed)
        digest, size = self.registry.stored_artifact(version)
        require_signed_digest(version, digest, claims)
        return Verified(version, claims, size)

    def _champion_metrics(
        self, model: RegisteredModel, champion: Version, environment: str
    ) -> dict[str, float] | None:
        """The champion's metrics as its signed lineage record states them (run metrics are
        editable by anyone who can log); None when the champion cannot be proven. `model` is
        the registered model as conclude read it: no second read."""
        proof = prove_model(model, self.keyring.trust(environment)).get(champion.version)
        if proof is None or proof.claims is None:
            return None
        lineage = self.registry.lineage(champion.run_id)
        return None if proof.claims.lineage_problems(lineage) else lineage.metrics

    def conclude(
        self,
        spec: ModelSpec,
        candidate: Version,
        lineage: Lineage,
        problems: list[str],
        event: EventKind,
        drift: PromotionDrift | None = None,
    ) -> Outcome:
        """Run the gates, then either move `champion` to the candidate or reject it; `drift`:
        a rebuild's data against its source's, recorded, described and gated on."""
        name = candidate.name
        model = self.registry.model(name)
        champion = model.champion if model else None
        found_before = problems
        problems = list(problems)
        size = 0
        summary = ""
        measured: footprint.Comparison | None = None
        try:
            verified = self.verified(name, candidate.version, spec.environment, passed=False)
        except CheckFailed as exc:
            problems.append(exc.message)
        else:
            size = verified.size
            measured = footprint.compare(self.registry, verified.version, size, champion)
            self.report(f"{name}: footprint {measured.describe()}")
            problems += verified.claims.lineage_problems(lineage)
            summary = self.keyring.signer(spec.environment).sign_statement(
                verification_summary(
                    name, candidate.version, verified.claims, verified.version.tags[TAG_PROVENANCE]
                )
            )
        champion_metrics = None
        if model is not None and champion is not None:
            champion_metrics = self._champion_metrics(model, champion, spec.environment)
            if champion_metrics is None and spec.gates.no_regression is not None:
                problems.append(f"champion v{champion.version} cannot be proven: no baseline")
        measured_drift = None
        if drift is not None:
            share = drift.share if drift.problem is None else None
            measured_drift = gates.MeasuredDrift(share, drift.drifted_features, drift.problem)
        results = gates.evaluate(
            spec.gates, lineage.metrics, champion_metrics, size, measured, measured_drift
        )
        footprint_tags = measured.tags() if measured else {}
        drift_tags = {TAG_DATA_DRIFT: drift.tag()} if drift is not None else {}
        problems += [f"gate {r}" for r in results if not r.passed]
        for line in results:
            self.report(f"{name}: gate {line}")
        previous = champion.version if champion else None
        if problems:
            reason = "; ".join(problems)
            self._describe(
                spec, candidate, lineage, found_before, results, reason, previous, measured, drift
            )
            self.registry.tag_version(
                candidate,
                {
                    **footprint_tags,
                    TAG_VERDICT: VERDICT_REJECTED,
                    TAG_REASON: reason[:5000],
                    **drift_tags,
                    **self.promotion_tags(spec),
                },
            )
            self.registry.append_event(
                name,
                self.event(
                    EventKind.REJECT,
                    spec,
                    candidate.version,
                    previous,
                    lineage.code_commit,
                    reason,
                    drift,
                ),
            )
            stays = f"v{previous}" if previous is not None else "unset"
            self.report(f"{name}: v{candidate.version} rejected; champion stays {stays}")
            return Outcome(
                spec.environment,
                spec.model,
                event.value,
                candidate.version,
                False,
                f"rejected: {reason}",
            )
        self._describe(
            spec, candidate, lineage, found_before, results, None, previous, measured, drift
        )
        self.registry.tag_version(
            candidate,
            # The verdict goes last: a version is "passed" only once everything else is recorded.
            {
                **footprint_tags,
                **drift_tags,
                **self.promotion_tags(spec),
                TAG_REASON: "",
                TAG_VERIFICATION: summary,
                TAG_VERDICT: VERDICT_PASSED,
            },
        )
        failpoint("after-verdict")
        self.registry.move_champion(name, candidate.version, previous)
        self.registry.append_event(
            name,
            self.event(event, spec, candidate.version, previous, lineage.code_commit, "", drift),
        )
        was = f"v{previous}" if previous is not None else "(none)"
        self.report(f"{name}: champion {was} -> v{candidate.version}")
        deliveries = self.hand_off(event.value, spec, verified, previous)
        return Outcome(
            spec.environment,
            spec.model,
            event.value,
            candidate.version,
            True,
            f"champion -> v{candidate.version}",
            [d.to_json() for d in deliveries],
        )

    def hand_off(
        self, event: str, spec: ModelSpec, verified: Verified, previous: int | None
    ) -> list[Delivery]:
        """Tell the environment's serving infrastructure of the champion `verified` is: after
        the move and its history event, so nothing it does can block or undo the promotion."""
        if self.handoffs is None:
            return []
        version = verified.version
        notice = Notice(
            event,
            spec.model,
            spec.environment,
            version.name,
            version.version,
            previous,
            verified.claims.artifact_digest,
            version.run_id,
            # A dev training applies no merge: its code commit is this repository's HEAD.
            self.merge_commit or verified.claims.commit,
        )
        return self.handoffs.announce(notice)

    def _describe(
        self,
        spec: ModelSpec,
        candidate: Version,
        lineage: Lineage,
        lineage_problems: list[str],
        results: list[gates.GateResult],
        reason: str | None,
        previous: int | None,
        measured: footprint.Comparison | None,
        drift: PromotionDrift | None,
    ) -> None:
        """The version's description for the MLflow UI, before its verdict: a crash between
        the two leaves it pending, and concluding it again describes it again."""
        conclusion = Conclusion(
            spec,
            candidate,
            lineage,
            lineage_problems,
            results,
            reason,
            previous,
            self.authorizations.get((spec.environment, spec.model)),
            self.merge_commit,
            measured,
            drift,
        )
        self.registry.describe_version(candidate, version_description(conclusion))

    def event(
        self,
        kind: EventKind,
        spec: ModelSpec,
        version: int,
        previous: int | None,
        commit: str,
        reason: str = "",
        drift: PromotionDrift | None = None,
    ) -> dict[str, Any]:
        source = spec.source
        data_drift = {"data_drift": drift.summary} if drift is not None else {}
        return {
            "action": kind.value,
            "version": version,
            "previous": previous,
            "commit": commit,
            "manifest_digest": spec.digest,
            "source": f"{source.environment}/{source.version}" if source else "",
            "actor": runner.who_runs(),
            "reason": reason,
            "merge_commit": self.merge_commit or "",
            **data_drift,
            **self._authorization_fields(spec),
        }

    def promotion_tags(self, spec: ModelSpec) -> dict[str, str]:
        """The commit applied, and the approved PR and approvers or the break-glass reason."""
        authorization = self.authorizations.get((spec.environment, spec.model))
        tags = authorization.tags() if authorization else {}
        if self.merge_commit:
            tags[TAG_MERGE_COMMIT] = self.merge_commit
        return tags

    def _authorization_fields(self, spec: ModelSpec) -> dict[str, Any]:
        authorization = self.authorizations.get((spec.environment, spec.model))
        return authorization.event_fields() if authorization else {}


def _failed(planned: ModelState, reason: str) -> Outcome:
    """The outcome of a model whose action did not complete, for `reason`."""
    return Outcome(
        planned.environment, planned.model, planned.action.value, planned.target, False, reason
    )
