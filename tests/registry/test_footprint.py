"""Complexity as the flavors expose it, counted on models fitted here (no stand-ins)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from promote.registry.footprint import Complexity, complexity_of

ROWS = np.random.default_rng(7).normal(size=(200, 4))
LABELS = (ROWS[:, 0] + ROWS[:, 1] > 0).astype(int)


def test_a_linear_pipeline_counts_its_coefficients_and_intercept() -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(ROWS, LABELS)
    assert complexity_of(model) == Complexity("parameters", 4 + 1)


@pytest.mark.parametrize("trees", [3, 12])
def test_a_forest_counts_its_trees_and_leaves(trees: int) -> None:
    forest = RandomForestClassifier(n_estimators=trees, random_state=0).fit(ROWS, LABELS)
    leaves = sum(tree.tree_.n_leaves for tree in forest.estimators_)
    assert complexity_of(make_pipeline(StandardScaler(), forest)) == Complexity(
        "leaves", leaves, trees
    )
    assert str(complexity_of(forest)) == f"{leaves} leaves in {trees} trees"


def test_gradient_boosting_counts_every_stage() -> None:
    boosted = GradientBoostingClassifier(n_estimators=7, max_depth=2).fit(ROWS, LABELS)
    found = complexity_of(boosted)
    assert found is not None and (found.kind, found.trees) == ("leaves", 7)
    assert found.value == sum(t.tree_.n_leaves for t in boosted.estimators_.ravel())


def test_lightgbm_counts_its_trees_and_leaves_through_the_sklearn_api_and_the_booster() -> None:
    import lightgbm

    model = lightgbm.LGBMClassifier(n_estimators=9, num_leaves=4, verbose=-1).fit(ROWS, LABELS)
    info = model.booster_.dump_model()["tree_info"]
    expected = Complexity("leaves", sum(t["num_leaves"] for t in info), len(info))
    assert expected.trees == 9
    assert complexity_of(model) == expected
    assert complexity_of(model.booster_) == expected


def test_a_model_without_a_measure_has_none() -> None:
    assert complexity_of(StandardScaler().fit(ROWS)) is None
    assert complexity_of(object()) is None
