from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops_provider.exceptions import MonitoringError
from airflow_mlops_provider.monitoring.captures import captured_request_ids, read_captures
from airflow_mlops_provider.monitoring.outcomes import empty_labels, join_outcomes, read_labels
from tests.unit.monitoring.conftest import MAX_DELAY, MODEL, WINDOW, Store, labels_table, write_labels_csv


def expected_join(store: Store, *, know_all_ids: bool = True) -> tuple[dict[str, Any], dict[str, dict]]:
    """The counts and the joined labels, computed with plain Python from what the fixture wrote."""
    start, end = WINDOW
    captured = {r["request_id"]: r for r in store.rows}
    window = {i: r for i, r in captured.items() if start <= r["captured_at"] < end}
    complete = [lab for lab in store.labels if lab["label"] is not None]
    latest: dict[str, dict] = {}
    for lab in complete:
        if lab["request_id"] not in latest or lab["labeled_at"] > latest[lab["request_id"]]["labeled_at"]:
            latest[lab["request_id"]] = lab
    known = captured if know_all_ids else window
    unmatched = [i for i in latest if i not in window]
    in_window = {i: lab for i, lab in latest.items() if i in window}
    before = {i for i, lab in in_window.items() if lab["labeled_at"] < window[i]["captured_at"]}
    joined = {i: lab for i, lab in in_window.items() if i not in before}
    late = [i for i, lab in joined.items() if lab["labeled_at"] - window[i]["captured_at"] > MAX_DELAY]
    counts = {
        "labels": len(store.labels),
        "incomplete": len(store.labels) - len(complete),
        "duplicates": len(complete) - len(latest),
        "unknown": sum(i not in known for i in unmatched),
        "outside_window": sum(i in known for i in unmatched),
        "before_prediction": len(before),
        "joined": len(joined),
        "late": len(late),
        "predictions": len(window),
        "duplicate_predictions": 0,
        "coverage": len(joined) / len(window),
    }
    return counts, joined


def _write_parquet_dir(store: Store, root: Path) -> Path:
    """Labels as a hive-partitioned directory, with an in-progress file that must be skipped."""
    table = labels_table(store.labels)
    half = table.num_rows // 2
    for day, part in (("2024-05-05", table.slice(0, half)), ("2024-05-06", table.slice(half))):
        folder = root / f"day={day}"
        folder.mkdir(parents=True)
        pq.write_table(part, folder / "part-0.parquet")
    pq.write_table(table.slice(0, 10), root / "day=2024-05-06" / ".part-1.parquet")
    return root


@pytest.mark.parametrize("layout", ["csv", "parquet", "parquet-dir", "csv-glob"])
def test_join_counts_every_label_exactly_once(store: Store, tmp_path: Path, layout: str) -> None:
    if layout == "csv":
        uri = str(write_labels_csv(store.labels, tmp_path / "labels.csv"))
    elif layout == "parquet":
        uri = str(tmp_path / "labels.parquet")
        pq.write_table(labels_table(store.labels), uri)
    elif layout == "parquet-dir":
        uri = str(_write_parquet_dir(store, tmp_path / "labels"))
    else:
        (tmp_path / "in").mkdir()
        half = len(store.labels) // 2
        write_labels_csv(store.labels[:half], tmp_path / "in" / "a.csv")
        write_labels_csv(store.labels[half:], tmp_path / "in" / "b.csv")
        uri = str(tmp_path / "in" / "*.csv")
    captures = read_captures(store.uri, MODEL, start=WINDOW[0], end=WINDOW[1])
    labels = read_labels(uri, value_column="revenue_kept")

    joined, counts = join_outcomes(
        captures, labels, all_request_ids=captured_request_ids(store.uri, MODEL), max_label_delay=MAX_DELAY
    )

    want, want_joined = expected_join(store)
    assert counts == want
    used = ("incomplete", "duplicates", "unknown", "outside_window", "before_prediction", "joined")
    assert sum(counts[k] for k in used) == counts["labels"]
    assert min(want[k] for k in (*used, "late")) > 0  # the fixture exercises every case
    # The latest label of a request id is the one joined, with its own outcome and value.
    got = {
        r["request_id"]: r for r in joined.select(["request_id", "label", "labeled_at", "value"]).to_pylist()
    }
    assert got == {
        i: {
            "request_id": i,
            "label": lab["label"],
            "labeled_at": lab["labeled_at"],
            "value": lab["revenue_kept"],
        }
        for i, lab in want_joined.items()
    }
    stamps = joined["captured_at"].to_pylist()
    assert stamps == sorted(stamps)


