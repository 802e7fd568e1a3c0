"""The shadow promotion flow's shape: who runs after what, and online gates that cannot be skipped."""

from __future__ import annotations

from datetime import datetime

import pytest

from airflow_mlops_provider.exceptions import GateConfigError

ONLINE = "thresholds: [roc_auc >= 0.7]\nonline: {metric: roc_auc, min_pairs: 100}\n"


def build():
    from airflow.sdk import DAG

    from airflow_mlops_provider.operators.shadow import shadow_promotion

    with DAG(dag_id="shadow_flow", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        shadow_promotion(
            group_id="promote",
            candidate="run-id",
            registered_model_name="churn",
            eval_data_uri="/data/eval.csv",
            labels_uri="/data/outcomes",
            target_column="churned",
            gates=ONLINE,
        )
    return {task.task_id.removeprefix("promote."): task for task in dag.tasks}


def test_the_challenger_is_withdrawn_whatever_happens_and_a_failure_fails_the_run():
    tasks = build()
    assert set(tasks) == {
        "evaluate",
        "package_shadow",
        "online_gate",
        "approve",
        "commit",
        "withdraw",
        "package",
    }
    up = {name: {t.removeprefix("promote.") for t in task.upstream_task_ids} for name, task in tasks.items()}
    assert up["package_shadow"] == {"evaluate"}
    assert up["online_gate"] == {"package_shadow"}
    assert up["approve"] == {"online_gate"}
    assert up["commit"] == {"approve"}
    assert up["withdraw"] == {"commit"}
    assert up["package"] == {"withdraw", "commit"}
    # Withdrawal runs after a refusal (skipped) and a failure alike ...
    assert tasks["withdraw"].trigger_rule == "all_done"
    # ... and the final packaging is upstream_failed after a failure: the run fails, visibly.
    assert tasks["package"].trigger_rule == "none_failed"
    # Refusals skip; they do not fail the run.
    assert tasks["evaluate"].on_reject == "skip"
    assert tasks["online_gate"].on_reject == "skip"
    assert tasks["commit"].on_reject == "skip"
    assert tasks["evaluate"].commit is False
    # The shadow Bento holds the versions the evaluation judged, from its decision.
    assert (
        "xcom_pull(task_ids='promote.evaluate')['evaluated_against_version']"
        in tasks["package_shadow"].version
    )
    assert "xcom_pull(task_ids='promote.evaluate')['version']" in tasks["package_shadow"].shadow_version
    assert tasks["approve"].evaluation_task_id == tasks["commit"].evaluation_task_id == "promote.online_gate"


def test_an_online_gate_cannot_be_committed_offline():
    from airflow_mlops_provider.operators.registry import ModelPromotionOperator, gated_promotion

    with pytest.raises(GateConfigError, match="only live traffic can judge"):
        ModelPromotionOperator(
            task_id="promote",
            candidate="run",
            registered_model_name="churn",
            eval_data_uri="/data/eval.csv",
            target_column="churned",
            gates=ONLINE,
        )
    with pytest.raises(GateConfigError, match="build the flow with shadow_promotion"):
        gated_promotion(
            group_id="g",
            candidate="run",
            registered_model_name="churn",
            eval_data_uri="/data/eval.csv",
            target_column="churned",
            gates=ONLINE,
        )
