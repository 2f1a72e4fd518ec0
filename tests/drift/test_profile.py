"""Training profiles: exact where they claim to be, small, in every real lineage record, and
covered by the signed provenance."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
from support.world import MODEL, World

from promote.build.lineage import LINEAGE_ARTIFACT, Lineage
from promote.drift.profile import (
    QUANTILE_GRID,
    TOP_CATEGORIES,
    VALUE_GRID,
    dataset_profile,
    profile_column,
    profile_frame,
    reference_bins,
)
from promote.manifests.digest import canonical_digest


def _champion_lineage(world: World, environment: str) -> Lineage:
    registered = world.registry.model(f"{environment}.{MODEL}")
    assert registered is not None and registered.champion is not None
    return world.registry.lineage(registered.champion.run_id)


def test_a_column_of_few_values_keeps_each_value_and_its_count() -> None:
    column = profile_column(pd.Series([3, 1, 1, 2, None, 3, 3], dtype="Int64"))
    assert column["kind"] == "numeric" and column["dtype"] == "Int64"
    assert column["count"] == 6 and column["missing_share"] == 1 / 7
    assert column["grid"] == VALUE_GRID
    assert column["edges"] == [1.0, 2.0, 3.0] and column["counts"] == [2, 1, 3]
    assert column["mean"] == 13 / 6
    assert column["std"] == np.std([3, 1, 1, 2, 3, 3])


def test_text_and_infinities_in_a_numeric_column_count_as_missing() -> None:
    column = profile_column(pd.Series([1.0, np.inf, -np.inf, np.nan, 2.0]))
    assert (column["count"], column["missing_share"]) == (2, 0.6)
    assert profile_column(pd.Series(["1", "2", "x"]))["kind"] == "categorical"


def test_a_continuous_column_is_exact_at_every_quantile_edge() -> None:
    values = np.random.default_rng(3).lognormal(0, 1, 20_000)
    column = profile_column(pd.Series(values))
    assert column["grid"] == QUANTILE_GRID
    edges = np.array(column["edges"])
    assert edges[0] == values.min() and edges[-1] == values.max()
    assert sum(column["counts"]) == len(values)
    # The share at or under each (rounded) edge is the data's own, to the last value.
    exact = np.array([np.mean(values <= edge) for edge in edges])
    assert np.array_equal(reference_bins(column).cdf(), exact)
    # Finer in the tails: edges at 0.01% and at 99.99% of the values.
    assert np.mean(values <= edges[1]) == 0.0001
    assert np.mean(values <= edges[-2]) == 0.9999


def test_categories_keep_the_most_frequent_with_their_counts_and_the_rest_together() -> None:
    values = [f"c{index:02d}" for index in range(30) for _ in range(30 - index)]
    values += ["tie-b", "tie-a", None]
    column = profile_column(pd.Series(values))
    assert column["kind"] == "categorical" and column["distinct"] == 32
    assert len(column["top"]) == TOP_CATEGORIES
    assert column["top"][:2] == [["c00", 30], ["c01", 29]]
    assert column["other"] == column["count"] - sum(count for _, count in column["top"])
    assert column["missing_share"] == 1 / len(values)
    booleans = profile_column(pd.Series([True, False, True]))
    assert booleans["kind"] == "categorical" and booleans["top"] == [["True", 2], ["False", 1]]


def test_a_profile_of_100_columns_takes_kilobytes() -> None:
    rng = np.random.default_rng(5)
    rows = 50_000
    frame = pd.DataFrame(
        {
            **{f"number_{i}": rng.normal(100, 15, rows) * 10 ** (i % 5) for i in range(80)},
            **{f"category_{i}": rng.choice([f"v{j}" for j in range(40)], rows) for i in range(20)},
        }
    )
    size = len(json.dumps(profile_frame(frame)))
    assert 20_000 < size < 95_000, size


def test_read_options_are_kept_only_when_they_are_plain_values() -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    kept = dataset_profile("x.csv", frame, {"sep": ";", "usecols": ["a"], "converters": {"a": int}})
    assert kept["read_options"] == {"sep": ";", "usecols": ["a"]}
    assert kept["path"] == "x.csv" and kept["rows"] == 2


def test_a_real_training_records_the_profile_of_each_csv_it_read(trained: World) -> None:
    lineage = _champion_lineage(trained, "dev")
    profile = lineage.profile
    assert profile["target"] == "churned"
    assert [dataset["path"] for dataset in profile["datasets"]] == ["train.csv", "test.csv"]
    train = pd.read_csv(trained.sandbox.data("dev") / "train.csv")
    recorded = profile["datasets"][0]
    assert recorded["rows"] == len(train)
    assert set(recorded["columns"]) == set(train.columns)
    charges = recorded["columns"]["monthly_charges"]
    assert charges["count"] == len(train) and charges["missing_share"] == 0.0
    assert charges["mean"] == train["monthly_charges"].mean()
    assert recorded["columns"]["churned"]["edges"] == [0.0, 1.0]
    assert recorded["columns"]["churned"]["counts"] == [
        int((train["churned"] == 0).sum()),
        int((train["churned"] == 1).sum()),
    ]


def test_the_profile_is_in_the_record_digest_but_not_in_the_lineage_match(
    promoted: World,
) -> None:
    staging, prod = _champion_lineage(promoted, "staging"), _champion_lineage(promoted, "prod")
    # Each environment's own data: the profiles differ, the lineage still matches.
    assert staging.profile != prod.profile
    assert staging.match_digest == prod.match_digest
    other = replace(prod, profile={**prod.profile, "target": "something else"})
    assert other.lineage_digest != prod.lineage_digest


def test_a_record_written_before_profiles_keeps_its_digest(promoted: World) -> None:
    record = json.loads(_champion_lineage(promoted, "prod").to_json())
    for key in ("profile", "lineage_digest"):
        record.pop(key)
    record["lineage_digest"] = canonical_digest(record)
    older = Lineage.from_json(json.dumps(record))
    assert older.profile == {}
    assert older.lineage_digest == record["lineage_digest"]


def test_a_profile_edited_in_storage_fails_verify(promoted: World) -> None:
    registered = promoted.registry.model(f"prod.{MODEL}")
    assert registered is not None and registered.champion is not None
    run = promoted.registry.client.get_run(registered.champion.run_id)
    path = Path(unquote(urlsplit(run.info.artifact_uri).path)) / LINEAGE_ARTIFACT
    record = json.loads(path.read_text())
    columns = record["profile"]["datasets"][0]["columns"]
    # Hide a drift to come: the training "saw" higher charges than it did.
    columns["monthly_charges"]["edges"] = [e + 30 for e in columns["monthly_charges"]["edges"]]
    record.pop("lineage_digest")
    record["lineage_digest"] = canonical_digest(record)
    path.write_text(json.dumps(record))
    verified = promoted.cli("verify", MODEL, "--env", "prod")
    assert verified.returncode == 1
    assert (
        "FAIL lineage record: lineage record's lineage_digest differs from the signed provenance"
        in verified.stdout
    )
    drift = promoted.cli("drift", MODEL, "--env", "prod")
    assert drift.returncode == 1
    assert drift.stderr.strip().endswith(
        "lineage record's lineage_digest differs from the signed provenance"
    )


def test_a_target_the_script_names_but_never_reads_fails_the_training(world: World) -> None:
    script = world.repo / "models" / MODEL / "train.py"
    script.write_text(script.read_text().replace("target=TARGET", 'target="churn"'))
    world.commit("Name a target that is no column")
    result = world.cli("train", MODEL, "--env", "dev")
    assert result.returncode == 1
    assert "target 'churn' is a column of no CSV the script read (read: train.csv, test.csv)" in (
        result.stderr
    )
    assert world.registry.model(f"dev.{MODEL}") is None
