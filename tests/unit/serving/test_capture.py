"""The capture writer and request ids, without a server: settings, layout, bounds, failures."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops_provider.serving.capture import (
    ENV,
    CaptureConfig,
    CaptureConfigError,
    CaptureWriter,
    sampled,
)
from airflow_mlops_provider.serving.request_id import (
    REQUEST_ID,
    RequestIdMiddleware,
    RequestRow,
    accepted_request_id,
    request_id_of,
)
from airflow_mlops_provider.serving.schema import row_model, to_frame

COLUMNS = [
    {"name": "tenure", "type": "long", "required": True},
    {"name": "email", "type": "string", "required": True},
    {"name": "phone", "type": "string", "required": True},
]
LABELS = {
    "mlflow_model_name": "churn/eu",
    "mlflow_model_version": "3",
    "mlflow_run_id": "r1",
    "data_fingerprint": "sha256:ff",
}


def writer(tmp_path: Path, **settings: Any) -> CaptureWriter:
    config = CaptureConfig(uri=str(tmp_path / "capture"), flush_interval_s=600, **settings)
    return CaptureWriter(config, LABELS, COLUMNS, lambda rows: to_frame(rows, COLUMNS))


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"tenure": start + i, "email": f"u{start + i}@x", "phone": str(start + i)} for i in range(n)]


def read(root: Path) -> Any:
    import pyarrow.dataset as ds

    return ds.dataset(str(root), format="parquet", partitioning="hive").to_table().to_pandas()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param({"uri": "/x", "sample_rate": 1.5}, "sample_rate=1.5", id="rate"),
        pytest.param({"uri": "/x", "flush_rows": 0}, "flush_rows=0", id="flush-rows"),
        pytest.param({"uri": "/x", "colour": "red"}, "unknown capture setting(s) ['colour']", id="unknown"),
        pytest.param({"enabled": True}, "without a uri", id="no-uri"),
        pytest.param({"uri": "/x", "drop_columns": ["a"], "hash_columns": ["a"]}, "both dropped", id="both"),
        pytest.param({"uri": "/x", "max_buffer_rows": "lots"}, "'lots' is not a valid", id="not-a-number"),
    ],
)
def test_a_bad_capture_setting_is_refused_naming_it(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(CaptureConfigError, match=re.escape(message)):
        CaptureConfig.from_mapping(settings)


def test_environment_overrides_each_packaged_setting() -> None:
    packaged = CaptureConfig.from_mapping({"uri": "/packaged", "sample_rate": 0.5, "hash_columns": ["email"]})
    served = packaged.with_env(
        {ENV["uri"]: "s3://bucket/capture", ENV["hash_columns"]: "email, phone", ENV["sample_rate"]: ""}
    )
    assert (served.uri, served.hash_columns, served.sample_rate) == (
        "s3://bucket/capture",
        ("email", "phone"),
        0.5,
    )
    assert packaged.with_env({ENV["enabled"]: "off"}).enabled is False
    with pytest.raises(CaptureConfigError, match="MLOPS_CAPTURE_ENABLED='maybe'"):
        packaged.with_env({ENV["enabled"]: "maybe"})


def test_a_capture_column_that_is_not_an_input_or_is_reserved_is_refused() -> None:
    config = CaptureConfig(uri="/x", drop_columns=("ssn",))
    with pytest.raises(CaptureConfigError, match=r"\['ssn'\], which are not input columns"):
        config.check_columns(["tenure"])
    with pytest.raises(CaptureConfigError, match=r"\['prediction', 'proba_x'\] collide"):
        CaptureConfig(uri="/x").check_columns(["prediction", "proba_x", "tenure"])


def test_sampling_is_decided_per_request_id_and_keeps_about_the_rate() -> None:
    ids = [f"req-{i}" for i in range(20_000)]
    kept = [i for i in ids if sampled(i, 0.25)]
    assert 0.23 < len(kept) / len(ids) < 0.27
    assert kept == [i for i in ids if sampled(i, 0.25)]
    assert all(sampled(i, 1.0) for i in ids[:100])
    assert not any(sampled(i, 0.0) for i in ids[:100])


def test_writer_writes_each_row_once_in_the_hive_layout_with_pii_dropped_and_hashed(tmp_path: Path) -> None:
    w = writer(tmp_path, drop_columns=("phone",), hash_columns=("email",))
    w.record(["a", "a"], rows(2), [0, 1])
    w.record(["b"], rows(1, start=2), [1])
    assert not (tmp_path / "capture").exists(), "nothing is written on the request path"
    w.close()
    files = sorted((tmp_path / "capture").rglob("*.parquet"))
    assert len(files) == 1
    assert files[0].parent.parent.parent.name == "model=churn%2Feu"
    assert files[0].parent.parent.name == "version=3"
    frame = read(tmp_path / "capture")
    assert frame["request_id"].tolist() == ["a", "a", "b"]
    assert frame["tenure"].tolist() == [0, 1, 2]
    assert frame["prediction"].tolist() == [0, 1, 1]
    assert "phone" not in frame.columns
    assert frame["email"].tolist() == [hashlib.sha256(f"u{i}@x".encode()).hexdigest() for i in range(3)]
    assert set(frame["model"]) == {"churn/eu"}
    assert set(frame["model_run_id"]) == {"r1"}
    assert str(frame["captured_at"].dt.tz) == "UTC"
    assert w.stats.written == 3
    assert w.stats.dropped == {}


def test_a_full_buffer_drops_and_counts_rows_and_keeps_what_it_holds(tmp_path: Path) -> None:
    w = writer(tmp_path, max_buffer_rows=3)
    w.record(["a", "a"], rows(2), [0, 0])
    w.record(["b", "b"], rows(2, 2), [1, 1])  # 4 > 3: dropped whole
    w.record(["c"], rows(1, 4), [1])
    w.close()
    assert w.stats.dropped == {"buffer_full": 2}
    assert read(tmp_path / "capture")["request_id"].tolist() == ["a", "a", "c"]


def test_a_failing_store_drops_and_counts_without_raising(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    config = CaptureConfig(uri=str(blocker / "capture"), flush_interval_s=600)
    w = CaptureWriter(config, LABELS, COLUMNS, lambda r: to_frame(r, COLUMNS))
    for i in range(3):
        w.record([f"r{i}"], rows(1, i), [0])
        w.flush()
    w.close()
    assert w.stats.dropped == {"store_error": 3}
    assert w.stats.written == 0
    assert sum("capture dropped" in r.getMessage() for r in caplog.records) == 1


def test_rows_after_close_are_counted_as_dropped_not_lost_silently(tmp_path: Path) -> None:
    w = writer(tmp_path)
    w.close()
    w.record(["late"], rows(1), [0])
    assert w.stats.dropped == {"shutting_down": 1}


def test_probabilities_are_written_per_class_and_the_score_is_the_last_class(tmp_path: Path) -> None:
    import numpy as np

    config = CaptureConfig(uri=str(tmp_path / "capture"), flush_interval_s=600)
    w = CaptureWriter(
        config,
        LABELS,
        COLUMNS,
        lambda r: to_frame(r, COLUMNS),
        lambda frame: (["no", "yes"], np.column_stack([1 - frame["tenure"] / 10, frame["tenure"] / 10])),
    )
    w.record(["a", "b"], rows(2, 3), ["no", "no"])
    w.close()
    frame = read(tmp_path / "capture")
    assert frame["proba_yes"].tolist() == pytest.approx([0.3, 0.4])
    assert frame["score"].tolist() == pytest.approx([0.3, 0.4])


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        pytest.param("abc-123", True, id="sane"),
        pytest.param("x" * 129, False, id="too-long"),
        pytest.param("a b", False, id="space"),
        pytest.param("", False, id="empty"),
        pytest.param(None, False, id="absent"),
    ],
)
def test_request_id_is_kept_only_when_sane(sent: str | None, kept: bool) -> None:
    got = accepted_request_id(sent)
    assert (got == sent) is kept
    assert 1 <= len(got) <= 128


def test_middleware_returns_the_id_and_rows_built_in_the_request_carry_it() -> None:
    Row = row_model(COLUMNS[:1], base=RequestRow)
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        row = Row(tenure=1)
        seen.append(request_id_of(row))  # type: ignore[arg-type]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-request-id", b"app")]})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": [(b"x-request-id", b"from-client")]}
    asyncio.run(RequestIdMiddleware(app)(scope, None, send))
    assert seen == ["from-client"]
    assert sent[0]["headers"] == [(b"x-request-id", b"from-client")]
    assert REQUEST_ID.get() == ""
