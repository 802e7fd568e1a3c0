"""A tiny churn classifier registered on the real MLflow server, packaged once per module, and its Bento
served over HTTP on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops_provider import lineage
from airflow_mlops_provider.processes import ManagedProcess, free_port, start_process, wait_http
from tests.conftest import SESSION_DIR

FINGERPRINT = "sha256:" + "ab" * 32


def make_context() -> dict[str, Any]:
    ti = SimpleNamespace(task_id="package", dag_id="bentoml_test", run_id="manual__test", try_number=1)
    return {"ti": ti, "task_instance": ti}


@dataclass
class Registered:
    """A registered model version and what it was trained on."""

    name: str
    version: str
    run_id: str
    source: str
    eval_csv: Path
    eval_frame: Any


@pytest.fixture(scope="module")
def _mlflow_default(mlflow_server: Any) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_server.conn_uri())
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
        yield


@pytest.fixture(scope="module")
def bentoml_home() -> Path:
    """The session's BentoML home: a temporary directory, set before BentoML was imported."""
    home = Path(os.environ["BENTOML_HOME"])
    assert home.is_relative_to(SESSION_DIR), home
    assert os.environ["BENTOML_DO_NOT_TRACK"] == "True"
    return home


@pytest.fixture(scope="module")
def client(mlflow_server: Any, _mlflow_default: None) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)


@pytest.fixture(scope="module")
def registered(client: Any, mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Registered:
    """Train a scikit-learn pipeline on churn data, log it with signature and input example, register it
    and make it the champion."""
    import mlflow
    from mlflow.models import infer_signature

    from mlops_demo.churn import FEATURES, fit_baseline_model, generate_week

    train = generate_week(rows=2_000, seed=1)
    pipeline = fit_baseline_model(train)

    name = f"churn-bento-{uuid.uuid4().hex[:6]}"
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_experiment(name)
    with mlflow.start_run() as run:
        mlflow.set_tag(lineage.TAG_DATA_FINGERPRINT, FINGERPRINT)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(train[FEATURES], pipeline.predict(train[FEATURES])),
            input_example=train[FEATURES].head(5),
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    client.set_registered_model_alias(name, "champion", version)
    mv = client.get_model_version(name, version)

    eval_frame = generate_week(rows=40, seed=2, week=2)
    eval_csv = tmp_path_factory.mktemp("eval") / "eval.csv"
    eval_frame.to_csv(eval_csv, index=False)
    return Registered(name, version, run.info.run_id, mv.source, eval_csv, eval_frame)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bentos")


@pytest.fixture(scope="module")
def packaged(registered: Registered, export_dir: Path, bentoml_home: Path) -> dict[str, Any]:
    """Package the champion once for the module (with its smoke test)."""
    from airflow_mlops_provider.operators.bentoml import BentoPackageOperator

    op = BentoPackageOperator(
        task_id="package",
        model_name=registered.name,
        eval_data_uri=str(registered.eval_csv),
        export_uri=str(export_dir),
        max_batch_size=16,
    )
    return op.execute(make_context())


@contextlib.contextmanager
def serve_bento(tag: str, env: Mapping[str, str], log_path: Path) -> Iterator[tuple[str, ManagedProcess]]:
    """Serve ``tag`` from the store with ``bentoml serve`` on a free loopback port; stop it after."""
    port = free_port()
    command = [sys.executable, "-m", "bentoml", "serve", tag, "--host", "127.0.0.1", "--port", str(port)]
    proc: ManagedProcess = start_process("bentoml", command, env, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/readyz", 180, proc=proc, log_path=log_path)
        yield url, proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def served(packaged: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Serve the packaged Bento from the store with ``bentoml serve`` on a free loopback port."""
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve_bento(packaged["bento_tag"], os.environ, log_path) as (url, _):
        yield url
