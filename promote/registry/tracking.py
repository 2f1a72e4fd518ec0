"""The MLflow side of a training subprocess: saving its model in MLflow's format, locally.

Only the training helper (`promote.training`, inside the training subprocess) calls this. It
needs no tracking server: the runner logs the saved model (`Registry.log_run`) once the
training has exited.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promote.errors import TrainingError
from promote.registry.loading import import_mlflow

# The top-level modules whose model types name their MLflow flavor.
_FLAVOR_OF_MODULE = {"sklearn": "sklearn", "lightgbm": "lightgbm"}

_SKOPS_SCHEMA = "schema.json"
# The earliest time a zip entry can carry.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def flavor_of(model: Any) -> str | None:
    """The MLflow flavor `model` is saved with, or None when its type does not tell."""
    import_mlflow()
    from mlflow.pyfunc import PythonModel

    if isinstance(model, PythonModel):
        return "pyfunc"
    return _FLAVOR_OF_MODULE.get(type(model).__module__.split(".")[0])


def save_model(
    flavor: str,
    model: Any,
    path: Path,
    input_example: Any,
    pip_requirements: list[str] | None,
    trusted_types: Sequence[str] = (),
    **options: Any,
) -> dict[str, Any] | None:
    """Save `model` in MLflow's format with the signature its predictions give; the signature.

    The signature comes from the saved model loaded back as MLflow serves it (pyfunc): a
    custom `PythonModel` predicts with its context, and a model that does not load fails here,
    in the training, not in serving. What MLflow and skops write differently at each save of
    the same model is made the same (`_make_deterministic`).
    """
    import_mlflow()
    import mlflow
    from mlflow.models import Model, infer_signature
    from mlflow.models.model import MLMODEL_FILE_NAME

    module = getattr(mlflow, flavor, None)
    if module is None or not hasattr(module, "save_model"):
        raise TrainingError(f"unknown MLflow flavor {flavor!r}")
    if flavor == "sklearn" and options.setdefault("serialization_format", "skops") == "skops":
        options["skops_trusted_types"] = _skops_trusted_types(model, trusted_types)
    elif trusted_types:
        raise TrainingError("trusted_types apply to scikit-learn models saved with skops only")
    # The example is saved with the model: apply times its predictions against the champion's.
    # The signature is inferred below, once, from the model as it loads back; MLflow's own
    # inference at save would predict the example again and repeat its warnings.
    options["input_example"] = input_example
    options["signature"] = False
    if flavor == "pyfunc":
        # pyfunc saves a path first; the model is one of its keyword arguments.
        module.save_model(
            str(path), python_model=model, pip_requirements=pip_requirements, **options
        )
    else:
        module.save_model(model, str(path), pip_requirements=pip_requirements, **options)
    metadata = Model.load(str(path / MLMODEL_FILE_NAME))
    _make_deterministic(path, metadata)
    loaded = mlflow.pyfunc.load_model(str(path))
    metadata.signature = infer_signature(input_example, loaded.predict(input_example))
    metadata.save(str(path / MLMODEL_FILE_NAME))
    return metadata.signature.to_dict() if metadata.signature else None


def _make_deterministic(path: Path, metadata: Any) -> None:
    """Make the model saved in `path`, described by `metadata` (its MLmodel, saved by the
    caller), the same bytes each time the same model is saved, MLflow's save-time fields
    aside (`build.digest.SAVE_TIME_FIELDS`)."""
    # scikit-learn's flavor and LightGBM's (for its scikit-learn API) save with skops.
    grown = sum(_make_skops_deterministic(file) for file in sorted(path.rglob("*.skops")))
    if metadata.model_size_bytes is not None:
        metadata.model_size_bytes += grown
    for conf in metadata.flavors.values():
        if isinstance(conf.get("skops_trusted_types"), list):
            # LightGBM's flavor lists them from a set, in an order each process draws anew.
            conf["skops_trusted_types"] = sorted(conf["skops_trusted_types"])


def _make_skops_deterministic(file: Path) -> int:
    """Rewrite a skops file so that saving the same model again gives the same bytes; how many
    bytes it grew by (negative: shrank).

    skops names members, and marks shared objects, by their memory address (`id()`) or a
    random uuid, and stamps each zip entry with the time. Here those names are numbered in the
    order the schema first gives them, which keeps which objects are one and which member each
    node reads, and every entry gets one fixed time. The model is loaded back afterwards.
    """
    size = file.stat().st_size
    with zipfile.ZipFile(file) as archive:
        tokens: dict[str, int] = {}
        renamed: dict[str, str] = {}
        schema = _renumbered(json.loads(archive.read(_SKOPS_SCHEMA)), tokens, renamed)
        members = [
            (renamed.get(name, name), archive.read(name))
            for name in archive.namelist()
            if name != _SKOPS_SCHEMA
        ]
    # The schema last and indented, as skops writes it.
    members.append((_SKOPS_SCHEMA, json.dumps(schema, indent=2).encode()))
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, payload in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_EPOCH), payload)
    return file.stat().st_size - size


def _renumbered(node: Any, tokens: dict[str, int], renamed: dict[str, str]) -> Any:
    """`node` with each object id (`__id__`) and member name (`file`) replaced by its number in
    order of first appearance, from 1 (skops reads an id of 0 as none); `renamed` maps each
    member name to its new one."""
    if isinstance(node, list):
        return [_renumbered(item, tokens, renamed) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "__id__" and isinstance(value, int):
            out[key] = tokens.setdefault(str(value), len(tokens) + 1)
        elif key == "file" and isinstance(value, str):
            stem, dot, suffix = value.partition(".")
            renamed[value] = f"{tokens.setdefault(stem, len(tokens) + 1)}{dot}{suffix}"
            out[key] = renamed[value]
        else:
            out[key] = _renumbered(value, tokens, renamed)
    return out


def _skops_trusted_types(model: Any, listed: Sequence[str]) -> list[str]:
    """The types skops must trust to load `model`: scikit-learn's own, which skops leaves
    untrusted only as a precaution against foreign files (promote loads a model only once its
    digest is verified), and the user's, each named in `listed`."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    unlisted = [
        name for name in untrusted if name.split(".")[0] != "sklearn" and name not in listed
    ]
    if unlisted:
        raise TrainingError(
            f"skops loads {', '.join(unlisted)} only if trusted: pass "
            f"trusted_types={unlisted!r} to run.log_model once you have reviewed them"
        )
    return sorted(untrusted)
