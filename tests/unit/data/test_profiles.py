from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops_provider.data._whylogs_fast import fast_preprocessing
from airflow_mlops_provider.data.datasets import DatasetError
from airflow_mlops_provider.data.profiles import ProfileSummary, load_profile, profile_dataset, write_profile


def _summaries(frame: pd.DataFrame) -> dict:
    from whylogs.core import DatasetProfile

    profile = DatasetProfile()
    with np.errstate(over="ignore", invalid="ignore"):  # the infinities below make whylogs' moments NaN
        profile.track(pandas=frame)
    return {name: col.to_summary_dict() for name, col in profile.view().get_columns().items()}


def test_fast_preprocessing_gives_the_same_profile_as_whylogs_own():
    rng = np.random.default_rng(7)
    # Fewer rows than the KLL sketch holds, so its quantiles are exact (it compacts at random beyond).
    n = 240
    floats = rng.normal(size=n)
    floats[::17] = np.nan
    floats[::41] = np.inf
    frame = pd.DataFrame(
        {
            "floats": floats,
            "ints": rng.integers(-50, 50, n),
            "nullable_ints": pd.array(
                np.where(rng.random(n) < 0.1, None, rng.integers(0, 9, n)), dtype="Int64"
            ),
            "unsigned": rng.integers(0, 9, n).astype("uint8"),
            "strings": rng.choice(["a", "b", None], n),
            "pandas_strings": pd.array(rng.choice(["a", "bb", None], n), dtype="string"),
            "arrow_strings": pd.array(rng.choice(["x", "yy", None], n), dtype="string[pyarrow]"),
            "bools": rng.random(n) < 0.5,
            "mixed": [1, "x", 2.5] * (n // 3),
        }
    )
    slow = _summaries(frame)
    with fast_preprocessing():
        fast = _summaries(frame)
    assert fast.keys() == slow.keys()
    for column in slow:
        assert str(fast[column]) == str(slow[column]), column


def test_fast_preprocessing_is_undone_afterwards():
    from whylogs.core.preprocessing import PreprocessedColumn

    original = PreprocessedColumn._pandas_split
    with fast_preprocessing():
        assert PreprocessedColumn._pandas_split is not original
    assert PreprocessedColumn._pandas_split is original


def test_integer_column_with_nulls_is_typed_integral(tmp_path):
    (tmp_path / "d.csv").write_text("tenure,charges\n1,2.5\n,3.0\n7,4.25\n")
    stats = profile_dataset(str(tmp_path / "d.csv")).summary.column_stats
    assert stats["tenure"].inferred_type == "integral"
    assert stats["tenure"].null_count == 1
    assert stats["charges"].inferred_type == "fractional"


def test_timestamp_columns_become_sketched_epoch_seconds(tmp_path):
    (tmp_path / "d.csv").write_text("id,seen\n1,2026-11-01T00:00:00Z\n2,2026-11-20T12:00:00Z\n3,\n")
    summary = profile_dataset(str(tmp_path / "d.csv"), timestamp_columns=["seen"]).summary
    seen = summary.column_stats["seen"]
    assert seen.inferred_type == "timestamp"
    assert seen.max == pd.Timestamp("2026-11-20T12:00:00Z").timestamp()
    assert seen.null_count == 1


def test_a_timestamp_column_that_does_not_parse_is_named(tmp_path):
    (tmp_path / "d.csv").write_text("id,seen\n1,2026-11-01\n2,last tuesday\n")
    with pytest.raises(
        DatasetError, match="column 'seen' has a value that is not a timestamp: 'last tuesday'"
    ):
        profile_dataset(str(tmp_path / "d.csv"), timestamp_columns=["seen"])


def test_declared_timestamp_column_must_exist(tmp_path):
    (tmp_path / "d.csv").write_text("id\n1\n")
    with pytest.raises(DatasetError, match=r"timestamp column\(s\) \['seen'\] not in dataset"):
        profile_dataset(str(tmp_path / "d.csv"), timestamp_columns=["seen"])


def test_profile_and_summary_round_trip(tmp_path, churn_profiles):
    profile = churn_profiles["baseline"]
    profile_path, summary_path = write_profile(profile, tmp_path)
    loaded = load_profile(Path(profile_path).read_bytes(), Path(summary_path).read_text())
    assert loaded.summary == profile.summary
    assert isinstance(loaded.summary, ProfileSummary)
    assert loaded.view.get_column("tenure").to_summary_dict()["counts/n"] == 5_000


def test_summary_matches_the_data(churn_dir, churn_profiles):
    frame = pd.read_csv(churn_dir / "baseline.csv")
    summary = churn_profiles["baseline"].summary
    assert summary.rows == len(frame)
    assert summary.columns == list(frame.columns)
    tenure = summary.column_stats["tenure"]
    assert (tenure.min, tenure.max) == (frame.tenure.min(), frame.tenure.max())
    assert tenure.mean == pytest.approx(frame.tenure.mean())
    assert summary.column_stats["contract"].categories == frame.contract.value_counts().to_dict()
    # Exact zeros share: none in a baseline week by construction.
    assert summary.column_stats["days_since_last_login"].zero_fraction == 0.0
