from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from airflow_mlops_provider.data.drift import (
    ColumnDriftThreshold,
    DriftThresholds,
    at_least,
    compare,
    plot_top_drift,
)
from airflow_mlops_provider.data.profiles import profile_dataset


def _view(tmp_path, name: str, frame: pd.DataFrame):
    frame.to_csv(tmp_path / f"{name}.csv", index=False)
    return profile_dataset(str(tmp_path / f"{name}.csv")).view


@pytest.fixture
def cancer() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame


def test_shifted_numeric_column_drifts_and_unshifted_ones_do_not(tmp_path, cancer):
    rng = np.random.default_rng(0)
    order = rng.permutation(len(cancer))
    reference, target = cancer.iloc[order[:280]], cancer.iloc[order[280:]].copy()
    target["mean radius"] = target["mean radius"] + 1.5 * cancer["mean radius"].std()
    report = compare(_view(tmp_path, "t", target), _view(tmp_path, "r", reference))
    assert report.columns["mean radius"].outcome == "drift"
    assert report.columns["mean radius"].algorithm == "ks"
    assert report.drifted == ["mean radius"]
    assert report.outcome == "drift"


def test_two_samples_of_the_same_data_do_not_drift(churn_profiles):
    report = compare(churn_profiles["baseline"].view, churn_profiles["reference"].view)
    assert report.outcome == "no_drift"
    assert report.drifted == []


def test_the_drift_week_is_flagged_on_what_changed(churn_profiles):
    report = compare(churn_profiles["drift"].view, churn_profiles["reference"].view)
    assert report.outcome == "drift"
    assert {"monthly_charges", "contract"} <= set(report.drifted)
    assert report.columns["contract"].algorithm == "chi-square"
    assert "tenure" not in report.drifted


def test_effect_size_floor_and_per_column_thresholds(churn_profiles):
    lenient = DriftThresholds(columns={"monthly_charges": ColumnDriftThreshold(min_effect=0.9)})
    report = compare(churn_profiles["drift"].view, churn_profiles["reference"].view, lenient)
    assert report.columns["monthly_charges"].outcome == "no_drift"
    assert "contract" in report.drifted


def test_overall_outcome_respects_the_drift_share(churn_profiles):
    thresholds = DriftThresholds(drift_share=0.9)
    report = compare(churn_profiles["drift"].view, churn_profiles["reference"].view, thresholds)
    assert report.outcome == "possible_drift"


def test_ignored_and_missing_columns(tmp_path, churn_dir):
    frame = pd.read_csv(churn_dir / "baseline.csv")
    report = compare(
        _view(tmp_path, "t", frame.drop(columns=["tenure"])),
        _view(tmp_path, "r", frame),
        DriftThresholds(ignore=frozenset({"customer_id"})),
    )
    assert report.missing_columns == ["tenure"]
    assert "customer_id" not in report.columns


def test_thresholds_from_a_mapping_reject_unknown_keys():
    assert DriftThresholds.from_dict({"default": {"min_effect": 0.2}}).default.min_effect == 0.2
    with pytest.raises(ValueError, match=r"unknown drift threshold key\(s\) \['treshold'\]"):
        DriftThresholds.from_dict({"treshold": 1})


def test_outcome_order():
    assert at_least("drift", "possible_drift")
    assert not at_least("possible_drift", "drift")


def test_plot_is_a_png_of_the_top_columns(tmp_path, churn_profiles):
    report = compare(churn_profiles["drift"].view, churn_profiles["reference"].view)
    path = plot_top_drift(
        report, churn_profiles["drift"].view, churn_profiles["reference"].view, str(tmp_path / "d.png")
    )
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
