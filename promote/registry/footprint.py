"""What a model costs to run, beyond its metrics: prediction latency, artifact size, complexity.

Latency is measured in this process, on the candidate and the champion loaded side by side,
over the same batches of the candidate's input example, the two models interleaved (and in
alternating order) within one run: a machine that is busy or throttled slows both alike, so
their ratio holds where either figure alone would not. Complexity is what the flavor exposes:
for scikit-learn the number of fitted coefficients, or trees and leaves of tree models; for
LightGBM its trees and leaves.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promote.registry.entities import Version
from promote.registry.loading import import_mlflow

if TYPE_CHECKING:
    from promote.registry.client import Registry

# Batches each model predicts (one batch = the whole input example), after one warm-up each;
# fewer for slow models: measuring stops after LATENCY_SECONDS once MIN_ROUNDS are done.
LATENCY_ROUNDS = 200
MIN_ROUNDS = 20
LATENCY_SECONDS = 5.0

TAG_PREFIX = "promote.footprint."
TAG_LATENCY_P50 = f"{TAG_PREFIX}latency_p50_ms"
TAG_LATENCY_P95 = f"{TAG_PREFIX}latency_p95_ms"
TAG_LATENCY_RATIO = f"{TAG_PREFIX}latency_ratio"
TAG_ARTIFACT_MB = f"{TAG_PREFIX}artifact_mb"
TAG_COMPLEXITY = f"{TAG_PREFIX}complexity"
TAG_COMPLEXITY_RATIO = f"{TAG_PREFIX}complexity_ratio"
TAG_CHAMPION = f"{TAG_PREFIX}champion"
NO_CHAMPION = "no champion"


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p95_ms: float

    def __str__(self) -> str:
        return f"p50 {self.p50_ms:.3f} ms, p95 {self.p95_ms:.3f} ms"


@dataclass(frozen=True)
class Complexity:
    """`value` counts `kind` ("parameters" or "leaves"): only equal kinds compare."""

    kind: str
    value: int
    trees: int = 0

    def __str__(self) -> str:
        if self.kind == "leaves":
            return f"{self.value} leaves in {self.trees} trees"
        return f"{self.value} parameters"


@dataclass(frozen=True)
class Footprint:
    """One model's figures; `latency` is None when it could not be measured, and why."""

    artifact_bytes: int
    latency: Latency | None
    complexity: Complexity | None
    latency_problem: str = ""


@dataclass(frozen=True)
class Comparison:
    """The candidate's footprint beside the champion's, measured in one run."""

    candidate: Footprint
    champion: Footprint | None
    champion_version: int | None
    rounds: int
    rows: int

    @property
    def latency_ratio(self) -> float | None:
        mine = self.candidate.latency
        theirs = self.champion.latency if self.champion else None
        if mine is None or theirs is None or theirs.p50_ms <= 0:
            return None
        return mine.p50_ms / theirs.p50_ms

    @property
    def complexity_ratio(self) -> float | None:
        mine = self.candidate.complexity
        theirs = self.champion.complexity if self.champion else None
        if mine is None or theirs is None or mine.kind != theirs.kind or theirs.value <= 0:
            return None
        return mine.value / theirs.value

    def tags(self) -> dict[str, str]:
        """The figures as version tags: claims for a reader, not signed proof."""
        candidate = self.candidate
        tags = {
            TAG_ARTIFACT_MB: f"{candidate.artifact_bytes / 1e6:.3f}",
            TAG_CHAMPION: f"v{self.champion_version}" if self.champion else NO_CHAMPION,
            TAG_COMPLEXITY: str(candidate.complexity) if candidate.complexity else "not exposed",
        }
        if candidate.latency is not None:
            tags[TAG_LATENCY_P50] = f"{candidate.latency.p50_ms:.4f}"
            tags[TAG_LATENCY_P95] = f"{candidate.latency.p95_ms:.4f}"
        tags[TAG_LATENCY_RATIO] = _ratio_text(self.latency_ratio, self._why_no_latency_ratio())
        tags[TAG_COMPLEXITY_RATIO] = _ratio_text(
            self.complexity_ratio, self._why_no_complexity_ratio()
        )
        return tags

    def _why_no_latency_ratio(self) -> str:
        if self.candidate.latency is None:
            return f"not measured: {self.candidate.latency_problem}"
        if self.champion is None:
            return NO_CHAMPION
        return f"champion not measured: {self.champion.latency_problem}"

    def _why_no_complexity_ratio(self) -> str:
        mine = self.candidate.complexity
        theirs = self.champion.complexity if self.champion else None
        if mine is None:
            return "the flavor exposes no complexity"
        if self.champion is None:
            return NO_CHAMPION
        if theirs is None:
            return "the champion's flavor exposes no complexity"
        return f"not comparable: {mine.kind} against the champion's {theirs.kind}"

    def describe(self) -> str:
        """One line for the version's description."""
        champion = f"v{self.champion_version}" if self.champion else NO_CHAMPION
        latency = str(self.candidate.latency or f"not measured ({self.candidate.latency_problem})")
        parts = [
            f"latency {latency} over {self.rounds} batches of {self.rows} rows",
            f"{self.candidate.artifact_bytes / 1e6:.3f} MB",
            str(self.candidate.complexity or "complexity not exposed"),
        ]
        if self.champion is not None:
            parts.append(
                f"against champion {champion} ({self.champion.latency or 'not measured'}; "
                f"{self.champion.artifact_bytes / 1e6:.3f} MB; "
                f"{self.champion.complexity or 'complexity not exposed'})"
            )
        else:
            parts.append(NO_CHAMPION)
        return "; ".join(parts)


