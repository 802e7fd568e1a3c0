"""Test harness: a throwaway Airflow home and database, a real MLflow server, connections by env.

The environment is set here, at import time, before anything imports Airflow: Airflow reads its
configuration once, on first import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_mlops_provider.processes import free_port
from mlops_demo.stack import LocalStack, StackConfig

REPO = Path(__file__).resolve().parents[1]
SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlops-tests-"))
#: The configuration of the test session's own (never started) stack: its env is the tests' env.
TEST_STACK = StackConfig(home=SESSION_DIR / "stack", dags_folder=REPO / "dags")

_env = TEST_STACK.env()
# Tests define the connections they need; the stack's own points at a port nobody listens on here.
_env.pop("AIRFLOW_CONN_MLFLOW_DEFAULT")
os.environ.update(_env)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the throwaway Airflow database once per session and return the Airflow home."""
    subprocess.run(
        [str(TEST_STACK.bin_dir / "airflow"), "db", "migrate"],
        env=os.environ.copy(),
        check=True,
        capture_output=True,
    )
    return TEST_STACK.airflow_home


class MlflowServer:
    """A real ``mlflow server`` on a free loopback port, with its own SQLite store."""

    def __init__(self, home: Path) -> None:
        self.config = StackConfig(
            home=home, dags_folder=REPO / "dags", mlflow_port=free_port(), airflow_port=free_port()
        )
        self.url = self.config.mlflow_url
        self._proc = LocalStack(self.config).start_mlflow(workers=1)

    def stop(self) -> None:
        self._proc.stop()

    def conn_uri(self, **extra: str) -> str:
        """Return an ``AIRFLOW_CONN_*`` value (JSON) for this server."""
        import json

        return json.dumps(
            {
                "conn_type": "mlflow",
                "host": "127.0.0.1",
                "port": self.config.mlflow_port,
                "schema": "http",
                **extra,
            }
        )


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[MlflowServer]:
    """Start a real MLflow server for the session and stop it afterwards."""
    server = MlflowServer(SESSION_DIR / "mlflow-server")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mlflow_conn(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    """Define ``mlflow_default`` as the session's MLflow server."""
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_server.conn_uri())
    return mlflow_server


def python_in_subprocess(
    code: str, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``args`` in a fresh interpreter with the test environment (plus ``env``)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
