"""The smoke test's sample, read with the provider's one dataset reader."""

from __future__ import annotations

import pytest

from airflow_mlops_provider.bentos.smoke import read_sample
from airflow_mlops_provider.exceptions import PackagingError

COLUMNS = [{"name": "tenure", "required": True}, {"name": "plan", "required": False}]


def test_the_sample_is_the_first_rows_of_any_dataset_the_provider_reads(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"tenure": range(10), "plan": ["a", None] * 5})
    frame.iloc[:5].to_parquet(tmp_path / "part-0.parquet")
    frame.iloc[5:].to_parquet(tmp_path / "part-1.parquet")
    sample = read_sample(str(tmp_path), COLUMNS, rows=7)
    assert sample["tenure"].tolist() == list(range(7))
    # The dtypes a served model is sent: NaN for a missing text value, not pd.NA.
    assert sample["plan"].dtype == object
    assert pd.isna(sample["plan"][1])
    assert sample["plan"][1] is not pd.NA


def test_a_sample_without_a_required_column_is_refused_and_an_optional_one_may_be_missing(tmp_path):
    import pandas as pd

    path = tmp_path / "sample.csv.gz"

    pd.DataFrame({"tenure": [1, 2]}).to_csv(path, index=False)
    assert len(read_sample(str(path), COLUMNS, rows=5)) == 2
    with pytest.raises(PackagingError, match=r"lacks the model's input columns \['age'\]"):
        read_sample(str(path), [*COLUMNS, {"name": "age"}], rows=5)


def test_an_unreadable_sample_names_itself(tmp_path):
    with pytest.raises(PackagingError, match=r"evaluation sample .*missing\.csv.* cannot be read"):
        read_sample(str(tmp_path / "missing.csv"), COLUMNS, rows=5)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(PackagingError, match="empty"):
        read_sample(str(tmp_path / "empty.csv"), COLUMNS, rows=5)
