"""Promotion time with 1,000 existing model versions vs with 1, measured in the same run.

    .venv/bin/python benchmarks/registry.py                  # 1,000 versions, 5 promotions each
    .venv/bin/python benchmarks/registry.py --versions 1000 --repeats 7

Starts its own MLflow server (SQLite store) on a free loopback port, logs one tiny scikit-learn model
as the champion and one candidate model per measurement, and builds two registered models: "small"
with 1 version and "large" with ``--versions`` versions (all pointing at the champion's artifact, so
creating them is cheap). Each measurement runs ``ModelPromotionOperator.execute`` end to end
(register, READY, challenger alias, evidence, evaluate candidate and champion, gates, lease, alias
commit, audit record), alternating small and large so that machine load hits both alike; afterwards
the added version is deleted and the champion reset, so the version counts stay put. Prints the
medians and the ratio large/small; the target is <= 2x. The lease uses short timings (its settle wait
is a constant in both cases); the breakdown is in ``docs/promotion.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

RESULTS = Path(__file__).parent / "results"
WORK = Path(tempfile.mkdtemp(prefix="mlops-bench-registry-"))
# Airflow reads its configuration on first import: give it a throwaway home first.
os.environ.setdefault("AIRFLOW_HOME", str(WORK / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


class _TI:
    dag_id, run_id, task_id, try_number = "bench", "manual__bench", "promote", 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value") -> Any:
        return None


def _context() -> dict[str, Any]:
    ti = _TI()
    return {"ti": ti, "task_instance": ti, "dag_run": SimpleNamespace(dag_id="bench", run_id="manual__bench")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from airflow_mlops_provider.processes import free_port
    from mlops_demo.stack import LocalStack, StackConfig

    config = StackConfig(
        home=WORK / "stack", dags_folder=WORK, mlflow_port=free_port(), airflow_port=free_port()
    )
    print(f"starting MLflow on {config.mlflow_url} ...", flush=True)
    server = LocalStack(config).start_mlflow(workers=2, timeout=180)
    try:
        run(config.mlflow_url, args.versions, args.repeats)
    finally:
        server.stop()


def run(url: str, n_versions: int, repeats: int) -> None:
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    from airflow_mlops_provider import lineage
    from airflow_mlops_provider import promotion as p
    from airflow_mlops_provider.operators.registry import ModelPromotionOperator

    os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"] = json.dumps(
        {"conn_type": "mlflow", "host": "127.0.0.1", "port": int(url.rsplit(":", 1)[1]), "schema": "http"}
    )
    x, y = make_classification(n_samples=600, n_features=5, random_state=1)
    columns = [f"f{i}" for i in range(5)]
    frame = pd.DataFrame(x, columns=columns).assign(label=y)
    eval_csv = WORK / "eval.csv"
    frame.iloc[400:].to_csv(eval_csv, index=False)
    (WORK / "report.json").write_text("{}")
    (WORK / "profile.bin").write_bytes(b"profile")
    evidence = {
        lineage.TAG_VALIDATION_REPORT_URI: str(WORK / "report.json"),
        lineage.TAG_TRAINING_PROFILE_URI: str(WORK / "profile.bin"),
        lineage.TAG_VALIDATION_STATUS: "passed",
    }
    mlflow.set_tracking_uri(url)
    experiment = mlflow.set_experiment("registry-benchmark")

    def log_model(seed: int) -> dict[str, str]:
        rng = np.random.default_rng(seed)
        train = frame.iloc[:400].sample(frac=0.9, random_state=seed)
        model = LogisticRegression(C=float(rng.uniform(0.5, 2)), max_iter=300).fit(
            train[columns], train["label"]
        )
        with mlflow.start_run(experiment_id=experiment.experiment_id, tags=evidence) as r:
            info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        return {"run_id": r.info.run_id, "model_uri": info.model_uri}

    t = time.perf_counter()
    champion = log_model(0)
    # Two per repeat, and one more per model for the call profile.
    candidates = [log_model(i + 1) for i in range(2 * repeats + 2)]
    print(f"logged {3 + 2 * repeats} tiny models in {time.perf_counter() - t:.1f}s", flush=True)

    client = MlflowClient(url, registry_uri=url)
    model_id = champion["model_uri"].removeprefix("models:/")

    def create(name: str) -> None:
        client.create_model_version(
            name, champion["model_uri"], run_id=champion["run_id"], model_id=model_id, await_creation_for=0
        )

    small, large = "bench-small", "bench-large"
    for name in (small, large):
        p.ensure_registered_model(client, name)
    create(small)
    t = time.perf_counter()
    create(large)  # version 1 first, so that it is the champion in both models
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: create(large), range(n_versions - 1)))
    print(f"created {n_versions} versions of {large!r} in {time.perf_counter() - t:.1f}s", flush=True)
    for name in (small, large):
        client.set_registered_model_alias(name, p.CHAMPION, "1")

    gates = {
        "thresholds": ["roc_auc >= 0.5"],
        "no_regression": [{"metric": "roc_auc", "tolerance": 1.0}],
        "evidence": True,
    }
    lease = p.LeaseSettings(ttl_s=30, max_write_s=0.5, settle_s=0.6, poll_s=0.2)
    timings: dict[str, list[float]] = {small: [], large: []}
    for i in range(repeats):
        for j, name in enumerate((small, large)):
            candidate = candidates[2 * i + j]
            op = ModelPromotionOperator(
                task_id="promote",
                candidate=candidate,
                registered_model_name=name,
                eval_data_uri=str(eval_csv),
                target_column="label",
                gates=gates,
                lease=lease,
            )
            start = time.perf_counter()
            decision = op.execute(_context())  # type: ignore[arg-type]
            timings[name].append(time.perf_counter() - start)
            assert decision["decision"] == "promoted", decision
            # Put the registry back: champion v1, no extra version.
            client.set_registered_model_alias(name, p.CHAMPION, "1")
            client.delete_registered_model_alias(name, p.PREVIOUS_CHAMPION)
            client.delete_model_version(name, decision["version"])
            print(f"  {name}: promotion {i + 1} took {timings[name][-1]:.2f}s", flush=True)

    calls = profile_calls(
        ModelPromotionOperator, candidates[-2:], (small, large), gates, lease, eval_csv, client
    )
    count = {
        name: len(client.search_model_versions(f"name = '{name}'", max_results=5000)) for name in timings
    }
    medians = {name: statistics.median(values) for name, values in timings.items()}
    ratio = medians[large] / medians[small]
    result = {
        "versions": count,
        "repeats": repeats,
        "median_s": {name: round(v, 3) for name, v in medians.items()},
        "all_s": {name: [round(v, 3) for v in values] for name, values in timings.items()},
        "ratio_large_over_small": round(ratio, 3),
        "target": "<= 2.0",
        "mlflow_calls_ms": calls,
    }
    print(f"\nmedian promotion time with {count[small]} version(s):   {medians[small]:.3f}s")
    print(f"median promotion time with {count[large]} versions: {medians[large]:.3f}s")
    print(f"ratio: {ratio:.2f}x (target <= 2x) -> {'OK' if ratio <= 2 else 'OVER TARGET'}")
    print("\nMLflow client calls in one more promotion each (count, total ms; 1 version -> many):")
    for method, row in sorted(calls.items(), key=lambda kv: -kv[1][large][1]):
        print(
            f"  {method:32s} {row[small][0]:3d} {row[small][1]:8.1f} -> {row[large][0]:3d} {row[large][1]:8.1f}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "registry.json").write_text(json.dumps(result, indent=2))
    if ratio > 2:
        sys.exit(1)


def profile_calls(
    operator: Any,
    candidates: list[Any],
    names: tuple[str, str],
    gates: Any,
    lease: Any,
    eval_csv: Path,
    client: Any,
) -> dict[str, dict[str, tuple[int, float]]]:
    """Run one more promotion per model with every public ``MlflowClient`` method timed.

    Shows where the remaining difference comes from: MLflow's SQL store loads every version of a
    registered model on each write to it (tags, aliases), which no caller can avoid.
    """
    from mlflow import MlflowClient

    from airflow_mlops_provider import promotion as p

    table: dict[str, dict[str, tuple[int, float]]] = {}
    current = [""]
    originals = {
        name: getattr(MlflowClient, name)
        for name in dir(MlflowClient)
        if not name.startswith("_") and callable(getattr(MlflowClient, name))
    }

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if current[0]:
                    row = table.setdefault(name, {n: (0, 0.0) for n in names})
                    count, total = row[current[0]]
                    row[current[0]] = (count + 1, round(total + (time.perf_counter() - start) * 1000, 1))

        return wrapper

    for name, fn in originals.items():
        setattr(MlflowClient, name, timed(name, fn))
    try:
        for candidate, model in zip(candidates, names, strict=True):
            current[0] = model
            decision = operator(
                task_id="promote",
                candidate=candidate,
                registered_model_name=model,
                eval_data_uri=str(eval_csv),
                target_column="label",
                gates=gates,
                lease=lease,
            ).execute(_context())
            current[0] = ""
            client.set_registered_model_alias(model, p.CHAMPION, "1")
            client.delete_registered_model_alias(model, p.PREVIOUS_CHAMPION)
            client.delete_model_version(model, decision["version"])
    finally:
        for name, fn in originals.items():
            setattr(MlflowClient, name, fn)
    return table


if __name__ == "__main__":
    main()
