"""Churn classifier: the example training entrypoint that ships with promote.

It runs under `promote train churn --env dev` and under every rebuild `promote apply` makes:
the environment's data and the manifest's parameters arrive through the training helper.
"""

from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from promote import training

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "contract_months", "age"]
TARGET = "churned"

with training.start(target=TARGET) as run:
    train = run.read_csv("train.csv")
    test = run.read_csv("test.csv")
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(
            C=float(run.params.get("C", 1.0)), max_iter=int(run.params.get("max_iter", 200))
        ),
    )
    model.fit(train[FEATURES], train[TARGET])
    scores = model.predict_proba(test[FEATURES])[:, 1]
    run.log_metrics(
        {
            "roc_auc": roc_auc_score(test[TARGET], scores),
            "accuracy": accuracy_score(test[TARGET], scores >= 0.5),
        }
    )
    run.log_model(model, input_example=test[FEATURES].head(5))
