"""The MLflow side of a training run: the run a training script logs into, the model it saves.

Only the training helper (`promote.training`, inside the training subprocess) calls these.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from promote.errors import TrainingError
from promote.registry.loading import import_mlflow
from promote.runtime.collector import long_lived


@contextmanager
def run(tracking_uri: str, experiment_id: str, tags: dict[str, str]) -> Iterator[str]:
    """Start the run (ended when the block is left) and give its id."""
    with long_lived():  # MLflow, and its SQL store built by start_run
        import_mlflow()
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        active = mlflow.start_run(experiment_id=experiment_id, tags=tags)
    with active:
        yield str(active.info.run_id)


def log_params(params: dict[str, str]) -> None:
    import mlflow

    mlflow.log_params(params)


def log_metrics(metrics: dict[str, float]) -> None:
    import mlflow

    mlflow.log_metrics(metrics)


def log_text(text: str, artifact_file: str) -> None:
    import mlflow

    mlflow.log_text(text, artifact_file)


def set_tags(tags: dict[str, str]) -> None:
    import mlflow

    mlflow.set_tags(tags)


def log_artifacts(directory: Path, artifact_path: str) -> None:
    import mlflow

    mlflow.log_artifacts(str(directory), artifact_path)


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
