"""MLflow's import, made once and with the collector paused (see promote.runtime.collector)."""

from __future__ import annotations

import sys

from promote.runtime.collector import long_lived


def import_mlflow() -> None:
    """Import MLflow, if not yet, that way; call it before any `from mlflow... import`."""
    if "mlflow" not in sys.modules:
        with long_lived():
            import mlflow  # noqa: F401
