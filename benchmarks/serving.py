"""Serving throughput and p50/p99 latency: the Bento vs ``mlflow models serve`` vs hand-written FastAPI.

    .venv/bin/python benchmarks/serving.py                          # 32 and 64 clients, 3 rounds
    .venv/bin/python benchmarks/serving.py --concurrency 32 64 --requests 2000 --rounds 3

Trains a small scikit-learn churn pipeline (numeric and categorical columns), registers it in a local
SQLite MLflow store and packages it with ``BentoPackageOperator`` (smoke test included). Then starts,
each on a free loopback port with one worker process:

- ``bento``: ``bentoml serve`` of the packaged Bento (validation and adaptive batching on);
- ``mlflow``: ``mlflow models serve --env-manager local`` of the same registered version;
- ``fastapi``: a hand-written FastAPI endpoint under uvicorn calling ``pyfunc.predict`` per request.

Every server gets the same single-row requests from ``C`` httpx async clients, a bounded number of
requests (``--requests``) or seconds (``--max-seconds``), whichever ends first, after a warm-up.
Rounds alternate the servers so that load from other processes on the machine hits all alike.
Status 0 in the output counts transport errors (a connection reset). Prints the median throughput
(of 200 answers) and latencies per server and concurrency, and the ratios against the
MLflow server and the hand-written endpoint; the targets are Bento throughput >= 2x MLflow's at an
equal or better p99, and >= 0.8x the hand-written endpoint's. Writes ``results/serving.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

RESULTS = Path(__file__).parent / "results"
WORK = Path(tempfile.mkdtemp(prefix="mlops-bench-serving-"))
# Airflow reads its configuration on first import, BentoML its home: give both throwaway ones first.
os.environ.setdefault("AIRFLOW_HOME", str(WORK / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["MLOPS_HOME"] = str(WORK / "mlops")
os.environ["BENTOML_HOME"] = str(WORK / "bentoml")
os.environ["BENTOML_DO_NOT_TRACK"] = "True"
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{WORK / 'mlflow.db'}"
os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"] = json.dumps(
    {"conn_type": "mlflow", "extra": {"tracking_uri": os.environ["MLFLOW_TRACKING_URI"]}}
)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

MODEL_NAME = "churn-serving-bench"

FASTAPI_APP = textwrap.dedent(
    """
    import os

    import mlflow.pyfunc
    import pandas as pd
    from fastapi import FastAPI

    model = mlflow.pyfunc.load_model(os.environ["BENCH_MODEL_URI"])
    app = FastAPI()


    @app.post("/predict")
    def predict(body: dict) -> list:
        return model.predict(pd.DataFrame(body["rows"])).tolist()
    """
)


def register_model() -> tuple[str, str, list[dict[str, Any]]]:
    """Train, log and register the model; return its name, version and sample request rows."""
    import mlflow
    from mlflow.models import infer_signature

    from airflow_mlops_provider.examples.churn import FEATURES, fit_baseline_model, generate_week

    train = generate_week(rows=5_000, seed=1)
    pipeline = fit_baseline_model(train)
    # Artifacts go under the throwaway directory, not into ./mlruns.
    mlflow.create_experiment("serving-bench", artifact_location=(WORK / "artifacts").as_uri())
    mlflow.set_experiment("serving-bench")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(train[FEATURES], pipeline.predict(train[FEATURES])),
            input_example=train[FEATURES].head(5),
            registered_model_name=MODEL_NAME,
            pip_requirements=["scikit-learn", "pandas"],
        )
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(MODEL_NAME, "champion", version)
    rows = json.loads(generate_week(rows=500, seed=2, week=2)[FEATURES].to_json(orient="records"))
    return MODEL_NAME, version, rows


def package(version: str) -> dict[str, Any]:
    from airflow_mlops_provider.operators.bentoml import BentoPackageOperator

    ti = SimpleNamespace(task_id="package", dag_id="bench", run_id="manual__bench", try_number=1)
    op = BentoPackageOperator(task_id="package", model_name=MODEL_NAME, version=version)
    return op.execute({"ti": ti, "task_instance": ti})


class Server:
    """One server under test: how to start it, where to send a row, how to check it is up."""

    def __init__(
        self, name: str, command: list[str], path: str, body: Any, ready: str, env: dict[str, str]
    ) -> None:
        from airflow_mlops_provider.stack import free_port

        self.name, self.path, self.body, self.ready_path = name, path, body, ready
        self.port = free_port()
        self.command = [part.replace("{port}", str(self.port)) for part in command]
        self.env = env
        self.proc: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        from airflow_mlops_provider.stack import start_process, wait_http

        log = WORK / f"{self.name}.log"
        started = time.monotonic()
        self.proc = start_process(self.name, self.command, self.env, log, cwd=WORK)
        wait_http(f"{self.url}{self.ready_path}", 300, proc=self.proc, log_path=log)
        return time.monotonic() - started

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


async def load(
    server: Server, rows: list[dict[str, Any]], clients: int, requests: int, max_s: float
) -> dict[str, Any]:
    """Send single-row requests from ``clients`` concurrent clients; return throughput and latencies."""
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sent = 0
    deadline = time.monotonic() + max_s
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal sent
            while sent < requests and time.monotonic() < deadline:
                row = rows[sent % len(rows)]
                sent += 1
                t0 = time.perf_counter()
                try:
                    status = (await client.post(server.path, json=server.body(row))).status_code
                except httpx.TransportError:
                    status = 0  # connection reset or refused: counted, reported, not retried
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    ok = statuses.get(200, 0)
    latencies.sort()
    return {
        "requests": len(latencies),
        "ok": ok,
        "statuses": statuses,
        "seconds": round(elapsed, 2),
        "throughput_rps": ok / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def check_same_predictions(servers: list[Server], rows: list[dict[str, Any]]) -> None:
    import httpx

    answers = {}
    for server in servers:
        answers[server.name] = [
            _single(httpx.post(f"{server.url}{server.path}", json=server.body(row), timeout=30).json())
            for row in rows[:20]
        ]
    first = next(iter(answers.values()))
    for name, predictions in answers.items():
        if predictions != first:
            raise SystemExit(f"{name} predicts differently: {predictions} vs {first}")


def _single(answer: Any) -> Any:
    if isinstance(answer, dict):
        answer = answer["predictions"]
    return answer[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="seconds per measurement at most")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()

    name, version, rows = register_model()
    result = package(version)
    print(f"packaged {result['bento_tag']}: smoke test {result['smoke_test']}", flush=True)
    model_uri = f"models:/{name}/{version}"
    (WORK / "handwritten.py").write_text(FASTAPI_APP)
    bindir = Path(sys.executable).parent
    # `mlflow models serve` runs `uvicorn` from PATH.
    env = {**os.environ, "BENCH_MODEL_URI": model_uri, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    servers = [
        Server(
            "bento",
            [
                sys.executable,
                "-m",
                "bentoml",
                "serve",
                result["bento_tag"],
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
            ],
            "/predict",
            lambda row: {"rows": [row]},
            "/readyz",
            env,
        ),
        Server(
            "mlflow",
            [
                str(bindir / "mlflow"),
                "models",
                "serve",
                "-m",
                model_uri,
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--workers",
                "1",
            ],
            "/invocations",
            lambda row: {"dataframe_records": [row]},
            "/ping",
            env,
        ),
        Server(
            "fastapi",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "handwritten:app",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--workers",
                "1",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            "/predict",
            lambda row: {"rows": [row]},
            "/docs",
            env,
        ),
    ]
    measurements: dict[str, dict[int, list[dict[str, Any]]]] = {
        s.name: {c: [] for c in args.concurrency} for s in servers
    }
    startup = {}
    try:
        for server in servers:
            startup[server.name] = round(server.start(), 1)
            print(f"{server.name} ready in {startup[server.name]}s at {server.url}", flush=True)
        check_same_predictions(servers, rows)
        for server in servers:
            asyncio.run(load(server, rows, 8, args.warmup, 30))
        for round_ in range(args.rounds):
            for clients in args.concurrency:
                for server in servers if round_ % 2 == 0 else reversed(servers):
                    m = asyncio.run(load(server, rows, clients, args.requests, args.max_seconds))
                    measurements[server.name][clients].append(m)
                    print(
                        f"round {round_ + 1} c={clients:3d} {server.name:8s} {m['throughput_rps']:7.1f} req/s "
                        f"p50 {m['p50_ms']:7.1f} ms p99 {m['p99_ms']:7.1f} ms statuses {m['statuses']}",
                        flush=True,
                    )
    finally:
        for server in servers:
            server.stop()

    summary: dict[str, Any] = {}
    print(f"\nmedians of {args.rounds} rounds, single-row requests, one worker process each, loopback")
    print(f"{'server':8s} {'clients':>7s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-200':>8s}")
    for clients in args.concurrency:
        for server in servers:
            runs = measurements[server.name][clients]
            row = {
                "throughput_rps": round(statistics.median(r["throughput_rps"] for r in runs), 1),
                "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 1),
                "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 1),
                "non_200": sum(r["requests"] - r["ok"] for r in runs),
            }
            summary.setdefault(str(clients), {})[server.name] = row
            print(
                f"{server.name:8s} {clients:7d} {row['throughput_rps']:8.1f} {row['p50_ms']:8.1f} "
                f"{row['p99_ms']:8.1f} {row['non_200']:8d}"
            )
        by = summary[str(clients)]
        ratios = {
            "bento_vs_mlflow_throughput": round(
                by["bento"]["throughput_rps"] / by["mlflow"]["throughput_rps"], 2
            ),
            "bento_vs_mlflow_p99": round(by["bento"]["p99_ms"] / by["mlflow"]["p99_ms"], 2),
            "bento_vs_fastapi_throughput": round(
                by["bento"]["throughput_rps"] / by["fastapi"]["throughput_rps"], 2
            ),
        }
        summary[str(clients)]["ratios"] = ratios
        print(
            f"c={clients}: bento/mlflow throughput {ratios['bento_vs_mlflow_throughput']}x (target >= 2), "
            f"p99 {ratios['bento_vs_mlflow_p99']}x (target <= 1); bento/fastapi throughput "
            f"{ratios['bento_vs_fastapi_throughput']}x (target >= 0.8)"
        )
    RESULTS.mkdir(exist_ok=True)
    out = {
        "args": vars(args),
        "cpus": os.cpu_count(),
        "loadavg_at_end": os.getloadavg(),
        "startup_s": startup,
        "summary": summary,
        "runs": measurements,
    }
    (RESULTS / "serving.json").write_text(json.dumps(out, indent=2))
    print(f"wrote {RESULTS / 'serving.json'}")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
