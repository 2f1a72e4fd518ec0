"""`promote drift`: the statistics against scipy on known inputs, then the real command on a
promoted sandbox: undrifted data, a shifted feature, relabelled concepts, S3, rules, bad input."""

from __future__ import annotations

import io
import json
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from support.world import MODEL, World

from promote.drift import statistics
from promote.drift.check import CHUNK_ROWS, read_chunks
from promote.drift.compare import compare_column, compare_dataset, default_method
from promote.drift.profile import bin_values, dataset_profile, profile_column, reference_bins
from promote.drift.statistics import Sample
from promote.drift.tally import (
    CELLS_PER_BIN,
    CategoryTally,
    DatasetTally,
    NumericTally,
    tally_frame,
)
from promote.errors import InputError
from promote.manifests.digest import manifest_digest
from promote.manifests.schema import DriftRules, EnvironmentConfig, Manifest, parse, parse_yaml

PROD = f"prod.{MODEL}"


# -- the statistics, against scipy ----------------------------------------------------------


def test_on_a_grid_of_every_value_ks_and_wasserstein_are_scipys_two_sample_ones() -> None:
    rng = np.random.default_rng(7)
    trained = rng.integers(0, 31, 3000).astype(float)
    # Current values below, on and above the training's range.
    current = rng.integers(-4, 36, 2000).astype(float)
    reference = reference_bins(profile_column(pd.Series(trained)))
    distance = statistics.ks_distance(reference, Sample.of_values(current))
    expected = stats.ks_2samp(trained, current, method="asymp")
    assert distance == pytest.approx(expected.statistic, abs=1e-12)
    assert statistics.ks_p_value(distance, 3000, 2000) == pytest.approx(expected.pvalue, rel=1e-9)
    assert statistics.wasserstein(reference, Sample.of_values(current)) == pytest.approx(
        stats.wasserstein_distance(trained, current), rel=1e-12
    )


def test_on_a_quantile_grid_they_compare_with_the_profiles_own_distribution() -> None:
    # Evenly spread training values: the profile's distribution is the uniform one on [0, 1].
    reference = reference_bins(profile_column(pd.Series(np.linspace(0.0, 1.0, 200_001))))
    assert reference.spread
    current = np.random.default_rng(8).beta(2, 3, 5000)
    assert statistics.ks_distance(reference, Sample.of_values(current)) == pytest.approx(
        stats.kstest(current, "uniform").statistic, abs=1e-5
    )
    assert statistics.wasserstein(reference, Sample.of_values(current)) == pytest.approx(
        stats.wasserstein_distance(current, np.linspace(0.0, 1.0, 200_001)), abs=1e-5
    )


@pytest.mark.parametrize("shape", ["normal", "exponential", "lognormal"])
def test_the_wasserstein_distance_of_a_profile_stays_near_the_exact_one(shape: str) -> None:
    rng = np.random.default_rng(9)
    draw = {
        "normal": lambda n: rng.normal(0, 1, n),
        "exponential": lambda n: rng.exponential(1, n),
        "lognormal": lambda n: rng.lognormal(0, 1, n),
    }
    trained, current = draw[shape](20_000), draw[shape](20_000) + 0.1
    reference = reference_bins(profile_column(pd.Series(trained)))
    exact = stats.wasserstein_distance(trained, current)
    # Normed as drift is judged: within a tenth of the threshold (0.1) of the exact distance.
    error = (
        abs(statistics.wasserstein(reference, Sample.of_values(current)) - exact) / trained.std()
    )
    assert error < 0.01, error


def test_chi_square_is_pearsons_and_on_two_values_the_two_proportion_z_test() -> None:
    trained, current = np.array([120, 30, 50, 0]), np.array([90, 45, 40, 5])
    table = np.vstack([trained, current])
    assert statistics.chi_square_p_value(trained, current) == pytest.approx(
        stats.chi2_contingency(table, correction=False).pvalue, rel=1e-12
    )
    yes, no = np.array([300, 700]), np.array([360, 640])
    pooled = (300 + 360) / 2000
    z = (0.36 - 0.30) / np.sqrt(pooled * (1 - pooled) * (1 / 1000 + 1 / 1000))
    assert statistics.chi_square_p_value(yes, no) == pytest.approx(2 * stats.norm.sf(z), rel=1e-9)
    assert statistics.chi_square_p_value(np.array([5, 0]), np.array([7, 0])) == 1.0


