from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn import metrics as skm

from airflow_mlops_provider.exceptions import GateConfigError, MonitoringError
from airflow_mlops_provider.gates import SliceGate, Threshold
from airflow_mlops_provider.monitoring.captures import read_captures
from airflow_mlops_provider.monitoring.outcomes import join_outcomes, read_labels
from airflow_mlops_provider.monitoring.performance import live_metrics
from tests.unit.monitoring.conftest import MODEL, WINDOW, Store, labels_table


def classified(rows: int, seed: int = 1) -> pa.Table:
    """Joined rows of a classifier with some skill: labels drawn from the scores."""
    rng = np.random.default_rng(seed)
    scores = rng.beta(2, 2, rows)
    labels = (rng.random(rows) < scores).astype(np.int64)
    return pa.table({"score": scores, "label": labels, "tenure": rng.integers(0, 72, rows)})


def width(entry: dict) -> float:
    return entry["ci_high"] - entry["ci_low"]


@pytest.fixture
def joined(store: Store, tmp_path) -> pa.Table:
    pq.write_table(labels_table(store.labels), tmp_path / "labels.parquet")
    captures = read_captures(store.uri, MODEL, start=WINDOW[0], end=WINDOW[1])
    table, _ = join_outcomes(
        captures, read_labels(str(tmp_path / "labels.parquet"), value_column="revenue_kept")
    )
    return table


