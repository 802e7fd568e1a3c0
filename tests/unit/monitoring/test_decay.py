from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from airflow_mlops_provider.exceptions import GateConfigError
from airflow_mlops_provider.gates import Threshold
from airflow_mlops_provider.monitoring.decay import DecayPolicy, decide, worse_than
from airflow_mlops_provider.monitoring.performance import live_metrics


def report(
    metric: str,
    value: float | None,
    rows: int = 1000,
    ci: tuple[float, float] | None = None,
    kind: str = "classification",
) -> dict[str, Any]:
    low, high = ci if ci else (None, None)
    return {
        "kind": kind,
        "rows": rows,
        "metrics": {metric: {"value": value, "ci_low": low, "ci_high": high, "rows": rows}},
    }


AUC = DecayPolicy("roc_auc", max_drop=0.05)
RMSE = DecayPolicy("rmse", max_drop=0.2)


@pytest.mark.parametrize(
    ("policy", "live", "offline", "status"),
    [
        pytest.param(AUC, 0.70, 0.80, "degraded", id="auc-dropped-past-tolerance"),
        pytest.param(AUC, 0.76, 0.80, "ok", id="auc-dropped-within-tolerance"),
        pytest.param(AUC, 0.90, 0.80, "ok", id="auc-improved"),
        pytest.param(RMSE, 1.30, 1.00, "degraded", id="rmse-rose-past-tolerance"),
        pytest.param(RMSE, 1.10, 1.00, "ok", id="rmse-rose-within-tolerance"),
        pytest.param(RMSE, 0.50, 1.00, "ok", id="rmse-fell"),
        pytest.param(
            DecayPolicy("rmse", max_drop=0.1, relative=True), 1.12, 1.00, "degraded", id="rmse-relative"
        ),
    ],
)
def test_decide_compares_with_the_offline_value_in_the_metrics_direction(
    policy: DecayPolicy, live: float, offline: float, status: str
) -> None:
    kind = "classification" if policy.metric == "roc_auc" else "regression"
    decision = decide(report(policy.metric, live, kind=kind), {policy.metric: offline}, policy)
    assert decision["status"] == status
    assert decision["checks"][0]["offline"] == offline


def test_decide_with_too_few_rows_is_insufficient_data_whatever_the_values() -> None:
    policy = DecayPolicy("roc_auc", max_drop=0.05, threshold=Threshold("roc_auc", ">=", 0.7), min_rows=200)
    decision = decide(report("roc_auc", 0.30, rows=199), {"roc_auc": 0.9}, policy)
    assert decision["status"] == "insufficient_data"
    assert decision["checks"] == []
    assert "199 labelled rows, fewer than min_rows 200" in decision["reasons"][0]
    assert decide(report("roc_auc", 0.30, rows=200), {"roc_auc": 0.9}, policy)["status"] == "degraded"


def test_decide_without_the_offline_value_makes_no_decision() -> None:
    decision = decide(report("roc_auc", 0.99), {"accuracy": 0.9}, AUC)
    assert decision["status"] == "insufficient_data"
    assert "no offline value" in decision["reasons"][0]
    assert "max_drop 0.05" in decision["reasons"][0]


def test_decide_threshold_degrades_even_without_offline_value_but_never_passes_without_it() -> None:
    policy = DecayPolicy("roc_auc", max_drop=0.05, threshold=Threshold("roc_auc", ">=", 0.7))
    assert decide(report("roc_auc", 0.65), {}, policy)["status"] == "degraded"
    assert decide(report("roc_auc", 0.95), {}, policy)["status"] == "insufficient_data"
    only_threshold = DecayPolicy("roc_auc", threshold=Threshold("roc_auc", ">=", 0.7))
    assert decide(report("roc_auc", 0.95), {}, only_threshold)["status"] == "ok"


def test_decide_reasons_name_metric_values_interval_tolerance_and_rows() -> None:
    decision = decide(report("roc_auc", 0.712, rows=5000, ci=(0.701, 0.723)), {"roc_auc": 0.801}, AUC)
    reason = decision["reasons"][0]
    for text in (
        "roc_auc",
        "0.712",
        "[0.701, 0.723]",
        "offline 0.801",
        "max_drop 0.05",
        "5000 rows",
        ">= 0.751",
        "degraded",
    ):
        assert text in reason
    check = decision["checks"][0]
    assert (check["live"], check["ci_low"], check["ci_high"], check["rows"]) == (0.712, 0.701, 0.723, 5000)


def test_require_significance_needs_the_whole_interval_past_the_bound() -> None:
    policy = DecayPolicy("roc_auc", max_drop=0.05, require_significance=True)
    offline = {"roc_auc": 0.80}  # bound: >= 0.75
    assert decide(report("roc_auc", 0.74, ci=(0.70, 0.78)), offline, policy)["status"] == "ok"
    assert decide(report("roc_auc", 0.72, ci=(0.70, 0.74)), offline, policy)["status"] == "degraded"
    assert decide(report("roc_auc", 0.72), offline, policy)["status"] == "insufficient_data"


