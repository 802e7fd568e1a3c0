"""``dags/partitioned_data_gates.py`` for real: ``airflow dags test`` maps one task per partition.

A batch of daily partitions is planned into file slices, each profiled by its own mapped task
instance, merged, validated and checked for drift against a champion's training profile: the merged
profile is the single pass's, and the gates read it through the usual XCom contract.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_mlops_provider.data.profiles import profile_dataset
from airflow_mlops_provider.lineage import data_fingerprint
from mlops_demo.churn import write_week
from tests.conftest import REPO
from tests.integration.data.conftest import run_dag, task_states

pytestmark = pytest.mark.integration
DAG_ID = "partitioned_data_gates"


def _mapped_instances(run_id: str, task_id: str) -> list[tuple[int, str, str]]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.map_index, TaskInstance.state, TaskInstance.rendered_map_index)
            .where(
                TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id
            )
            .order_by(TaskInstance.map_index)
        ).all()
    return [(index, str(state), str(name)) for index, state, name in rows]


def test_a_partitioned_batch_is_profiled_by_mapped_tasks_and_gated(
    airflow_db, champion, tmp_path, monkeypatch
):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    batch = tmp_path / "batch"
    for day in range(1, 4):
        write_week(batch / f"date=2026-11-0{day}" / "part-0.csv", "baseline", rows=2_000, seed=day, week=day)
    model, _ = champion
    conf = {
        "data_uri": str(batch),
        "partition_size": "100KB",
        "staging_uri": str(tmp_path / "staging"),
        "model_name": model,
    }

    _, run_id = run_dag(DAG_ID, conf, REPO / "dags")

    states = task_states(DAG_ID, run_id)
    assert {
        k: states[k] for k in ("profile_batch.plan", "profile_batch.merge", "validate", "check_drift")
    } == {
        "profile_batch.plan": "success",
        "profile_batch.merge": "success",
        "validate": "success",
        "check_drift": "success",
    }
    mapped = _mapped_instances(run_id, "profile_batch.profile_partition")
    assert len(mapped) > 3  # three ~200 KB files, each cut into byte ranges
    assert [m[0] for m in mapped] == list(range(len(mapped)))
    assert {m[1] for m in mapped} == {"success"}
    # Each mapped task is named in the UI by the slice it profiled.
    assert mapped[0][2].startswith("partition 'p00000' (date=2026-11-01/part-0.csv bytes 0..")

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == DAG_ID,
                XComModel.run_id == run_id,
                XComModel.task_id == "profile_batch.merge",
                XComModel.key == "return_value",
            )
        )
    merged = json.loads(value) if isinstance(value, str) else value
    assert merged["partitions"] == len(mapped)
    assert merged["data_fingerprint"] == data_fingerprint(batch)
    single = profile_dataset(str(batch)).summary
    summary = json.loads(Path(merged["summary_uri"]).read_text())
    assert summary["rows"] == single.rows == 6_000
    for column, stats in single.column_stats.items():
        got = summary["column_stats"][column]
        assert (got["count"], got["null_count"], got["types"]) == (stats.count, stats.null_count, stats.types)
