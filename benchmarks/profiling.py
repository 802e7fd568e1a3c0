"""Profiling throughput and peak memory: our chunked whylogs profiling vs pandas read_csv + describe().

    .venv/bin/python benchmarks/profiling.py                 # 1M and 10M rows, 3 repeats each
    .venv/bin/python benchmarks/profiling.py --rows 1000000 --repeats 5

Generates a CSV of about 20 mixed-type columns per size (once, cached under benchmarks/results/),
then measures each path in a fresh interpreter (so peak RSS is that path's alone) and prints the
medians and the ratios. Targets: our peak memory at 10M rows within 1.5x of ours at 1M; our
throughput not below the baseline's.
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

# Imports happen before the clock starts in both: they are a fixed cost, not throughput.
OURS = """
import json, sys, time
from airflow_mlops_provider.data.profiles import profile_dataset
import whylogs.core, pyarrow.csv, pyarrow.parquet, fsspec
t = time.perf_counter()
p = profile_dataset(sys.argv[1])
assert p.summary.rows == int(sys.argv[2])
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "peak_rss_mb": int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) / 1024}))
"""

BASELINE = """
import json, sys, time
import pandas as pd
t = time.perf_counter()
frame = pd.read_csv(sys.argv[1])
frame.describe()
assert len(frame) == int(sys.argv[2])
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "peak_rss_mb": int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) / 1024}))
"""


def generate(rows: int) -> Path:
    """Write a CSV with 8 float, 6 integer, 4 categorical, 1 id and 1 boolean-ish column (20 in all)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = RESULTS / f"bench_{rows}.csv"
    if path.exists():
        return path
    RESULTS.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    cats = {f"cat{i}": np.array([f"value-{j}" for j in range(5 * (i + 1))]) for i in range(4)}
    tmp = path.with_suffix(".tmp")
    writer = None
    for start in range(0, rows, 500_000):
        n = min(500_000, rows - start)
        cols = {f"f{i}": rng.normal(i, 1 + i, n).round(4) for i in range(8)}
        cols.update({f"i{i}": rng.integers(0, 10 ** (i + 1), n) for i in range(6)})
        cols.update({name: values[rng.integers(0, len(values), n)] for name, values in cats.items()})
        cols["id"] = np.arange(start, start + n)
        cols["flag"] = rng.integers(0, 2, n)
        table = pa.table(cols)
        if writer is None:
            writer = pacsv.CSVWriter(str(tmp), table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    tmp.rename(path)
    return path


def measure(code: str, path: Path, rows: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), str(rows)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    summary = {}
    for rows in args.rows:
        t = time.perf_counter()
        path = generate(rows)
        print(
            f"{rows:>11,} rows: {path.stat().st_size / 1e6:,.0f} MB CSV (ready in {time.perf_counter() - t:.0f}s)",
            flush=True,
        )
        runs = {"ours": [], "baseline": []}
        for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
            runs["ours"].append(measure(OURS, path, rows))
            runs["baseline"].append(measure(BASELINE, path, rows))
        med = {
            name: {
                "seconds": statistics.median(r["seconds"] for r in results),
                "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in results),
            }
            for name, results in runs.items()
        }
        for name in ("ours", "baseline"):
            m = med[name]
            print(
                f"  {name:9} {rows / m['seconds']:>12,.0f} rows/s  {m['seconds']:7.1f} s  peak RSS {m['peak_rss_mb']:8,.0f} MB"
            )
        ratio = med["baseline"]["seconds"] / med["ours"]["seconds"]
        print(
            f"  throughput ours/baseline: {ratio:.2f}x   peak RSS ours/baseline: "
            f"{med['ours']['peak_rss_mb'] / med['baseline']['peak_rss_mb']:.2f}x",
            flush=True,
        )
        summary[rows] = med
    if len(summary) >= 2:
        small, large = min(summary), max(summary)
        growth = summary[large]["ours"]["peak_rss_mb"] / summary[small]["ours"]["peak_rss_mb"]
        print(f"\nour peak RSS at {large:,} rows / at {small:,} rows: {growth:.2f}x (target <= 1.5x)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "profiling.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
