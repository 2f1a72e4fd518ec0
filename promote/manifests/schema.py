"""The manifest and environment-file schemas, and parsing text into them.

Every problem becomes an `InputError` naming the file and the field.
"""

from __future__ import annotations

import re
import string
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from promote.errors import InputError
from promote.runtime.redact import URL_WITH_PASSWORD

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"

COMMIT_PATTERN = r"^[0-9a-f]{40}$"

# Already normal and safely relative: no empty, `.` or `..` part, no `~`, no backslash.
_PLAIN_RELATIVE_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")

# The same safe subset of YAML, through libyaml when PyYAML was built with it.
_FAST_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Bounds on any YAML promote reads (manifests, environment files, their versions in git history).
# An honest file is a few KiB and a few levels deep; these keep a hostile one from costing more
# than a moment, or the parser's recursion from ending in a RecursionError instead of a refusal.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 32

# What a registered model name may be: MLflow refuses '/' and ':' and names that normalise as a
# path; MLflow URIs (`models:/name@alias`), filter strings and one-line messages need the rest.
REGISTERED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# MLflow keeps 256 characters; promote derives longer names from it (its lock, the lock's guard).
MAX_REGISTERED_NAME = 200

_MERGE_TAG = "tag:yaml.org,2002:merge"

ParamValue = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative_path(value: str, what: str) -> str:
    """Paths in manifests stay inside the checkout or data root: no absolute paths, no `..`."""
    if _PLAIN_RELATIVE_PATH.fullmatch(value):
        return value  # the common case, decided without pathlib: thousands of manifests
    path = PurePosixPath(value)
    if (
        not value
        or path.is_absolute()
        or "\\" in value
        or ".." in path.parts
        or value.startswith("~")
    ):
        raise ValueError(f"{what} must be a relative path inside the repository, without '..'")
    return str(path)


class Threshold(_Strict):
    # strict: YAML's `true` is not the number 1 (pydantic would otherwise accept it).
    min: float | None = Field(default=None, strict=True, allow_inf_nan=False)
    max: float | None = Field(default=None, strict=True, allow_inf_nan=False)

    def loosening(self, floor: Threshold) -> tuple[str, float, float] | None:
        """The first bound of these that `floor` holds tighter: (bound, this value, floor's)."""
        if self.min is not None and floor.min is not None and self.min < floor.min:
            return "min", self.min, floor.min
        if self.max is not None and floor.max is not None and self.max > floor.max:
            return "max", self.max, floor.max
        return None

    def strictest(self, other: Threshold) -> Threshold:
        lows = [v for v in (self.min, other.min) if v is not None]
        highs = [v for v in (self.max, other.max) if v is not None]
        return Threshold.model_construct(
            min=max(lows) if lows else None, max=min(highs) if highs else None
        )

    @model_validator(mode="after")
    def _bounded(self) -> Threshold:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        return self


class NoRegression(_Strict):
    """The new version may not be worse than the current champion by more than `tolerance`."""

    metric: str
    tolerance: float = Field(default=0.0, ge=0, strict=True, allow_inf_nan=False)
    higher_is_better: bool = True

    def loosening(self, floor: NoRegression) -> tuple[str, Any, Any] | None:
        """The first field by which this rule lets through what `floor` would not: (field, this
        value, floor's). Another metric or direction drops the floor's guarantee altogether."""
        for field in ("metric", "higher_is_better"):
            if getattr(self, field) != getattr(floor, field):
                return field, getattr(self, field), getattr(floor, field)
        if self.tolerance > floor.tolerance:
            return "tolerance", self.tolerance, floor.tolerance
        return None


