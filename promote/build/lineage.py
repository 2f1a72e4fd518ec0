"""Lineage records, resolved library sets and the lineage match between environments."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from promote.build.data import FileSnapshot, is_under, snapshot_from_json, snapshot_to_json
from promote.build.listing import listing_tag
from promote.errors import CheckFailed
from promote.manifests.digest import canonical_digest

LINEAGE_ARTIFACT = "promote/lineage.json"

MODEL_ARTIFACT_DIR = "model"

# The model folder's OpenSSF Model Signing signature (a Sigstore bundle), beside the folder.
MODEL_SIGNATURE_ARTIFACT = "promote/model.sig"

# What must be identical between the version validated below and the one rebuilt above. Not the
# training profile: each environment trains on its own data, whose statistics differ by design.
MATCH_FIELDS = (
    "code_commit",
    "entrypoint",
    "params",
    "libraries",
    "python_version",
    "schema_fingerprint",
    "signature",
    "flavor",
)


@dataclass
class Lineage:
    """Everything needed to reproduce a model: code, data, environment and the artifact itself."""

    model: str
    environment: str
    code_repo: str
    code_commit: str
    code_tree: str
    code_dirty: bool
    entrypoint: str
    params: dict[str, Any]
    libraries: dict[str, str]
    python_version: str
    data_uri: str
    data_snapshot: list[FileSnapshot]
    schema_fingerprint: str
    flavor: str
    signature: dict[str, Any] | None
    artifact_digest: str
    run_id: str
    trained_by: str
    trained_at: str
    metrics: dict[str, float] = field(default_factory=dict)
    copied_from: str | None = None
    # Per-column statistics of every dataset the training read (`promote.drift.profile`).
    profile: dict[str, Any] = field(default_factory=dict)
    # Every file under `data_uri` before the training read any: relative path -> fingerprint
    # (`promote.build.listing`), from which `promote status` tells that the data changed.
    data_listing: dict[str, str] = field(default_factory=dict)

    @property
    def data_digest(self) -> str:
        return canonical_digest([[e.path, e.sha256] for e in self.data_snapshot])

    @property
    def lineage_digest(self) -> str:
        """The record's own digest: every field, the artifact digest and metrics included, so
        no field of a stored record can be edited without the digest (signed) changing."""
        return canonical_digest(self._body())

    @property
    def match_digest(self) -> str:
        """What two builds of the same model share: equal for a faithful reproduction."""
        return canonical_digest({name: getattr(self, name) for name in MATCH_FIELDS})

    @property
    def listing_tag(self) -> str | None:
        """The registry tag restating the listing, with the rows of each table read; None for
        a record without a listing."""
        if not self.data_listing:
            return None
        rows = {dataset["path"]: dataset["rows"] for dataset in self.profile.get("datasets", [])}
        return listing_tag(self.data_listing, rows)

    @property
    def libraries_digest(self) -> str:
        return canonical_digest(self.libraries)

    def _body(self) -> dict[str, Any]:
        body = asdict(self)
        body["data_snapshot"] = snapshot_to_json(self.data_snapshot)
        body["data_digest"] = self.data_digest
        if not self.profile:
            # A record written before profiles existed keeps the digest it was signed with.
            del body["profile"]
        if not self.data_listing:
            del body["data_listing"]  # likewise for a record written before listings existed
        return body

    def to_json(self) -> str:
        body = self._body()
        body["lineage_digest"] = canonical_digest(body)
        return json.dumps(body, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Lineage:
        body = json.loads(text)
        body.pop("data_digest", None)
        recorded = body.pop("lineage_digest", None)
        body["data_snapshot"] = snapshot_from_json(body["data_snapshot"])
        lineage = cls(**body)
        if recorded != lineage.lineage_digest:
            raise CheckFailed(
                f"lineage record of run {lineage.run_id} does not match its own digest"
            )
        return lineage


def compare(source: Lineage, rebuilt: Lineage, target_data_root: str, copied: bool) -> list[str]:
    """Every way `rebuilt` fails to be the same model as `source`, trained on its own data."""
    problems = []
    for name in MATCH_FIELDS:
        expected, actual = getattr(source, name), getattr(rebuilt, name)
        if expected != actual:
            problems.append(f"{name} differs: {_describe_difference(expected, actual)}")
    if copied:
        if rebuilt.artifact_digest != source.artifact_digest:
            problems.append("copied artifact differs from the source artifact")
    else:
        if not is_under(rebuilt.data_uri, target_data_root):
            problems.append(f"data {rebuilt.data_uri} is not under {target_data_root}")
        if rebuilt.data_uri == source.data_uri or rebuilt.data_digest == source.data_digest:
            problems.append("rebuild read the same data as the source, not its own environment's")
    return problems


def _describe_difference(expected: Any, actual: Any) -> str:
    if isinstance(expected, dict) and isinstance(actual, dict):
        keys = sorted(set(expected) | set(actual))
        changed = [
            f"{k}: {expected.get(k)!r} -> {actual.get(k)!r}"
            for k in keys
            if expected.get(k) != actual.get(k)
        ]
        return "; ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
    text = f"{expected!r} -> {actual!r}"
    return text if len(text) < 200 else text[:197] + "..."


def _distribution_name(requirement: str) -> str | None:
    match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return match.group(1) if match else None


def resolve_libraries(roots: list[str]) -> dict[str, str]:
    """Installed versions of `roots` and of everything they require, transitively.

    The set depends on what the training code declares, not on which modules one code path
    happened to import, so the same code yields the same set in every environment.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    resolved: dict[str, str] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in resolved:
            continue
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        resolved[key] = distribution.version
        for line in distribution.requires or []:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return dict(sorted(resolved.items()))


def check_pins(requirements_file: Path) -> list[str]:
    """Names declared in a requirements file; `name==version` pins must match what is installed."""
    names: list[str] = []
    for raw in requirements_file.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name = _distribution_name(line)
        if name is None:
            continue
        names.append(name)
        pinned = re.search(r"==\s*([^\s;,]+)", line)
        if pinned:
            try:
                installed = metadata.version(name)
            except metadata.PackageNotFoundError:
                raise CheckFailed(
                    f"{requirements_file}: {name} is pinned but not installed"
                ) from None
            if installed != pinned.group(1):
                raise CheckFailed(
                    f"{requirements_file}: {name}=={pinned.group(1)} is pinned "
                    f"but {installed} is installed"
                )
    return names
