"""The manifest and environment-file schemas, and parsing text into them.

Every problem becomes an `InputError` naming the file and the field.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
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
    min: float | None = Field(
        default=None, strict=True, allow_inf_nan=False, description="Lowest value that passes"
    )
    max: float | None = Field(
        default=None, strict=True, allow_inf_nan=False, description="Highest value that passes"
    )

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

    metric: str = Field(description="Metric compared with the target environment's champion")
    tolerance: float = Field(
        default=0.0,
        ge=0,
        strict=True,
        allow_inf_nan=False,
        description="How much worse than the champion it may be",
    )
    higher_is_better: bool = Field(default=True, description="The metric's direction")

    def loosening(self, floor: NoRegression) -> tuple[str, Any, Any] | None:
        """The first field by which this rule lets through what `floor` would not: (field, this
        value, floor's). Another metric or direction drops the floor's guarantee altogether."""
        for field in ("metric", "higher_is_better"):
            if getattr(self, field) != getattr(floor, field):
                return field, getattr(self, field), getattr(floor, field)
        if self.tolerance > floor.tolerance:
            return "tolerance", self.tolerance, floor.tolerance
        return None


def _ratio_budget(description: str) -> Any:
    """An optional upper bound on a candidate's figure over its champion's."""
    return Field(default=None, gt=0, strict=True, allow_inf_nan=False, description=description)


class Gates(_Strict):
    metrics: dict[str, Threshold] = Field(default_factory=dict)
    no_regression: NoRegression | None = None
    max_artifact_mb: float | None = Field(default=None, gt=0, strict=True, allow_inf_nan=False)
    max_latency_ratio: float | None = _ratio_budget(
        "Highest p50 prediction latency against the champion's, measured side by side"
    )
    max_complexity_ratio: float | None = _ratio_budget(
        "Highest complexity (coefficients, or leaves of trees) against the champion's"
    )
    max_drift_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        strict=True,
        allow_inf_nan=False,
        description="Reject a rebuild when more than this share of its features drifted from "
        "the source's training data",
    )

    def merged_over(self, base: Gates) -> Gates:
        """A manifest's gates add to its environment's; where both bound a value, the stricter
        bound holds. The loader refuses a manifest that loosens its environment's gates
        (`refinement_problem`); a manifest built in code is merged just as safely."""
        metrics = dict(base.metrics)
        for name, threshold in self.metrics.items():
            floor = metrics.get(name)
            metrics[name] = threshold if floor is None else floor.strictest(threshold)
        rule, floor_rule = self.no_regression, base.no_regression
        if floor_rule is not None and (rule is None or rule.loosening(floor_rule) is not None):
            rule = floor_rule
        return Gates(
            metrics=metrics,
            no_regression=rule,
            **{name: _lowest(getattr(base, name), getattr(self, name)) for name in BUDGETS},
        )

    def refinement_problem(self, base: Gates, environment: str) -> tuple[str, str] | None:
        """Why these gates (a manifest's) do not refine `base` (its environment's), as the field
        and the problem; None when they only tighten it. Environment gates are the floor every
        model there is held to: a manifest that loosened them would let a worse model through."""
        loosened = next(self._loosenings(base), None)
        if loosened is not None:
            field, value, floor = loosened
            return field, (
                f"{value!r} loosens environment {environment}'s {floor!r} "
                "(a manifest may only tighten its environment's gates)"
            )
        for name, threshold in sorted(self.metrics.items()):
            floor_threshold = base.metrics.get(name)
            if floor_threshold is None:
                continue
            merged = floor_threshold.strictest(threshold)
            if merged.min is not None and merged.max is not None and merged.min > merged.max:
                return f"metrics.{_printable(name)}", (
                    f"no value passes: with environment {environment}'s bounds it needs "
                    f">= {merged.min} and <= {merged.max}"
                )
        return None

    def _loosenings(self, base: Gates) -> Iterator[tuple[str, Any, Any]]:
        """(field, this value, `base`'s) for every bound of these that `base` holds tighter."""
        for name, threshold in sorted(self.metrics.items()):
            floor = base.metrics.get(name)
            if floor is not None and (bound := threshold.loosening(floor)) is not None:
                yield f"metrics.{_printable(name)}.{bound[0]}", bound[1], bound[2]
        mine, floor_rule = self.no_regression, base.no_regression
        if mine and floor_rule and (rule := mine.loosening(floor_rule)) is not None:
            yield f"no_regression.{rule[0]}", rule[1], rule[2]
        for name in BUDGETS:
            budget, floor_budget = getattr(self, name), getattr(base, name)
            if budget is not None and floor_budget is not None and budget > floor_budget:
                yield name, budget, floor_budget


# The gates that are one upper bound each: merged, the lower holds.
BUDGETS = ("max_artifact_mb", "max_latency_ratio", "max_complexity_ratio", "max_drift_share")


def _lowest(*bounds: float | None) -> float | None:
    given = [bound for bound in bounds if bound is not None]
    return min(given) if given else None


DriftMethod = Literal["ks", "wasserstein", "chisquare", "jensenshannon", "psi"]

# The methods whose score is a p-value: drift is a score under the threshold. The others score a
# distance: drift is a score at or over it.
P_VALUE_METHODS = frozenset({"ks", "chisquare"})


def _drift_threshold(default: float, below_one: bool) -> Any:
    """A finite positive threshold; a p-value's is under 1, which every p-value would pass."""
    return Field(
        default=default, gt=0, lt=1 if below_one else None, strict=True, allow_inf_nan=False
    )


class DriftThresholds(_Strict):
    """Evidently's defaults: a p-value under 0.05 or a distance of at least 0.1 is drift."""

    ks: float = _drift_threshold(0.05, below_one=True)
    chisquare: float = _drift_threshold(0.05, below_one=True)
    wasserstein: float = _drift_threshold(0.1, below_one=False)
    jensenshannon: float = _drift_threshold(0.1, below_one=False)
    psi: float = _drift_threshold(0.1, below_one=False)


class FeatureDriftRule(_Strict):
    """How one column is compared: its method, with a threshold other than the method's own.

    The method is required: a threshold reads as a p-value or as a distance depending on it.
    """

    method: DriftMethod
    threshold: float | None = Field(default=None, gt=0, strict=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _p_value_under_one(self) -> FeatureDriftRule:
        if self.method in P_VALUE_METHODS and self.threshold is not None and self.threshold >= 1:
            raise ValueError(f"a {self.method} threshold is a p-value: under 1")
        return self


class ConceptRules(_Strict):
    """How far a metric may fall from its value at training before it is concept drift."""

    tolerance: float = Field(default=0.05, ge=0, strict=True, allow_inf_nan=False)
    metrics: dict[str, Annotated[float, Field(ge=0, strict=True, allow_inf_nan=False)]] = Field(
        default_factory=dict, description="Per metric, a tolerance other than `tolerance`"
    )


class DriftRules(_Strict):
    """`drift:` in an environment file or a manifest: how `promote drift` judges the data."""

    drift_share: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        strict=True,
        allow_inf_nan=False,
        description="A dataset is drifted when more than this share of its features drifted",
    )
    max_missing_increase: float = Field(
        default=0.1,
        ge=0,
        le=1,
        strict=True,
        allow_inf_nan=False,
        description="A feature whose share of missing values rose by more than this drifted",
    )
    thresholds: DriftThresholds = Field(default_factory=DriftThresholds)
    features: dict[str, FeatureDriftRule] = Field(default_factory=dict)
    ignore: list[str] = Field(default_factory=list, description="Columns not compared")
    reference: str | None = Field(
        default=None,
        description="Which dataset the training read a --data batch is compared with "
        "(default: the first it read)",
    )
    concept: ConceptRules = Field(default_factory=ConceptRules)

    def refined_by(self, manifest: DriftRules) -> DriftRules:
        """These rules (an environment's) under a manifest's: what the manifest sets wins,
        field by field; its feature rules and ignored columns add to these."""
        return _overlay(self, manifest)


def _overlay(base: BaseModel, top: BaseModel) -> Any:
    """`base` with the fields `top` sets: models overlaid in turn, mappings and lists joined."""
    values = dict(base)
    for name in top.model_fields_set:
        mine, theirs = values[name], getattr(top, name)
        if isinstance(mine, BaseModel) and isinstance(theirs, BaseModel):
            values[name] = _overlay(mine, theirs)
        elif isinstance(mine, dict):
            values[name] = {**mine, **theirs}
        elif isinstance(mine, list):
            values[name] = [*mine, *(item for item in theirs if item not in mine)]
        else:
            values[name] = theirs
    return type(base).model_construct(**values)


class WatchRules(_Strict):
    """`watch:` in an environment file: what `promote watch` does when a model's data drifted."""

    on_drift: Literal["issue", "retrain"] = Field(
        default="issue",
        description="issue: open (or update) one issue per drifted model; retrain: open (or "
        "update) its retrain pull request, which still needs review and approval to merge",
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


class Webhook(_Strict):
    """An HTTP endpoint told of every champion move, with a body signed by a shared secret."""

    url: str = Field(description="http(s) URL that receives the signed JSON POST")
    secret_env: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]{0,127}$",
        description="The environment variable holding the HMAC-SHA256 secret (never the secret)",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
            raise ValueError("must be an http:// or https:// URL")
        # A password in the URL would put a secret into git and into every history event.
        if URL_WITH_PASSWORD.match(value):
            raise ValueError("must not carry credentials: sign with secret_env instead")
        return value


class HandoffRetry(_Strict):
    """How long a hand-off keeps trying: bounded in attempts and in time, never blocking."""

    attempts: int = Field(default=5, ge=1, le=20, strict=True, description="Tries per target")
    backoff_seconds: float = Field(
        default=1.0, gt=0, le=60, strict=True, allow_inf_nan=False, description="First wait"
    )
    max_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        strict=True,
        allow_inf_nan=False,
        description="All tries of one target, waits included, end within this",
    )
    timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, strict=True, allow_inf_nan=False, description="One try"
    )


