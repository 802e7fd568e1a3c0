"""The fairness gate: per-group figures from Fairlearn, disparities bounded, small groups reported."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops_provider.exceptions import GateConfigError
from airflow_mlops_provider.gates import FairnessGate, PromotionGates, apply_gates, evaluate_frame

GATES = """
thresholds: [accuracy >= 0.8]
fairness:
  - name: region
    sensitive: [region]
    max_demographic_parity_difference: 0.1
    max_equalized_odds_difference: 0.1
    metrics: [recall]
    max_metric_difference: 0.1
    min_group_rows: 50
evidence: false
"""


def population(unfair_to: str | None, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers of regions A, B (large) and C (20 rows), and a model's scores for them.

    The model is right for 93% of everyone; in the region it is unfair to, it misses most positives.
    """
    rng = np.random.default_rng(seed)
    regions = np.array(["A"] * 600 + ["B"] * 600 + ["C"] * 20)
    y = rng.integers(0, 2, len(regions))
    right = rng.random(len(regions)) < 0.95
    predicted = np.where(right, y, 1 - y)
    if unfair_to is not None:
        mine = (regions == unfair_to) & (y == 1)
        predicted[mine & (rng.random(len(regions)) < 0.5)] = 0
    scores = np.where(predicted == 1, 0.8, 0.2)
    frame = pd.DataFrame({"x": rng.normal(size=len(regions)), "region": regions, "churned": y})
    return frame, scores


def judge(frame: pd.DataFrame, scores: np.ndarray, gates: Any = GATES) -> tuple[dict[str, Any], list[Any]]:
    gates = PromotionGates.coerce(gates)
    report = evaluate_frame(lambda _: scores, frame, "churned", ["x"], gates, "classification")
    return report, apply_gates(gates, report, None)


def test_a_model_accurate_overall_but_unfair_to_a_region_is_refused_with_the_figures() -> None:
    frame, scores = population(unfair_to="B")
    report, results = judge(frame, scores)
    assert report["overall"]["accuracy"] >= 0.8
    failed = {r.gate: r for r in results if not r.passed}
    assert "threshold:accuracy" not in failed
    assert set(failed) == {
        "fairness:region:demographic_parity_difference",
        "fairness:region:equalized_odds_difference",
        "fairness:region:recall_difference",
    }
    # The figures, computed here independently of Fairlearn, are the ones judged and shown.
    big = frame["region"].isin(["A", "B"])
    selected = pd.Series(scores >= 0.5)[big.to_numpy()].groupby(frame["region"][big].to_numpy()).mean()
    assert failed["fairness:region:demographic_parity_difference"].observed == pytest.approx(
        selected.max() - selected.min(), abs=1e-6
    )
    positives = (frame["churned"] == 1) & big
    recall = (
        pd.Series(scores >= 0.5)[positives.to_numpy()].groupby(frame["region"][positives].to_numpy()).mean()
    )
    assert failed["fairness:region:recall_difference"].observed == pytest.approx(
        recall.max() - recall.min(), abs=1e-6
    )
    message = failed["fairness:region:recall_difference"].describe()
    assert f"A: {recall['A']:.3g} (600 rows)" in message
    assert f"B: {recall['B']:.3g} (600 rows)" in message
    assert "not gated, under 50 rows: C" in message


def test_a_fair_model_passes_and_a_tiny_group_is_reported_not_gated_unless_asked() -> None:
    frame, scores = population(unfair_to="C")
    report, results = judge(frame, scores)
    assert all(r.passed for r in results), [r.describe() for r in results if not r.passed]
    fairness = report["fairness"]["region"]
    assert fairness["small_groups"] == ["C"]
    assert fairness["gated_groups"] == ["A", "B"]
    assert fairness["groups"]["C"]["rows"] == 20
    strict = GATES.replace("min_group_rows: 50", "min_group_rows: 50\n    gate_small_groups: true")
    _, results = judge(frame, scores, strict)
    assert not all(r.passed for r in results)


def test_several_sensitive_columns_form_groups_of_their_combinations() -> None:
    frame, scores = population(unfair_to=None)
    frame["age"] = np.where(np.arange(len(frame)) % 2 == 0, "young", "old")
    gates = GATES.replace("sensitive: [region]", "sensitive: [region, age]")
    report, _ = judge(frame, scores, gates)
    assert sorted(report["fairness"]["region"]["groups"]) == [
        "A|old",
        "A|young",
        "B|old",
        "B|young",
        "C|old",
        "C|young",
    ]


def test_a_missing_sensitive_column_fails_closed() -> None:
    frame, scores = population(unfair_to=None)
    _, results = judge(frame.drop(columns=["region"]), scores)
    (failed,) = [r for r in results if not r.passed]
    assert failed.gate == "fairness:region"
    assert "sensitive column(s) ['region'] are not in the evaluation data" in failed.detail


@pytest.mark.parametrize(
    ("item", "message"),
    [
        pytest.param({"name": "r", "sensitive": []}, "name at least one column", id="no-columns"),
        pytest.param({"name": "r", "sensitive": ["region"]}, "set at least one of", id="no-bound"),
        pytest.param(
            {"name": "r", "sensitive": ["region"], "max_metric_difference": 0.1},
            "name the metrics",
            id="no-metrics",
        ),
        pytest.param(
            {"name": "r", "sensitive": ["region"], "min_demographic_parity_ratio": 1.5},
            "between 0 and 1",
            id="ratio",
        ),
        pytest.param(
            {"name": "r", "sensitive": ["region"], "metrics": ["recal"], "max_metric_difference": 0.1},
            "did you mean 'recall'",
            id="typo",
        ),
    ],
)
def test_a_malformed_fairness_gate_names_what_is_wrong(item: dict[str, Any], message: str) -> None:
    with pytest.raises(GateConfigError, match=message):
        FairnessGate.parse(item)


def test_demographic_parity_on_a_regressor_is_refused_naming_the_alternative() -> None:
    gates = PromotionGates.from_yaml(GATES.replace("accuracy >= 0.8", "rmse <= 1").replace("recall", "mae"))
    with pytest.raises(GateConfigError, match="bound max_metric_difference of a regression metric instead"):
        gates.check_kind("regression")
