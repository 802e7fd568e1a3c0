"""Profiling: ours vs raw whylogs on one worker, and the partitioned path on 2 workers vs 1.

    .venv/bin/python benchmarks/profiling.py                     # 1M rows single, 10M rows mapped, 3 repeats
    .venv/bin/python benchmarks/profiling.py --single-rows 200000 --mapped-rows 1000000 2000000 --repeats 1

1. **One worker**: ``profile_dataset`` against whylogs' own ``why.log(pandas=pd.read_csv(path))`` on
   the same CSV, each in a fresh interpreter (so peak RSS is that path's alone; imports happen
   before the clock starts). Target: ours >= 5x the throughput.
2. **Mapped**: the dataset as 8 CSV partitions, profiled the way ``partitioned_profile`` runs it:
   ``WhylogsPartitionPlanOperator`` → one ``WhylogsPartitionProfileOperator`` per partition on a pool
   of worker processes (warm, as an executor's workers are) → ``WhylogsProfileMergeOperator``. The
   clock covers plan, map and merge. 2 workers vs 1 on this 2-core machine: target >= 1.7x. The
   workers' peak RSS is compared across dataset sizes: flat (<= 1.5x) as rows grow.

Data is generated once per size and cached under ``benchmarks/results/``; runs are interleaved so
drifting machine load hits both sides alike; medians are printed. Writes ``results/profiling.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
PARTITIONS = 8

_PEAK_RSS = "int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) / 1024"
OURS = f"""
import json, sys, time
from airflow_mlops_provider.data.profiles import profile_dataset
import whylogs.core, pyarrow.csv, pyarrow.parquet, fsspec
t = time.perf_counter()
p = profile_dataset(sys.argv[1])
assert p.summary.rows == int(sys.argv[2])
elapsed = time.perf_counter() - t
print(json.dumps({{"seconds": elapsed, "peak_rss_mb": {_PEAK_RSS}}}))
"""

RAW_WHYLOGS = f"""
import json, sys, time
import pandas as pd
import whylogs as why
t = time.perf_counter()
results = why.log(pandas=pd.read_csv(sys.argv[1]))
view = results.view()
assert view.get_column("id").to_summary_dict()["counts/n"] == int(sys.argv[2])
elapsed = time.perf_counter() - t
print(json.dumps({{"seconds": elapsed, "peak_rss_mb": {_PEAK_RSS}}}))
"""


def _columns(rng, start: int, n: int) -> dict:
    """8 float, 6 integer, 4 categorical, 1 id and 1 boolean-ish column (20 in all)."""
    import numpy as np

    cats = {f"cat{i}": np.array([f"value-{j}" for j in range(5 * (i + 1))]) for i in range(4)}
    cols = {f"f{i}": rng.normal(i, 1 + i, n).round(4) for i in range(8)}
    cols.update({f"i{i}": rng.integers(0, 10 ** (i + 1), n) for i in range(6)})
    cols.update({name: values[rng.integers(0, len(values), n)] for name, values in cats.items()})
    cols["id"] = np.arange(start, start + n)
    cols["flag"] = rng.integers(0, 2, n)
    return cols


def _write_csv(path: Path, rows: int, start: int, seed: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    writer = None
    for offset in range(0, rows, 500_000):
        n = min(500_000, rows - offset)
        table = pa.table(_columns(rng, start + offset, n))
        if writer is None:
            writer = pacsv.CSVWriter(str(tmp), table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    tmp.rename(path)


def generate(rows: int) -> Path:
    """One CSV of ``rows`` rows (cached)."""
    path = RESULTS / f"bench_{rows}.csv"
    if not path.exists():
        RESULTS.mkdir(parents=True, exist_ok=True)
        _write_csv(path, rows, 0, 42)
    return path


def generate_partitioned(rows: int) -> Path:
    """A directory of :data:`PARTITIONS` CSV partitions holding ``rows`` rows in all (cached)."""
    root = RESULTS / f"bench_{rows}_p{PARTITIONS}"
    each = rows // PARTITIONS
    for i in range(PARTITIONS):
        path = root / f"part-{i:02d}.csv"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_csv(path, each if i < PARTITIONS - 1 else rows - each * i, each * i, 42 + i)
    return root


def measure(code: str, path: Path, rows: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), str(rows)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _warm() -> None:
    """Ready a worker process as an executor's worker is after its first task: imports done, and one
    small dataset profiled (numpy, pandas and pyarrow load parts of themselves on first use)."""
    import pandas as pd

    # The task's modules: Airflow's SDK, the hooks, storage.
    import airflow_mlops_provider.operators.profiling
    import airflow_mlops_provider.storage  # noqa: F401
    from airflow_mlops_provider.data.profiles import profile_dataset

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "warm.csv"
        pd.DataFrame({"a": range(100), "b": [f"x{i % 7}" for i in range(100)]}).to_csv(path, index=False)
        profile_dataset(str(path))


def _context(run_id: str) -> dict:
    from types import SimpleNamespace

    return {"dag": SimpleNamespace(dag_id="benchmark"), "run_id": run_id}


def _profile_partition(entry: dict[str, str]) -> dict[str, float]:
    from airflow_mlops_provider.operators.profiling import WhylogsPartitionProfileOperator

    t = time.perf_counter()
    result = WhylogsPartitionProfileOperator(task_id="profile_partition", partition=entry).execute(
        _context("benchmark")
    )
    peak = int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024
    return {
        "rows": result["rows"],
        "seconds": time.perf_counter() - t,
        "pid": os.getpid(),
        "peak_rss_mb": peak,
    }


def run_mapped(root: Path, rows: int, workers: int, staging: Path, attempt: str) -> dict[str, float]:
    """Plan, map over a warm pool of ``workers`` processes, merge; return wall time and worker peaks."""
    from airflow_mlops_provider.operators.profiling import (
        WhylogsPartitionPlanOperator,
        WhylogsProfileMergeOperator,
    )

    one_per_file = max(p.stat().st_size for p in root.iterdir())
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_warm) as pool:
        pool.map(time.sleep, [0.5] * workers)  # every worker up and warm before the clock starts
        t = time.perf_counter()
        entries = WhylogsPartitionPlanOperator(
            task_id="plan", dataset_uri=str(root), partition_size=one_per_file, staging_uri=str(staging)
        ).execute(_context(attempt))
        assert len(entries) == PARTITIONS, entries
        done = pool.map(_profile_partition, entries, chunksize=1)
        merged = WhylogsProfileMergeOperator(
            task_id="merge", partitions=entries, output_uri=str(staging / attempt / "merged")
        ).execute(_context(attempt))
        elapsed = time.perf_counter() - t
    assert merged["rows"] == rows == sum(d["rows"] for d in done)
    peaks: dict[int, float] = {}
    for d in done:
        peaks[d["pid"]] = max(peaks.get(d["pid"], 0.0), d["peak_rss_mb"])
    return {"seconds": elapsed, "worker_peak_rss_mb": max(peaks.values()), "workers_used": len(peaks)}


def single_worker(rows: int, repeats: int) -> dict:
    path = generate(rows)
    print(f"{rows:>11,} rows, one worker: {path.stat().st_size / 1e6:,.0f} MB CSV", flush=True)
    runs: dict[str, list] = {"ours": [], "raw whylogs": []}
    for _ in range(repeats):
        runs["ours"].append(measure(OURS, path, rows))
        runs["raw whylogs"].append(measure(RAW_WHYLOGS, path, rows))
    med = {name: _median(r) for name, r in runs.items()}
    for name, m in med.items():
        print(
            f"  {name:12} {rows / m['seconds']:>10,.0f} rows/s  {m['seconds']:7.1f} s  peak RSS {m['peak_rss_mb']:6,.0f} MB"
        )
    speedup = med["raw whylogs"]["seconds"] / med["ours"]["seconds"]
    memory = med["ours"]["peak_rss_mb"] / med["raw whylogs"]["peak_rss_mb"]
    print(
        f"  throughput ours / raw whylogs: {speedup:.2f}x (target >= 5x)   peak RSS: {memory:.2f}x",
        flush=True,
    )
    return {"medians": med, "speedup": speedup, "memory_ratio": memory}


def mapped(rows: int, repeats: int) -> dict:
    root = generate_partitioned(rows)
    size = sum(p.stat().st_size for p in root.iterdir())
    print(f"{rows:>11,} rows in {PARTITIONS} partitions ({size / 1e6:,.0f} MB), mapped:", flush=True)
    runs: dict[int, list] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as staging:
        for i in range(repeats):
            for workers in (1, 2):
                runs[workers].append(run_mapped(root, rows, workers, Path(staging), f"{rows}-{workers}-{i}"))
    med = {w: _median(r) for w, r in runs.items()}
    for workers, m in med.items():
        print(
            f"  {workers} worker(s) {rows / m['seconds']:>10,.0f} rows/s  {m['seconds']:7.1f} s  "
            f"peak RSS per worker {m['worker_peak_rss_mb']:6,.0f} MB"
        )
    speedup = med[1]["seconds"] / med[2]["seconds"]
    print(f"  2 workers / 1 worker: {speedup:.2f}x (target >= 1.7x)", flush=True)
    return {"medians": med, "speedup": speedup}


def _median(results: list[dict]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--single-rows", type=int, default=1_000_000)
    parser.add_argument("--mapped-rows", type=int, nargs="+", default=[5_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW_HOME", str(RESULTS / "airflow_home"))
    os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "True")

    summary = {"single": single_worker(args.single_rows, args.repeats), "mapped": {}}
    for rows in args.mapped_rows:
        summary["mapped"][rows] = mapped(rows, args.repeats)
    if len(summary["mapped"]) >= 2:
        small, large = min(summary["mapped"]), max(summary["mapped"])
        peak = {n: summary["mapped"][n]["medians"][2]["worker_peak_rss_mb"] for n in (small, large)}
        print(
            f"\npeak RSS per worker at {large:,} rows / at {small:,} rows: {peak[large] / peak[small]:.2f}x "
            f"(target <= 1.5x: flat as rows grow)"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "profiling.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
