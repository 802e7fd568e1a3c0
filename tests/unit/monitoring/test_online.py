"""The paired comparison of challenger and champion: the tests, the pairing of real capture files."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from airflow_mlops_provider.exceptions import GateConfigError
from airflow_mlops_provider.gates import OnlineGate, PromotionGates, compute_metrics
from airflow_mlops_provider.monitoring.online import compare, read_pairs

UTC = timezone.utc


def traffic(n: int, champion_signal: float, challenger_signal: float, seed: int) -> tuple[Any, Any, Any]:
    """Labels and two models' scores on the same requests; a stronger signal is a better model."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    sign = 2 * y - 1
    champion = 1 / (1 + np.exp(-(champion_signal * sign + rng.normal(size=n))))
    challenger = 1 / (1 + np.exp(-(challenger_signal * sign + rng.normal(size=n))))
    return y, champion, challenger


@pytest.mark.parametrize(
    ("metric", "test"),
    [
        pytest.param("accuracy", "mcnemar", id="accuracy-mcnemar"),
        pytest.param("roc_auc", "delong", id="roc_auc-delong"),
        pytest.param("log_loss", "bootstrap", id="log_loss-bootstrap"),
        pytest.param("f1", "bootstrap", id="f1-bootstrap"),
    ],
)
def test_a_better_challenger_is_promoted_an_equal_or_worse_one_rejected(metric: str, test: str) -> None:
    gate = OnlineGate(metric=metric, min_pairs=200, bootstrap=300)
    assert gate.resolved_test == test
    outcomes = {
        case: [compare(*traffic(1500, a, b, seed), gate, "classification")["outcome"] for seed in range(6)]
        for case, (a, b) in {"better": (1.0, 1.6), "equal": (1.0, 1.0), "worse": (1.6, 1.0)}.items()
    }
    assert outcomes["better"] == ["promote"] * 6
    assert outcomes["worse"] == ["reject"] * 6
    # An equal challenger passes a 5% test about one time in twenty; not five times in six.
    assert outcomes["equal"].count("reject") >= 5


def test_the_evidence_names_both_models_metric_the_effect_its_interval_and_p_value() -> None:
    y, champion, challenger = traffic(2000, 1.0, 1.6, seed=1)
    gate = OnlineGate(metric="roc_auc", min_pairs=100)
    evidence = compare(y, champion, challenger, gate, "classification")
    want_a = compute_metrics(y, champion, ["roc_auc"])["roc_auc"]
    want_b = compute_metrics(y, challenger, ["roc_auc"])["roc_auc"]
    assert evidence["champion"] == pytest.approx(want_a)
    assert evidence["challenger"] == pytest.approx(want_b)
    assert evidence["effect"] == pytest.approx(want_b - want_a)
    assert evidence["ci_low"] < evidence["effect"] < evidence["ci_high"]
    assert evidence["ci_low"] > 0
    assert 0 <= evidence["p_value"] < 0.05
    assert evidence["pairs"] == 2000
    assert evidence["positives"] + evidence["negatives"] == 2000


def test_delong_agrees_with_the_paired_bootstrap_on_the_size_of_the_difference() -> None:
    y, champion, challenger = traffic(1500, 1.0, 1.3, seed=3)
    delong = compare(y, champion, challenger, OnlineGate(metric="roc_auc", min_pairs=100), "classification")
    boot = compare(
        y,
        champion,
        challenger,
        OnlineGate(metric="roc_auc", min_pairs=100, test="bootstrap", bootstrap=400),
        "classification",
    )
    width = delong["ci_high"] - delong["ci_low"]
    assert boot["ci_high"] - boot["ci_low"] == pytest.approx(width, rel=0.3)
    assert boot["effect"] == pytest.approx(delong["effect"])