class Handoff(_Strict):
    """`handoff:` in an environment file: who is told when `champion` moves."""

    webhook: Webhook | None = None
    github_deployment: bool | str = Field(
        default=False,
        description="true: a GitHub deployment to the environment of this name; a name: to that",
    )
    retry: HandoffRetry = Field(default_factory=HandoffRetry)

    @field_validator("github_deployment", mode="before")
    @classmethod
    def _deployment(cls, value: Any) -> Any:
        if isinstance(value, bool) or (
            isinstance(value, str) and re.fullmatch(NAME_PATTERN, value)
        ):
            return value
        raise ValueError("must be true, false or a deployment environment's name")

    @model_validator(mode="after")
    def _some_target(self) -> Handoff:
        if self.webhook is None and self.github_deployment is False:
            raise ValueError("give webhook, github_deployment or both")
        return self


class LocalCompute(_Strict):
    """Rebuilds run as a subprocess of `promote apply`, on its machine."""

    engine: Literal["local"] = "local"


class RayCompute(_Strict):
    """Rebuilds run as jobs on an existing Ray cluster, submitted through its dashboard."""

    engine: Literal["ray"]
    address: str = Field(
        description="The Ray dashboard that takes job submissions, e.g. http://ray-head:8265"
    )
    output_root: str = Field(
        description="Where each job leaves its packed output for promote to fetch: s3://bucket/"
        "prefix, or an absolute folder that the cluster and promote both mount",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[A-Za-z0-9.\[\]:_-]+(:\d{1,5})?/?", value):
            raise ValueError("must be the dashboard's http:// or https:// address, host and port")
        return value

    @field_validator("output_root")
    @classmethod
    def _output_root(cls, value: str) -> str:
        # A relative folder would name one folder here and another on each cluster node.
        if not (value.startswith("s3://") and len(value) > len("s3://")) and not (
            value.startswith("/") and ".." not in PurePosixPath(value).parts
        ):
            raise ValueError("must be s3://bucket/prefix or an absolute folder without '..'")
        return value.rstrip("/")


Compute = Annotated[LocalCompute | RayCompute, Field(discriminator="engine")]
# Fields whose value is a union chosen by a tag (`engine`).
_TAGGED_UNIONS = frozenset({"compute"})


class EnvironmentConfig(_Strict):
    """`environments/<env>/environment.yaml`: how one environment trains and where its data is."""

    name: str = Field(pattern=NAME_PATTERN, description="The environment's name (its folder)")
    promotes_from: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="The environment whose champions this one rebuilds; none: trained by hand",
    )
    data_root: str = Field(
        description="Local folder (relative to the repository) or s3://bucket/prefix"
    )
    allow_data_outside_repository: bool = Field(
        default=False,
        description="Allow a local data_root outside the repository (a sandbox, a shared mount)",
    )
    artifact_root: str | None = Field(
        default=None,
        description="Where this environment's training runs store artifacts (local folder or s3://)",
    )
    training: Literal["retrain", "copy"] = Field(
        default="retrain",
        description="retrain: rebuild from the commit on this data; copy: the validated artifact",
    )
    protected_branch: str = Field(
        default="main", description="Only manifests merged on this branch are applied"
    )
    model_name: str = Field(
        default="{env}.{model}",
        description="Registered model name template: {env}, {model}, letters, digits, '_.-'",
    )
    python: str | None = Field(
        default=None,
        description="Interpreter for training runs: an absolute path or a command on PATH",
    )
    python_version: str | None = Field(
        default=None,
        pattern=r"^3\.\d{1,2}(\.\d{1,2})?$",
        description="The Python CI sets up for this environment's builds: dev's, since the "
        "lineage match compares the version",
    )
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
    drift: DriftRules = Field(
        default_factory=DriftRules,
        description="How `promote drift` judges this environment's data; manifests refine it",
    )
    handoff: Handoff | None = Field(
        default=None,
        description="Notified after every champion move: a signed webhook, a GitHub deployment",
    )
    watch: WatchRules = Field(
        default_factory=WatchRules,
        description="What the scheduled `promote watch` does about drift in this environment",
    )
    compute: Compute = Field(
        default_factory=LocalCompute,
        description="Where rebuilds train: local (a subprocess of apply) or ray (a Ray cluster)",
    )

    @field_validator("model_name")
    @classmethod
    def _template(cls, value: str) -> str:
        # str.format would also follow `{env.__class__}`, index `{0}` or pad `{env:>999}`.
        fields = [part[1:] for part in string.Formatter().parse(value) if part[1] is not None]
        if any(
            name not in ("env", "model") or spec or conversion for name, spec, conversion in fields
        ):
            raise ValueError(
                "may hold only the fields {env} and {model}, without format specs or conversions"
            )
        if {name for name, _, _ in fields} != {"env", "model"}:
            raise ValueError("must contain both {env} and {model}")
        # Environment and model names are of these characters already: the rest must be too.
        if not REGISTERED_NAME.fullmatch(value.format(env="e", model="m")):
            raise ValueError(
                "must render a name of letters, digits, '_', '.' and '-' that starts with a "
                "letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _retrain_from_below(self) -> EnvironmentConfig:
        if self.watch.on_drift == "retrain" and self.promotes_from is None:
            raise ValueError(
                "watch.on_drift: retrain rebuilds from the environment below: this one promotes "
                "from none (use issue, and retrain with promote train)"
            )
        if self.watch.on_drift == "retrain" and self.training == "copy":
            raise ValueError(
                "watch.on_drift: retrain rebuilds on this environment's data: training: copy "
                "trains on none (use issue)"
            )
        return self

    @field_validator("data_root", "artifact_root")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and (not value or ("://" in value and not value.startswith("s3://"))):
            raise ValueError("must be a local folder or an s3:// URI")
        return value


class Source(_Strict):
    environment: str = Field(pattern=NAME_PATTERN, description="Environment promoted from")
    version: int = Field(ge=1, strict=True, description="Its registered version")


class Code(_Strict):
    repo: str = Field(default=".", description="'.' for this repository, or a git URL")
    commit: str | None = Field(default=None, pattern=COMMIT_PATTERN, description="Full commit sha")
    entrypoint: str = Field(description="Training script, relative to the repository")
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="Parameters the script reads with run.params"
    )

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
        for name, param in value.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}", name):
                raise ValueError(f"parameter name {name!r} is not a plain identifier")
            # NaN is not equal to itself: no digest or lineage match could hold it.
            if isinstance(param, float) and not math.isfinite(param):
                raise ValueError(f"parameter {name!r} must be a finite number, not {param}")
        return value


