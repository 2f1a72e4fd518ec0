"""MLflow's import, made once and with the collector paused (see promote.runtime.collector), and
what a loaded model holds beyond its pyfunc interface."""

from __future__ import annotations

import sys
from typing import Any

from promote.runtime.collector import long_lived


def import_mlflow() -> None:
    """Import MLflow, if not yet, that way; call it before any `from mlflow... import`."""
    if "mlflow" not in sys.modules:
        with long_lived():
            import mlflow  # noqa: F401


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