def _ratio_text(ratio: float | None, why_not: str) -> str:
    return f"{ratio:.3f}" if ratio is not None else why_not


def recorded(tags: dict[str, str]) -> str:
    """The figures a version's tags record, in one line; "" when it has none."""
    if TAG_ARTIFACT_MB not in tags:
        return ""
    parts = []
    if TAG_LATENCY_P50 in tags:
        parts.append(
            f"p50 {tags[TAG_LATENCY_P50]} ms, p95 {tags.get(TAG_LATENCY_P95, '?')} ms "
            f"(to champion: {tags.get(TAG_LATENCY_RATIO, '?')})"
        )
    parts.append(f"{tags[TAG_ARTIFACT_MB]} MB")
    complexity = tags.get(TAG_COMPLEXITY, "")
    parts.append(f"{complexity} (to champion: {tags.get(TAG_COMPLEXITY_RATIO, '?')})")
    return "; ".join(parts)


def compare(
    registry: Registry,
    candidate: Version,
    candidate_bytes: int,
    champion: Version | None,
    rounds: int = LATENCY_ROUNDS,
) -> Comparison:
    """Download and load both models, then measure them side by side in this process."""
    import_mlflow()
    with tempfile.TemporaryDirectory() as scratch:
        mine = _Loaded.of(registry.download_model(candidate, Path(scratch) / "candidate"))
        theirs = None
        if champion is not None and champion.version != candidate.version:
            theirs = _Loaded.of(registry.download_model(champion, Path(scratch) / "champion"))
        example = mine.input_example()
        latencies: tuple[Latency | None, Latency | None] = (None, None)
        problem = "the model was saved without an input example"
        done = 0
        if example is not None:
            latencies, done, problem = _interleaved(mine, theirs, example, rounds)
        rows = len(example) if example is not None and hasattr(example, "__len__") else 0
        candidate_footprint = Footprint(
            candidate_bytes, latencies[0], mine.complexity(), "" if latencies[0] else problem
        )
        champion_footprint = None
        if theirs is not None:
            champion_footprint = Footprint(
                theirs.size, latencies[1], theirs.complexity(), "" if latencies[1] else problem
            )
        return Comparison(
            candidate_footprint,
            champion_footprint,
            champion.version if champion_footprint is not None and champion else None,
            done,
            rows,
        )


