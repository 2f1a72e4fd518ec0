"""The manifest and environment-file schemas, and parsing text into them.

Every problem becomes an `InputError` naming the file and the field.
"""

from __future__ import annotations

import re
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
    min: float | None = Field(default=None, strict=True)
    max: float | None = Field(default=None, strict=True)

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
    tolerance: float = Field(default=0.0, ge=0, strict=True)
    higher_is_better: bool = True


class Gates(_Strict):
    metrics: dict[str, Threshold] = Field(default_factory=dict)
    no_regression: NoRegression | None = None
    max_artifact_mb: float | None = Field(default=None, gt=0, strict=True)

    def merged_over(self, base: Gates) -> Gates:
        """A manifest's gates add to its environment's; where both bound a value, the stricter
        bound holds, so a manifest can tighten an environment's floor but never relax it."""
        metrics = dict(base.metrics)
        for name, threshold in self.metrics.items():
            floor = metrics.get(name)
            metrics[name] = threshold if floor is None else floor.strictest(threshold)
        budgets = [b for b in (base.max_artifact_mb, self.max_artifact_mb) if b is not None]
        return Gates(
            metrics=metrics,
            no_regression=self.no_regression or base.no_regression,
            max_artifact_mb=min(budgets) if budgets else None,
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
