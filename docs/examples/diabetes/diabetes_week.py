"""Weekly batches of scikit-learn's diabetes data set for the regression example (no download).

- ``baseline``: a bootstrap sample of the 442 patients;
- ``drift``: heavier patients (``bmi`` up by half a standard deviation) whose disease progresses
  less with weight than before: the relation changed, so a model retrained on it is better;
- ``nulls``: 40% of ``bp`` (blood pressure) missing, as when an upstream join breaks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

WeekKind = Literal["baseline", "drift", "nulls"]


def write_week(path: str | Path, kind: WeekKind, *, rows: int = 400, seed: int = 0) -> Path:
    """Write one week's batch (features and ``progression``) as CSV and return its path."""
    import numpy as np
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"})
    rng = np.random.default_rng(seed)
    week = data.iloc[rng.integers(0, len(data), rows)].reset_index(drop=True)
    if kind == "drift":
        shift = 0.5 * data["bmi"].std()
        week["bmi"] += shift
        # Progression used to rise ~950 per unit of bmi; among these patients it rises far less.
        week["progression"] = (week["progression"] + 250 * shift).round()
    elif kind == "nulls":
        week.loc[rng.random(rows) < 0.4, "bp"] = np.nan
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    week.round(6).to_csv(path, index=False)
    return path