def test_decide_on_a_live_report_end_to_end() -> None:
    rng = np.random.default_rng(2)
    scores = rng.random(2000)
    good = pa.table({"score": scores, "label": (rng.random(2000) < scores).astype(int)})
    noise = pa.table({"score": scores, "label": rng.integers(0, 2, 2000)})
    policy = DecayPolicy.from_yaml("metric: roc_auc\nmax_drop: 0.05\nmin_rows: 500\n")

    for table, status in ((good, "ok"), (noise, "degraded")):
        live = live_metrics(table, kind="classification", metrics=policy.metrics, bootstrap=50)
        assert decide(live, {"roc_auc": 0.8}, policy)["status"] == status


def test_decide_refuses_a_policy_for_another_kind_of_model() -> None:
    with pytest.raises(GateConfigError, match="the model is a regression model"):
        decide(report("rmse", 1.0, kind="regression"), {"roc_auc": 0.8}, AUC)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            {"metric": "roc_auc", "max_drop": 0.05, "tolerance": 1},
            r"unknown key\(s\) \['tolerance'\]",
            id="unknown-key",
        ),
        pytest.param(
            {"metric": "roc_acu", "max_drop": 0.05},
            r"decay.metric: unknown metric 'roc_acu' \(did you mean 'roc_auc'\?\)",
            id="unknown-metric",
        ),
        pytest.param({"metric": "roc_auc"}, "give max_drop, threshold or both", id="no-check"),
        pytest.param({"metric": "roc_auc", "max_drop": -0.1}, "decay.max_drop: -0.1", id="negative-drop"),
        pytest.param(
            {"metric": "roc_auc", "max_drop": "lots"}, "decay.max_drop: expected a number", id="text-drop"
        ),
        pytest.param(
            {"metric": "roc_auc", "threshold": "rmse <= 2"}, "reads a regression metric", id="mixed-kinds"
        ),
        pytest.param(
            {"metric": "roc_auc", "threshold": "roc_auc => 0.7"}, "decay.threshold", id="bad-threshold"
        ),
        pytest.param(
            {"metric": "roc_auc", "max_drop": 0.05, "min_rows": 0}, "decay.min_rows: 0", id="min-rows"
        ),
        pytest.param({"max_drop": 0.05}, "has no 'metric'", id="no-metric"),
    ],
)
def test_policy_configuration_errors_name_the_bad_key_or_metric(config: dict, message: str) -> None:
    with pytest.raises(GateConfigError, match=message):
        DecayPolicy.from_dict(config)


def test_policy_loads_from_yaml_and_round_trips() -> None:
    policy = DecayPolicy.coerce("metric: roc_auc\nmax_drop: 0.05\nthreshold: roc_auc >= 0.7\nmin_rows: 300\n")
    assert policy == DecayPolicy("roc_auc", 0.05, threshold=Threshold("roc_auc", ">=", 0.7), min_rows=300)
    assert DecayPolicy.coerce(policy.to_dict()) == policy
    assert policy.kind == "classification"
    assert policy.metrics == ["roc_auc"]
    with pytest.raises(GateConfigError, match="must be a mapping"):
        DecayPolicy.from_yaml("- roc_auc\n")


@pytest.mark.parametrize(
    ("metric", "new", "old", "expected"),
    [
        pytest.param("roc_auc", 0.70, 0.80, True, id="auc-lower-is-worse"),
        pytest.param("roc_auc", 0.85, 0.80, False, id="auc-higher-is-better"),
        pytest.param("rmse", 1.2, 1.0, True, id="rmse-higher-is-worse"),
        pytest.param("rmse", 0.8, 1.0, False, id="rmse-lower-is-better"),
    ],
)
def test_worse_than_follows_the_metrics_direction(
    metric: str, new: float, old: float, expected: bool
) -> None:
    assert worse_than(report(metric, new), report(metric, old), metric, min_rows=100) is expected


def test_worse_than_is_unknown_with_too_few_rows_and_honours_a_tolerance() -> None:
    assert worse_than(report("roc_auc", 0.5, rows=99), report("roc_auc", 0.9), "roc_auc", 100) is None
    assert worse_than(report("roc_auc", 0.5), report("roc_auc", 0.9, rows=10), "roc_auc", 100) is None
    assert worse_than(report("roc_auc", None), report("roc_auc", 0.9), "roc_auc", 100) is None
    assert (
        worse_than(report("roc_auc", 0.78), report("roc_auc", 0.80), "roc_auc", 100, tolerance=0.05) is False
    )
