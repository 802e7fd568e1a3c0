"""The local stack for real: `airflow standalone` and `mlflow server` on loopback, then stopped.

One stack for the module (starting Airflow takes most of a minute on this machine).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_mlops_provider.processes import free_port, start_process
from mlops_demo.stack import LocalStack, StackConfig, marked_processes
from tests.conftest import REPO, SESSION_DIR

pytestmark = pytest.mark.integration

PASSWORD = "Zq8-very-secret-pw"
TOKEN = "tok-7f3a9c-secret"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    config = StackConfig(
        home=SESSION_DIR / "local-stack",
        dags_folder=REPO / "dags",
        airflow_port=free_port(),
        mlflow_port=free_port(),
    )
    secured = {
        "conn_type": "mlflow",
        "host": "127.0.0.1",
        "port": config.mlflow_port,
        "login": "alice",
        "password": PASSWORD,
        "extra": {"token": TOKEN},
    }
    os.environ["AIRFLOW_CONN_MLFLOW_SECURED"] = json.dumps(secured)
    stack = LocalStack(config)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        del os.environ["AIRFLOW_CONN_MLFLOW_SECURED"]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def test_airflow_lists_the_provider_and_mlflow_serves_its_ui(stack):
    providers = stack.api("GET", "/providers?limit=200")["providers"]
    assert "airflow-mlops-provider" in {p["package_name"] for p in providers}
    assert b"MLflow" in _get(stack.config.mlflow_url + "/")
    assert stack.status()


def test_the_mlflow_server_runs_without_a_job_runner(stack):
    # MLflow starts huey consumers for its GenAI jobs unless told not to; the stack submits none.
    commands = []
    for pid in marked_processes(stack.config.home):
        try:
            commands.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    assert any("mlflow server" in c or "mlflow.server" in c or "uvicorn" in c for c in commands), commands
    assert not [c for c in commands if "huey" in c]


def test_a_task_reaches_mlflow_through_the_stack_connection(stack):
    run = stack.run_dag("mlflow_connection_check", timeout=300)
    assert run["state"] == "success"
    run_id = urllib.parse.quote(run["dag_run_id"], safe="")
    xcom = stack.api(
        "GET",
        f"/dags/mlflow_connection_check/dagRuns/{run_id}/taskInstances/check_mlflow_connection/xcomEntries/return_value",
    )
    assert stack.config.mlflow_url in str(xcom["value"])


def test_password_and_token_never_reach_the_task_log(stack):
    run = stack.run_dag("mlflow_connection_check", conf={"mlflow_conn_id": "mlflow_secured"}, timeout=300)
    assert run["state"] == "success"
    logs = list(
        (stack.config.airflow_home / "logs" / "dag_id=mlflow_connection_check").glob(
            f"run_id={run['dag_run_id']}/task_id=check_mlflow_connection/attempt=*.log"
        )
    )
    assert len(logs) == 1
    text = logs[0].read_text()
    # The task logged the environment it would hand a training pod, credentials included.
    assert "MLFLOW_TRACKING_PASSWORD" in text
    assert "MLFLOW_TRACKING_TOKEN" in text
    assert "***" in text
    assert PASSWORD not in text
    assert TOKEN not in text


def test_down_leaves_no_process_behind(stack):
    pids = [stack._read_pid("airflow"), stack._read_pid("mlflow")]
    assert all(pids)
    # A served Bento, as the demo leaves it: down stops it first, with SIGTERM, so it can flush.
    flushed = stack.config.home / "bento-flushed"
    bento = start_process(
        "bento",
        [
            sys.executable,
            "-c",
            "import pathlib, signal, sys, time\n"
            f"signal.signal(signal.SIGTERM, lambda *_: (pathlib.Path({str(flushed)!r}).touch(), sys.exit(0)))\n"
            "time.sleep(600)",
        ],
        stack.config.env(),
        stack.config.log_file("bento"),
    )
    stack.config.pid_file("bento").write_text(str(bento.pid))
    time.sleep(1)
    stopped = stack.down()
    assert stopped[0] == f"bento (pid {bento.pid})"
    assert flushed.exists(), "the Bento got SIGTERM, not SIGKILL"
    assert len(stopped) >= 3
    assert list(marked_processes(stack.config.home)) == []
    assert not stack.status()
    for url in (stack.config.airflow_url, stack.config.mlflow_url):
        with pytest.raises(OSError, match="Connection refused"):
            _get(url)
