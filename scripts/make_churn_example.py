"""Generate data/external/churn_example.csv, the example behind conf/dataset/churn_example.yaml.

A synthetic customer-churn table with the things real files have and bundled datasets lack:
an id column, a date column, categorical columns (one with missing values), a nullable count,
a boolean, and a text target. Deterministic (fixed seed), so the committed file can be rebuilt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def make(n: int = 1200, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "standard", "premium"], size=n, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], size=n).astype(object)
    region[rng.random(n) < 0.05] = None
    tenure = rng.integers(1, 72, size=n)
    charges = np.round(
        rng.normal(40, 8, n) + (plan == "standard") * 20 + (plan == "premium") * 45, 2
    )
    calls = rng.poisson(1.5, n).astype(float)
    calls[rng.random(n) < 0.08] = np.nan
    partner = rng.random(n) < 0.45
    signup = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D")
    logit = 1.5 - 0.12 * tenure + 1.2 * np.nan_to_num(calls, nan=1.5) + 0.04 * (charges - 60)
    logit += np.where(plan == "basic", 1.0, 0.0) - 1.0 * partner
    churned = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame(
        {
            "customer_id": np.arange(100001, 100001 + n),
            "signup_date": signup.strftime("%Y-%m-%d"),
            "plan": plan,
            "region": region,
            "monthly_charges": charges,
            "tenure_months": tenure,
            "support_calls": pd.array(calls, dtype="Int64"),
            "has_partner": partner,
            "churned": churned,
        }
    )


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "data/external/churn_example.csv")
    make().to_csv(out, index=False)
    print(f"wrote {out}")
