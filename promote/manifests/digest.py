"""Canonical digests: of any JSON body, and of what a manifest approves."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from promote.manifests.schema import EnvironmentConfig, Manifest


def manifest_digest(manifest: Manifest, config: EnvironmentConfig) -> str:
    """What was approved: the manifest and the environment settings that shape the build.

    Machine-specific settings (the interpreter) stay out, so CI and laptops agree. So do drift
    rules: they judge the data a model sees, not how it is built, and changing them rebuilds
    nothing.
    """
    # A manifest never retrained keeps the digest it had before `data.as_of` existed.
    unset = {"data": {"as_of"}} if manifest.data.as_of is None else {}
    body = {
        "environment": config.name,
        "manifest": manifest.model_dump(mode="json", exclude={"drift": True, **unset}),
        "data_root": config.data_root,
        "training": config.training,
        "gates": manifest.gates.merged_over(config.gates).model_dump(mode="json"),
    }
    return canonical_digest(body)


def canonical_digest(body: Any) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()
