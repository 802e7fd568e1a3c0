"""A capture store in the model server's layout, and labels with every kind of trouble, built per test."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

MODEL = "churn/model x"  # a slash and a space: the path quotes it
DATES = ("2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04")
WINDOW = (datetime(2024, 5, 2, tzinfo=timezone.utc), datetime(2024, 5, 4, tzinfo=timezone.utc))
MAX_DELAY = timedelta(days=2)
UTC = timezone.utc


@dataclass
class Store:
    """What was written, for tests to compute the expected results on their own."""

    root: Path
    #: Every capture row a reader should see (in-progress files excluded), as Python dicts.
    rows: list[dict[str, Any]]
    #: Every label row, in file order: request_id, label (None for incomplete), labeled_at, revenue_kept.
    labels: list[dict[str, Any]]

    @property
    def uri(self) -> str:
        return str(self.root)

    def partition(self, model: str, version: str, date: str) -> Path:
        path = self.root / f"model={quote(model, safe='')}" / f"version={version}" / f"date={date}"
        path.mkdir(parents=True, exist_ok=True)
        return path


def capture_table(rows: list[dict[str, Any]], with_region: bool) -> pa.Table:
    """Capture rows as the server writes them; ``with_region``: as version 2's server does, with an
    extra input column, nanosecond timestamps (pandas') and the schema note naming the inputs."""
    stamp = pa.timestamp("ns" if with_region else "us", "UTC")
    columns: dict[str, Any] = {
        "request_id": pa.array([r["request_id"] for r in rows], pa.string()),
        "captured_at": pa.array([r["captured_at"] for r in rows], stamp),
        "model_name": pa.array([r["model_name"] for r in rows], pa.string()),
        "model_version": pa.array([r["model_version"] for r in rows], pa.string()),
        "model_run_id": pa.array([f"run-{r['model_version']}" for r in rows], pa.string()),
        "data_fingerprint": pa.array(["fp-abc"] * len(rows), pa.string()),
        "tenure": pa.array([r["tenure"] for r in rows], pa.int64()),
        "contract": pa.array([r["contract"] for r in rows], pa.string()),
    }
    if with_region:
        columns["region"] = pa.array([r["region"] for r in rows], pa.string())
    columns["prediction"] = pa.array([r["prediction"] for r in rows], pa.int64())
    columns["score"] = pa.array([r["score"] for r in rows], pa.float64())
    columns["proba_0"] = pa.array(
        [None if r["score"] is None else 1 - r["score"] for r in rows], pa.float64()
    )
    columns["proba_1"] = pa.array([r["score"] for r in rows], pa.float64())
    table = pa.table(columns)
    if with_region:
        note = {"input_columns": ["tenure", "contract", "region", "email"], "dropped_columns": ["email"]}
        table = table.replace_schema_metadata({b"mlops.capture": json.dumps(note).encode()})
    return table


def _row(
    rng: random.Random, request_id: str, at: datetime, version: str, model: str = MODEL
) -> dict[str, Any]:
    tenure = rng.randint(0, 72)
    score = min(max(rng.gauss(0.7 - tenure / 100, 0.2), 0.01), 0.99)
    return {
        "request_id": request_id,
        "captured_at": at,
        "model_name": model,
        "model_version": version,
        "tenure": tenure,
        "contract": rng.choice(["month-to-month", "one-year", "two-year"]),
        "region": rng.choice(["eu", "us"]),
        "score": score,
        "prediction": int(score >= 0.5),
    }


def build_store(root: Path, seed: int = 7) -> Store:
    rng = random.Random(seed)
    store = Store(root, [], [])
    for version in ("1", "2"):
        for date in DATES:
            midnight = datetime.fromisoformat(date).replace(tzinfo=UTC)
            rows = [
                _row(
                    rng,
                    f"v{version}-{date}-{i}",
                    midnight + timedelta(microseconds=rng.randrange(86_400 * 10**6)),
                    version,
                )
                for i in range(150)
            ]
            if version == "2" and date == "2024-05-02":
                for r in rows[:3]:
                    r["score"] = None  # a server that could not score
            if version == "1" and date == "2024-05-02":
                rows[0]["captured_at"] = WINDOW[0]  # the inclusive start, exactly
            if version == "1" and date == "2024-05-03":
                rows[0]["captured_at"] = WINDOW[1] - timedelta(microseconds=1)  # just before the end
            if version == "1" and date == "2024-05-04":
                rows[0]["captured_at"] = WINDOW[1]  # the exclusive end, exactly
            folder = store.partition(MODEL, version, date)
            for part, chunk in enumerate((rows[:70], rows[70:])):
                pq.write_table(
                    capture_table(chunk, with_region=version == "2"), folder / f"part-{part:04x}.parquet"
                )
            store.rows += rows
    # Files still being written: never read.
    ghosts = [_row(rng, f"ghost-{i}", WINDOW[0] + timedelta(hours=i), "1") for i in range(5)]
    folder = store.partition(MODEL, "1", "2024-05-02")
    pq.write_table(capture_table(ghosts, with_region=False), folder / ".part-x.parquet")
    pq.write_table(capture_table(ghosts, with_region=False), folder / "_part-y.parquet")
    # Another model's captures, in the window.
    others = [_row(rng, f"other-{i}", WINDOW[0] + timedelta(hours=i), "1", "other") for i in range(5)]
    pq.write_table(
        capture_table(others, with_region=False),
        store.partition("other", "1", "2024-05-02") / "part-0.parquet",
    )

    labels: list[dict[str, Any]] = []

    def label(request_id: str, value: int | None, at: datetime) -> None:
        labels.append(
            {
                "request_id": request_id,
                "label": value,
                "labeled_at": at,
                "revenue_kept": round(rng.uniform(0, 100), 2),
            }
        )

    for r in store.rows:
        if rng.random() > 0.6:
            continue
        outcome = int(rng.random() < (r["score"] or 0.5))
        delay = timedelta(seconds=rng.uniform(3600, 3 * 86_400))  # up to three days: some late
        if rng.random() < 0.03:
            label(r["request_id"], outcome, r["captured_at"] - timedelta(hours=1))  # before the prediction
            continue
        label(r["request_id"], outcome, r["captured_at"] + delay)
        if rng.random() < 0.05:  # a second label, earlier or later, with the other outcome
            shift = timedelta(hours=rng.choice([-0.5, 5]))
            label(r["request_id"], 1 - outcome, r["captured_at"] + delay + shift)
    for i in range(20):
        label(f"nobody-{i}", 1, WINDOW[0] + timedelta(hours=i))
    label("nobody-0", 0, WINDOW[0] + timedelta(hours=30))  # a duplicate of an unknown id
    label("ghost-1", 1, WINDOW[0] + timedelta(days=1))  # only in an in-progress file: unknown
    label("other-1", 1, WINDOW[0] + timedelta(days=1))  # another model's request: unknown
    for i in range(4):
        label(f"v1-2024-05-03-{i}", None, WINDOW[0] + timedelta(days=2))  # no outcome: incomplete
    rng.shuffle(labels)
    store.labels = labels
    return store


def labels_table(labels: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "request_id": pa.array([r["request_id"] for r in labels], pa.string()),
            "label": pa.array([r["label"] for r in labels], pa.int64()),
            "labeled_at": pa.array([r["labeled_at"] for r in labels], pa.timestamp("us", "UTC")),
            "revenue_kept": pa.array([r["revenue_kept"] for r in labels], pa.float64()),
        }
    )


def write_labels_csv(labels: list[dict[str, Any]], path: Path) -> Path:
    lines = ["request_id,label,labeled_at,revenue_kept"]
    for r in labels:
        outcome = "" if r["label"] is None else str(r["label"])
        at = r["labeled_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lines.append(f"{r['request_id']},{outcome},{at},{r['revenue_kept']}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return build_store(tmp_path / "captures")
