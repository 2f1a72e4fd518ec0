"""verify, reproduce and history against a promoted sandbox."""

from __future__ import annotations

import json

from support.world import MODEL, World


def test_verify_checks_digest_lineage_and_verdict(promoted: World) -> None:
    result = promoted.cli("verify", MODEL, "--env", "prod", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["subject"] == f"prod.{MODEL}/1"
    assert [c["name"] for c in report["checks"]] == [
        "signed provenance",
        "signed verification",
        "artifact digest",
        "model signature",
        "lineage record",
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
    assert "ok   artifact digest" in result.stdout  # byte for byte, MLflow's save-time fields aside
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


def test_models_and_versions_made_outside_the_pipeline_are_flagged(promoted: World) -> None:
    client = promoted.registry.client
    client.create_registered_model("prod.shadow")
    prod = promoted.registry.model(f"prod.{MODEL}")
    assert prod is not None and prod.champion is not None
    client.create_model_version(f"prod.{MODEL}", prod.champion.source, prod.champion.run_id)
    status = promoted.cli("status", "--json")
    assert status.returncode == 1
    rows = {(row["environment"], row["registered_model"]): row for row in json.loads(status.stdout)}
    assert rows[("prod", "prod.shadow")]["drift"] == [
        "prod.shadow was registered outside the pipeline: no manifest declares it"
    ]
    assert rows[("prod", f"prod.{MODEL}")]["drift"] == ["v2 is forged: no signed provenance"]
    foreign = promoted.cli("verify", MODEL, "--env", "prod", "--version", "2")
    assert foreign.returncode == 1
    assert "FAIL signed provenance: no signed provenance" in foreign.stdout
