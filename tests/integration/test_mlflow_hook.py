"""MlflowHook against a real MLflow server on loopback, and against servers that misbehave."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airflow_mlops_provider.exceptions import MlflowConnectionError
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.processes import free_port

pytestmark = pytest.mark.integration


def test_connection_test_succeeds_against_a_real_server(mlflow_conn):
    ok, message = MlflowHook().test_connection()
    assert ok, message
    assert mlflow_conn.url in message


def test_client_writes_a_run_the_server_returns(mlflow_conn):
    hook = MlflowHook()
    experiment_id = hook.get_or_create_experiment("hook-integration")
    assert hook.get_or_create_experiment("hook-integration") == experiment_id
    client = hook.get_client()
    run = client.create_run(experiment_id, tags={"purpose": "hook-test"})
    client.log_metric(run.info.run_id, "auc", 0.91)
    client.set_terminated(run.info.run_id)
    fetched = hook.get_client().get_run(run.info.run_id)
    assert fetched.data.metrics["auc"] == pytest.approx(0.91)
    assert fetched.info.status == "FINISHED"


def test_embedded_store_keeps_artifacts_under_the_artifact_root(monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    hook = MlflowHook()
    experiment_id = hook.get_or_create_experiment("embedded")
    client = hook.get_client()
    run = client.create_run(experiment_id)
    note = tmp_path / "note.txt"
    note.write_text("lineage")
    client.log_artifact(run.info.run_id, str(note))
    stored = list((tmp_path / "mlflow" / "artifacts" / "embedded").rglob("note.txt"))
    assert len(stored) == 1
    assert stored[0].read_text() == "lineage"


def test_unreachable_server_fails_fast_with_the_uri(monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"
    hook = MlflowHook(tracking_uri=uri)
    start = time.monotonic()
    with pytest.raises(MlflowConnectionError, match=f"MLflow tracking server {uri} is unreachable"):
        hook.ensure_reachable()
    assert time.monotonic() - start < 10


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    sock.close()


def test_server_that_never_answers_fails_within_the_request_timeout(silent_server):
    hook = MlflowHook(tracking_uri=silent_server, request_timeout=2)
    start = time.monotonic()
    with pytest.raises(MlflowConnectionError, match=f"{silent_server} is unreachable \\(within 2s\\)"):
        hook.ensure_reachable()
    assert time.monotonic() - start < 8


def test_client_calls_against_a_dead_server_end_in_bounded_time(monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    uri = f"http://127.0.0.1:{free_port()}"
    client = MlflowHook(tracking_uri=uri).get_client()
    start = time.monotonic()
    with pytest.raises(Exception, match=f"127.0.0.1:{uri.rsplit(':', 1)[1]}"):
        client.search_experiments(max_results=1)
    # 3 retries with backoff factor 1 (1 + 2 + 4 s), not MLflow's default minutes.
    assert time.monotonic() - start < 30


class _NotMlflow(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_that_is_not_mlflow_is_named_as_such():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotMlflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        ok, message = MlflowHook(tracking_uri=uri).test_connection()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert not ok
    assert message == (
        f"{uri} does not answer like an MLflow tracking server: "
        "POST /api/2.0/mlflow/experiments/search gave HTTP 404"
    )


def test_unusable_local_store_is_named(tmp_path: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    uri = f"sqlite:///{blocker}/mlflow.db"
    ok, message = MlflowHook(tracking_uri=uri).test_connection()
    assert not ok
    assert uri in message
