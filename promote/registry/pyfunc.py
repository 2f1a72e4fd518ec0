"""The MLflow side of using a model: loading it as pyfunc from a verified local folder, what its
signature asks of the input, predicting, and MLflow's scoring protocol.

Serving (`promote.serving`) verifies a downloaded folder and then hands it here, so what is
loaded is the very bytes that were checked: nothing here downloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promote.errors import CheckFailed
from promote.registry.loading import import_mlflow


@dataclass(frozen=True)
class Column:
    """One input column the model's signature names, with its MLflow type ("long", ...)."""

    name: str
    type: str
    required: bool


@dataclass(frozen=True)
class LoadedModel:
    """A pyfunc model with its input schema, read once: every request and batch uses both."""

    pyfunc: Any
    input_schema: Any  # mlflow.types.Schema, or None for a model saved without a signature

    @property
    def columns(self) -> list[Column] | None:
        """The signature's input columns; None when it names none (no signature, or tensors),
        so the input cannot be checked by column."""
        schema = self.input_schema
        if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
            return None
        return [Column(spec.name, _type_name(spec.type), spec.required) for spec in schema.inputs]

    def input_problem(self, frame: Any) -> str | None:
        """Why MLflow would refuse `frame` for this model's signature, in its one line."""
        if self.input_schema is None:
            return None
        from mlflow.exceptions import MlflowException
        from mlflow.models import validate_schema

        try:
            validate_schema(frame, self.input_schema)
        except MlflowException as exc:
            return (exc.message.splitlines() or ["does not match the signature"])[0]
        return None

    def predict(self, frame: Any) -> Any:
        try:
            return self.pyfunc.predict(frame)
        except Exception as exc:  # the model's own code may raise anything
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise CheckFailed(f"the model failed to predict: {first}") from None

    def score(self, body: bytes, content_type: str) -> tuple[int, str, bytes]:
        """One `/invocations` request as MLflow's scoring server answers it: status, media
        type and body, from MLflow's own protocol code (every content type and JSON format)."""
        from mlflow.exceptions import MlflowException
        from mlflow.pyfunc import scoring_server

        try:
            answer = scoring_server.invocations(body, content_type, self.pyfunc, self.input_schema)
        except MlflowException as exc:
            return exc.get_http_status_code(), "application/json", exc.serialize_as_json().encode()
        return answer.status, answer.mimetype, answer.response.encode()


def _type_name(kind: Any) -> str:
    """A column's MLflow type by name ("long"); complex types (arrays, objects) as written."""
    name = getattr(kind, "name", None)
    return name if isinstance(name, str) else str(kind)


def load(model_dir: Path) -> LoadedModel:
    """Load the MLflow model in `model_dir` as pyfunc (the folder promote verified)."""
    import_mlflow()
    from mlflow.pyfunc import load_model

    # Not `long_lived`: a server swaps models out, and a frozen one would never be collected.
    try:
        pyfunc = load_model(str(model_dir))
    except Exception as exc:  # a flavor's loader may raise anything (a missing library, ...)
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CheckFailed(f"MLflow cannot load it: {first}") from None
    return LoadedModel(pyfunc, pyfunc.metadata.get_input_schema())