@dataclass
class _Loaded:
    folder: Path
    pyfunc: Any
    problem: str
    size: int

    @classmethod
    def of(cls, folder: Path) -> _Loaded:
        from mlflow.pyfunc import load_model

        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        try:
            return cls(folder, load_model(str(folder)), "", size)
        except Exception as exc:  # a flavor's loader may raise anything
            return cls(folder, None, f"MLflow cannot load it: {_first_line(exc)}", size)

    def input_example(self) -> Any:
        from mlflow.models import Model

        try:
            return Model.load(str(self.folder)).load_input_example(str(self.folder))
        except Exception:  # an example that does not load is an example that cannot be timed
            return None

    def complexity(self) -> Complexity | None:
        if self.pyfunc is None:
            return None
        try:
            raw = self.pyfunc.get_raw_model()
        except Exception:  # a flavor that does not hand out its model exposes nothing
            return None
        return complexity_of(raw)


def _interleaved(
    mine: _Loaded, theirs: _Loaded | None, example: Any, rounds: int
) -> tuple[tuple[Latency | None, Latency | None], int, str]:
    """Each model predicts `example` up to `rounds` times, the two alternating (ABBA),
    collection paused so that neither pays for the other's garbage; the rounds made."""
    models = [m for m in (mine, theirs) if m is not None]
    for model in models:
        if model.pyfunc is None:
            return (None, None), 0, model.problem
        try:
            model.pyfunc.predict(example)  # warm-up: lazy imports, caches
        except Exception as exc:  # the model's own code may raise anything
            problem = f"it failed to predict its input example: {_first_line(exc)}"
            return (None, None), 0, problem
    samples: list[list[float]] = [[] for _ in models]
    collecting = gc.isenabled()
    gc.disable()
    deadline = time.perf_counter() + LATENCY_SECONDS
    try:
        for round_number in range(rounds):
            if round_number >= MIN_ROUNDS and time.perf_counter() > deadline:
                break
            order = range(len(models)) if round_number % 2 == 0 else reversed(range(len(models)))
            for index in order:
                started = time.perf_counter()
                models[index].pyfunc.predict(example)
                samples[index].append((time.perf_counter() - started) * 1000)
    finally:
        if collecting:
            gc.enable()
    measured = [_percentiles(s) for s in samples]
    return (measured[0], measured[1] if len(measured) > 1 else None), len(samples[0]), ""


def _percentiles(samples: list[float]) -> Latency:
    cuts = statistics.quantiles(samples, n=20, method="inclusive")  # 5% steps: cuts[18] is p95
    return Latency(statistics.median(samples), cuts[18])


def complexity_of(model: Any) -> Complexity | None:
    """Trees and leaves, else fitted coefficients, of a scikit-learn estimator (a pipeline's
    steps summed) or a LightGBM model; None for anything else."""
    trees = leaves = parameters = 0
    for estimator in _estimators(model):
        booster = getattr(estimator, "booster_", None) or (
            estimator if type(estimator).__name__ == "Booster" else None
        )
        if booster is not None and hasattr(booster, "dump_model"):
            info = booster.dump_model().get("tree_info", [])
            trees += len(info)
            leaves += sum(int(tree.get("num_leaves", 0)) for tree in info)
        elif (tree := getattr(estimator, "tree_", None)) is not None:
            trees += 1
            leaves += int(tree.n_leaves)
        elif hasattr(estimator, "coef_"):
            parameters += int(estimator.coef_.size)
            parameters += int(getattr(getattr(estimator, "intercept_", None), "size", 0) or 0)
    if trees:
        return Complexity("leaves", leaves, trees)
    if parameters:
        return Complexity("parameters", parameters)
    return None


def _estimators(model: Any) -> Iterator[Any]:
    """`model` and what it is made of: pipeline steps, ensemble members (depth first)."""
    yield model
    for _, step in getattr(model, "steps", None) or []:
        yield from _estimators(step)
    members = getattr(model, "estimators_", None)
    if members is not None and not hasattr(model, "booster_"):
        for member in _flat(members):
            yield from _estimators(member)


def _flat(members: Any) -> Iterator[Any]:
    """Ensemble members, flattened: gradient boosting holds them in a 2-D array."""
    if isinstance(members, (list, tuple)) or hasattr(members, "ravel"):
        for member in members.ravel() if hasattr(members, "ravel") else members:
            yield from _flat(member)
    else:
        yield members


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
