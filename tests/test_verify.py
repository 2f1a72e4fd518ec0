"""verify, reproduce and history against a promoted sandbox."""

from __future__ import annotations

import json

from conftest import MODEL, World


def test_verify_checks_digest_lineage_and_verdict(promoted: World) -> None:
    result = promoted.cli("verify", MODEL, "--env", "prod", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["subject"] == f"prod.{MODEL}/1"
    assert [c["name"] for c in report["checks"]] == [
        "registered by the pipeline",
        "artifact digest",
        "lineage record",
        "verdict",
    ]


def test_verify_an_unknown_version_is_bad_input(promoted: World) -> None:
    result = promoted.cli("verify", MODEL, "--env", "prod", "--version", "7")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: prod.{MODEL}: --version: has no version 7"


def test_reproduce_rebuilds_from_lineage_alone_with_equal_metrics(promoted: World) -> None:
    result = promoted.cli("verify", MODEL, "--env", "staging", "--rebuild")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   lineage" in result.stdout
    assert "ok   data snapshot" in result.stdout
    assert "ok   metric roc_auc" in result.stdout


def test_reproduce_refuses_when_the_snapshot_data_changed(promoted: World) -> None:
    data = promoted.sandbox.data("prod") / "test.csv"
    data.write_text(data.read_text().replace("\n1,", "\n2,", 1))
    result = promoted.cli("reproduce", MODEL, "--env", "prod")
    assert result.returncode == 1
    assert "changed since the snapshot" in result.stderr


def test_history_lists_promotions_with_versions_and_commits(promoted: World) -> None:
    result = promoted.cli("history", MODEL, "--env", "prod", "--json")
    assert result.returncode == 0, result.stderr
    [event] = json.loads(result.stdout)
    assert event["action"] == "promote"
    assert event["version"] == 1 and event["previous"] is None
    assert len(event["commit"]) == 40
    assert event["source"] == "staging/1"
    table = promoted.cli("history", MODEL, "--env", "prod")
    assert "promote" in table.stdout and event["commit"][:12] in table.stdout
