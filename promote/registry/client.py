"""The registry: every read and write the pipeline makes of MLflow goes through `Registry`."""

from __future__ import annotations

import json
import re
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

from promote.build.digest import artifact_digest
from promote.build.lineage import (
    LINEAGE_ARTIFACT,
    MODEL_SIGNATURE_ARTIFACT,
    Lineage,
)
from promote.errors import ExternalError
from promote.registry.entities import (
    CHAMPION,
    EVENT_PREFIX,
    PREVIOUS,
    TAG_CHAMPION_FROM,
    TAG_EXPECTED_CHAMPION,
    TAG_EXPECTED_PREVIOUS,
    TAG_LINEAGE_DIGEST,
    TAG_MANAGED,
    TAG_RUN_MODEL,
    TAG_RUN_REGISTERED,
    Experiment,
    LoggedModel,
    RegisteredModel,
    Survey,
    Version,
    experiment_name,
)
from promote.registry.loading import import_mlflow
from promote.registry.paged import VERSIONS_PER_PAGE, PagedReader, name_filter, pages
from promote.registry.sql import SqlReader, is_sql_store, replica_reader
from promote.runtime.collector import long_lived
from promote.runtime.faults import failpoint
from promote.runtime.redact import redact, redact_mapping

# How MLflow's REST client words a server it could not reach (after its own retries).
_UNREACHABLE_MARKERS = re.compile(
    r"Max retries exceeded|Connection refused|Failed to establish|timed out|ConnectionError"
)

# Where a read replica of the registry's database is named (the CLI's option and variable).
REPLICA_SETTING = "--registry-db (PROMOTE_REGISTRY_DB)"

# The longest description MLflow's stores keep (a column of 5000 characters).
DESCRIPTION_LIMIT = 5000


def default_tracking_uri(root: Path) -> str:
    return f"sqlite:///{(root / '.promote' / 'registry.db').resolve()}"


def local_artifact_root(root: Path) -> Path:
    """Where artifacts go when an environment names no artifact store: beside the registry."""
    return root / ".promote" / "artifacts"


