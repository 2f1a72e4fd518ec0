"""`promote drift NAME --env ENV`: the data a champion sees now, against what it was trained on.

The champion's lineage record is read and checked against its signed provenance, so the training
profile compared with is the one that was signed. The data is the environment's current data for
the model (each dataset the training read, read again where it was) or a batch given. With labels,
the champion, loaded as serving loads it (from files whose digest and signatures verify), scores
the batch. The report is saved and logged to the champion's run.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from promote.build.data import DataReader, resolve_uri
from promote.build.lineage import Lineage
from promote.drift.compare import DatasetDrift, compare_dataset
from promote.drift.concept import METRICS, MetricDrift, computable, concept_drift
from promote.drift.profile import NUMERIC, PROFILE_FORMAT
from promote.drift.report import write_report
from promote.errors import BadReference, CheckFailed, InputError, ProofInvalid
from promote.manifests.repository import ModelSpec, Repository, environment_file
from promote.manifests.schema import DriftRules
from promote.proof.trust import Keyring
from promote.proof.versions import proven_claims
from promote.registry.client import Registry
from promote.registry.entities import Version
from promote.registry.loading import class_probabilities
from promote.serving.storage import list_inputs
from promote.serving.verified import load_verified

# Where in the champion's run each report goes, one folder per check.
DRIFT_ARTIFACT_DIR = "promote/drift"
# Methods that need numbers; the others compare binned counts of any column.
NUMERIC_METHODS = frozenset({"ks", "wasserstein"})


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
        current = [(data, _read_batch(data, reference), reference)]
    target = profile["target"] or labels
    now = datetime.now(timezone.utc)
    result = DriftResult(
        registered=champion.name,
        champion=champion.ref,
        run_id=champion.run_id,
        source=source,
        checked_at=now.isoformat(timespec="seconds"),
        datasets=[
            compare_dataset(name, frame, trained, target, rules) for name, frame, trained in current
        ],
        labels=labels,
    )
    if labels is not None:
        result.concept, result.left_out = _concept(
            repo, registry, spec, champion, lineage, current[0][1], labels, rules
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


def _table(stream: BinaryIO, data_format: str, read_options: dict[str, Any]) -> pd.DataFrame:
    """A Parquet table, or a CSV read as the training read it. Raises ValueError (as pandas'
    and pyarrow's errors are) when the bytes are no such table."""
    if data_format == "parquet":
        return pd.read_parquet(stream)
    return pd.read_csv(stream, **read_options)


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _current_datasets(
    source: str, profile: dict[str, Any]
) -> list[tuple[str, pd.DataFrame, dict[str, Any]]]:
    """Each dataset the training read, read again where it was: what the model would train on
    now. Data that no longer parses is a finding about the data, not bad input."""
    reader = DataReader(source)
    current = []
    for trained in profile["datasets"]:
        path = trained["path"]
        try:
            payload = io.BytesIO(reader.read_bytes(path))
            frame = _table(payload, "csv", trained["read_options"])
        except ValueError as exc:
            raise CheckFailed(
                f"{source}/{path}: no longer reads as a table: {_first_line(exc)}"
            ) from None
        current.append((path, frame, trained))
    return current


def _read_batch(uri: str, reference: dict[str, Any]) -> pd.DataFrame:
    """The batch `--data` names: a file, or every data file under a folder or S3 prefix, as
    `promote predict` reads its input."""
    try:
        files = list_inputs(uri)
    except InputError as exc:  # worded for predict's --input; here it is --data
        raise InputError("--data", None, exc.problem) from None
    frames = []
    for file in files:
        try:
            with file.open() as stream:
                frames.append(_table(stream, file.format, reference["read_options"]))
        except ValueError as exc:
            raise InputError(
                "--data", None, f"{file.uri}: not a {file.format} table: {_first_line(exc)}"
            ) from None
    frame = pd.concat(frames, ignore_index=True)
    if frame.empty:
        raise InputError("--data", None, f"{uri}: has no rows")
    return frame


def _input_columns(signature: dict[str, Any] | None) -> list[str] | None:
    """The column names of a model signature's inputs; None for a signature without names."""
    if not signature or not signature.get("inputs"):
        return None
    names = [column.get("name") for column in json.loads(signature["inputs"])]
    return names if all(isinstance(name, str) for name in names) else None


def _concept(
    repo: Repository,
    registry: Registry,
    spec: ModelSpec,
    champion: Version,
    lineage: Lineage,
    batch: pd.DataFrame,
    labels: str,
    rules: DriftRules,
) -> tuple[list[MetricDrift], list[str]]:
    """The champion's metrics on the labelled batch against those recorded at training. It is
    loaded as serving loads it: only from files whose digest and signatures verify."""
    if labels not in batch.columns:
        raise InputError("--labels", None, f"the batch has no column {labels!r}")
    if not computable(lineage.metrics):
        raise InputError(
            "--labels",
            None,
            "the champion records no metric promote can recompute (it records "
            f"{_listed(sorted(lineage.metrics))}; promote knows {_listed(sorted(METRICS))})",
        )
    labelled = batch[batch[labels].notna()]
    if labelled.empty:
        raise InputError("--labels", None, f"column {labels!r} holds no labels")
    inputs = _input_columns(lineage.signature) or [c for c in labelled.columns if c != labels]
    absent = [column for column in inputs if column not in labelled.columns]
    if absent:
        # The data drift reports the missing inputs; the model cannot score without them.
        return [], [f"all: the batch lacks the model's inputs {_listed(absent)}"]
    features = labelled[inputs]
    wants_scores = any(METRICS[name].reads_scores for name in computable(lineage.metrics))
    with tempfile.TemporaryDirectory(prefix="promote-drift-") as scratch:
        model = load_verified(
            repo, registry, spec.environment, spec.model, Path(scratch), champion.version
        )
        predictions = model.loaded.predict(features)
        scores = class_probabilities(model.loaded.pyfunc, features) if wants_scores else None
    return concept_drift(lineage.metrics, labelled[labels], predictions, scores, rules.concept)
