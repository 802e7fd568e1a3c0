"""``dags/continuous_training.py`` for real: ``airflow dags test`` against a real MLflow server.

Week 1 (no champion yet) is validated, trained, promoted on the absolute gates and packaged; the
same data again is not retrained, and creates no second model version.
"""

from __future__ import annotations

import uuid

import pytest

from airflow_mlops_provider.lineage import TAG_BENTO_TAG, TAG_DATA_FINGERPRINT
from mlops_demo.churn import write_week
from tests.conftest import REPO
from tests.integration.data.conftest import asset_events, run_dag, task_states, try_number

pytestmark = pytest.mark.integration
DAGS = REPO / "dags"


def test_first_week_becomes_a_packaged_champion_and_unchanged_data_is_not_retrained(
    airflow_db, mlflow_conn, tmp_path, monkeypatch
):
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    week1 = write_week(tmp_path / "week1.csv", "baseline", rows=3_000, seed=7, week=1)
    model = f"churn-{uuid.uuid4().hex[:6]}"
    conf = {"data_uri": str(week1), "model_name": model}

    log, run_id = run_dag("continuous_training", conf, DAGS)
    states = task_states("continuous_training", run_id)
    assert states["train"] == "success"
    assert states["promote"] == "success"
    assert states["gated.evaluate"] == "skipped"
    assert states["package_champion"] == "success"
    client = MlflowHook().get_client()
    champion = client.get_model_version_by_alias(model, "champion")
    assert champion.version == "1"
    run = client.get_run(champion.run_id)
    assert run.data.tags[TAG_DATA_FINGERPRINT].startswith("sha256:")
    assert client.get_model_version(model, "1").tags[TAG_BENTO_TAG]
    assert len(asset_events("churn_champion", run_id)) == 1

    log, run_id = run_dag("continuous_training", conf, DAGS)
    states = task_states("continuous_training", run_id)
    assert states["skip_retraining"] == "success"
    assert states["train"] == "skipped"
    assert "Not retraining: champion" in log
    assert [v.version for v in client.search_model_versions(f"name = '{model}'")] == ["1"]


def test_a_triggered_run_without_its_batch_fails_at_ingest_without_retrying(
    airflow_db, mlflow_conn, tmp_path
):
    missing = tmp_path / "nowhere" / "week.csv"
    log, run_id = run_dag(
        "continuous_training",
        {"data_uri": str(missing), "model_name": "churn-missing"},
        DAGS,
        expect_success=False,
    )
    states = task_states("continuous_training", run_id)
    assert states["ingest"] == "failed"
    assert states["validate"] == "upstream_failed"
    assert "no batch to ingest" in log
    assert try_number("continuous_training", run_id, "ingest") == 1  # failed for good, not retried
