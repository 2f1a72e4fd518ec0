"""`promote drift NAME --env ENV`: the data a champion sees now, against what it was trained on.

The champion's lineage record is read and checked against its signed provenance, so the training
profile compared with is the one that was signed. The data is the environment's current data for
the model (each dataset the training read, read again where it was) or a batch given. With labels,
the champion, loaded as serving loads it (from files whose digest and signatures verify), scores
the batch. The report is saved and logged to the champion's run.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from promote.build.data import DataReader, resolve_uri
from promote.build.lineage import Lineage
from promote.drift.compare import DatasetDrift, compare_dataset
from promote.drift.concept import METRICS, MetricDrift, computable, concept_drift
from promote.drift.profile import CATEGORICAL, NUMERIC, PROFILE_FORMAT
from promote.drift.report import write_report
from promote.drift.tally import DatasetTally
from promote.errors import BadReference, CheckFailed, InputError, ProofInvalid
from promote.manifests.repository import ModelSpec, Repository, environment_file
from promote.manifests.schema import DriftRules
from promote.proof.trust import Keyring
from promote.proof.versions import proven_claims
from promote.registry.client import Registry
from promote.registry.entities import Version
from promote.registry.loading import class_probabilities
from promote.serving.storage import list_inputs, parquet_file
from promote.serving.verified import load_verified

# Where in the champion's run each report goes, one folder per check.
DRIFT_ARTIFACT_DIR = "promote/drift"
# Methods that need numbers; the others compare binned counts of any column.
NUMERIC_METHODS = frozenset({"ks", "wasserstein"})
# Rows read and tallied at a time: memory holds one such chunk, whatever the batch's size.
CHUNK_ROWS = 65_536
# The dtypes pandas gives a column of text.
TEXT_DTYPES = frozenset({"object", "str", "string"})


@dataclass
class DriftResult:
    registered: str
    champion: str  # the version compared with, as name/version
    run_id: str
    source: str  # the data compared: the model's data URI, or the batch given
    checked_at: str
    datasets: list[DatasetDrift]
    labels: str | None = None
    concept: list[MetricDrift] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # metrics not recomputed, and why
    report_files: list[Path] = field(default_factory=list)
    logged_to: str | None = None

    @property
    def concept_drifted(self) -> bool:
        return any(metric.drifted for metric in self.concept)

    @property
    def drifted(self) -> bool:
        return self.concept_drifted or any(dataset.drifted for dataset in self.datasets)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.drifted,
            "drifted": self.drifted,
            "registered_model": self.registered,
            "champion": self.champion,
            "run_id": self.run_id,
            "source": self.source,
            "checked_at": self.checked_at,
            "datasets": [dataset.to_json() for dataset in self.datasets],
            "labels": self.labels,
            "concept": [metric.to_json() for metric in self.concept],
            "concept_drifted": self.concept_drifted,
            "metrics_left_out": self.left_out,
            "report": [str(path) for path in self.report_files],
            "logged_to": self.logged_to,
        }


def check_drift(
    repo: Repository,
    registry: Registry,
    environment: str,
    model: str,
    data: str | None,
    labels: str | None,
    report_dir: Path | None,
) -> DriftResult:
    """Compare, report, and log the report to the champion's run.

    Every input is checked (rules, the batch, its labels) before anything is written.
    """
    spec = repo.spec(environment, model)
    if labels is not None and data is None:
        raise InputError(
            "--labels", None, "needs --data: a labelled batch the champion was not trained on"
        )
    champion, lineage = _proven_champion(repo, registry, spec)
    profile = _profile(champion, lineage)
    rules = drift_rules(spec, profile, lineage)
    if data is None:
        source = resolve_uri(repo.root, spec.config.data_root, spec.manifest.data.path)
        current = _current_datasets(source, profile)
    else:
        source, reference = data, _reference(profile, rules)
        current = [(data, batch_chunks(data, reference), reference)]
    target = profile["target"] or labels
    with contextlib.ExitStack() as stack:
        scoring = None
        if labels is not None:
            scoring = _Scoring.start(repo, registry, spec, champion, lineage, labels, stack)
        datasets = []
        for name, chunks, trained in current:
            tally = DatasetTally(trained)
            for chunk in chunks:
                tally.add(chunk)
                if scoring is not None:
                    scoring.add(chunk)
            if data is not None and tally.rows == 0:
                raise InputError("--data", None, f"{data}: has no rows")
            datasets.append(compare_dataset(name, tally, target, rules))
        concept, left_out = scoring.outcome(rules) if scoring is not None else ([], [])
    now = datetime.now(timezone.utc)
    result = DriftResult(
        registered=champion.name,
        champion=champion.ref,
        run_id=champion.run_id,
        source=source,
        checked_at=now.isoformat(timespec="seconds"),
        datasets=datasets,
        labels=labels,
        concept=concept,
        left_out=left_out,
    )
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    folder = report_dir or repo.root / ".promote" / "drift" / champion.name / stamp
    result.report_files = write_report(result, folder)
    artifact_path = f"{DRIFT_ARTIFACT_DIR}/{stamp}"
    registry.log_report(champion.run_id, result.report_files, artifact_path)
    result.logged_to = f"runs:/{champion.run_id}/{artifact_path}"
    return result


def _proven_champion(
    repo: Repository, registry: Registry, spec: ModelSpec
) -> tuple[Version, Lineage]:
    """The champion and its lineage record, once the record is the one its provenance signs."""
    name = repo.registered_name(spec.environment, spec.model)
    registered = registry.model(name)
    champion = registered.champion if registered is not None else None
    if registered is None or champion is None:
        raise BadReference(name, None, "has no champion: no training profile to compare with")
    trust = Keyring(repo.environments).trust(spec.environment)
    claims = proven_claims(registered, champion, trust, passed=True)
    lineage = registry.lineage(champion.run_id)
    problems = claims.lineage_problems(lineage)
    if problems:
        raise ProofInvalid(f"{champion.ref}: {problems[0]}")
    return champion, lineage


def _profile(champion: Version, lineage: Lineage) -> dict[str, Any]:
    profile = lineage.profile
    if not profile:
        raise BadReference(
            champion.ref,
            None,
            "its lineage record holds no training profile (trained by an older promote): "
            "retrain it to watch its drift",
        )
    if profile.get("format") != PROFILE_FORMAT:
        raise BadReference(
            champion.ref,
            None,
            f"its training profile is in format {profile.get('format')!r}; this promote reads "
            f"format {PROFILE_FORMAT}",
        )
    if not profile["datasets"]:
        raise BadReference(champion.ref, None, "its training read no CSV: nothing to compare")
    return profile


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:8])
    return shown + (f" and {len(names) - 8} more" if len(names) > 8 else "") if names else "none"


def _key(name: str) -> str:
    """A key as a one-line message can name it."""
    return name if name.isprintable() else repr(name)


def _check_rules(
    rules: DriftRules, display: str, profile: dict[str, Any], metrics: dict[str, float]
) -> None:
    """Refuse rules that name what the champion's training does not have: a column, a dataset,
    a metric. A typo would otherwise silently watch nothing."""
    kinds = {
        column: trained["kind"]
        for dataset in profile["datasets"]
        for column, trained in dataset["columns"].items()
    }
    known = f"(the training profile has {_listed(sorted(kinds))})"
    for index, column in enumerate(rules.ignore):
        if column not in kinds:
            raise InputError(display, f"drift.ignore.{index}", f"no column {column!r} {known}")
    for column, rule in rules.features.items():
        where = f"drift.features.{_key(column)}"
        if column not in kinds:
            raise InputError(display, where, f"no such column {known}")
        if rule.method in NUMERIC_METHODS and kinds[column] != NUMERIC:
            raise InputError(
                display, f"{where}.method", f"{rule.method} compares numbers: {column} is not one"
            )
    paths = [dataset["path"] for dataset in profile["datasets"]]
    if rules.reference is not None and rules.reference not in paths:
        raise InputError(
            display, "drift.reference", f"the training read no {rules.reference} ({_listed(paths)})"
        )
    for name in rules.concept.metrics:
        if name not in metrics:
            raise InputError(
                display,
                f"drift.concept.metrics.{_key(name)}",
                f"the champion records no such metric ({_listed(sorted(metrics))})",
            )


def drift_rules(spec: ModelSpec, profile: dict[str, Any], lineage: Lineage) -> DriftRules:
    """The environment's rules, refined by the manifest's; each checked where it is written."""
    environment_rules = spec.config.drift
    _check_rules(environment_rules, environment_file(spec.environment), profile, lineage.metrics)
    manifest_rules = spec.manifest.drift
    if manifest_rules is None:
        return environment_rules
    _check_rules(manifest_rules, spec.display, profile, lineage.metrics)
    return environment_rules.refined_by(manifest_rules)


def _reference(profile: dict[str, Any], rules: DriftRules) -> dict[str, Any]:
    """The dataset of the profile a batch is compared with: the one the rules name, else the
    first the training read (its training set, by the usual order of a script)."""
    datasets: list[dict[str, Any]] = profile["datasets"]
    return next((d for d in datasets if d["path"] == rules.reference), datasets[0])


def _text_columns(trained: dict[str, Any]) -> dict[str, type]:
    """The columns a training read as text, to be read as text in every chunk: left to
    inference, a chunk of digits only would be read as numbers, and counted as other categories."""
    return {
        name: str
        for name, column in trained["columns"].items()
        if column["kind"] == CATEGORICAL and column["dtype"] in TEXT_DTYPES
    }


def read_chunks(
    stream: BinaryIO, data_format: str, trained: dict[str, Any]
) -> Iterator[pd.DataFrame]:
    """A Parquet table, or a CSV read as the training read it, `CHUNK_ROWS` rows at a time.
    Raises ValueError (as pandas' and pyarrow's errors are) when the bytes are no such table."""
    if data_format == "parquet":
        for batch in parquet_file(stream).iter_batches(batch_size=CHUNK_ROWS):
            yield batch.to_pandas()
        return
    options = {"dtype": _text_columns(trained), **trained["read_options"]}
    with pd.read_csv(stream, chunksize=CHUNK_ROWS, **options) as reader:
        yield from reader


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _current_datasets(
    source: str, profile: dict[str, Any]
) -> list[tuple[str, Iterator[pd.DataFrame], dict[str, Any]]]:
    """Each dataset the training read, read again where it was: what the model would train on
    now. Each is read whole, as the training read it, and parsed a chunk at a time. Data that
    no longer parses is a finding about the data, not bad input."""
    reader = DataReader(source)

    def chunks(trained: dict[str, Any]) -> Iterator[pd.DataFrame]:
        path = trained["path"]
        try:
            yield from read_chunks(io.BytesIO(reader.read_bytes(path)), "csv", trained)
        except ValueError as exc:
            raise CheckFailed(
                f"{source}/{path}: no longer reads as a table: {_first_line(exc)}"
            ) from None

    return [(trained["path"], chunks(trained), trained) for trained in profile["datasets"]]


def batch_chunks(uri: str, reference: dict[str, Any]) -> Iterator[pd.DataFrame]:
    """The batch `--data` names, a chunk at a time: a file, or every data file under a folder or
    S3 prefix, as `promote predict` reads its input."""
    try:
        files = list_inputs(uri)
    except InputError as exc:  # worded for predict's --input; here it is --data
        raise InputError("--data", None, exc.problem) from None
    for file in files:
        try:
            with file.open() as stream:
                yield from read_chunks(stream, file.format, reference)
        except ValueError as exc:
            raise InputError(
                "--data", None, f"{file.uri}: not a {file.format} table: {_first_line(exc)}"
            ) from None


def _input_columns(signature: dict[str, Any] | None) -> list[str] | None:
    """The column names of a model signature's inputs; None for a signature without names."""
    if not signature or not signature.get("inputs"):
        return None
    names = [column.get("name") for column in json.loads(signature["inputs"])]
    return names if all(isinstance(name, str) for name in names) else None


