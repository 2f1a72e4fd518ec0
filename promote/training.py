"""The training helper: the small API a training script uses.

A training script is run by `promote train` (dev) or `promote apply` (a rebuild above dev),
never by hand. It reads its environment's data and logs one model; the helper records the
lineage (code, data snapshot, libraries, schema, signature, artifact digest) on its own::

    from promote import training

    with training.start(target="churned") as run:
        frame = run.read_csv("train.csv")
        model = fit(frame, n_estimators=run.params["n_estimators"])
        run.log_metrics({"roc_auc": score(model)})
        run.log_model(model, input_example=frame.drop(columns=["churned"]).head(5))

"Logs" means: written to the output folder the runner gave, the model under `model/` and the
lineage record (with the params, metrics and a profile of every CSV read) beside it. `target`
is optional: it names the label column, whose distribution drift watches apart from the
features'. The training never talks to the registry and holds none of its credentials; the
runner checks that output once the training has exited and logs it as one finished run
(`Registry.log_run`).
"""

from __future__ import annotations

import io
import json
import os
import platform
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from promote.build.data import DataReader, FileSnapshot, snapshot_from_json
from promote.build.digest import artifact_digest
from promote.build.lineage import (
    LINEAGE_ARTIFACT,
    MODEL_ARTIFACT_DIR,
    Lineage,
    check_pins,
    resolve_libraries,
)
from promote.build.listing import list_location
from promote.errors import TrainingError
from promote.manifests.digest import canonical_digest
from promote.registry import tracking

CONTEXT_VARIABLE = "PROMOTE_TRAINING_CONTEXT"
# Distribution that provides each supported model flavor (others are named as their flavor):
# a custom PythonModel is MLflow's own.
FLAVOR_LIBRARIES = {"sklearn": "scikit-learn", "pyfunc": "mlflow"}


@dataclass
class TrainingContext:
    """What the runner hands a training subprocess (as JSON in one environment variable)."""

    model: str
    environment: str
    data_uri: str
    params: dict[str, Any]
    code_repo: str
    code_commit: str
    code_tree: str
    code_dirty: bool
    entrypoint: str
    requirements: str | None
    output_dir: str  # where the model and lineage record go; the runner logs them from there
    trained_by: str
    pinned_snapshot: list[dict[str, Any]] | None = None

    @property
    def model_dir(self) -> Path:
        return Path(self.output_dir) / MODEL_ARTIFACT_DIR

    @property
    def lineage_file(self) -> Path:
        # The same relative path as in the run's artifacts: the output folder mirrors the run.
        return Path(self.output_dir) / LINEAGE_ARTIFACT

    def to_env(self) -> dict[str, str]:
        return {CONTEXT_VARIABLE: json.dumps(asdict(self))}

    @classmethod
    def from_env(cls) -> TrainingContext:
        raw = os.environ.get(CONTEXT_VARIABLE)
        if not raw:
            raise TrainingError(
                "this script is a promote training entrypoint: run it with "
                "`promote train MODEL --env dev`, not directly"
            )
        return cls(**json.loads(raw))