def test_jensen_shannon_and_psi_on_known_counts() -> None:
    trained, current = np.array([50, 50]), np.array([25, 75])
    assert statistics.jensen_shannon(trained, current) == pytest.approx(
        jensenshannon([0.5, 0.5], [0.25, 0.75]), rel=1e-12
    )
    assert statistics.psi(trained, current) == pytest.approx(
        0.25 * np.log(2) + 0.25 * np.log(1.5), rel=1e-12
    )
    # An empty bin counts as a share of 1e-4, as Evidently does.
    assert statistics.psi(np.array([10, 0]), np.array([5, 5])) == pytest.approx(
        (0.5 - 1.0) * np.log(0.5) + (0.5 - 1e-4) * np.log(0.5 / 1e-4), rel=1e-12
    )


def test_methods_are_chosen_as_evidently_does() -> None:
    rng = np.random.default_rng(10)

    def method(values: Any) -> str:
        return default_method(profile_column(pd.Series(values)))

    assert method(rng.normal(0, 1, 1000)) == "ks"
    assert method(rng.normal(0, 1, 1001)) == "wasserstein"
    assert method(rng.integers(0, 5, 500)) == "chisquare"  # five values: a category
    assert method(rng.integers(0, 5, 5000)) == "jensenshannon"
    assert method(rng.choice(["a", "b"], 5000)) == "jensenshannon"


def test_a_vanished_column_and_a_column_turned_missing_are_drift() -> None:
    trained = profile_column(pd.Series(np.arange(2000.0)))
    rules = DriftRules()
    gone = compare_column("x", trained, None, None, rules)
    assert gone.drifted and gone.reason == "missing from the data"
    holes = pd.Series(np.where(np.arange(2000) % 4 == 0, np.nan, np.arange(2000.0)))
    emptied = compare_column("x", trained, tallied(trained, holes), None, rules)
    assert emptied.drifted and emptied.reason.startswith("missing 0.0% -> 25.0%")
    unchanged = tallied(trained, pd.Series(np.arange(2000.0)))
    assert not compare_column("x", trained, unchanged, None, rules).drifted


def tallied(trained: dict[str, Any], series: pd.Series) -> NumericTally:
    tally = NumericTally(trained)
    tally.add(series, len(series))
    return tally


def test_a_batch_too_large_to_keep_is_counted_in_cells_near_the_exact_statistics() -> None:
    rng = np.random.default_rng(12)
    trained = profile_column(pd.Series(rng.normal(0, 1, 20_000)))
    reference = reference_bins(trained)
    # Shifted, with 1% far outside the training range on both sides.
    current = np.concatenate(
        [rng.normal(0.2, 1, 297_000), rng.normal(15, 2, 1500), rng.normal(-30, 5, 1500)]
    )
    rng.shuffle(current)
    tally = NumericTally(trained)
    for chunk in np.array_split(current, 5):
        tally.add(pd.Series(chunk), len(chunk))
    kept = tally.sample()
    # Held: cells, not values; a few thousand of them however many rows come.
    assert kept.linear and kept.total == len(current)
    assert len(kept.points) < 2 * (len(reference.edges) * CELLS_PER_BIN + 2000)
    exact = Sample.of_values(current)
    ks = statistics.ks_distance(reference, exact)
    assert statistics.ks_distance(reference, kept) == pytest.approx(ks, abs=2e-3)
    wasserstein = statistics.wasserstein(reference, exact)
    assert statistics.wasserstein(reference, kept) == pytest.approx(wasserstein, rel=0.01)
    # Counts on the profile's grid are exact at any size.
    whole = bin_values(current, reference.edges, reference.spread)
    assert tally.binned.bin_counts().tolist() == whole.bin_counts().tolist()


def test_a_csv_is_read_in_chunks_with_its_text_columns_as_the_training_read_them() -> None:
    # Codes with leading zeros: a chunk of digits only, left to inference, would read 007 as 7.
    codes = ["007"] * CHUNK_ROWS + ["A12"] * 100 + ["007"] * 50
    text = "code,x\n" + "".join(f"{code},{i}\n" for i, code in enumerate(codes))
    frame = pd.read_csv(io.StringIO(text))
    trained = dataset_profile("codes.csv", frame, {})
    chunks = list(read_chunks(io.BytesIO(text.encode()), "csv", trained))
    assert len(chunks) == 2
    tally = DatasetTally(trained)
    for chunk in chunks:
        tally.add(chunk)
    whole = tally_frame(frame, trained)
    code = tally.column("code")
    assert isinstance(code, CategoryTally) and code.labels == ["007", "A12"]
    assert code.counts.tolist() == [CHUNK_ROWS + 50, 100] and code.others == 0
    whole_code = whole.column("code")
    assert isinstance(whole_code, CategoryTally)
    assert whole_code.counts.tolist() == code.counts.tolist()
    result = compare_dataset("codes.csv", tally, None, DriftRules())
    assert result.rows == len(codes) and not result.drifted