@pytest.mark.parametrize(
    ("metric", "kind"),
    [
        *[
            pytest.param(m, "classification", id=m)
            for m in ("accuracy", "f1", "precision", "recall", "log_loss", "brier")
        ],
        *[pytest.param(m, "regression", id=m) for m in ("rmse", "mae", "r2")],
    ],
)
def test_each_resampled_effect_is_the_metric_code_on_that_resample(metric: str, kind: str) -> None:
    from airflow_mlops_provider.gates import METRICS
    from airflow_mlops_provider.monitoring.online import _resampled_effects

    y, champion, challenger = traffic(300, 1.0, 1.3, seed=5)
    if kind == "regression":
        y = champion + np.random.default_rng(1).normal(size=300)
    effects = _resampled_effects(metric, y, champion, challenger, 5, np.random.default_rng(0))
    weights = np.random.default_rng(0).multinomial(300, np.full(300, 1 / 300), size=5)
    sign = 1 if METRICS[metric].higher_is_better else -1
    for effect, counts in zip(effects, weights, strict=True):
        rows = np.repeat(np.arange(300), counts)
        a = compute_metrics(y[rows], champion[rows], [metric], kind)[metric]
        b = compute_metrics(y[rows], challenger[rows], [metric], kind)[metric]
        assert effect == pytest.approx(sign * (b - a), rel=1e-9, abs=1e-12)


def test_mcnemar_counts_the_discordant_pairs() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0] * 10)
    champion = np.array([0.9, 0.2, 0.8, 0.1, 0.7, 0.3, 0.4, 0.2] * 10)  # wrong on rows 1, 4, 6
    challenger = np.array([0.9, 0.8, 0.8, 0.1, 0.2, 0.3, 0.3, 0.6] * 10)  # wrong on rows 6, 7
    evidence = compare(y, champion, challenger, OnlineGate(metric="accuracy", min_pairs=10), "classification")
    assert evidence["discordant"] == {"challenger_only_right": 20, "champion_only_right": 10}
    assert evidence["effect"] == pytest.approx((20 - 10) / 80)
    assert evidence["rows_both_wrong"] == 10


def test_regression_metrics_compare_in_their_own_direction() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=1500)
    close = truth + rng.normal(scale=0.5, size=1500)
    far = truth + rng.normal(scale=0.8, size=1500)
    for metric in ("rmse", "mae", "r2"):
        gate = OnlineGate(metric=metric, min_pairs=100, bootstrap=300)
        assert compare(truth, far, close, gate, "regression")["outcome"] == "promote", metric
        assert compare(truth, close, far, gate, "regression")["outcome"] == "reject", metric


def test_too_few_pairs_or_one_class_is_insufficient_and_a_margin_must_be_cleared() -> None:
    y, champion, challenger = traffic(150, 1.0, 1.6, seed=2)
    assert (
        compare(y, champion, challenger, OnlineGate(metric="roc_auc", min_pairs=151), "classification")[
            "outcome"
        ]
        == "insufficient"
    )
    ones = np.ones(300, dtype=int)
    assert (
        compare(
            ones,
            np.full(300, 0.7),
            np.full(300, 0.8),
            OnlineGate(metric="roc_auc", min_pairs=10),
            "classification",
        )["outcome"]
        == "insufficient"
    )
    y, champion, challenger = traffic(3000, 1.0, 1.2, seed=4)
    small = compare(y, champion, challenger, OnlineGate(metric="roc_auc", min_pairs=10), "classification")
    assert small["outcome"] == "promote"
    margin = compare(
        y, champion, challenger, OnlineGate(metric="roc_auc", min_pairs=10, min_effect=0.05), "classification"
    )
    assert small["effect"] < 0.05
    assert margin["outcome"] == "reject"


@pytest.mark.parametrize(
    ("online", "message"),
    [
        pytest.param({"metric": "roc_auc", "test": "mcnemar"}, "compares", id="test-for-another-metric"),
        pytest.param({"metric": "roc_auc", "min_pairs": 5}, "min_pairs", id="too-few-pairs"),
        pytest.param({"metric": "roc_auc", "alpha": 0.7}, "alpha", id="alpha"),
        pytest.param({"metric": "roc_aux"}, "did you mean 'roc_auc'", id="unknown-metric"),
        pytest.param({"min_pairs": 100}, "no 'metric'", id="no-metric"),
        pytest.param({"metric": "roc_auc", "wait": 3}, "unknown key", id="unknown-key"),
    ],
)
def test_a_malformed_online_gate_names_what_is_wrong(online: dict[str, Any], message: str) -> None:
    with pytest.raises(GateConfigError, match=message):
        PromotionGates.from_dict({"online": online})


