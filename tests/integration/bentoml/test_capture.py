"""Inference capture of a real ``bentoml serve``: what is answered is written, once, off the request path."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_mlops_provider.serving.capture import ENV, HASH_SALT_ENV, partition_path
from airflow_mlops_provider.serving.schema import input_columns, to_records
from tests.integration.bentoml.conftest import Registered, serve_bento

pytestmark = pytest.mark.timeout(600)


def post(url: str, rows: list[dict[str, Any]], request_id: str | None = None) -> tuple[int, Any, str]:
    """POST rows to ``/predict``; return the status, the decoded body and the X-Request-ID header."""
    headers = {"Content-Type": "application/json"}
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    request = urllib.request.Request(
        f"{url}/predict", data=json.dumps({"rows": rows}).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), response.headers["X-Request-ID"]
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), err.headers["X-Request-ID"]


def metric(url: str, name: str, **labels: str) -> float:
    """Return the value of one sample of ``name`` in the server's ``/metrics`` (0 when absent)."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode()
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? ([0-9.e+-]+)", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


@pytest.fixture(scope="module")
def records(registered: Registered, client: Any) -> list[dict[str, Any]]:
    """Valid request rows of the registered model."""
    from mlflow.models import get_model_info

    info = get_model_info(f"models:/{registered.name}/{registered.version}")
    columns = input_columns({"signature": info.signature.to_dict()})
    return to_records(registered.eval_frame, columns)


def read_capture(root: Path) -> Any:
    import pyarrow.dataset as ds

    return ds.dataset(str(root), format="parquet", partitioning="hive").to_table().to_pandas()


def test_every_answered_prediction_is_captured_exactly_once_by_sigterm(
    packaged: dict[str, Any], registered: Registered, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    store = tmp_path / "capture"
    salt = "test-salt"
    env = {
        **os.environ,
        ENV["uri"]: str(store),
        # Nothing is written before the server is told to stop: SIGTERM must flush it all.
        ENV["flush_interval_s"]: "600",
        ENV["flush_rows"]: "100000",
        ENV["drop_columns"]: "monthly_charges",
        ENV["hash_columns"]: "payment_method",
        HASH_SALT_ENV: salt,
    }
    sizes = [1, 3, 1, 2, 5, 1, 1, 4, 2, 1] * 3  # 30 requests, 66 rows, batched across clients
    batches = [records[i % 30 : i % 30 + n] for i, n in enumerate(sizes)]
    sent_ids = [f"client-{i}" if i % 2 == 0 else None for i in range(len(batches))]
    with serve_bento(packaged["bento_tag"], env, tmp_path / "serve.log") as (url, proc):
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, [url] * len(batches), batches, sent_ids))
        bad_status, _, bad_id = post(url, [{"tenure": "not a number"}], "refused-request")
        assert not store.exists() or not any(store.rglob("*.parquet")), "written before SIGTERM"
        proc.stop()

    assert [status for status, _, _ in answers] == [200] * len(batches)
    assert bad_status == 400
    assert bad_id == "refused-request"
    returned_ids = [rid for _, _, rid in answers]
    for sent, returned in zip(sent_ids, returned_ids, strict=True):
        assert returned == sent if sent else re.fullmatch(r"[0-9a-f]{32}", returned)
    assert len(set(returned_ids)) == len(batches)

    captured = read_capture(store)
    expected_rows = sum(len(b) for b in batches)
    assert len(captured) == expected_rows
    assert "refused-request" not in set(captured["request_id"])
    # Each request's rows, in order, with its own predictions.
    for rid, rows, (_, predictions, _) in zip(returned_ids, batches, answers, strict=True):
        mine = captured[captured["request_id"] == rid]
        assert mine["tenure"].tolist() == [r["tenure"] for r in rows]
        assert mine["prediction"].tolist() == predictions
        assert mine["payment_method"].tolist() == [
            hmac.new(salt.encode(), r["payment_method"].encode(), hashlib.sha256).hexdigest() for r in rows
        ]
    assert "monthly_charges" not in captured.columns
    assert set(captured["model_name"]) == {registered.name}
    assert set(captured["model_version"]) == {registered.version}
    assert set(captured["model_run_id"]) == {registered.run_id}
    assert set(captured["data_fingerprint"]) == {packaged["labels"]["data_fingerprint"]}
    # The classifier's probabilities, and its score is the positive class's.
    assert ((captured["proba_0"] + captured["proba_1"] - 1).abs() < 1e-9).all()
    assert (captured["score"] == captured["proba_1"]).all()
    assert ((captured["score"] >= 0.5).astype(int) == captured["prediction"]).all()
    day = captured["captured_at"].dt.strftime("%Y-%m-%d").iloc[0]
    assert Path(partition_path(str(store), registered.name, registered.version, day)).is_dir()


def test_a_failing_store_or_a_full_buffer_still_answers_every_prediction_and_counts_the_drops(
    packaged: dict[str, Any], records: list[dict[str, Any]], tmp_path: Path
) -> None:
    env = {
        **os.environ,
        # /proc refuses new directories, root or not.
        ENV["uri"]: "/proc/mlops-capture",
        ENV["flush_interval_s"]: "0.2",
        ENV["max_buffer_rows"]: "4",
    }
    rows = 0
    with serve_bento(packaged["bento_tag"], env, tmp_path / "serve.log") as (url, _):
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: post(url, records[i : i + 3]), range(24)))
        rows = 3 * 24
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            store_error = metric(url, "mlops_capture_dropped_rows_total", reason="store_error")
            buffer_full = metric(url, "mlops_capture_dropped_rows_total", reason="buffer_full")
            if store_error + buffer_full >= rows:
                break
            time.sleep(0.5)
        written = metric(url, "mlops_capture_written_rows_total")
    assert [status for status, _, _ in answers] == [200] * 24
    assert store_error + buffer_full == rows
    assert store_error > 0
    assert written == 0
    log = (tmp_path / "serve.log").read_text()
    assert "writing to /proc/mlops-capture failed" in log
    assert log.count("capture dropped") <= 2, "the reason is logged once per interval, not per batch"


def test_capture_off_at_serve_time_writes_nothing_and_still_tags_requests(
    packaged: dict[str, Any], records: list[dict[str, Any]], tmp_path: Path
) -> None:
    store = tmp_path / "capture"
    env = {**os.environ, ENV["uri"]: str(store), ENV["enabled"]: "false", ENV["flush_interval_s"]: "0.1"}
    with serve_bento(packaged["bento_tag"], env, tmp_path / "serve.log") as (url, proc):
        status, _, rid = post(url, records[:2], "abc")
        info = httpx.post(f"{url}/model_info", json={}, timeout=30).json()
        proc.stop()
    assert (status, rid) == (200, "abc")
    assert info["capture"]["enabled"] is False
    assert not store.exists()