def test_join_without_all_ids_counts_every_unmatched_label_unknown(store: Store, tmp_path: Path) -> None:
    pq.write_table(labels_table(store.labels), tmp_path / "labels.parquet")
    captures = read_captures(store.uri, MODEL, start=WINDOW[0], end=WINDOW[1])

    _, counts = join_outcomes(
        captures, read_labels(str(tmp_path / "labels.parquet")), max_label_delay=MAX_DELAY
    )

    want, _ = expected_join(store, know_all_ids=False)
    assert counts == want
    assert counts["outside_window"] == 0


def test_join_takes_the_earliest_repeated_capture_and_the_latest_label() -> None:
    at = datetime(2024, 5, 2, tzinfo=timezone.utc)
    stamp = pa.timestamp("us", "UTC")
    hours = [2, 0, 0, 5, 3, 4]
    captures = pa.table(
        {
            "request_id": ["a", "a", "b", "c", "c", "c"],
            "captured_at": pa.array([at + timedelta(hours=h) for h in hours], stamp),
            "score": [0.9, 0.8, 0.1, 0.5, 0.3, 0.4],
        }
    )
    labels = pa.table(
        {
            "request_id": ["c", "a", "b", "b", "c", "c"],
            "label": [0, 1, 0, 1, 1, 0],
            "labeled_at": pa.array([at + timedelta(hours=h) for h in (6, 1, 1, 1, 9, 7)], stamp),
        }
    )

    joined, counts = join_outcomes(captures, labels)

    assert joined.select(["request_id", "score", "label"]).to_pylist() == [
        {"request_id": "a", "score": 0.8, "label": 1},
        {"request_id": "b", "score": 0.1, "label": 0},  # equal times: the row read first
        {"request_id": "c", "score": 0.3, "label": 1},
    ]
    assert counts["duplicates"] == 3
    assert counts["duplicate_predictions"] == 3
    assert counts["predictions"] == 6
    assert counts["joined"] == 3
    assert all(type(v) in (int, float) for v in counts.values())


def test_join_of_an_empty_window_has_no_coverage(store: Store, tmp_path: Path) -> None:
    pq.write_table(labels_table(store.labels), tmp_path / "labels.parquet")
    empty = read_captures(store.uri, "no such model")

    joined, counts = join_outcomes(empty, read_labels(str(tmp_path / "labels.parquet")))

    assert joined.num_rows == 0
    assert counts["predictions"] == 0
    assert counts["coverage"] is None
    assert counts["unknown"] == counts["labels"] - counts["incomplete"] - counts["duplicates"]


def test_join_with_no_labels_yet_has_zero_coverage(store: Store) -> None:
    captures = read_captures(store.uri, MODEL, start=WINDOW[0], end=WINDOW[1])

    joined, counts = join_outcomes(captures, empty_labels(value_column="revenue_kept"))

    assert joined.num_rows == 0
    assert "value" in joined.column_names
    assert counts["predictions"] == captures.num_rows
    assert counts["coverage"] == 0.0


def test_join_refuses_label_columns_that_clash_with_captures() -> None:
    at = pa.array([datetime(2024, 5, 2, tzinfo=timezone.utc)], pa.timestamp("us", "UTC"))
    captures = pa.table({"request_id": ["a"], "captured_at": at, "label": [3]})
    labels = pa.table({"request_id": ["a"], "label": [1], "labeled_at": at})
    with pytest.raises(MonitoringError, match=r"both have column\(s\) \['label'\]"):
        join_outcomes(captures, labels)