def test_live_classification_metrics_equal_scikit_learns_on_the_joined_rows(joined: pa.Table) -> None:
    report = live_metrics(
        joined, kind="classification", metrics=["roc_auc", "accuracy", "log_loss"], bootstrap=50
    )

    frame = joined.select(["score", "label"]).to_pandas().dropna(subset=["score"])
    assert 0 < len(frame) < joined.num_rows  # rows without a score are left out
    y, s = frame["label"].to_numpy(), frame["score"].to_numpy()
    assert report["rows"] == joined.num_rows
    assert report["scored_rows"] == len(frame)
    assert report["metrics"]["roc_auc"]["value"] == pytest.approx(skm.roc_auc_score(y, s), rel=1e-12)
    assert report["metrics"]["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y, s >= 0.5), rel=1e-12)
    assert report["metrics"]["log_loss"]["value"] == pytest.approx(skm.log_loss(y, s), rel=1e-9)
    assert report["metrics"]["roc_auc"]["rows"] == len(frame)
    json.dumps(report)


def test_live_regression_metrics_use_the_score_then_the_prediction() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(10, 3, 400)
    predicted = truth + rng.normal(0, 1, 400)
    score = pa.array([None if i % 10 == 0 else float(v) for i, v in enumerate(predicted)], pa.float64())
    prediction = pa.array(
        np.where(np.arange(400) % 10 == 0, predicted, -999.0)
    )  # only read where score is null
    table = pa.table({"score": score, "prediction": prediction, "label": truth})

    report = live_metrics(table, kind="regression", metrics=["rmse", "mae", "r2"], bootstrap=50)

    assert report["scored_rows"] == 400
    assert report["metrics"]["rmse"]["value"] == pytest.approx(
        np.sqrt(skm.mean_squared_error(truth, predicted))
    )
    assert report["metrics"]["mae"]["value"] == pytest.approx(skm.mean_absolute_error(truth, predicted))
    assert report["metrics"]["r2"]["value"] == pytest.approx(skm.r2_score(truth, predicted))


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy", "brier"])
def test_confidence_interval_contains_the_estimate_and_narrows_with_more_rows(metric: str) -> None:
    small = live_metrics(classified(400), kind="classification", metrics=[metric])["metrics"][metric]
    large = live_metrics(classified(6400), kind="classification", metrics=[metric])["metrics"][metric]

    for entry in (small, large):
        assert entry["ci_low"] < entry["value"] < entry["ci_high"]
    # Sixteen times the rows: about a quarter of the width.
    assert 0.15 < width(large) / width(small) < 0.4


def test_subsampled_bootstrap_matches_the_full_one_after_rescaling() -> None:
    table = classified(40_000, seed=5)
    full = live_metrics(
        table, kind="classification", metrics=["roc_auc"], max_bootstrap_rows=40_000, bootstrap=100
    )
    sub = live_metrics(
        table, kind="classification", metrics=["roc_auc"], max_bootstrap_rows=4_000, bootstrap=100
    )

    assert sub["metrics"]["roc_auc"]["value"] == full["metrics"]["roc_auc"]["value"]
    assert width(sub["metrics"]["roc_auc"]) == pytest.approx(width(full["metrics"]["roc_auc"]), rel=0.25)


def test_bootstrap_is_reproducible_for_a_seed_and_can_be_turned_off() -> None:
    table = classified(500)
    first = live_metrics(table, kind="classification", metrics=["roc_auc"], seed=4, bootstrap=60)
    again = live_metrics(table, kind="classification", metrics=["roc_auc"], seed=4, bootstrap=60)
    other = live_metrics(table, kind="classification", metrics=["roc_auc"], seed=5, bootstrap=60)
    none = live_metrics(table, kind="classification", metrics=["roc_auc"], bootstrap=0)

    assert first["metrics"] == again["metrics"]
    assert first["metrics"] != other["metrics"]
    assert none["metrics"]["roc_auc"]["ci_low"] is None
    assert none["metrics"]["roc_auc"]["value"] is not None


def test_slices_select_rows_like_the_promotion_gates(joined: pa.Table) -> None:
    report = live_metrics(
        joined,
        kind="classification",
        metrics=["accuracy"],
        slices=[
            SliceGate("new", "tenure < 12", (Threshold("roc_auc", ">=", 0.6),), min_rows=30),
            {"name": "monthly-eu", "where": 'contract == "month-to-month" and region == "eu"'},
            {"name": "typo", "where": "tenur < 12"},
        ],
        bootstrap=20,
        value_column="value",
    )

    frame = joined.select(["tenure", "contract", "region", "score", "label", "value"]).to_pandas()
    new = frame[frame["tenure"] < 12]
    scored = new.dropna(subset=["score"])
    entry = report["slices"]["new"]
    assert (entry["rows"], entry["min_rows"], entry["error"]) == (len(new), 30, None)
    assert set(entry["metrics"]) == {"accuracy", "roc_auc"}  # the thresholds' metrics come too
    assert entry["metrics"]["roc_auc"]["value"] == pytest.approx(
        skm.roc_auc_score(scored["label"], scored["score"])
    )
    assert entry["metrics"]["roc_auc"]["rows"] == len(scored)
    assert entry["value_sum"] == pytest.approx(new["value"].sum())
    monthly = frame[(frame["contract"] == "month-to-month") & (frame["region"] == "eu")]
    assert report["slices"]["monthly-eu"]["rows"] == len(monthly) > 0
    assert "names column(s) ['tenur']" in report["slices"]["typo"]["error"]
    assert report["value_sum"] == pytest.approx(frame["value"].sum())


def test_live_metrics_of_no_rows_are_none_not_an_error() -> None:
    empty = pa.table({"score": pa.array([], pa.float64()), "label": pa.array([], pa.int64())})
    report = live_metrics(empty, kind="classification", metrics=["roc_auc"])
    assert report["rows"] == 0
    assert report["metrics"]["roc_auc"] == {"value": None, "ci_low": None, "ci_high": None, "rows": 0}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        pytest.param(
            {"metrics": ["rmse"]}, GateConfigError, "'rmse' is a regression metric", id="wrong-kind"
        ),
        pytest.param(
            {"metrics": ["roc_acu"]}, GateConfigError, "did you mean 'roc_auc'", id="unknown-metric"
        ),
        pytest.param({"confidence": 95}, GateConfigError, "confidence: 95", id="confidence-percent"),
        pytest.param(
            {"slices": [{"name": "x", "wher": "a < 1"}]},
            GateConfigError,
            r"unknown key\(s\) \['wher'\]",
            id="slice-key",
        ),
        pytest.param(
            {"slices": [{"name": "x", "where": "a < 1 and b.c"}]},
            GateConfigError,
            "uses Attribute",
            id="slice-code",
        ),
        pytest.param(
            {"value_column": "revenue"},
            MonitoringError,
            "value column 'revenue' is not in",
            id="value-column",
        ),
    ],
)
def test_live_metrics_refuses_bad_configuration(kwargs: dict, error: type, message: str) -> None:
    arguments = {"kind": "classification", "metrics": ["roc_auc"], **kwargs}
    with pytest.raises(error, match=message):
        live_metrics(classified(50), **arguments)


def test_live_metrics_reads_timestamps_it_does_not_need_without_complaint() -> None:
    at = datetime(2024, 5, 2, tzinfo=timezone.utc)
    table = classified(100).append_column(
        "captured_at", pa.array([at + timedelta(seconds=i) for i in range(100)])
    )
    assert live_metrics(table, kind="classification", metrics=["accuracy"], bootstrap=0)["rows"] == 100
