"""This repository's own GitOps layout is a valid one, and promote's own example lives in it."""

from __future__ import annotations

from pathlib import Path

from promote.manifests.loader import load_repository

ROOT = Path(__file__).resolve().parents[2]


def test_this_repositorys_environments_load_and_chain_dev_staging_prod() -> None:
    repo = load_repository(ROOT)
    assert [e.name for e in repo.ordered_environments()] == ["dev", "staging", "prod"]
    prod = repo.environment("prod")
    assert prod.approval is not None and prod.approval.team.endswith("/release-approvers")
    assert all(e.data_root.startswith("s3://") for e in repo.environments.values())
    dev = repo.spec("dev", "churn")
    assert not dev.managed
    assert (ROOT / dev.manifest.code.entrypoint).is_file()
