from __future__ import annotations

import json
from datetime import datetime, timezone

import pyarrow as pa
import pytest

from airflow_mlops_provider.exceptions import MonitoringError
from airflow_mlops_provider.monitoring.captures import (
    captured_request_ids,
    input_columns,
    read_captures,
    reserved_schema,
)
from tests.unit.monitoring.conftest import MODEL, WINDOW, Store


def _ids(table: pa.Table) -> set[str]:
    return set(table.column("request_id").to_pylist())


def test_read_captures_returns_exactly_the_window(store: Store) -> None:
    start, end = WINDOW
    table = read_captures(store.uri, MODEL, start=start, end=end)

    expected = {r["request_id"] for r in store.rows if start <= r["captured_at"] < end}
    assert _ids(table) == expected
    assert table.num_rows == len(expected)
    # The inclusive start is in, the exclusive end out.
    assert "v1-2024-05-02-0" in expected
    assert "v1-2024-05-03-0" in expected
    assert "v1-2024-05-04-0" not in expected
    assert table.schema.field("captured_at").type == pa.timestamp("us", "UTC")


def test_read_captures_ignores_in_progress_files_and_other_models(store: Store) -> None:
    ids = _ids(read_captures(store.uri, MODEL))

    assert ids == {r["request_id"] for r in store.rows}
    assert not {i for i in ids if i.startswith(("ghost-", "other-"))}
    assert _ids(read_captures(store.uri, "other")) == {f"other-{i}" for i in range(5)}


def test_read_captures_keeps_the_union_of_columns_across_versions(store: Store) -> None:
    table = read_captures(store.uri, MODEL, start=WINDOW[0], end=WINDOW[1])

    assert table.schema.field("captured_at").type == pa.timestamp("us", "UTC")
    assert {"tenure", "contract", "region", "prediction", "score", "proba_1"} <= set(table.column_names)
    assert "version" not in table.column_names
    assert "date" not in table.column_names
    regions = dict(zip(table["request_id"].to_pylist(), table["region"].to_pylist(), strict=True))
    assert all(regions[i] is None for i in regions if i.startswith("v1-"))
    assert all(regions[i] in ("eu", "us") for i in regions if i.startswith("v2-"))


def test_read_captures_filters_on_version_and_projects_columns(store: Store) -> None:
    table = read_captures(
        store.uri, MODEL, version=2, start=WINDOW[0], end=WINDOW[1], columns=["request_id", "score"]
    )

    assert table.column_names == ["request_id", "score"]
    assert _ids(table) == {
        r["request_id"]
        for r in store.rows
        if r["model_version"] == "2" and WINDOW[0] <= r["captured_at"] < WINDOW[1]
    }


def test_read_captures_never_opens_date_partitions_outside_the_window(store: Store) -> None:
    folder = store.partition(MODEL, "2", "2024-06-30")
    (folder / "part-corrupt.parquet").write_bytes(b"this is not parquet")

    table = read_captures(store.uri, MODEL, start=WINDOW[0], end=WINDOW[1], columns=["request_id"])

    assert table.num_rows == sum(WINDOW[0] <= r["captured_at"] < WINDOW[1] for r in store.rows)
    with pytest.raises(Exception, match=r"(?i)parquet"):
        read_captures(store.uri, MODEL, columns=["request_id"])  # without a window, it is read


def test_read_captures_of_an_empty_window_is_an_empty_table_with_the_schema(store: Store) -> None:
    table = read_captures(
        store.uri,
        MODEL,
        start=datetime(2023, 1, 1, tzinfo=timezone.utc),
        end=datetime(2023, 1, 2, tzinfo=timezone.utc),
    )

    assert table.num_rows == 0
    assert {"request_id", "captured_at", "tenure", "score"} <= set(table.column_names)


def test_read_captures_of_a_model_never_captured_is_empty(store: Store) -> None:
    table = read_captures(store.uri, "no such model")
    assert table.num_rows == 0
    assert table.schema == reserved_schema()
    assert read_captures(store.uri, "no such model", columns=["request_id"]).column_names == ["request_id"]
    assert read_captures(str(store.root / "missing-root"), MODEL).num_rows == 0


def test_input_columns_come_from_the_schema_note_or_are_the_unreserved_ones() -> None:
    table = pa.table(
        {"request_id": ["a"], "tenure": [3], "latency_ms": [1.5], "score": [0.2], "proba_1": [0.2]}
    )
    note = json.dumps({"input_columns": ["tenure", "email"], "dropped_columns": ["email"]}).encode()

    assert input_columns(table.replace_schema_metadata({b"mlops.capture": note})) == ["tenure"]
    assert input_columns(table) == ["tenure", "latency_ms"]


def test_read_captures_keeps_the_servers_schema_note(store: Store) -> None:
    newer = read_captures(store.uri, MODEL, version="2", start=WINDOW[0], end=WINDOW[1])
    assert json.loads(newer.schema.metadata[b"mlops.capture"])["dropped_columns"] == ["email"]
    assert input_columns(newer) == ["tenure", "contract", "region"]


def test_captured_request_ids_are_every_version_and_date(store: Store) -> None:
    assert set(captured_request_ids(store.uri, MODEL).to_pylist()) == {r["request_id"] for r in store.rows}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"start": datetime(2024, 5, 2)}, "start: .* has no timezone", id="naive-start"),
        pytest.param({"end": "yesterday"}, "end: 'yesterday' is not an ISO 8601", id="unparseable-end"),
        pytest.param({"start": WINDOW[1], "end": WINDOW[0]}, "empty window", id="start-after-end"),
        pytest.param(
            {"columns": ["request_id", "tenur"]}, r"missing column\(s\) \['tenur'\]", id="unknown-column"
        ),
    ],
)
def test_read_captures_refuses_bad_arguments(store: Store, kwargs: dict, message: str) -> None:
    with pytest.raises(MonitoringError, match=message):
        read_captures(store.uri, MODEL, **kwargs)


def test_read_captures_accepts_iso_text_for_the_window(store: Store) -> None:
    text = read_captures(store.uri, MODEL, start="2024-05-02T00:00:00Z", end="2024-05-04T02:00:00+02:00")
    assert _ids(text) == _ids(read_captures(store.uri, MODEL, start=WINDOW[0], end=WINDOW[1]))
