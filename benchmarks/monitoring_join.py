"""Delayed-label monitoring at 1M predictions: our pyarrow path vs pandas merge + scikit-learn, same run.

    .venv/bin/python benchmarks/monitoring_join.py                   # 1M predictions, 1M labels, 3 rounds
    .venv/bin/python benchmarks/monitoring_join.py --rows 200000 --rounds 5

Generates once (cached under benchmarks/results/monitoring_join_data/) the captures of one model
version in the model server's layout: ``--rows`` predictions over 4 days, hive-partitioned by date,
``--rows-per-file`` rows per Parquet file (a server flush), 8 input columns plus the reserved ones and
two ``proba_`` columns; and as many label rows in 4 Parquet files: 97% of the predictions labelled, 2%
more as second labels (duplicates), 1% for request ids never captured. Every label comes after its
prediction, so both paths join the same rows.

Each path runs in a fresh interpreter, so that its peak RSS (``ru_maxrss``) is its own; imports
happen before the clock starts. The rounds interleave the paths, so drifting machine load hits both.

- ours: ``read_captures`` (the 4-day window, every column, as the operator reads it),
  ``captured_request_ids``, ``read_labels``, ``join_outcomes`` (every count) and ``live_metrics``
  with ``roc_auc`` and the default bootstrap (200 resamples, at most 20,000 rows each);
- baseline: ``pd.read_parquet`` of the same capture directory and label files, latest label per
  request id (``sort_values`` + ``drop_duplicates``), ``pd.merge`` and ``roc_auc_score``: no
  interval, no counts beyond the join.

Prints the median seconds and peak RSS of each path (and the RSS its imports alone take: ours pulls
in Airflow through the provider's exceptions) and the ratios; writes
``benchmarks/results/monitoring_join.json``. Targets: ours no slower than the baseline although it also
computes the interval and the counts; our peak RSS at most the baseline's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MODEL = "churn"
VERSION = "3"
DAYS = ("2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04")

OURS = """
import json, resource, sys, time
from datetime import datetime, timezone
from airflow_mlops_provider.monitoring.captures import captured_request_ids, read_captures
from airflow_mlops_provider.monitoring.outcomes import join_outcomes, read_labels
from airflow_mlops_provider.monitoring.performance import live_metrics
import pyarrow.dataset, pyarrow.compute, sklearn.metrics, numpy
imports_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
captures_uri, labels_uri = sys.argv[1], sys.argv[2]
start, end = datetime(2024, 5, 1, tzinfo=timezone.utc), datetime(2024, 5, 5, tzinfo=timezone.utc)
t0 = time.perf_counter()
captures = read_captures(captures_uri, "churn", version="3", start=start, end=end)
ids = captured_request_ids(captures_uri, "churn")
labels = read_labels(labels_uri)
t1 = time.perf_counter()
joined, counts = join_outcomes(captures, labels, all_request_ids=ids)
t2 = time.perf_counter()
report = live_metrics(joined, kind="classification", metrics=["roc_auc"])
t3 = time.perf_counter()
print(json.dumps({
    "seconds": t3 - t0, "read_s": t1 - t0, "join_s": t2 - t1, "metrics_s": t3 - t2,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "imports_rss_mb": imports_mb,
    "joined": counts["joined"], "roc_auc": report["metrics"]["roc_auc"], "counts": counts,
}))
"""

BASELINE = """
import json, resource, sys, time
import pandas as pd
from sklearn.metrics import roc_auc_score
import pyarrow.parquet
imports_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
captures_uri, labels_uri = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
captures = pd.read_parquet(f"{captures_uri}/model=churn/version=3")
labels = pd.read_parquet(labels_uri)
t1 = time.perf_counter()
labels = labels.sort_values("labeled_at").drop_duplicates("request_id", keep="last")
joined = captures.merge(labels, on="request_id", how="inner")
t2 = time.perf_counter()
auc = roc_auc_score(joined["label"], joined["score"])
t3 = time.perf_counter()
print(json.dumps({
    "seconds": t3 - t0, "read_s": t1 - t0, "join_s": t2 - t1, "metrics_s": t3 - t2,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "imports_rss_mb": imports_mb,
    "joined": len(joined), "roc_auc": auc,
}))
"""


def generate(rows: int, rows_per_file: int) -> tuple[Path, Path]:
    """Write the captures and the labels (once per size); return their roots."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = RESULTS / "monitoring_join_data" / f"{rows}-{rows_per_file}"
    captures, labels = root / "captures", root / "labels"
    if (root / "done").exists():
        return captures, labels
    rng = np.random.default_rng(42)
    stamp = pa.timestamp("us", "UTC")
    ids = np.array([f"{i:016x}{h:016x}" for i, h in enumerate(rng.integers(0, 2**62, rows))])
    midnights = np.array([np.datetime64(f"{d}T00:00:00", "us").astype("int64") for d in DAYS])
    day = np.sort(rng.integers(0, len(DAYS), rows))
    # In time order, as a server flushes them.
    at = np.sort(midnights[day] + rng.integers(0, 86_400 * 10**6, rows))
    tenure = rng.integers(0, 72, rows)
    score = 1 / (1 + np.exp(-(rng.normal(0, 1.5, rows) - (tenure - 36) / 20)))
    contracts = np.array(["month-to-month", "one-year", "two-year"])
    regions = np.array(["eu-west", "eu-north", "us-east", "us-west", "apac"])
    table = pa.table(
        {
            "request_id": ids,
            "captured_at": pa.array(at, stamp),
            "model_name": pa.array([MODEL] * rows),
            "model_version": pa.array([VERSION] * rows),
            "model_run_id": pa.array(["0123456789abcdef0123456789abcdef"] * rows),
            "data_fingerprint": pa.array(["sha256:feedface"] * rows),
            "tenure": tenure,
            "monthly_charges": rng.normal(70, 30, rows).round(2),
            "total_charges": rng.normal(2000, 900, rows).round(2),
            "support_calls": rng.poisson(1.5, rows),
            "contract": contracts[rng.integers(0, 3, rows)],
            "region": regions[rng.integers(0, 5, rows)],
            "paperless": rng.integers(0, 2, rows).astype(bool),
            "customer_hash": np.array([f"{h:064x}"[:64] for h in rng.integers(0, 2**62, rows)]),
            "prediction": (score >= 0.5).astype(np.int64),
            "score": score,
            "proba_0": 1 - score,
            "proba_1": score,
        }
    )
    for d, name in enumerate(DAYS):
        part = table.filter(pa.array(day == d))
        folder = captures / f"model={MODEL}" / f"version={VERSION}" / f"date={name}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, offset in enumerate(range(0, part.num_rows, rows_per_file)):
            pq.write_table(part.slice(offset, rows_per_file), folder / f"part-{d:02d}{i:06x}.parquet")

    labelled = rng.permutation(rows)[: int(rows * 0.97)]
    outcome = (rng.random(rows) < score).astype(np.int64)
    delay = rng.integers(3600 * 10**6, 3 * 86_400 * 10**6, rows)
    dup = rng.choice(labelled, int(rows * 0.02), replace=False)
    unknown = int(rows * 0.01)
    label_ids = np.concatenate([ids[labelled], ids[dup], np.array([f"unknown-{i}" for i in range(unknown)])])
    label_at = np.concatenate([at[labelled] + delay[labelled], at[dup] + delay[dup] + 10**9, at[:unknown]])
    label = np.concatenate([outcome[labelled], 1 - outcome[dup], np.ones(unknown, np.int64)])
    order = rng.permutation(len(label_ids))
    labels_table = pa.table(
        {
            "request_id": label_ids[order],
            "label": label[order],
            "labeled_at": pa.array(label_at[order], stamp),
        }
    )
    labels.mkdir(parents=True, exist_ok=True)
    quarter = -(-labels_table.num_rows // 4)
    for i in range(4):
        pq.write_table(labels_table.slice(i * quarter, quarter), labels / f"labels-{i}.parquet")
    (root / "done").write_text("")
    return captures, labels


def measure(code: str, captures: Path, labels: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, str(captures), str(labels)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rows-per-file", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    t = time.perf_counter()
    captures, labels = generate(args.rows, args.rows_per_file)
    files = len(list(captures.rglob("*.parquet")))
    print(
        f"{args.rows:,} predictions in {files} files, labels ready in {time.perf_counter() - t:.0f}s",
        flush=True,
    )
    runs: dict[str, list[dict]] = {"ours": [], "baseline": []}
    for _ in range(args.rounds):
        runs["ours"].append(measure(OURS, captures, labels))
        runs["baseline"].append(measure(BASELINE, captures, labels))
    keys = ("seconds", "read_s", "join_s", "metrics_s", "peak_rss_mb", "imports_rss_mb")
    med = {
        name: {k: statistics.median(r[k] for r in results) for k in keys} for name, results in runs.items()
    }
    ours, base = runs["ours"][-1], runs["baseline"][-1]
    if ours["joined"] != base["joined"] or abs(ours["roc_auc"]["value"] - base["roc_auc"]) > 1e-9:
        raise SystemExit(f"the paths disagree: ours {ours['joined']} rows {ours['roc_auc']}, baseline {base}")
    for name in ("ours", "baseline"):
        m = med[name]
        print(
            f"  {name:9} {m['seconds']:6.2f} s (read {m['read_s']:.2f}, join {m['join_s']:.2f}, "
            f"metrics {m['metrics_s']:.2f})  peak RSS {m['peak_rss_mb']:7,.0f} MB "
            f"({m['imports_rss_mb']:,.0f} MB of it after the imports)"
        )
    ratio_time = med["ours"]["seconds"] / med["baseline"]["seconds"]
    ratio_rss = med["ours"]["peak_rss_mb"] / med["baseline"]["peak_rss_mb"]
    auc = ours["roc_auc"]
    print(
        f"  time ours/baseline: {ratio_time:.2f}x   peak RSS ours/baseline: {ratio_rss:.2f}x\n"
        f"  both joined {ours['joined']:,} rows, roc_auc {auc['value']:.5f}; ours also gives the "
        f"{auc['ci_low']:.5f}..{auc['ci_high']:.5f} interval and the counts {ours['counts']}"
    )
    RESULTS.mkdir(exist_ok=True)
    summary = {
        "rows": args.rows,
        "rows_per_file": args.rows_per_file,
        "files": files,
        "rounds": args.rounds,
        "median": med,
        "ratio": {"seconds": ratio_time, "peak_rss_mb": ratio_rss},
        "runs": runs,
    }
    (RESULTS / "monitoring_join.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
