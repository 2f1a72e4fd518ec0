"""Registry: orphan training runs (left by an apply that stopped before registering) are found
in a number of calls that does not grow with the manifests to build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from promote.build.lineage import LINEAGE_ARTIFACT, Lineage
from promote.registry import client as registry_module
from promote.registry.client import Registry
from promote.registry.entities import TAG_MANIFEST_DIGEST


def a_lineage(run_id: str) -> Lineage:
    return Lineage(
        model="churn",
        environment="staging",
        code_repo=".",
        code_commit="0" * 40,
        code_tree="1" * 40,
        code_dirty=False,
        entrypoint="models/churn/train.py",
        params={},
        libraries={},
        python_version="3.11.7",
        data_uri="data/staging/churn",
        data_snapshot=[],
        schema_fingerprint="",
        flavor="sklearn",
        signature=None,
        artifact_digest="a" * 64,
        run_id=run_id,
        trained_by="ci",
        trained_at="2026-11-26T00:00:00+00:00",
    )


@pytest.fixture
def orphans(tmp_path: Path) -> tuple[Registry, dict[str, str]]:
    """25 finished runs of staging with a manifest digest each; digest-03's has no lineage."""
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
    experiment = registry.experiment_id("staging", None)
    client = registry.client
    runs = {}
    for index in range(25):
        digest = f"digest-{index:02d}"
        run_id = client.create_run(experiment, tags={TAG_MANIFEST_DIGEST: digest}).info.run_id
        if index != 3:
            client.log_text(run_id, a_lineage(run_id).to_json(), LINEAGE_ARTIFACT)
        client.set_terminated(run_id)
        runs[digest] = run_id
    unfinished = client.create_run(experiment, tags={TAG_MANIFEST_DIGEST: "digest-unfinished"})
    runs["digest-unfinished"] = unfinished.info.run_id
    return registry, runs


def calls_of(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = registry._call

    def counting(what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(what)
        return real(what, function, *args, **kwargs)

    monkeypatch.setattr(registry, "_call", counting)
    return calls


def test_orphan_runs_are_listed_once_for_many_manifests(
    orphans: tuple[Registry, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, runs = orphans
    wanted = {*runs, "digest-never-trained"}
    calls = calls_of(registry, monkeypatch)
    found = registry.reusable_runs("staging", wanted)
    # Finished runs with a sound lineage record; not the one without, nor the unfinished one.
    expected = {d: r for d, r in runs.items() if d not in ("digest-03", "digest-unfinished")}
    assert found == expected
    assert calls == ["reading experiment", "listing runs"]  # 25 runs: one page

    # A few digests are searched one by one, with the same answers.
    few = {"digest-01", "digest-03", "digest-unfinished"}
    calls.clear()
    assert registry.reusable_runs("staging", few) == {"digest-01": runs["digest-01"]}
    assert calls == ["reading experiment", *["searching runs"] * 3]


def test_listing_pages_through_the_runs(
    orphans: tuple[Registry, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, runs = orphans
    monkeypatch.setattr(registry_module, "RUNS_PER_PAGE", 10)
    monkeypatch.setattr(registry_module, "DIGESTS_SEARCHED_ONE_BY_ONE", 0)
    calls = calls_of(registry, monkeypatch)
    found = registry.reusable_runs("staging", set(runs))
    assert len(found) == 24 and "digest-03" not in found and "digest-unfinished" not in found
    assert calls.count("listing runs") == 3  # 25 finished runs, 10 a page
    assert registry.reusable_runs("prod", set(runs)) == {}  # no experiment: nothing to reuse
