"""A synthetic customer-churn data set in weekly batches, generated with fixed seeds.

Three kinds of week tell the story the reference DAGs and docs use:

- ``baseline``: customers as the champion model was trained on;
- ``drift``: a real change in the world: a price rise (monthly charges up ~30%) and more
  month-to-month contracts, which also moves churn;
- ``zero_fill``: an upstream bug: ``days_since_last_login`` arrives 38% null, and an upstream
  default fills the nulls with 0, so the null rate looks fine;
- ``concept_shift``: the customers of the ``drift`` week's market (after the price rise), but why
  they leave has changed (a competitor wins over long-standing customers): a drift check against a
  model trained on that market sees nothing; only outcomes show that the model is now wrong.

Churn depends on the features through a fixed logistic model, so a model can learn it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

WeekKind = Literal["baseline", "drift", "zero_fill", "concept_shift"]
WEEK_KINDS: tuple[WeekKind, ...] = ("baseline", "drift", "zero_fill", "concept_shift")
CONTRACTS = ("month-to-month", "one-year", "two-year")
PAYMENT_METHODS = ("card", "bank-transfer", "electronic-check", "mailed-check")
TARGET = "churned"
ZERO_FILL_NULL_SHARE = 0.38


def generate_week(
    kind: WeekKind = "baseline", *, rows: int = 5_000, seed: int = 0, week: int = 1
) -> pd.DataFrame:
    """Return one week of customers; the same arguments always give the same rows."""
    import numpy as np
    import pandas as pd

    if kind not in WEEK_KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {list(WEEK_KINDS)}")
    rng = np.random.default_rng([seed, week, WEEK_KINDS.index(kind)])
    market_moved = kind in ("drift", "concept_shift")
    contract_p = [0.72, 0.16, 0.12] if market_moved else [0.55, 0.25, 0.20]
    contract = rng.choice(CONTRACTS, rows, p=contract_p)
    tenure = np.clip(rng.gamma(2.0, 14.0, rows), 0, 72).round().astype(int)
    charges = rng.normal(68.0, 18.0, rows).clip(18.0, 130.0)
    if market_moved:
        charges = (charges * 1.3).clip(18.0, 170.0)
    support_calls = rng.poisson(1.2, rows)
    days_since_login = rng.exponential(11.0, rows).round() + 1  # at least a day: 0 never happens naturally
    senior = rng.random(rows) < 0.16
    payment = rng.choice(PAYMENT_METHODS, rows, p=[0.35, 0.25, 0.3, 0.1])
    logit = (
        -1.2
        + 1.3 * (contract == "month-to-month")
        - 0.9 * (contract == "two-year")
        - 0.035 * tenure
        + 0.022 * (charges - 68.0)
        + 0.35 * support_calls
        + 0.045 * days_since_login
        + 0.3 * senior
        + 0.4 * (payment == "electronic-check")
    )
    if kind == "concept_shift":
        # The same customers; the reasons turn: tenure now raises churn, and contracts matter less.
        logit = (
            -2.2
            + 0.3 * (contract == "month-to-month")
            + 0.05 * tenure
            - 0.5 * support_calls
            + 0.01 * (charges - 68.0)
            - 0.02 * days_since_login
        )
    churned = rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "customer_id": [f"w{week:03d}-{i:06d}" for i in range(rows)],
            "tenure": tenure,
            "contract": contract,
            "monthly_charges": charges.round(2),
            "support_calls": support_calls,
            "days_since_last_login": days_since_login.astype(float),
            "senior_citizen": senior.astype(int),
            "payment_method": payment,
            TARGET: churned.astype(int),
        }
    )
    if kind == "zero_fill":
        lost = rng.random(rows) < ZERO_FILL_NULL_SHARE
        frame.loc[lost, "days_since_last_login"] = 0.0  # the upstream default that hides the nulls
    return frame


def write_week(
    path: str | Path, kind: WeekKind = "baseline", *, rows: int = 5_000, seed: int = 0, week: int = 1
) -> Path:
    """Write one week as CSV to ``path`` and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    generate_week(kind, rows=rows, seed=seed, week=week).to_csv(path, index=False)
    return path


#: The model's input columns (everything but the id and the target).
FEATURES = [
    "tenure",
    "contract",
    "monthly_charges",
    "support_calls",
    "days_since_last_login",
    "senior_citizen",
    "payment_method",
]


def fit_baseline_model(frame: pd.DataFrame) -> Any:
    """Fit a quick logistic-regression churn model on ``frame`` (for tests, benchmarks and docs).

    Only scaler, one-hot encoder and classifier: types MLflow's skops format trusts by default.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = ["contract", "payment_method"]
    numeric = [c for c in FEATURES if c not in categorical]
    prep = ColumnTransformer(
        [("num", StandardScaler(), numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)]
    )
    pipeline = Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=500))])
    return pipeline.fit(frame[FEATURES], frame[TARGET])