def test_read_labels_renames_columns_and_reads_ids_as_text(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text(
        "request_id,churned,resolved_at,revenue_kept\n"
        "007,1,2024-05-02T10:00:00Z,12.5\n"
        "008,0,2024-05-02T12:00:00+02:00,\n"
        "009,1,2024-05-02 11:00:00-00:00,3\n"
    )

    table = read_labels(
        str(path), label_column="churned", timestamp_column="resolved_at", value_column="revenue_kept"
    )

    assert table.column_names == ["request_id", "label", "labeled_at", "value"]
    assert table["request_id"].to_pylist() == ["007", "008", "009"]
    assert table.schema.field("labeled_at").type == pa.timestamp("us", "UTC")
    assert [t.hour for t in table["labeled_at"].to_pylist()] == [10, 10, 11]  # offsets converted
    assert table["value"].to_pylist() == [12.5, None, 3.0]


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_read_labels_reads_naive_timestamps_as_utc(tmp_path: Path, file_format: str) -> None:
    path = tmp_path / f"l.{file_format}"
    if file_format == "parquet":
        stamps = pa.array([datetime(2024, 5, 2, 9), datetime(2024, 5, 3)])
        pq.write_table(pa.table({"request_id": [1, 2], "label": [0, 1], "labeled_at": stamps}), path)
    else:
        path.write_text("request_id,label,labeled_at\n1,0,2024-05-02T09:00:00\n2,1,2024-05-03\n")

    table = read_labels(str(path))

    assert table["request_id"].to_pylist() == ["1", "2"]
    assert table["labeled_at"].to_pylist() == [
        datetime(2024, 5, 2, 9, tzinfo=timezone.utc),
        datetime(2024, 5, 3, tzinfo=timezone.utc),
    ]


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        pytest.param(
            "request_id,outcome,labeled_at\na,1,2024-05-02T10:00:00Z\n",
            {},
            r"missing column\(s\) \['label'\]; columns there: \['labeled_at', 'outcome', 'request_id'\]",
            id="missing-label",
        ),
        pytest.param(
            "request_id,label,labeled_at\na,1,2024-05-02T10:00:00Z\n",
            {"value_column": "revenue"},
            r"missing column\(s\) \['revenue'\]",
            id="missing-value",
        ),
        pytest.param(
            "request_id,label,labeled_at\na,1,2024-05-02T10:00:00Z\nb,0,last tuesday\n",
            {},
            r"column 'labeled_at' has values that are not ISO 8601 timestamps.*'last tuesday'",
            id="unparseable-timestamp",
        ),
        pytest.param(
            "request_id,label,labeled_at\na,1,2024-05-02T10:00:00Z\nb,0,2024-05-02T10:00:00\n",
            {},
            r"mixes values with and without a zone offset",
            id="mixed-zones",
        ),
        pytest.param(
            "request_id,label,labeled_at\na,1,1714644000\n",
            {},
            r"column 'labeled_at' has values that are not ISO 8601",
            id="epoch-number",
        ),
    ],
)
def test_read_labels_names_what_is_wrong(tmp_path: Path, content: str, kwargs: dict, message: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(MonitoringError, match=message):
        read_labels(str(path), **kwargs)


def test_read_labels_refuses_missing_paths_and_empty_globs(tmp_path: Path) -> None:
    with pytest.raises(MonitoringError, match="does not exist"):
        read_labels(str(tmp_path / "nope.csv"))
    with pytest.raises(MonitoringError, match="no files match"):
        read_labels(str(tmp_path / "*.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MonitoringError, match="no label files under"):
        read_labels(str(tmp_path / "empty"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(MonitoringError, match=r"'notes.txt' is not a label file"):
        read_labels(str(tmp_path / "notes.txt"))
