"""Synthetic churn data: each environment gets its own sample, as real environments would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# rows, seed and a drift of monthly charges: dev is a small stale sample, prod the largest.
ENVIRONMENT_SAMPLES = {"dev": (600, 11, 0.0), "staging": (1500, 23, 3.0), "prod": (3000, 37, 6.0)}


def churn_frame(rows: int, seed: int, charge_drift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows)
    charges = np.round(rng.normal(65 + charge_drift, 20, rows).clip(15, 150), 2)
    calls = rng.poisson(1.5, rows)
    contract = rng.choice([1, 12, 24], rows, p=[0.5, 0.3, 0.2])
    age = rng.integers(18, 80, rows)
    logit = -1.0 - 0.045 * tenure + 0.025 * (charges - 65) + 0.55 * calls - 0.06 * contract
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": charges,
            "support_calls": calls,
            "contract_months": contract,
            "age": age,
            "churned": churned,
        }
    )


def write_environment_data(folder: Path, environment: str) -> None:
    """`train.csv` and `test.csv` (80/20) for one environment under `folder`."""
    rows, seed, drift = ENVIRONMENT_SAMPLES[environment]
    frame = churn_frame(rows, seed, drift)
    cut = int(rows * 0.8)
    folder.mkdir(parents=True, exist_ok=True)
    frame.iloc[:cut].to_csv(folder / "train.csv", index=False)
    frame.iloc[cut:].to_csv(folder / "test.csv", index=False)
