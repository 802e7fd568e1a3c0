"""Fixtures for the data-gate integration tests: churn data, a champion that recorded its training
profile, and running a DAG with ``airflow dags test``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from airflow_mlops_provider.lineage import TAG_TRAINING_PROFILE_URI
from airflow_mlops_provider.operators.profiling import WhylogsProfileOperator
from mlops_demo.churn import write_week
from tests.conftest import TEST_STACK

CONTEXT = {"dag": None, "run_id": "r"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("gates")
    out = {
        name: str(write_week(root / f"{name}.csv", kind, rows=3_000, seed=9, week=i))
        for i, (name, kind) in enumerate(
            [
                ("reference", "baseline"),
                ("baseline", "baseline"),
                ("drift", "drift"),
                ("zero_fill", "zero_fill"),
            ]
        )
    }
    out["root"] = str(root)
    return out


@pytest.fixture
def champion(mlflow_conn, data, tmp_path) -> tuple[str, str]:
    """A registered model whose champion's run recorded the reference data's profile."""
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    reference = WhylogsProfileOperator(
        task_id="p", dataset_uri=data["reference"], output_uri=str(tmp_path / "ref")
    ).execute(CONTEXT)
    client = MlflowHook().get_client()
    name = f"churn-{uuid.uuid4().hex[:8]}"
    experiment = MlflowHook().get_or_create_experiment("data-gates")
    run = client.create_run(experiment, tags={TAG_TRAINING_PROFILE_URI: reference["profile_uri"]})
    client.set_terminated(run.info.run_id)
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    return name, reference["profile_uri"]


def run_dag(
    dag_id: str, conf: dict[str, str], dags_folder: Path, *, expect_success: bool = True
) -> tuple[str, str]:
    """Run a DAG with ``airflow dags test``; return its log and the run id."""
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder)}
    result = subprocess.run(
        [str(TEST_STACK.bin_dir / "airflow"), "dags", "test", dag_id, "--conf", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = result.stdout + result.stderr
    if expect_success:
        assert result.returncode == 0, log[-4000:]
    return log, re.findall(r"run_id=(manual__[^ ,]+)", log)[-1]


def task_states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.task_id, TaskInstance.state).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
            )
        ).all()
    return {task_id: str(state) for task_id, state in rows}


def try_number(dag_id: str, run_id: str, task_id: str) -> int:
    """How many times a task of a run was tried."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(
            select(TaskInstance.try_number).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id
            )
        )


def asset_events(asset_name: str, dag_run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == asset_name, AssetEvent.source_run_id == dag_run_id)
        ).all()
        return [dict(e.extra) for e in rows]