class Gates(_Strict):
    metrics: dict[str, Threshold] = Field(default_factory=dict)
    no_regression: NoRegression | None = None
    max_artifact_mb: float | None = Field(default=None, gt=0, strict=True, allow_inf_nan=False)

    def merged_over(self, base: Gates) -> Gates:
        """A manifest's gates add to its environment's; where both bound a value, the stricter
        bound holds. The loader refuses a manifest that loosens its environment's gates
        (`refinement_problem`); a manifest built in code is merged just as safely."""
        metrics = dict(base.metrics)
        for name, threshold in self.metrics.items():
            floor = metrics.get(name)
            metrics[name] = threshold if floor is None else floor.strictest(threshold)
        budgets = [b for b in (base.max_artifact_mb, self.max_artifact_mb) if b is not None]
        rule, floor_rule = self.no_regression, base.no_regression
        if floor_rule is not None and (rule is None or rule.loosening(floor_rule) is not None):
            rule = floor_rule
        return Gates(
            metrics=metrics,
            no_regression=rule,
            max_artifact_mb=min(budgets) if budgets else None,
        )

    def refinement_problem(self, base: Gates, environment: str) -> tuple[str, str] | None:
        """Why these gates (a manifest's) do not refine `base` (its environment's), as the field
        and the problem; None when they only tighten it. Environment gates are the floor every
        model of the environment is held to: a looser bound would let a worse model through."""
        loosened: tuple[str, Any, Any] | None = None
        for name, threshold in sorted(self.metrics.items()):
            floor = base.metrics.get(name)
            if floor is None:
                continue
            field = f"metrics.{_printable(name)}"
            if (bound := threshold.loosening(floor)) is not None:
                loosened = (f"{field}.{bound[0]}", bound[1], bound[2])
                break
            merged = floor.strictest(threshold)
            if merged.min is not None and merged.max is not None and merged.min > merged.max:
                return field, (
                    f"no value passes: with environment {environment}'s bound it needs "
                    f">= {merged.min} and <= {merged.max}"
                )
        if loosened is None and self.no_regression and base.no_regression:
            if (rule := self.no_regression.loosening(base.no_regression)) is not None:
                loosened = (f"no_regression.{rule[0]}", rule[1], rule[2])
        mine, floor_budget = self.max_artifact_mb, base.max_artifact_mb
        if loosened is None and mine is not None and floor_budget is not None and mine > floor_budget:
            loosened = ("max_artifact_mb", mine, floor_budget)
        if loosened is None:
            return None
        field, value, floor_value = loosened
        return field, (
            f"{value!r} loosens environment {environment}'s {floor_value!r} "
            "(a manifest may only tighten its environment's gates)"
        )


class ApprovalRule(_Strict):
    """Who must approve the pull request that changes this environment's manifests."""

    required: int = Field(default=1, ge=1, description="Approvals needed on the PR's final commit")
    team: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="organisation/team-slug whose members' approvals count",
    )

    @property
    def organisation(self) -> str:
        return self.team.split("/", 1)[0]

    @property
    def team_slug(self) -> str:
        return self.team.split("/", 1)[1]


class KeylessIdentity(_Strict):
    """The GitHub Actions workflow whose Sigstore certificate may sign this environment's models."""

    repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", description="owner/name")
    workflow: str = Field(
        pattern=r"^\.github/workflows/[A-Za-z0-9_.-]+\.ya?ml$",
        description="the workflow file, e.g. .github/workflows/promote-apply.yml",
    )
    ref: str = Field(default="refs/heads/main", pattern=r"^refs/[A-Za-z0-9_./-]+$")


class Signing(_Strict):
    """Who may sign this environment's provenance: verifying needs only this file and storage."""

    public_keys: list[Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=list,
        description="PEM public keys (ECDSA P-256); the private keys stay outside the repository",
    )
    keyless: KeylessIdentity | None = Field(
        default=None, description="Sigstore keyless signing by this GitHub Actions workflow"
    )


class EnvironmentConfig(_Strict):
    """`environments/<env>/environment.yaml`: how one environment trains and where its data is."""

    name: str = Field(pattern=NAME_PATTERN)
    promotes_from: str | None = Field(default=None, pattern=NAME_PATTERN)
    data_root: str = Field(
        description="Local folder (relative to the repository) or s3://bucket/prefix"
    )
    artifact_root: str | None = Field(
        default=None,
        description="Where this environment's training runs store artifacts (local folder or s3://)",
    )
    training: Literal["retrain", "copy"] = "retrain"
    protected_branch: str = "main"
    model_name: str = Field(default="{env}.{model}", description="Registered model name template")
    python: str | None = Field(default=None, description="Interpreter for training runs")
    role: str | None = Field(
        default=None, description="IAM role this environment's pipeline assumes"
    )
    gates: Gates = Field(default_factory=Gates)
    approval: ApprovalRule | None = Field(
        default=None,
        description="Enforced by promote apply: approvals of the merged PR, from a team",
    )
    required_checks: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list,
        description="GitHub check runs or commit statuses a pinned commit must have passed",
    )
    signing: Signing = Field(
        default_factory=Signing,
        description="Keys (or the keyless identity) that sign and verify this environment's models",
    )

    @field_validator("model_name")
    @classmethod
    def _template(cls, value: str) -> str:
        if "{model}" not in value or "{env}" not in value:
            raise ValueError("must contain both {env} and {model}")
        return value

    @field_validator("data_root", "artifact_root")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and (not value or ("://" in value and not value.startswith("s3://"))):
            raise ValueError("must be a local folder or an s3:// URI")
        return value


