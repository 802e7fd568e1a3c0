"""The fairness gate in a real promotion: the registry's candidate refused with its figures, recorded."""

from __future__ import annotations

import json

import pytest

from airflow_mlops_provider import promotion as p
from airflow_mlops_provider.exceptions import PromotionRejected
from tests.integration.registry.test_promotion import aliases, new_name, promote, tags

pytestmark = pytest.mark.timeout(600)

# `contract` is in the evaluation data but not among the features the models are given.
FAIR = {
    "thresholds": ["roc_auc >= 0.5"],
    "fairness": [
        {
            "name": "contract",
            "sensitive": ["contract"],
            "metrics": ["roc_auc"],
            "max_metric_difference": 0.15,
            "min_group_rows": 30,
        }
    ],
    "evidence": True,
}


def test_a_candidate_unfair_to_month_to_month_customers_is_refused_and_the_figures_recorded(trained, client):
    name = new_name()
    first = promote(trained, name, "better", gates=FAIR)
    assert first["decision"] == "promoted"
    recorded = json.loads(tags(client, name, first["version"])[p.TAG_FAIRNESS])
    assert set(recorded["contract"]["groups"]) == {"month-to-month", "two-year"}

    with pytest.raises(PromotionRejected) as refused:
        promote(trained, name, "slice_breaker", gates=FAIR)
    message = str(refused.value)
    assert "fairness:contract:roc_auc_difference" in message
    assert "month-to-month: " in message
    assert "two-year: " in message
    failed = [g["gate"] for g in refused.value.decision["gates"] if g["status"] == "failed"]
    assert failed == ["fairness:contract:roc_auc_difference"]
    report = refused.value.decision["metrics"]["fairness"]["contract"]
    gap = report["groups"]["two-year"]["roc_auc"] - report["groups"]["month-to-month"]["roc_auc"]
    assert report["metric_differences"]["roc_auc"] == pytest.approx(abs(gap), abs=1e-6)
    assert abs(gap) > 0.15
    assert aliases(client, name)[p.CHAMPION] == first["version"]