class Registry:
    """Reads and writes the registry. Every write the pipeline makes goes through here."""

    def __init__(
        self, tracking_uri: str, default_artifact_root: Path, replica: str | None = None
    ) -> None:
        self.tracking_uri = tracking_uri
        self.default_artifact_root = default_artifact_root
        # One bulk reader, chosen by the URI as MLflow picks its store: the tables where the
        # store is a database, the paged search API anywhere else (a server over http). Given a
        # read replica of the server's database, bulk reads go there; writes, single reads and
        # artifacts still go through `tracking_uri`.
        paged_reader = PagedReader(lambda: self.client, self._call)
        self.reader: PagedReader | SqlReader = paged_reader
        if replica is not None:
            self.reader = replica_reader(replica, REPLICA_SETTING)
        elif is_sql_store(tracking_uri):
            self.reader = SqlReader(tracking_uri, fallback=paged_reader)

    @classmethod
    def for_repository(
        cls, root: Path, tracking_uri: str | None = None, replica: str | None = None
    ) -> Registry:
        """The registry a GitOps repository uses: `tracking_uri`, else sqlite inside it."""
        root = root.resolve()
        return cls(tracking_uri or default_tracking_uri(root), local_artifact_root(root), replica)

    @cached_property
    def client(self) -> Any:
        import logging

        import_mlflow()
        with long_lived():
            from mlflow import MlflowClient

            # MLflow narrates schema migrations at INFO; the pipeline reports what matters itself.
            logging.getLogger("mlflow").setLevel(logging.WARNING)

            if self.tracking_uri.startswith("sqlite:///"):
                Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                    parents=True, exist_ok=True
                )
            # Builds the tracking store: SQLAlchemy models, Alembic, the schema check.
            return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return function(*args, **kwargs)
        except MlflowException as exc:
            raise self._failure(what, exc) from None

    def _failure(self, what: str, exc: Exception) -> ExternalError:
        first_line = (str(exc).splitlines() or [exc.__class__.__name__])[0]
        if _UNREACHABLE_MARKERS.search(str(exc)):
            return ExternalError(
                f"registry {redact(self.tracking_uri)} unreachable, gave up after retries "
                f"with backoff: {what} failed; nothing further was written"
            )
        return ExternalError(f"registry: {what} failed: {first_line}")

    @staticmethod
    def is_missing(exc: Exception) -> bool:
        """An MLflow error that says the thing asked for does not exist."""
        return getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")

    # -- reading -----------------------------------------------------------------------------

    def model(self, name: str) -> RegisteredModel | None:
        """A registered model with its aliases, tags and every version's tags, or None."""
        entity = self._registered_model(name)
        if entity is None:
            return None
        return RegisteredModel(
            name=name,
            aliases=_alias_versions(entity),
            tags=dict(entity.tags),
            versions=self._all_versions(name),
        )

    def aliases(self, name: str) -> dict[str, int] | None:
        """A registered model's aliases (alias -> version number), or None when it does not
        exist: one read, whatever the number of its versions, for a server that polls them."""
        entity = self._registered_model(name)
        return None if entity is None else _alias_versions(entity)

    def _registered_model(self, name: str) -> Any:
        """MLflow's registered model entity (no versions), or None."""
        import_mlflow()
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException as exc:
            if self.is_missing(exc):
                return None
            raise ExternalError(f"registry: reading {name} failed: {exc.message}") from None

    def models(self, names: list[str]) -> dict[str, RegisteredModel]:
        """Many registered models at once (absent names are left out), read live every time.

        The same result as `model` per name, in a number of reads that grows with pages of
        names, not with names.
        """
        return self.reader.models(names)

    def survey(self, names: list[str], listed: Iterable[str]) -> Survey:
        """`models(names)`, with every name under each `listed` prefix, in the same read."""
        return self.reader.survey(names, listed)

    def _all_versions(self, name: str) -> list[Version]:
        found = pages(
            self._call,
            self.client.search_model_versions,
            f"listing versions of {name}",
            filter_string=name_filter(name, exact=True),
            max_results=VERSIONS_PER_PAGE,
        )
        versions = [
            Version(name, int(v.version), v.source, v.run_id or "", dict(v.tags)) for v in found
        ]
        return sorted(versions, key=lambda v: v.version)

    def names(self, prefix: str = "") -> list[str]:
        """Every registered model name that starts with `prefix`, read live."""
        return self.reader.names(prefix)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        run = self._call(f"reading run {run_id}", self.client.get_run, run_id)
        return dict(run.data.metrics)

    def logged_model(self, run_id: str) -> LoggedModel:
        """The one model a run of the pipeline logged (`log_run`), and where its files are."""
        run = self._call(f"reading run {run_id}", self.client.get_run, run_id)
        outputs = run.outputs.model_outputs if run.outputs else []
        if len(outputs) != 1:
            raise ExternalError(f"registry: run {run_id} logged {len(outputs)} models, not one")
        model = self._call(
            f"reading the model of run {run_id}", self.client.get_logged_model, outputs[0].model_id
        )
        return LoggedModel(str(model.model_id), str(model.artifact_location))

    def lineage(self, run_id: str) -> Lineage:
        from mlflow.artifacts import download_artifacts

        with tempfile.TemporaryDirectory() as scratch:
            try:
                path = download_artifacts(
                    run_id=run_id,
                    artifact_path=LINEAGE_ARTIFACT,
                    dst_path=scratch,
                    tracking_uri=self.tracking_uri,
                )
            except Exception as exc:  # MLflow raises several types for a missing artifact
                if _UNREACHABLE_MARKERS.search(str(exc)):
                    raise self._failure(f"reading the lineage of run {run_id}", exc) from None
                raise ExternalError(
                    f"registry: run {run_id} has no lineage record ({exc.__class__.__name__})"
                ) from None
            return Lineage.from_json(Path(path).read_text(encoding="utf-8"))

    def download_model(self, version: Version, destination: Path) -> Path:
        from mlflow.artifacts import download_artifacts

        try:
            return Path(download_artifacts(artifact_uri=version.source, dst_path=str(destination)))
        except Exception as exc:  # storage errors surface as many exception types
            raise ExternalError(f"registry: cannot download {version.ref}: {exc}") from None

    def download_model_signature(self, run_id: str, destination: Path) -> Path | None:
        """The run's OpenSSF model signature, or None when the run has none."""
        from mlflow.artifacts import download_artifacts

        try:
            return Path(
                download_artifacts(
                    run_id=run_id,
                    artifact_path=MODEL_SIGNATURE_ARTIFACT,
                    dst_path=str(destination),
                    tracking_uri=self.tracking_uri,
                )
            )
        except Exception as exc:  # MLflow raises several types for a missing artifact
            if _UNREACHABLE_MARKERS.search(str(exc)):
                raise self._failure(f"reading the model signature of run {run_id}", exc) from None
            return None

    def stored_artifact(self, version: Version) -> tuple[str, int]:
        """The artifact digest and size recomputed from what storage holds now."""
        with tempfile.TemporaryDirectory() as scratch:
            path = self.download_model(version, Path(scratch))
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            return artifact_digest(path), size

    # -- writing ------------------------------------------------------------------------------

    def experiment_id(self, environment: str, artifact_root: str | None) -> str:
        name = experiment_name(environment)
        existing = self._pipeline_experiment(environment)
        if existing is not None:
            return str(existing.experiment_id)
        location = artifact_root or (self.default_artifact_root / environment).resolve().as_uri()
        try:
            return str(
                self._call(
                    "creating experiment",
                    self.client.create_experiment,
                    name,
                    artifact_location=location,
                )
            )
        except ExternalError:
            # Concurrent builds (`apply --jobs`) of a new environment: another one created it.
            created = self._pipeline_experiment(environment)
            if created is None:
                raise
            return str(created.experiment_id)

    def experiments(self, environments: Iterable[str]) -> dict[str, Experiment]:
        """The pipeline's experiment of each environment that has one, by experiment name."""
        found: dict[str, Experiment] = {}
        for environment in environments:
            name = experiment_name(environment)
            experiment = self._pipeline_experiment(environment)
            if experiment is not None:
                found[name] = Experiment(
                    name, str(experiment.experiment_id), str(experiment.artifact_location)
                )
        return found

    def _pipeline_experiment(self, environment: str) -> Any:
        """The environment's experiment (MLflow's entity), or None before its first run."""
        return self._call(
            "reading experiment", self.client.get_experiment_by_name, experiment_name(environment)
        )

    def close_abandoned_runs(self, environment: str, model: str) -> list[str]:
        """Mark KILLED the runs of `model` in `environment` still RUNNING; their ids.

        Only `log_run` leaves a run RUNNING, and only when its process died mid-way: the
        caller holds the model's apply lock, under which every such run is logged, so none of
        them can still be in progress. Their logged models still PENDING are marked FAILED, so
        the MLflow UI lists no model as being logged forever.
        """
        from mlflow.entities import LoggedModelStatus

        experiment = self._pipeline_experiment(environment)
        if experiment is None:
            return []
        running = self._call(
            "searching unfinished runs",
            self.client.search_runs,
            [experiment.experiment_id],
            filter_string=f"tags.`{TAG_RUN_MODEL}` = '{model}' and attributes.status = 'RUNNING'",
            max_results=100,
        )
        closed = [run.info.run_id for run in running]
        if closed:
            quoted = ", ".join(f"'{run_id}'" for run_id in closed)
            logged_models = self._call(
                "searching the abandoned runs' logged models",
                self.client.search_logged_models,
                [experiment.experiment_id],
                filter_string=f"source_run_id IN ({quoted})",
            )
            # MLflow's filter on status does not match PENDING: the status is read here.
            for logged in (m for m in logged_models if m.status == LoggedModelStatus.PENDING):
                self._call(
                    "closing an abandoned logged model",
                    self.client.finalize_logged_model,
                    logged.model_id,
                    LoggedModelStatus.FAILED,
                )
        for run_id in closed:
            self._call("closing an abandoned run", self.client.set_terminated, run_id, "KILLED")
        return closed

    def reusable_runs(self, environment: str, manifest_digests: set[str]) -> dict[str, str]:
        """For each manifest digest, a finished training run no version was registered from.

        Only an apply that stopped between training and registering leaves one: plan turns
        a manifest with any version into a re-point, a resume or a rejection instead. The
        candidates of every digest come in one read (a statement, or the pages of the few runs
        never registered), so a large promotion does not cost a search per manifest.
        """
        if not manifest_digests:
            return {}
        candidates = self.reader.unregistered_runs(experiment_name(environment), manifest_digests)
        return {
            digest: run_id
            for digest, run_ids in candidates.items()
            if (run_id := self._first_with_lineage(run_ids)) is not None
        }

    def _first_with_lineage(self, run_ids: list[str]) -> str | None:
        for run_id in run_ids:
            try:
                self.lineage(run_id)
            except Exception:  # a run without a sound lineage record is not reusable
                continue
            return run_id
        return None

    def log_run(
        self,
        experiment_id: str,
        tags: dict[str, str],
        params: dict[str, Any],
        model_dir: Path,
        lineage: Lineage,
        model_signature: Path | None,
    ) -> str:
        """One finished run holding a model directory and its lineage record; the run's id.

        Every run the pipeline makes is logged here, after its model exists: a training's
        output (`build.runner`) and the copy training mode alike. `lineage` is the record to
        store; its run id is filled in here, where the run comes to exist. The run's metrics
        are the record's. The run is named `{env}.{model}@{commit}` and tagged with its source, the
        data files it read are its dataset inputs, and the model is an MLflow 3 logged model
        of the run, with the metrics. The run ends FINISHED only once everything is logged, so
        a run this leaves unfinished is never taken for a result (`reusable_runs` reads
        FINISHED ones).
        """
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric, Param, RunTag

        run_id = str(
            self._call(
                "creating a run",
                self.client.create_run,
                experiment_id,
                tags=redact_mapping({**tags, **_source_tags(lineage)}),
                run_name=run_name(lineage),
            ).info.run_id
        )
        lineage = replace(lineage, run_id=run_id)
        text_params = {name: str(value) for name, value in params.items()}
        model_id = str(
            self._call(
                "creating the logged model",
                self.client.create_logged_model,
                experiment_id,
                name=lineage.model,
                source_run_id=run_id,
                params=text_params,
            ).model_id
        )
        self._call(
            "linking the model to its run",
            self.client.log_outputs,
            run_id,
            [LoggedModelOutput(model_id, step=0)],
        )
        self._call(
            "logging the data inputs", self.client.log_inputs, run_id, datasets=_datasets(lineage)
        )
        now = int(time.time() * 1000)
        self._call(
            "logging params and metrics",
            self.client.log_batch,
            run_id,
            metrics=[
                Metric(name, value, now, 0, model_id=model_id)
                for name, value in lineage.metrics.items()
            ],
            params=[Param(name, value) for name, value in text_params.items()],
            tags=[RunTag(TAG_LINEAGE_DIGEST, lineage.lineage_digest)],
        )
        self._call("logging the model", self.client.log_model_artifacts, model_id, str(model_dir))
        self._call(
            "finishing the logged model",
            self.client.finalize_logged_model,
            model_id,
            LoggedModelStatus.READY,
        )
        self._call(
            "logging lineage", self.client.log_text, run_id, lineage.to_json(), LINEAGE_ARTIFACT
        )
        if model_signature is not None:
            self._call(
                "logging the model signature",
                self.client.log_artifact,
                run_id,
                str(model_signature),
                str(PurePosixPath(MODEL_SIGNATURE_ARTIFACT).parent),
            )
        self._call("closing the run", self.client.set_terminated, run_id, "FINISHED")
        return run_id

    def log_report(self, run_id: str, files: list[Path], artifact_path: str) -> None:
        """Add `files` to a finished run, under `artifact_path`: a report about the run's model
        (a drift report), kept beside it. The model and its lineage record are left as they
        are."""
        for path in files:
            self._call(
                f"logging {artifact_path}/{path.name} to run {run_id}",
                self.client.log_artifact,
                run_id,
                str(path),
                artifact_path,
            )

    def create_exclusive(self, name: str, tags: dict[str, str], description: str) -> bool:
        """Create a registered model, atomically: False when the name is already taken.

        Names are unique in every MLflow store, so of two callers racing, one wins. A model
        taken and deleted at once makes MLflow's read-back find nothing: taken as well.
        """
        import_mlflow()
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(name, tags=tags, description=description)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_ALREADY_EXISTS" or self.is_missing(exc):
                return False
            raise self._failure(f"creating {name}", exc) from None
        return True

    def delete_model(self, name: str) -> None:
        """Delete a registered model; one already gone is fine."""
        import_mlflow()
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_registered_model(name)
        except MlflowException as exc:
            if not self.is_missing(exc):
                raise self._failure(f"deleting {name}", exc) from None

    def register(self, name: str, model: LoggedModel, run_id: str, tags: dict[str, str]) -> Version:
        """A new version of `name` from `model`, the logged model of `run_id`: its source is
        where the logged model's files are."""
        from mlflow.exceptions import MlflowException

        tags = redact_mapping(tags)  # registry tags are read by everyone: never a secret
        try:
            self.client.get_registered_model(name)
        except MlflowException as exc:
            if not self.is_missing(exc):
                raise ExternalError(f"registry: reading {name} failed: {exc.message}") from None
            self._call(
                f"creating {name}",
                self.client.create_registered_model,
                name,
                tags={TAG_MANAGED: "true"},
            )
        created = self._call(
            f"registering a version of {name}",
            self.client.create_model_version,
            name,
            model.artifact_uri,
            run_id=run_id,
            tags=tags,
            await_creation_for=0,
            model_id=model.model_id,
        )
        self._link_version(model.model_id, name, str(created.version))
        self._call(
            f"marking run {run_id} registered",
            self.client.set_tag,
            run_id,
            TAG_RUN_REGISTERED,
            f"{name}/{created.version}",
        )
        return Version(name, int(created.version), model.artifact_uri, run_id, dict(tags))

    def _link_version(self, model_id: str, name: str, version: str) -> None:
        """Name the version on its logged model, as a tracking server does on registering one:
        the MLflow UI shows a logged model's versions from this tag, which a database store
        leaves to the client."""
        from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

        model = self._call(
            f"reading logged model {model_id}", self.client.get_logged_model, model_id
        )
        linked = json.loads(model.tags.get(MLFLOW_MODEL_VERSIONS) or "[]")
        entry = {"name": name, "version": version}
        if entry not in linked:
            self._call(
                f"linking {name}/{version} to its logged model",
                self.client.set_logged_model_tags,
                model_id,
                {MLFLOW_MODEL_VERSIONS: json.dumps([*linked, entry])},
            )

    def describe_version(self, version: Version, text: str) -> None:
        """The version's description, which the MLflow UI shows on its page (markdown)."""
        self._call(
            f"describing {version.ref}",
            self.client.update_model_version,
            version.name,
            str(version.version),
            description=redact(text)[:DESCRIPTION_LIMIT],
        )

    def tag_version(self, version: Version, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._call(
                f"tagging {version.ref}",
                self.client.set_model_version_tag,
                version.name,
                str(version.version),
                key,
                redact(value),
            )

    def move_champion(self, name: str, version: int, current: int | None) -> None:
        """Point `champion` at `version`; the version it leaves becomes `previous`.

        The intent is recorded first (which version the pipeline sets, and from which), so a
        crash between the two alias writes reads as an unfinished move, never as drift.
        """
        intent = {TAG_EXPECTED_CHAMPION: str(version), TAG_CHAMPION_FROM: str(current or "")}
        if current is not None and current != version:
            intent[TAG_EXPECTED_PREVIOUS] = str(current)
        for key, value in intent.items():
            self._call(
                "recording the champion", self.client.set_registered_model_tag, name, key, value
            )
        failpoint("after-intent")
        if current is not None and current != version:
            self._call(
                "setting previous",
                self.client.set_registered_model_alias,
                name,
                PREVIOUS,
                str(current),
            )
        failpoint("after-previous")
        self._call(
            "setting champion", self.client.set_registered_model_alias, name, CHAMPION, str(version)
        )
        failpoint("after-champion")

    def append_event(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        """Append to the model's audit history: one tag per event, keys sort by time."""
        now = datetime.now(timezone.utc)
        record = {"time": now.isoformat(timespec="seconds"), **event}
        key = f"{EVENT_PREFIX}{time.time_ns():020d}.{uuid.uuid4().hex[:8]}"
        self._call(
            "writing history",
            self.client.set_registered_model_tag,
            name,
            key,
            redact(json.dumps(record, sort_keys=True)),
        )
        return record


def run_name(lineage: Lineage) -> str:
    """What the MLflow UI calls a run: which model, for which environment, from which commit."""
    return f"{lineage.environment}.{lineage.model}@{lineage.code_commit[:8]}"


def _source_tags(lineage: Lineage) -> dict[str, str]:
    """MLflow's own tags for where a run's code came from, so its UI links the commit."""
    from mlflow.utils.mlflow_tags import (
        MLFLOW_GIT_COMMIT,
        MLFLOW_GIT_REPO_URL,
        MLFLOW_SOURCE_NAME,
        MLFLOW_SOURCE_TYPE,
        MLFLOW_USER,
    )

    tags = {
        MLFLOW_GIT_COMMIT: lineage.code_commit,
        MLFLOW_SOURCE_NAME: lineage.entrypoint,
        MLFLOW_SOURCE_TYPE: "JOB",
        MLFLOW_USER: lineage.trained_by,
    }
    if lineage.code_repo != ".":  # "." is the GitOps repository itself, which has no URL here
        tags[MLFLOW_GIT_REPO_URL] = lineage.code_repo
    return tags


def _datasets(lineage: Lineage) -> list[Any]:
    """Each data file the training read, as an MLflow dataset input with its sha256 (as much of
    it as MLflow's digest field holds; the source states all of it)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
    from mlflow.utils.validation import MAX_DATASET_DIGEST_SIZE

    base = lineage.data_uri.rstrip("/")
    return [
        DatasetInput(
            Dataset(
                name=entry.path,
                digest=entry.sha256[:MAX_DATASET_DIGEST_SIZE],
                source_type="s3" if base.startswith("s3://") else "local",
                source=json.dumps({"uri": f"{base}/{entry.path}", "sha256": entry.sha256}),
            ),
            tags=[InputTag(MLFLOW_DATASET_CONTEXT, "training")],
        )
        for entry in lineage.data_snapshot
    ]


def _alias_versions(entity: Any) -> dict[str, int]:
    return {alias: int(number) for alias, number in (entity.aliases or {}).items()}
