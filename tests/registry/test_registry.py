"""Registry: orphan training runs (left by an apply that stopped before registering) are found
in a number of reads that does not grow with the manifests to build, nor with the runs that
versions were registered from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from promote.build.lineage import LINEAGE_ARTIFACT, Lineage
from promote.registry import paged
from promote.registry.client import Registry
from promote.registry.entities import TAG_MANIFEST_DIGEST, TAG_RUN_REGISTERED
from promote.registry.paged import PagedReader
from promote.registry.sql import SqlReader


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
    if isinstance(registry.reader, PagedReader):  # it holds the registry's call from its start
        monkeypatch.setattr(registry.reader, "call", counting)
    return calls


def test_orphan_runs_of_many_manifests_are_found_in_one_statement(
    orphans: tuple[Registry, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, runs = orphans
    registry.client.set_tag(runs["digest-07"], TAG_RUN_REGISTERED, "staging.churn/1")
    wanted = {*runs, "digest-never-trained"}
    calls = calls_of(registry, monkeypatch)
    found = registry.reusable_runs("staging", wanted)
    # Finished runs with a sound lineage record, never registered; not the one without a
    # record, nor the unfinished one, nor the one a version was registered from.
    skipped = ("digest-03", "digest-unfinished", "digest-07")
    assert found == {d: r for d, r in runs.items() if d not in skipped}
    assert not [call for call in calls if "runs" in call]  # the tables, not the search API
    assert registry.reusable_runs("prod", set(runs)) == {}  # no experiment: nothing to reuse


def test_over_the_search_api_only_unregistered_runs_are_paged_through(
    orphans: tuple[Registry, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, runs = orphans
    assert isinstance(registry.reader, SqlReader)
    monkeypatch.setattr(registry, "reader", registry.reader.fallback)  # as over http
    for digest in ("digest-05", "digest-06", "digest-07", "digest-08", "digest-09"):
        registry.client.set_tag(runs[digest], TAG_RUN_REGISTERED, "staging.churn/1")
    monkeypatch.setattr(paged, "RUNS_PER_PAGE", 10)
    calls = calls_of(registry, monkeypatch)
    found = registry.reusable_runs("staging", {"digest-01", "digest-03", "digest-unfinished"})
    assert found == {"digest-01": runs["digest-01"]}
    # 19 finished runs never registered, 10 a page: pages of those, whatever was asked for.
    assert calls.count("listing unregistered runs") == 2
    assert registry.reusable_runs("prod", set(runs)) == {}


def test_aliases_are_read_without_listing_a_single_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
    client = registry.client
    client.create_registered_model("staging.churn")
    for _ in range(3):
        client.create_model_version("staging.churn", source=str(tmp_path / "model"))
    client.set_registered_model_alias("staging.churn", "champion", "2")
    full = registry.model("staging.churn")
    assert full is not None and len(full.versions) == 3
    calls = calls_of(registry, monkeypatch)
    # What `promote serve` polls: the same aliases as the full read, in no version listing.
    assert registry.aliases("staging.churn") == full.aliases == {"champion": 2}
    assert registry.aliases("staging.missing") is None
    assert calls == []