class Data(_Strict):
    path: str = Field(description="Folder under the environment's data root")
    as_of: datetime | None = Field(
        default=None,
        description="When a retrain on the environment's current data was asked for "
        "(promote retrain): a new value rebuilds the same commit, on the data found then",
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _relative_path(value, "data.path")

    @field_validator("as_of")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # A time without its zone names a different instant on every machine that reads it.
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must name its time zone, e.g. 2026-12-03T18:30:00Z")
        return value.astimezone(timezone.utc)


class Manifest(_Strict):
    """`environments/<env>/<model>.yaml`: the desired state of one model in one environment."""

    model: str = Field(pattern=NAME_PATTERN, description="The model's name (its file name)")
    source: Source | None = Field(
        default=None, description="The version this manifest promotes; none in a first env"
    )
    code: Code = Field(description="What trains it")
    data: Data = Field(description="What it trains on")
    gates: Gates = Field(default_factory=Gates)
    drift: DriftRules | None = Field(
        default=None, description="Refines the environment's drift rules for this model"
    )


class _CheckedDocuments(yaml.constructor.SafeConstructor):
    """Safe construction of a document that names no key twice in one mapping and nests no
    deeper than MAX_YAML_DEPTH. YAML keeps the last of two equal keys silently, while a reviewer
    reads the first: `tolerance: 0.0` above a second `tolerance: 0.3` would approve the 0.3."""

    display = ""  # the file being read, which a refusal names

    def construct_document(self, node: yaml.Node) -> Any:
        # Iterative, and each node once: aliases may share nodes, or make a cycle.
        stack: list[tuple[yaml.Node, tuple[str, ...], int]] = [(node, (), 1)]
        visited: set[int] = set()
        while stack:
            current, path, depth = stack.pop()
            if id(current) in visited:
                continue
            visited.add(id(current))
            if depth > MAX_YAML_DEPTH:
                raise InputError(self.display, None, f"nested deeper than {MAX_YAML_DEPTH} levels")
            if isinstance(current, yaml.SequenceNode):
                stack += [
                    (item, (*path, str(i)), depth + 1) for i, item in enumerate(current.value)
                ]
            elif isinstance(current, yaml.MappingNode):
                stack += self._checked_pairs(current, path, depth)
        return super().construct_document(node)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ArithmeticError, AttributeError, LookupError, ValueError):
            # A scalar under a tag it cannot be (`!!int abc`, `!!bool maybe`): PyYAML lets the
            # conversion's own exception out, where a YAML error is due.
            raise yaml.constructor.ConstructorError(
                None, None, f"a value that is not a valid {node.tag}", node.start_mark
            ) from None

    def _checked_pairs(
        self, mapping: yaml.MappingNode, path: tuple[str, ...], depth: int
    ) -> list[tuple[yaml.Node, tuple[str, ...], int]]:
        """The children of `mapping` to check next; a key it names twice is refused."""
        children = []
        keys: set[Any] = set()
        for key_node, value_node in mapping.value:
            if key_node.tag == _MERGE_TAG:
                # What `<<` merges in, the mapping's own keys may override: that is its purpose.
                merged = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                children += [(item, path, depth) for item in merged]
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a collection as a key: construction refuses it as unhashable
            key = self.construct_object(key_node)
            child = (*path, _printable(str(key)))
            if key in keys:
                line = key_node.start_mark.line + 1
                raise InputError(
                    self.display,
                    ".".join(child),
                    f"named twice (again at line {line}): YAML keeps only the last",
                )
            keys.add(key)
            children.append((value_node, child, depth + 1))
        return children


