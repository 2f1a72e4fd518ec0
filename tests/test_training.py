"""The training helper as a new user meets it: their own script, written from the README."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import yaml
from support.world import World

USER_SCRIPT = """
from sklearn.linear_model import LogisticRegression
from promote import training

with training.start() as run:
    train = run.read_csv("train.csv")
    test = run.read_csv("test.csv")
    model = LogisticRegression(C=float(run.params["C"]))
    model.fit(train.drop(columns="label"), train["label"])
    run.log_metrics({"accuracy": model.score(test.drop(columns="label"), test["label"])})
    run.log_model(model, input_example=test.drop(columns="label").head(5))
"""


def _fraud_data(world: World, environment: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    amount = rng.exponential(80, 400)
    hour = rng.integers(0, 24, 400)
    label = ((amount > 150) & (hour < 6)).astype(int) | (rng.random(400) < 0.05).astype(int)
    frame = pd.DataFrame({"amount": amount, "hour": hour, "label": label})
    folder = world.sandbox.root / "data" / environment / "fraud"
    folder.mkdir(parents=True)
    frame.iloc[:300].to_csv(folder / "train.csv", index=False)
    frame.iloc[300:].to_csv(folder / "test.csv", index=False)


def test_a_script_written_from_the_readme_trains_and_is_rebuilt_above(world: World) -> None:
    (world.repo / "models" / "fraud").mkdir()
    (world.repo / "models" / "fraud" / "train.py").write_text(USER_SCRIPT)
    (world.repo / "environments" / "dev" / "fraud.yaml").write_text(
        yaml.safe_dump(
            {
                "model": "fraud",
                "code": {"entrypoint": "models/fraud/train.py", "params": {"C": 1.0}},
                "data": {"path": "fraud"},
                "gates": {"metrics": {"accuracy": {"min": 0.5}}},
            }
        )
    )
    _fraud_data(world, "dev", 1)
    _fraud_data(world, "staging", 2)
    world.commit("Fraud model")
    trained = world.cli("train", "fraud", "--env", "dev")
    assert trained.returncode == 0, trained.stderr
    assert world.cli("model", "fraud", "--to", "staging").returncode == 0
    from promote.scaffold.quickstart import merge

    merge(world.repo, "promote/staging/fraud-v1", "Merge fraud")
    applied = world.cli("apply", "--env", "staging")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    staging = world.registry.model("staging.fraud")
    assert staging is not None and staging.champion is not None
    lineage = world.registry.lineage(staging.champion.run_id)
    assert lineage.params == {"C": 1.0} and lineage.flavor == "sklearn"
    assert lineage.signature is not None and "amount" in lineage.signature["inputs"]


def test_running_an_entrypoint_by_hand_says_how_to_run_it(world: World) -> None:
    completed = subprocess.run(
        [sys.executable, "models/churn/train.py"],
        cwd=world.repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert "run it with `promote train MODEL --env dev`" in completed.stderr


def test_a_script_that_logs_no_model_fails_clearly(world: World) -> None:
    (world.repo / "models" / "churn" / "train.py").write_text(
        "from promote import training\n\nwith training.start() as run:\n"
        "    run.read_csv('train.csv')\n"
    )
    world.commit("Forget to log the model")
    result = world.cli("train", "churn")
    assert result.returncode == 1
    assert "ended without calling run.log_model(...)" in result.stderr
    assert world.registry.model("dev.churn") is None


def test_a_training_closes_the_runs_a_killed_training_left_and_holds_the_lock(
    trained: World,
) -> None:
    from promote.registry.entities import TAG_RUN_ENVIRONMENT, TAG_RUN_MODEL
    from promote.registry.lock import lock_name

    client = trained.registry.client
    experiment = trained.registry.experiment_id("dev", None)
    abandoned = client.create_run(
        experiment, tags={TAG_RUN_MODEL: "churn", TAG_RUN_ENVIRONMENT: "dev"}
    ).info.run_id
    trained.train_dev(C=0.3)
    assert client.get_run(abandoned).info.status == "KILLED"
    assert any("marked KILLED 1 run(s) a killed training left" in line for line in trained.lines)
    assert trained.registry.model(lock_name("dev.churn")) is None  # released after training
