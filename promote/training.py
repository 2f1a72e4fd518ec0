"""The training helper: the small API a training script uses.

A training script is run by `promote train` (dev) or `promote apply` (a rebuild above dev),
never by hand. It reads its environment's data and logs one model; the helper records the
lineage (code, data snapshot, libraries, schema, signature, artifact digest) on its own::

    from promote import training

    with training.start() as run:
        frame = run.read_csv("train.csv")
        model = fit(frame, n_estimators=run.params["n_estimators"])
        run.log_metrics({"roc_auc": score(model)})
        run.log_model(model, input_example=frame.drop(columns=["churned"]).head(5))

"Logs" means: written to the output folder the runner gave, the model under `model/` and the
lineage record (with the params and metrics) beside it. The training never talks to the
registry and holds none of its credentials; the runner checks that output once the training
has exited and logs it as one finished run (`Registry.log_run`).
"""

from __future__ import annotations

import io
import json
import os
import platform
from collections.abc import Iterator
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
from promote.errors import TrainingError
from promote.manifests.digest import canonical_digest
from promote.registry import tracking

CONTEXT_VARIABLE = "PROMOTE_TRAINING_CONTEXT"
# Distribution that provides each supported model flavor.
FLAVOR_LIBRARIES = {"sklearn": "scikit-learn"}


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

    def __init__(self, context: TrainingContext) -> None:
        self.context = context
        self.params: dict[str, Any] = dict(context.params)
        pinned = snapshot_from_json(context.pinned_snapshot) if context.pinned_snapshot else None
        self._data = DataReader(context.data_uri, pinned)
        self._schemas: dict[str, list[list[str]]] = {}
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
        """A pandas DataFrame; its columns and dtypes join the schema fingerprint."""
        import pandas as pd

        frame = pd.read_csv(io.BytesIO(self.read_bytes(relative)), **options)
        self._schemas[relative] = [[str(c), str(t)] for c, t in frame.dtypes.items()]
        return frame

    def log_metrics(self, metrics: dict[str, float]) -> None:
        self._metrics.update({name: float(value) for name, value in metrics.items()})

    def log_model(
        self, model: Any, input_example: Any, flavor: str | None = None, **save_options: Any
    ) -> None:
        """Save the model with its signature into the output folder, and record its digest.

        `save_options` go to the flavor's `save_model` (for example `skops_trusted_types`).
        """
        if self._logged is not None:
            raise TrainingError("log_model was already called: a training run logs one model")
        flavor = flavor or _detect_flavor(model)
        library = FLAVOR_LIBRARIES.get(flavor, flavor)
        self._libraries_roots.append(library)
        libraries = resolve_libraries(self._libraries_roots)
        path = self.context.model_dir
        # Explicit requirements: MLflow's inference would spawn a subprocess and guess.
        pins = [
            f"{name}=={libraries[name]}"
            for name in (library.lower(), "mlflow")
            if name in libraries
        ]
        signature = tracking.save_model(
            flavor, model, path, input_example, pins or None, **save_options
        )
        self._logged = (flavor, signature, artifact_digest(path))

    def lineage(self) -> Lineage:
        if self._logged is None:
            raise TrainingError("the training script ended without calling run.log_model(...)")
        flavor, signature, digest = self._logged
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
        )


def _detect_flavor(model: Any) -> str:
    module = type(model).__module__.split(".")[0]
    if module == "sklearn":
        return "sklearn"
    raise TrainingError(
        f"cannot tell the MLflow flavor of a {type(model).__name__}: pass flavor='...' to log_model"
    )


@contextmanager
def start() -> Iterator[TrainingRun]:
    """Open the training run the runner prepared; on a clean exit, write the lineage record.

    The record is written last: a training that fails or is killed leaves none, and the runner
    logs nothing for it.
    """
    context = TrainingContext.from_env()
    run = TrainingRun(context)
    yield run
    lineage = run.lineage()
    context.lineage_file.parent.mkdir(parents=True, exist_ok=True)
    context.lineage_file.write_text(lineage.to_json(), encoding="utf-8")


__all__ = ["FileSnapshot", "TrainingContext", "TrainingError", "TrainingRun", "start"]
