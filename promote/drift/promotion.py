"""Drift at promotion: how far the data a rebuild trained on is from the data its source did.

Both trainings' profiles are in their lineage records; each dataset the rebuild read is compared
with the source's of the same path, feature by feature, by the statistics `promote drift` uses
(`compare.compare_profiles`) under the target environment's drift rules. Apply records the
result on the candidate, describes it, and gates on it (`max_drift_share`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from promote.drift.compare import DatasetDrift, compare_profiles
from promote.drift.profile import PROFILE_FORMAT
from promote.manifests.schema import DriftRules


@dataclass(frozen=True)
class PromotionDrift:
    """The rebuild's datasets against the source's; `problem`: why nothing could be compared."""

    source: str  # the source version, as name/version
    datasets: list[DatasetDrift]
    problem: str | None = None

    @property
    def share(self) -> float:
        """The largest share of drifted features among the datasets compared."""
        return max((dataset.share for dataset in self.datasets), default=0.0)

    @property
    def drifted_features(self) -> list[str]:
        return [
            f"{dataset.name}:{feature.column}"
            for dataset in self.datasets
            for feature in dataset.drifted_features
        ]

    @property
    def summary(self) -> str:
        if self.problem is not None:
            return f"not measured: {self.problem}"
        parts = []
        for dataset in self.datasets:
            drifted = [feature.column for feature in dataset.drifted_features]
            named = f": {', '.join(drifted)}" if drifted else ""
            parts.append(
                f"{dataset.name} {len(drifted)} of {len(dataset.features)} features drifted "
                f"({dataset.share:.0%}){named}"
            )
        return f"from {self.source}: " + "; ".join(parts)

    def feature_lines(self) -> list[str]:
        """One line per feature compared: its method, score and PSI."""
        lines = []
        for dataset in self.datasets:
            for feature in dataset.features:
                psi = f", PSI {feature.psi:.3g}" if feature.psi is not None else ""
                mark = "DRIFTED" if feature.drifted else "ok"
                lines.append(f"{dataset.name} {feature.column}: {mark}, {feature.reason}{psi}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "problem": self.problem,
            "share": self.share,
            "datasets": [dataset.to_json() for dataset in self.datasets],
        }

    def tag(self) -> str:
        """The candidate's tag: the summary and the share, what a report shows of it."""
        body = {"source": self.source, "share": self.share, "summary": self.summary}
        return json.dumps(body, sort_keys=True)


def promotion_drift(
    source: str,
    source_profile: dict[str, Any],
    rebuilt_profile: dict[str, Any],
    rules: DriftRules,
) -> PromotionDrift:
    """Each dataset of the rebuild's profile against the source's of the same path."""
    if not source_profile or not rebuilt_profile:
        return PromotionDrift(source, [], "a training profile is missing (an older record)")
    formats = {source_profile.get("format"), rebuilt_profile.get("format")}
    if formats != {PROFILE_FORMAT}:
        return PromotionDrift(
            source,
            [],
            f"training profiles in formats {sorted(map(str, formats))}; "
            f"this promote reads format {PROFILE_FORMAT}",
        )
    trained = {dataset["path"]: dataset for dataset in source_profile["datasets"]}
    target = source_profile.get("target")
    compared = [
        compare_profiles(dataset["path"], dataset, trained[dataset["path"]], target, rules)
        for dataset in rebuilt_profile["datasets"]
        if dataset["path"] in trained
    ]
    if not compared:
        return PromotionDrift(source, [], "the two trainings read no dataset of the same path")
    return PromotionDrift(source, compared)