# -- drift rules in manifests and environment files --------------------------------------------


def _manifest(drift: dict[str, Any]) -> Manifest:
    body = {"model": "churn", "code": {"entrypoint": "train.py"}, "data": {"path": "churn"}}
    return parse(Manifest, {**body, "drift": drift}, "environments/prod/churn.yaml")


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("thresholds: {wasserstein: .inf}", "drift.thresholds.wasserstein", "finite number"),
        ("thresholds: {ks: 1.5}", "drift.thresholds.ks", "less than 1"),
        ("drift_share: true", "drift.drift_share", "valid number"),
        ("features: {age: {threshold: 0.2}}", "drift.features.age.method", "missing"),
        ("features: {age: {method: ks, threshold: 2}}", "drift.features.age", "p-value: under 1"),
        ("features: {age: {method: median}}", "drift.features.age.method", "'ks'"),
        ("concept: {metrics: {roc_auc: -0.1}}", "drift.concept.metrics.roc_auc", "greater"),
        ("ignored: [age]", "drift.ignored", "unknown field"),
    ],
)
def test_bad_drift_rules_are_refused_naming_the_file_and_field(
    text: str, field: str, problem: str
) -> None:
    drift = parse_yaml(text, "environments/prod/churn.yaml")
    with pytest.raises(InputError) as refused:
        _manifest(drift)
    assert refused.value.source == "environments/prod/churn.yaml"
    assert refused.value.field == field
    assert problem in refused.value.problem
    assert "\n" not in refused.value.message


def test_a_manifests_rules_refine_its_environments_and_rebuild_nothing() -> None:
    environment = parse(
        EnvironmentConfig,
        {
            "name": "prod",
            "data_root": "data",
            "drift": {"ignore": ["age"], "thresholds": {"psi": 0.2}, "drift_share": 0.3},
        },
        "environments/prod/environment.yaml",
    )
    manifest = _manifest({"ignore": ["tenure"], "thresholds": {"ks": 0.01}})
    assert manifest.drift is not None
    rules = environment.drift.refined_by(manifest.drift)
    assert rules.ignore == ["age", "tenure"]
    assert (rules.thresholds.ks, rules.thresholds.psi, rules.thresholds.wasserstein) == (
        0.01,
        0.2,
        0.1,
    )
    assert rules.drift_share == 0.3
    without = Manifest.model_validate({**manifest.model_dump(), "drift": None})
    assert manifest_digest(manifest, environment) == manifest_digest(without, environment)


# -- the command on a promoted sandbox ----------------------------------------------------------


