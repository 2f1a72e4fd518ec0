"""Every model kind MLflow logs, trained for real: scikit-learn (a pipeline of the user's own
transformer and gradient-boosted trees), a custom `mlflow.pyfunc.PythonModel`, and LightGBM.

Each is trained in dev, rebuilt in staging (the lineage match), verified from storage (the
digest), loaded back from the registry through `mlflow.pyfunc.load_model` and asked to
predict, and reproduced: byte for byte where its training is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import yaml
from support.world import World

from promote.errors import TrainingError
from promote.manifests.loader import load_repository
from promote.propose import propose
from promote.registry import tracking
from promote.scaffold.quickstart import merge
from promote.train import train
from promote.verify import reproduce, verify

MODEL = "kind"
FEATURES = ["amount", "hour"]

# The user's own transformer, in a module beside the script: skops loads it only once listed.
FEATURES_MODULE = """
from sklearn.base import BaseEstimator, TransformerMixin


class Clip(BaseEstimator, TransformerMixin):
    def __init__(self, upper=400.0):
        self.upper = upper

    def fit(self, frame, label=None):
        return self

    def transform(self, frame):
        return frame.clip(upper=self.upper)
"""

SKLEARN_SCRIPT = """
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import make_pipeline

from features import Clip
from promote import training

with training.start() as run:
    train, test = run.read_csv("train.csv"), run.read_csv("test.csv")
    model = make_pipeline(Clip(), GradientBoostingClassifier(n_estimators=20, random_state=0))
    model.fit(train[["amount", "hour"]], train["label"])
    run.log_metrics({"accuracy": model.score(test[["amount", "hour"]], test["label"])})
    run.log_model(
        model,
        input_example=test[["amount", "hour"]].head(5),
        trusted_types=["features.Clip"],
        code_paths=["models/kind/features.py"],
    )
"""

PYFUNC_SCRIPT = """
import mlflow.pyfunc
from sklearn.linear_model import LogisticRegression

from promote import training


class Flagger(mlflow.pyfunc.PythonModel):
    \"\"\"Flags a row when the classifier's probability reaches the configured threshold.\"\"\"

    def __init__(self, classifier):
        self.classifier = classifier

    def load_context(self, context):
        self.threshold = float(context.model_config["threshold"])

    def predict(self, context, model_input, params=None):
        scores = self.classifier.predict_proba(model_input[["amount", "hour"]])[:, 1]
        return (scores >= self.threshold).astype(int)


with training.start() as run:
    train, test = run.read_csv("train.csv"), run.read_csv("test.csv")
    classifier = LogisticRegression().fit(train[["amount", "hour"]], train["label"])
    run.log_metrics({"accuracy": classifier.score(test[["amount", "hour"]], test["label"])})
    run.log_model(
        Flagger(classifier),
        input_example=test[["amount", "hour"]].head(5),
        model_config={"threshold": 0.4},
    )
"""

LIGHTGBM_SCRIPT = """
from lightgbm import LGBMClassifier

from promote import training

with training.start() as run:
    train, test = run.read_csv("train.csv"), run.read_csv("test.csv")
    model = LGBMClassifier(
        n_estimators=20, num_leaves=7, deterministic=True, n_jobs=1, random_state=0, verbose=-1
    )
    model.fit(train[["amount", "hour"]], train["label"])
    run.log_metrics({"accuracy": model.score(test[["amount", "hour"]], test["label"])})
    run.log_model(model, input_example=test[["amount", "hour"]].head(5))