def test_the_online_gate_reads_from_yaml_with_the_offline_gates_and_its_kind_is_checked() -> None:
    gates = PromotionGates.from_yaml(
        "thresholds: [roc_auc >= 0.7]\nonline: {metric: accuracy, min_pairs: 300, max_wait_hours: 48}\n"
    )
    assert gates.online == OnlineGate(metric="accuracy", min_pairs=300, max_wait_hours=48.0)
    assert gates.to_dict()["online"]["min_pairs"] == 300
    with pytest.raises(GateConfigError, match="regression metric"):
        PromotionGates.from_dict({"online": {"metric": "rmse"}}).check_kind("classification")


def write_traffic(
    root: Path,
    n: int,
    labelled: int,
    champion_signal: float,
    challenger_signal: float,
    *,
    model: str = "churn",
    versions: tuple[str, str] = ("1", "2"),
    at: datetime = datetime(2026, 3, 2, 12, tzinfo=UTC),
) -> pa.Table:
    """Capture ``n`` requests at ``at`` for the champion (answering) and the challenger (in shadow) with
    the real capture writer; return labels of the first ``labelled``, a week later."""
    import pandas as pd

    from airflow_mlops_provider.serving.capture import CaptureConfig, CaptureWriter

    y, champion, challenger = traffic(n, champion_signal, challenger_signal, seed=11)
    columns = [{"name": "signal", "type": "double"}]
    config = CaptureConfig(uri=str(root), flush_rows=10_000)
    stamp = at.timestamp()
    ids = [f"req-{i}" for i in range(n)]
    for version, scores, served in ((versions[0], champion, True), (versions[1], challenger, False)):
        by_signal = dict(enumerate(scores))

        def proba(frame: Any, lookup: dict[int, float] = by_signal) -> tuple[list[int], Any]:
            p = np.array([lookup[int(i)] for i in frame["signal"]])
            return [0, 1], np.column_stack([1 - p, p])

        writer = CaptureWriter(
            config,
            {"mlflow_model_name": model, "mlflow_model_version": version},
            columns,
            lambda rows: pd.DataFrame.from_records(rows, columns=["signal"]).astype("float64"),
            proba,
        )
        rows = [{"signal": float(i)} for i in range(n)]
        # The shadow's rows come in a different order and one is scored twice (a retried request).
        order = list(range(n)) if served else [*reversed(range(n)), 0]
        for start in range(0, len(order), 250):
            part = order[start : start + 250]
            writer.record(
                [ids[i] for i in part],
                [rows[i] for i in part],
                [int(scores[i] >= 0.5) for i in part],
                served=served,
                captured_at=stamp,
            )
        writer.close()
    return pa.table(
        {
            "request_id": ids[:labelled],
            "label": y[:labelled],
            "labeled_at": pa.array([at + timedelta(days=7)] * labelled, pa.timestamp("us", "UTC")),
        }
    )


def test_pairs_come_from_both_versions_capture_files_by_request_id(tmp_path: Path) -> None:
    labels = write_traffic(tmp_path, 1200, 1000, 1.0, 1.6)
    window = {"start": datetime(2026, 3, 1, tzinfo=UTC), "end": datetime(2026, 3, 3, tzinfo=UTC)}
    y, champion, challenger, counts = read_pairs(
        str(tmp_path), "churn", "1", "2", labels, "classification", **window
    )
    assert counts == {
        "champion_predictions": 1200,
        "challenger_predictions": 1201,
        "labelled": 1000,
        "pairs": 1000,
        "unpaired": 0,
    }
    want_y, want_a, want_b = (a[:1000] for a in traffic(1200, 1.0, 1.6, seed=11))
    assert np.array_equal(y, want_y)
    assert np.allclose(champion, want_a)
    assert np.allclose(challenger, want_b)
    gate = OnlineGate(metric="roc_auc", min_pairs=500)
    assert compare(y, champion, challenger, gate, "classification")["outcome"] == "promote"
    # A window before the traffic pairs nothing.
    early = read_pairs(
        str(tmp_path), "churn", "1", "2", labels, "classification", end=window["start"] - timedelta(days=1)
    )
    assert early[3]["pairs"] == 0