class Source(_Strict):
    environment: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1, strict=True)


class Code(_Strict):
    repo: str = Field(default=".", description="'.' for this repository, or a git URL")
    commit: str | None = Field(default=None, pattern=COMMIT_PATTERN, description="Full commit sha")
    entrypoint: str
    params: dict[str, ParamValue] = Field(default_factory=dict)

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        # A URL with a user:password (or token) part would put a secret into git and lineage.
        if URL_WITH_PASSWORD.match(value):
            raise ValueError("must not carry credentials: configure a git credential helper")
        if value.startswith("-"):
            raise ValueError("must be '.', a path or a git URL")
        return value

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        value = _relative_path(value, "entrypoint")
        if not value.endswith((".py", ".ipynb")):
            raise ValueError("entrypoint must be a .py file or a .ipynb notebook")
        return value

    @field_validator("params")
    @classmethod
    def _param_names(cls, value: dict[str, ParamValue]) -> dict[str, ParamValue]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}", name):
                raise ValueError(f"parameter name {name!r} is not a plain identifier")
        return value


class Data(_Strict):
    path: str = Field(description="Folder under the environment's data root")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _relative_path(value, "data.path")


class Manifest(_Strict):
    """`environments/<env>/<model>.yaml`: the desired state of one model in one environment."""

    model: str = Field(pattern=NAME_PATTERN)
    source: Source | None = None
    code: Code
    data: Data
    gates: Gates = Field(default_factory=Gates)


def parse_yaml(text: str, display: str) -> dict[str, Any]:
    """Safe YAML to a mapping, or an InputError naming the file (and line) otherwise.

    libyaml's safe loader parses thousands of manifests about ten times faster; a document it
    refuses is parsed again by PyYAML's own, whose messages name the problem and line better.
    """
    try:
        data = yaml.load(text, Loader=_FAST_SAFE_LOADER)
    except yaml.YAMLError:
        data = _safe_load_or_refuse(text, display)
    if not isinstance(data, dict):
        raise InputError(display, None, "must be a YAML mapping")
    return data


def _safe_load_or_refuse(text: str, display: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise InputError(display, None, f"invalid YAML{where}: {problem}") from None


def _validation_message(exc: ValidationError) -> tuple[str | None, str]:
    error = exc.errors()[0]
    location = (
        ".".join(_printable(str(part)) for part in error["loc"] if part != "__root__") or None
    )
    kind = error["type"]
    if kind == "extra_forbidden":
        return location, "unknown field"
    if kind == "missing":
        return location, "required field is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    return location, " ".join(message.split())


def _printable(text: str) -> str:
    """A key as it can appear in a one-line message: quoted and escaped if it has to be."""
    return text if text.isprintable() else repr(text)


def parse(model_class: type[_Strict], data: dict[str, Any], display: str) -> Any:
    try:
        return model_class.model_validate(data)
    except ValidationError as exc:
        location, message = _validation_message(exc)
        raise InputError(display, location, message) from None


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas for editors: `environment.yaml` and model manifests."""
    return {
        "environment": EnvironmentConfig.model_json_schema(),
        "manifest": Manifest.model_json_schema(),
    }


def dump_manifest(manifest: Manifest) -> str:
    body = manifest.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
    if not body.get("gates") or body["gates"] == Gates().model_dump(mode="json", exclude_none=True):
        body.pop("gates", None)
    return yaml.safe_dump(body, sort_keys=False)
