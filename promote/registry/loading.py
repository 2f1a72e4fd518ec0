"""MLflow's import, made once and with the collector paused (see promote.runtime.collector), and
what a loaded model holds beyond its pyfunc interface."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from promote.runtime.collector import long_lived


def import_mlflow() -> None:
    """Import MLflow, if not yet, that way; call it before any `from mlflow... import`."""
    if "mlflow" not in sys.modules:
        with long_lived():
            import mlflow  # noqa: F401


# What the write path of a build imports from MLflow lazily (`Registry`, `tracking`).
_WRITE_PATH_MODULES = (
    "mlflow.artifacts",
    "mlflow.entities",
    "mlflow.exceptions",
    "mlflow.models",
    "mlflow.pyfunc",
    "mlflow.tracking",
    "mlflow.utils.mlflow_tags",
    "mlflow.utils.validation",
)


def import_for_threads() -> None:
    """MLflow's modules of the write path, imported in this thread before builds run in
    several (`apply --jobs`): threads importing the same nested modules at once can deadlock
    on Python's import locks (`_DeadlockError`)."""
    import_mlflow()
    with long_lived():
        for name in _WRITE_PATH_MODULES:
            importlib.import_module(name)


def class_probabilities(pyfunc_model: Any, frame: Any) -> Any:
    """Per row, each class's probability, from the model inside a loaded pyfunc model (its
    `predict_proba`, as scikit-learn's classifiers have); None when it gives none. pyfunc's own
    `predict` gives labels only, and metrics such as ROC AUC need probabilities."""
    import numpy as np

    try:
        raw = pyfunc_model.get_raw_model()
    except NotImplementedError:
        return None
    probabilities = getattr(raw, "predict_proba", None)
    return None if probabilities is None else np.asarray(probabilities(frame))
