"""The MLflow side of a training subprocess: saving its model in MLflow's format, locally.

Only the training helper (`promote.training`, inside the training subprocess) calls this. It
needs no tracking server: the runner logs the saved model (`Registry.log_run`) once the
training has exited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promote.errors import TrainingError
from promote.registry.loading import import_mlflow


def save_model(
    flavor: str,
    model: Any,
    path: Path,
    input_example: Any,
    pip_requirements: list[str] | None,
    **options: Any,
) -> dict[str, Any] | None:
    """Save `model` in MLflow's format with the signature its predictions give; the signature."""
    import_mlflow()
    import mlflow
    from mlflow.models import infer_signature

    module = getattr(mlflow, flavor, None)
    if module is None or not hasattr(module, "save_model"):
        raise TrainingError(f"unknown MLflow flavor {flavor!r}")
    signature = infer_signature(input_example, model.predict(input_example))
    module.save_model(
        model, str(path), signature=signature, pip_requirements=pip_requirements, **options
    )
    return signature.to_dict() if signature else None