# The same safe subset of YAML, through libyaml when PyYAML was built with it.
_FAST_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FastLoader(_CheckedDocuments, _FAST_SAFE_LOADER):
    pass


class _Loader(_CheckedDocuments, yaml.SafeLoader):
    pass


def parse_yaml(text: str, display: str) -> dict[str, Any]:
    """Safe YAML to a mapping, or an InputError naming the file (and line) otherwise.

    libyaml's safe loader parses thousands of manifests about ten times faster; a document it
    refuses is parsed again by PyYAML's own, whose messages name the problem and line better.
    """
    check_size(len(text.encode("utf-8", "replace")), display)
    try:
        data = _load(text, _FastLoader, display)
    except yaml.YAMLError:
        data = _safe_load_or_refuse(text, display)
    if not isinstance(data, dict):
        raise InputError(display, None, "must be a YAML mapping")
    return data


def check_size(size: int, display: str) -> None:
    """Refuse a YAML text of `size` bytes over MAX_YAML_BYTES."""
    if size > MAX_YAML_BYTES:
        raise InputError(
            display, None, f"larger than {MAX_YAML_BYTES >> 20} MiB, the bound on a YAML file"
        )


def _load(text: str, loader_class: type[Any], display: str) -> Any:
    """What `yaml.load` does, with the loader told which file it reads."""
    loader = loader_class(text)
    loader.display = display
    try:
        return loader.get_single_data()
    except RecursionError:
        # The parser recurses per level, so a deep enough document stops it before our check.
        raise InputError(display, None, f"nested deeper than {MAX_YAML_DEPTH} levels") from None
    finally:
        loader.dispose()