"""


@dataclass(frozen=True)
class Kind:
    script: str
    flavor: str
    # A PythonModel defined in the training script is pickled by value, with the script's path
    # in its code objects: a rebuild from another checkout differs (README says so).
    byte_identical: bool
    extra_files: tuple[tuple[str, str], ...] = ()


KINDS = {
    "sklearn": Kind(SKLEARN_SCRIPT, "sklearn", True, (("features.py", FEATURES_MODULE),)),
    "pyfunc": Kind(PYFUNC_SCRIPT, "pyfunc", False),
    "lightgbm": Kind(LIGHTGBM_SCRIPT, "lightgbm", True),
}


def _write_data(world: World, environment: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.exponential(80, 400)
    hour = rng.integers(0, 24, 400)
    label = ((amount > 150) & (hour < 6)).astype(int) | (rng.random(400) < 0.05).astype(int)
    frame = pd.DataFrame({"amount": amount, "hour": hour, "label": label})
    folder = world.sandbox.root / "data" / environment / MODEL
    folder.mkdir(parents=True)
    frame.iloc[:300].to_csv(folder / "train.csv", index=False)
    frame.iloc[300:].to_csv(folder / "test.csv", index=False)
    return frame.iloc[300:]


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_model_kind_trains_rebuilds_verifies_loads_and_reproduces(
    world: World, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = KINDS[name]
    folder = world.repo / "models" / MODEL
    folder.mkdir()
    (folder / "train.py").write_text(kind.script)
    for file_name, text in kind.extra_files:
        (folder / file_name).write_text(text)
    (world.repo / "environments" / "dev" / f"{MODEL}.yaml").write_text(
        yaml.safe_dump(
            {
                "model": MODEL,
                "code": {"entrypoint": f"models/{MODEL}/train.py"},
                "data": {"path": MODEL},
                "gates": {"metrics": {"accuracy": {"min": 0.5}}},
            }
        )
    )
    _write_data(world, "dev", 1)
    test = _write_data(world, "staging", 2)
    world.commit(f"A {name} model")

    trained = train(
        load_repository(world.repo), world.registry, MODEL, "dev", {}, world.lines.append
    )
    assert trained.ok, trained.detail
    proposal = propose(load_repository(world.repo), world.registry, MODEL, "staging")
    assert proposal.branch is not None
    merge(world.repo, proposal.branch, f"Merge {proposal.branch}")
    result = world.pipeline().apply("staging")
    assert result.ok, world.lines

    assert any(f"staging.{MODEL}: lineage match ok" in line for line in world.lines)
    staging = world.registry.model(f"staging.{MODEL}")
    assert staging is not None and staging.champion is not None
    lineage = world.registry.lineage(staging.champion.run_id)
    assert lineage.flavor == kind.flavor
    assert lineage.signature is not None and "amount" in lineage.signature["inputs"]
    assert verify(load_repository(world.repo), world.registry, "staging", MODEL, None).ok

    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_TRACKING_URI", world.registry.tracking_uri)
    served = mlflow.pyfunc.load_model(f"models:/staging.{MODEL}@champion")
    predictions = np.asarray(served.predict(test[FEATURES]))
    assert predictions.shape == (len(test),) and set(predictions) <= {0, 1}

    report = verify(load_repository(world.repo), world.registry, "staging", MODEL, None)
    assert report.ok, report.to_json()
    again = reproduce(load_repository(world.repo), world.registry, "staging", MODEL, None)
    checks = {check.name: check.passed for check in again.checks}
    assert checks["lineage"] and checks["metric accuracy"]
    assert checks["artifact digest"] is kind.byte_identical


def test_skops_trusts_scikit_learns_own_types_and_others_only_when_listed() -> None:
    from collections import OrderedDict

    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    # A tree ensemble (sklearn.tree._tree.Tree) after a transformer of a foreign type.
    model = make_pipeline(
        FunctionTransformer(inverse_func=OrderedDict, check_inverse=False),
        GradientBoostingClassifier(n_estimators=2),
    ).fit(np.arange(8.0).reshape(4, 2), [0, 1, 0, 1])
    with pytest.raises(TrainingError) as refused:
        tracking._skops_trusted_types(model, [])
    assert str(refused.value) == (
        "skops loads collections.OrderedDict only if trusted: pass "
        "trusted_types=['collections.OrderedDict'] to run.log_model once you have reviewed them"
    )
    assert tracking._skops_trusted_types(model, ["collections.OrderedDict"]) == [
        "collections.OrderedDict",
        "sklearn.tree._tree.Tree",
    ]
