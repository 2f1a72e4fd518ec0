"""Canonical digests: of any JSON body, and of what a manifest approves."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from promote.manifests.schema import EnvironmentConfig, Gates, Manifest

# Fields added after manifests were first approved, left out of the digest while unset: upgrading
# promote changes no manifest's digest, so it rebuilds nothing by itself.
LATER_FIELDS = {
    "data": ("as_of",),
    "gates": ("max_latency_ratio", "max_complexity_ratio", "max_drift_share"),
}


def manifest_digest(manifest: Manifest, config: EnvironmentConfig) -> str:
    """What was approved: the manifest and the environment settings that shape the build.

    Machine-specific settings (the interpreter) stay out, so CI and laptops agree. So do drift
    rules: they judge the data a model sees, not how it is built, and changing them rebuilds
    nothing.
    """
    unset = {
        section: {name for name in names if getattr(getattr(manifest, section), name) is None}
        for section, names in LATER_FIELDS.items()
    }
    body = {
        "environment": config.name,
        "manifest": manifest.model_dump(mode="json", exclude={"drift": True, **unset}),
        "data_root": config.data_root,
        "training": config.training,
        "gates": _gates_body(manifest.gates.merged_over(config.gates)),
    }
    return canonical_digest(body)


def _gates_body(gates: Gates) -> dict[str, Any]:
    later = {name for name in LATER_FIELDS["gates"] if getattr(gates, name) is None}
    return gates.model_dump(mode="json", exclude=later)


def canonical_digest(body: Any) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()