def _safe_load_or_refuse(text: str, display: str) -> Any:
    try:
        return _load(text, _Loader, display)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise InputError(display, None, f"invalid YAML{where}: {problem}") from None


def _validation_message(exc: ValidationError) -> tuple[str | None, str]:
    error = exc.errors()[0]
    parts = [str(part) for part in error["loc"] if part != "__root__"]
    # A tagged union's errors name the tag after the field (compute.ray.address): no such key
    # is in the file.
    parts = [part for i, part in enumerate(parts) if i == 0 or parts[i - 1] not in _TAGGED_UNIONS]
    kind = error["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        parts.append(str(error["ctx"]["discriminator"]).strip("'"))
    location = ".".join(_printable(part) for part in parts) or None
    if kind == "extra_forbidden":
        return location, "unknown field"
    if kind in ("missing", "union_tag_not_found"):
        return location, "required field is missing"
    if kind == "union_tag_invalid":
        context = error["ctx"]
        return location, f"{context['tag']!r} is none of {context['expected_tags']}"
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


@dataclass(frozen=True)
class SchemaField:
    """One field of a schema as `promote schema` lists it: dotted path, type, default, help."""

    path: str
    type: str
    default: str
    description: str


def schema_fields(schema: dict[str, Any]) -> list[SchemaField]:
    """Every field of a JSON Schema, nested ones by dotted path (`*` for a mapping's keys)."""
    definitions = schema.get("$defs", {})

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = {
                **definitions[node["$ref"].rsplit("/", 1)[-1]],
                **{k: v for k, v in node.items() if k != "$ref"},
            }
        return node

    def type_of(node: dict[str, Any]) -> str:
        if "$ref" in node:
            return str(node["$ref"].rsplit("/", 1)[-1])
        node = resolve(node)
        if "anyOf" in node:
            kinds = [type_of(option) for option in node["anyOf"]]
            return " | ".join(kind for kind in kinds if kind != "null") or "null"
        if "enum" in node:
            return " | ".join(json.dumps(value) for value in node["enum"])
        if "const" in node:
            return json.dumps(node["const"])
        kind = node.get("type", "object")
        if kind == "array":
            return f"list[{type_of(node.get('items', {}))}]"
        if kind == "object" and isinstance(node.get("additionalProperties"), dict):
            return f"map[{type_of(node['additionalProperties'])}]"
        return str(kind)

    def children(node: dict[str, Any]) -> dict[str, Any] | None:
        node = resolve(node)
        for option in node.get("anyOf", []):
            nested = children(option)
            if nested is not None:
                return nested
        if "properties" in node:
            return dict(node["properties"])
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and "properties" in resolve(extra):
            return {"*": extra}
        return None

    fields: list[SchemaField] = []

    def walk(properties: dict[str, Any], prefix: str) -> None:
        for name, node in properties.items():
            path = f"{prefix}{name}"
            described = {**resolve(node), **node}
            default = json.dumps(described["default"]) if "default" in described else ""
            fields.append(
                SchemaField(
                    path, type_of(node), default, " ".join(described.get("description", "").split())
                )
            )
            nested = children(node)
            if nested is not None:
                walk(nested, f"{path}.")

    walk(schema.get("properties", {}), "")
    return fields


def dump_manifest(manifest: Manifest) -> str:
    body = manifest.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
    if not body.get("gates") or body["gates"] == Gates().model_dump(mode="json", exclude_none=True):
        body.pop("gates", None)
    return yaml.safe_dump(body, sort_keys=False)
