from __future__ import annotations

from pathlib import Path

import pytest

from airflow_mlops_provider.data.profiles import Profile, profile_dataset
from mlops_demo.churn import write_week


@pytest.fixture(scope="session")
def churn_dir(tmp_path_factory) -> Path:
    """Reference (training) data and three kinds of new week, generated with fixed seeds."""
    root = tmp_path_factory.mktemp("churn")
    write_week(root / "reference.csv", "baseline", rows=20_000, seed=1, week=0)
    write_week(root / "baseline.csv", "baseline", rows=5_000, seed=1, week=1)
    write_week(root / "drift.csv", "drift", rows=5_000, seed=1, week=2)
    write_week(root / "zero_fill.csv", "zero_fill", rows=5_000, seed=1, week=3)
    return root


@pytest.fixture(scope="session")
def churn_profiles(churn_dir) -> dict[str, Profile]:
    return {
        name: profile_dataset(str(churn_dir / f"{name}.csv"))
        for name in ("reference", "baseline", "drift", "zero_fill")
    }