class _Scoring:
    """The champion scoring a labelled batch a chunk at a time, for concept drift. It is loaded
    as serving loads it: only from files whose digest and signatures verify. Kept across chunks:
    each labelled row's label, prediction and class probabilities, which the metrics need all
    of (an AUC is no sum of per-chunk parts)."""

    def __init__(self, model: Any, lineage: Lineage, labels: str, wants_scores: bool) -> None:
        self.model, self.lineage, self.labels = model, lineage, labels
        self.wants_scores = wants_scores
        self.inputs = _input_columns(lineage.signature)
        self.truth: list[pd.Series] = []
        self.predictions: list[Any] = []
        self.scores: list[Any] = []
        self.absent: list[str] = []

    @classmethod
    def start(
        cls,
        repo: Repository,
        registry: Registry,
        spec: ModelSpec,
        champion: Version,
        lineage: Lineage,
        labels: str,
        stack: contextlib.ExitStack,
    ) -> _Scoring:
        if not computable(lineage.metrics):
            raise InputError(
                "--labels",
                None,
                "the champion records no metric promote can recompute (it records "
                f"{_listed(sorted(lineage.metrics))}; promote knows {_listed(sorted(METRICS))})",
            )
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="promote-drift-"))
        model = load_verified(
            repo, registry, spec.environment, spec.model, Path(scratch), champion.version
        )
        wants_scores = any(METRICS[name].reads_scores for name in computable(lineage.metrics))
        return cls(model, lineage, labels, wants_scores)

    def add(self, chunk: pd.DataFrame) -> None:
        if self.labels not in chunk.columns:
            raise InputError("--labels", None, f"the batch has no column {self.labels!r}")
        labelled = chunk[chunk[self.labels].notna()]
        inputs = self.inputs or [c for c in labelled.columns if c != self.labels]
        absent = [column for column in inputs if column not in labelled.columns]
        if absent:
            # The data drift reports the missing inputs; the model cannot score without them.
            self.absent = self.absent or absent
            return
        if labelled.empty:
            return
        features = labelled[inputs]
        self.truth.append(labelled[self.labels])
        self.predictions.append(np.asarray(self.model.loaded.predict(features)))
        if self.wants_scores:
            self.scores.append(class_probabilities(self.model.loaded.pyfunc, features))

    def outcome(self, rules: DriftRules) -> tuple[list[MetricDrift], list[str]]:
        if self.absent:
            return [], [f"all: the batch lacks the model's inputs {_listed(self.absent)}"]
        if not self.truth:
            raise InputError("--labels", None, f"column {self.labels!r} holds no labels")
        scores = None
        if self.wants_scores and all(score is not None for score in self.scores):
            scores = np.concatenate(self.scores)
        return concept_drift(
            self.lineage.metrics,
            pd.concat(self.truth, ignore_index=True),
            np.concatenate(self.predictions),
            scores,
            rules.concept,
        )