class TrainingRun:
    """One training run: data reads, metrics and the model, with lineage recorded as it goes."""

    def __init__(self, context: TrainingContext, target: str | None = None) -> None:
        self.context = context
        self.params: dict[str, Any] = dict(context.params)
        self.target = target
        pinned = snapshot_from_json(context.pinned_snapshot) if context.pinned_snapshot else None
        self._data = DataReader(context.data_uri, pinned)
        # Listed before anything is read: a file changed during the run then shows as changed.
        self._listing = list_location(context.data_uri)
        self._schemas: dict[str, list[list[str]]] = {}
        # By path, in the order first read: a file read again is profiled as read last.
        self._profiles: dict[str, dict[str, Any]] = {}
        self._metrics: dict[str, float] = {}
        self._logged: tuple[str, dict[str, Any] | None, str] | None = None
        self._libraries_roots: list[str] = []
        if context.requirements:
            self._libraries_roots = check_pins(Path(context.requirements))

    @property
    def environment(self) -> str:
        return self.context.environment

    def read_bytes(self, relative: str) -> bytes:
        """Raw bytes of a file under this environment's data for the model."""
        return self._data.read_bytes(relative)

    def read_csv(self, relative: str, **options: Any) -> Any:
        """A pandas DataFrame; its columns and dtypes join the schema fingerprint, and its
        profile (per-column statistics, as read, before the script changes anything) joins the
        lineage record."""
        import pandas as pd

        from promote.drift.profile import dataset_profile

        frame = pd.read_csv(io.BytesIO(self.read_bytes(relative)), **options)
        self._schemas[relative] = [[str(c), str(t)] for c, t in frame.dtypes.items()]
        self._profiles[relative] = dataset_profile(relative, frame, options)
        return frame

    def log_metrics(self, metrics: dict[str, float]) -> None:
        self._metrics.update({name: float(value) for name, value in metrics.items()})

    def log_model(
        self,
        model: Any,
        input_example: Any,
        flavor: str | None = None,
        trusted_types: Sequence[str] = (),
        **save_options: Any,
    ) -> None:
        """Save the model with its signature into the output folder, and record its digest.

        scikit-learn, LightGBM and `mlflow.pyfunc.PythonModel` models are detected; other
        flavors are named (`flavor="xgboost"`). A scikit-learn model is saved with skops, which
        loads scikit-learn's own types and, of other types (your transformers), only those named
        in `trusted_types` ("module.Class"). `save_options` go to the flavor's `save_model`
        (for example `code_paths`).
        """
        if self._logged is not None:
            raise TrainingError("log_model was already called: a training run logs one model")
        flavor = flavor or tracking.flavor_of(model)
        if flavor is None:
            raise TrainingError(
                f"cannot tell the MLflow flavor of a {type(model).__name__}: "
                "pass flavor='...' to log_model"
            )
        library = FLAVOR_LIBRARIES.get(flavor, flavor)
        self._libraries_roots.append(library)
        libraries = resolve_libraries(self._libraries_roots)
        path = self.context.model_dir
        # Explicit requirements: MLflow's inference would spawn a subprocess and guess.
        pins = [
            f"{name}=={libraries[name]}"
            for name in dict.fromkeys((library.lower(), "mlflow"))
            if name in libraries
        ]
        signature = tracking.save_model(
            flavor, model, path, input_example, pins or None, trusted_types, **save_options
        )
        self._logged = (flavor, signature, artifact_digest(path))

    def lineage(self) -> Lineage:
        if self._logged is None:
            raise TrainingError("the training script ended without calling run.log_model(...)")
        # Lazy, as pandas is: the runner imports this module for TrainingContext alone.
        from promote.drift.profile import training_profile

        flavor, signature, digest = self._logged
        profiles = list(self._profiles.values())
        if self.target is not None and not any(self.target in p["columns"] for p in profiles):
            read = ", ".join(self._profiles) or "none"
            raise TrainingError(
                f"target {self.target!r} is a column of no CSV the script read (read: {read})"
            )
        context = self.context
        return Lineage(
            model=context.model,
            environment=context.environment,
            code_repo=context.code_repo,
            code_commit=context.code_commit,
            code_tree=context.code_tree,
            code_dirty=context.code_dirty,
            entrypoint=context.entrypoint,
            params=self.params,
            libraries=resolve_libraries(self._libraries_roots),
            python_version=platform.python_version(),
            data_uri=context.data_uri,
            data_snapshot=self._data.snapshot(),
            schema_fingerprint=canonical_digest(dict(sorted(self._schemas.items()))),
            flavor=flavor,
            signature=signature,
            artifact_digest=digest,
            run_id="",  # the runner creates the run, and fills in its id
            trained_by=context.trained_by,
            trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            metrics=dict(self._metrics),
            profile=training_profile(profiles, self.target),
            data_listing=self._listing,
        )


@contextmanager
def start(target: str | None = None) -> Iterator[TrainingRun]:
    """Open the training run the runner prepared; on a clean exit, write the lineage record.

    `target` names the label column, if the script has one: `promote drift` then watches its
    distribution apart from the features'. The record is written last: a training that fails
    or is killed leaves none, and the runner logs nothing for it.
    """
    context = TrainingContext.from_env()
    run = TrainingRun(context, target)
    yield run
    lineage = run.lineage()
    context.lineage_file.parent.mkdir(parents=True, exist_ok=True)
    context.lineage_file.write_text(lineage.to_json(), encoding="utf-8")


__all__ = ["FileSnapshot", "TrainingContext", "TrainingError", "TrainingRun", "start"]