def _drift(world: World, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    completed = world.cli("drift", MODEL, "--env", "prod", "--json", *args)
    try:
        payload = json.loads(completed.stdout)
    except json.JSONDecodeError:
        raise AssertionError(completed.stdout + completed.stderr) from None
    return completed, payload


def _features(payload: dict[str, Any], dataset: int = 0) -> dict[str, dict[str, Any]]:
    return {f["column"]: f for f in payload["datasets"][dataset]["features"]}


def _prod_test_set(world: World) -> pd.DataFrame:
    return pd.read_csv(world.sandbox.data("prod") / "test.csv")


def _shifted_batch(world: World, path: Path) -> Path:
    batch = _prod_test_set(world)
    batch["monthly_charges"] += 25
    batch.to_csv(path, index=False)
    return path


def _champion_artifacts(world: World) -> Path:
    registered = world.registry.model(PROD)
    assert registered is not None and registered.champion is not None
    run = world.registry.client.get_run(registered.champion.run_id)
    return Path(unquote(urlsplit(run.info.artifact_uri).path))


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_the_data_the_champion_trained_on_has_not_drifted(promoted: World) -> None:
    completed, payload = _drift(promoted)
    assert completed.returncode == 0, completed.stderr
    assert payload["ok"] is True and payload["champion"] == f"{PROD}/1"
    assert [d["name"] for d in payload["datasets"]] == ["train.csv", "test.csv"]
    for dataset in payload["datasets"]:
        assert {f["column"] for f in dataset["features"]} == {
            "tenure_months",
            "monthly_charges",
            "support_calls",
            "contract_months",
            "age",
        }
        assert dataset["target"]["column"] == "churned"
        # The very data of the profile: PSI is 0, and so is every distance (p-value 1) where
        # every value is an edge; monthly_charges, spread between quantiles, is a hair off.
        for feature in [*dataset["features"], dataset["target"]]:
            assert feature["psi"] == pytest.approx(0.0, abs=1e-12)
            exact = 1.0 if feature["method"] in ("ks", "chisquare") else 0.0
            spread = feature["column"] == "monthly_charges"
            assert feature["score"] == pytest.approx(exact, abs=0.01 if spread else 1e-12)
    report = [Path(path) for path in payload["report"]]
    assert [path.name for path in report] == ["drift.md", "drift.html"]
    assert "no drift" in report[0].read_text()
    in_run = payload["logged_to"].removeprefix(f"runs:/{payload['run_id']}/")
    assert in_run.startswith("promote/drift/")
    logged = _champion_artifacts(promoted) / in_run
    assert _files(logged) == ["drift.html", "drift.md"]


def test_a_batch_with_a_shifted_feature_is_drifted_and_plotted(
    promoted: World, tmp_path: Path
) -> None:
    batch = _shifted_batch(promoted, tmp_path / "batch.csv")
    completed, payload = _drift(promoted, "--data", str(batch), "--report", str(tmp_path / "out"))
    assert completed.returncode == 1, completed.stderr
    assert payload["drifted"] is True
    features = _features(payload)
    assert [name for name, f in features.items() if f["drifted"]] == ["monthly_charges"]
    charges = features["monthly_charges"]
    # 600 rows against a training set of 2,400: Wasserstein, normed, as Evidently chooses.
    assert charges["method"] == "wasserstein" and charges["score"] > 1.0
    assert payload["datasets"][0]["reference"] == "train.csv"
    page = (tmp_path / "out" / "drift.html").read_text()
    assert page.count("<svg") == 1
    svg = page[page.index("<svg") : page.index("</svg>") + len("</svg>")]
    assert "monthly_charges" in ElementTree.fromstring(svg).attrib["aria-label"]
    assert (
        "| monthly_charges | numeric | wasserstein |" in (tmp_path / "out" / "drift.md").read_text()
    )
    text = promoted.cli("drift", MODEL, "--env", "prod", "--data", str(batch))
    assert text.returncode == 1
    assert text.stdout.splitlines()[0] == (f"{PROD}/1: DRIFT ({batch}: 1 of 5 features)")


def test_drift_in_the_environments_own_data_is_found_where_it_lives(promoted: World) -> None:
    train = promoted.sandbox.data("prod") / "train.csv"
    frame = pd.read_csv(train)
    frame.loc[frame.index[:1000], "age"] = frame["age"].iloc[:1000] + 30
    frame.to_csv(train, index=False)
    completed, payload = _drift(promoted)
    assert completed.returncode == 1, completed.stderr
    drifted = {d["name"]: d["drifted"] for d in payload["datasets"]}
    assert drifted == {"train.csv": True, "test.csv": False}
    assert [name for name, f in _features(payload).items() if f["drifted"]] == ["age"]


def test_a_relabelled_batch_is_concept_drift_and_an_unchanged_one_scores_as_at_training(
    promoted: World, tmp_path: Path
) -> None:
    batch = _prod_test_set(promoted)
    batch.to_csv(tmp_path / "labelled.csv", index=False)
    completed, payload = _drift(
        promoted, "--data", str(tmp_path / "labelled.csv"), "--labels", "churned"
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    # The training computed its metrics on this very test set: scoring it again gives them back.
    concept = {m["metric"]: m for m in payload["concept"]}
    assert set(concept) == {"accuracy", "roc_auc"}
    for metric in concept.values():
        assert metric["current"] == pytest.approx(metric["trained"], abs=1e-12)
    batch["churned"] = 1 - batch["churned"]
    batch.to_parquet(tmp_path / "relabelled.parquet")
    completed, payload = _drift(
        promoted, "--data", str(tmp_path / "relabelled.parquet"), "--labels", "churned"
    )
    assert completed.returncode == 1
    assert payload["concept_drifted"] is True
    assert {m["metric"] for m in payload["concept"] if m["drifted"]} == {"accuracy", "roc_auc"}
    assert not any(f["drifted"] for f in payload["datasets"][0]["features"])


def test_a_batch_of_many_chunks_is_tallied_and_scored_whole(
    promoted: World, tmp_path: Path
) -> None:
    # The test set a hundred and twenty times over: more rows than one chunk holds.
    test_set = _prod_test_set(promoted)
    batch = pd.concat([test_set] * 120, ignore_index=True)
    assert len(batch) > CHUNK_ROWS
    batch.to_csv(tmp_path / "large.csv", index=False)
    completed, payload = _drift(
        promoted, "--data", str(tmp_path / "large.csv"), "--labels", "churned"
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert payload["datasets"][0]["rows"] == len(batch)
    # Every chunk's predictions count: the metrics are the test set's, as at training.
    concept = {m["metric"]: m for m in payload["concept"]}
    assert set(concept) == {"accuracy", "roc_auc"}
    for metric in concept.values():
        assert metric["current"] == pytest.approx(metric["trained"], abs=1e-9)
    batch["monthly_charges"] += 25
    batch.to_parquet(tmp_path / "shifted.parquet")
    shifted, payload = _drift(promoted, "--data", str(tmp_path / "shifted.parquet"))
    assert shifted.returncode == 1
    assert [name for name, f in _features(payload).items() if f["drifted"]] == ["monthly_charges"]


def test_batches_are_read_from_s3(promoted: World, s3: Any, tmp_path: Path) -> None:
    s3.create_bucket(Bucket="scoring")
    batch = _prod_test_set(promoted)
    s3.put_object(Bucket="scoring", Key="in/today.csv", Body=batch.to_csv(index=False).encode())
    for part, rows in (("a", batch.iloc[:250]), ("b", batch.iloc[250:])):
        body = rows.to_csv(index=False).encode()
        s3.put_object(Bucket="scoring", Key=f"parts/{part}.csv", Body=body)
    batch["monthly_charges"] += 25
    buffer = tmp_path / "shifted.parquet"
    batch.to_parquet(buffer)
    s3.put_object(Bucket="scoring", Key="in/shifted.parquet", Body=buffer.read_bytes())
    same, _ = _drift(promoted, "--data", "s3://scoring/in/today.csv")
    assert same.returncode == 0, same.stderr
    parts, payload = _drift(promoted, "--data", "s3://scoring/parts/")
    assert parts.returncode == 0, parts.stderr
    assert payload["datasets"][0]["rows"] == len(batch)
    shifted, payload = _drift(promoted, "--data", "s3://scoring/in/shifted.parquet")
    assert shifted.returncode == 1
    assert [name for name, f in _features(payload).items() if f["drifted"]] == ["monthly_charges"]
    missing = promoted.cli("drift", MODEL, "--env", "prod", "--data", "s3://scoring/in/none.csv")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "error: --data: no CSV or Parquet files under s3://scoring/in/none.csv"
    )


def test_rules_of_the_environment_and_the_manifest_decide(promoted: World, tmp_path: Path) -> None:
    batch = str(_shifted_batch(promoted, tmp_path / "batch.csv"))

    def loose(manifest: dict[str, Any]) -> None:
        manifest["drift"] = {"features": {"monthly_charges": {"method": "psi", "threshold": 50.0}}}

    promoted.edit_yaml("environments/prod/churn.yaml", loose)
    completed, payload = _drift(promoted, "--data", batch)
    assert completed.returncode == 0, completed.stderr
    charges = _features(payload)["monthly_charges"]
    assert (charges["method"], charges["threshold"], charges["drifted"]) == ("psi", 50.0, False)

    def strict(environment: dict[str, Any]) -> None:
        environment["drift"] = {"thresholds": {"wasserstein": 0.0001}}

    promoted.edit_yaml("environments/prod/environment.yaml", strict)
    completed, payload = _drift(promoted, "--data", batch)
    # The manifest's rule still holds for monthly_charges; the environment's for the rest.
    assert completed.returncode == 1
    drifted = {name for name, f in _features(payload).items() if f["drifted"]}
    assert "monthly_charges" not in drifted and "age" in drifted


def test_bad_input_is_one_line_exit_2_and_writes_nothing(promoted: World, tmp_path: Path) -> None:
    artifacts = _champion_artifacts(promoted)
    before, files = promoted.snapshot(), _files(artifacts)
    reports = promoted.repo / ".promote" / "drift"
    missing = promoted.cli("drift", MODEL, "--env", "prod", "--data", str(tmp_path / "no.csv"))
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [f"error: --data: {tmp_path / 'no.csv'} does not exist"]

    def typo(manifest: dict[str, Any]) -> None:
        manifest["drift"] = {"features": {"monthly_charge": {"method": "ks"}}}

    promoted.edit_yaml("environments/prod/churn.yaml", typo)
    unknown = promoted.cli("drift", MODEL, "--env", "prod")
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines() == [
        "error: environments/prod/churn.yaml: drift.features.monthly_charge: no such column "
        "(the training profile has age, churned, contract_months, monthly_charges, "
        "support_calls, tenure_months)"
    ]
    assert promoted.snapshot() == before and _files(artifacts) == files
    assert not reports.exists()
