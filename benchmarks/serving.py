"""Serving throughput and p50/p99 latency: the Bento vs ``mlflow models serve`` vs hand-written FastAPI,
and the Bento with inference capture on vs off.

    .venv/bin/python benchmarks/serving.py                          # 32 and 64 clients, 3 rounds
    .venv/bin/python benchmarks/serving.py --concurrency 32 64 --requests 6000 --rounds 3
    .venv/bin/python benchmarks/serving.py --concurrency 32 --requests 3000 --rounds 3   # ~10 min, 2 cores

Trains a small scikit-learn churn pipeline (numeric and categorical columns), registers it in a local
SQLite MLflow store and packages it with ``BentoPackageOperator`` (smoke test included). Then starts,
each on a free loopback port with one worker process:

- ``bento``: ``bentoml serve`` of the packaged Bento (validation and adaptive batching on) with
  inference capture on, as it is by default: ``MLOPS_CAPTURE_URI`` points at a throwaway directory,
  every other capture setting is the Bento's default (flush every 1000 rows or 10 s);
- ``bento-nocapture``: the same Bento with ``MLOPS_CAPTURE_ENABLED=false``;
- ``bento-shadow``: the Bento of the same champion with a challenger (another pipeline, registered
  as version 2) in shadow: it scores every request off the response path, and both models'
  predictions are captured;
- ``mlflow``: ``mlflow models serve --env-manager local`` of the same registered version;
- ``fastapi``: a hand-written FastAPI endpoint under uvicorn calling ``pyfunc.predict`` per request.

Both Bentos' ``/model_info`` must report the capture setting they were started with.
Every server gets the same single-row requests from ``C`` concurrent clients, a bounded number of
requests (``--requests``) or seconds (``--max-seconds``), whichever ends first, after a warm-up.
The clients are ``loadgen.py``, run in a process of its own: one keep-alive HTTP/1.1 connection
each, requests encoded once, answers framed by hand. It costs a few tens of microseconds of CPU a
request; httpx's async client, used before, cost 1.6-4 ms and on two cores capped every server at
about the same rate (440 req/s at 32 clients, 140-250 at 64, against a server that does nothing).
The client's and each server's CPU time (share of one core) are printed with every measurement,
and for the Bentos the mean adaptive batch size (from their ``/metrics``).
Every server must give the same predictions for the first rows, and so must every 200 answer to
them during the measurements (which checks the client's framing too).
Rounds alternate the servers (forwards, then backwards, so the two Bentos always run back to back)
so that load from other processes on the machine hits all alike.
Status 0 in the output counts transport errors (a connection reset). Prints the median throughput
(of 200 answers) and latencies per server and concurrency, and the ratios of the medians:

- ``bento`` against the MLflow server and the hand-written endpoint; the targets are Bento
  throughput >= 2x MLflow's at an equal or better p99, and >= 0.8x the hand-written endpoint's;
- ``bento-shadow`` against ``bento``: the champion's p99 with a shadow (target <= 1.2x without), and
  after the stop every answer captured for the champion, and for the challenger every row it scored
  (``/metrics``), with the rest counted as dropped;
- ``bento`` (capture on) against ``bento-nocapture``, with the per-round ratios of the two
  back-to-back runs; the targets, at 32 clients, are throughput >= 0.95x and p99 <= 1.1x.

Then the capture-on Bento is stopped with SIGTERM, which must flush its buffer: the capture
directory (read with ``pyarrow.dataset``, Hive partitioning) must hold exactly one row per 200
answer that server gave (every request is one row), under as many distinct request ids, and the
capture-off Bento must have written nothing; the script exits 1 otherwise. Writes
``results/serving.json`` (the capture figures under ``capture``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

RESULTS = Path(__file__).parent / "results"
LOADGEN = Path(__file__).parent / "loadgen.py"
#: Rows whose predictions every server must agree on, and every load run must reproduce.
CHECKED_ROWS = 20
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


def register_pipeline(seed: int, alias: str) -> str:
    """Train the churn pipeline on a week generated with ``seed``, register it, give it ``alias``."""
    import mlflow
    from mlflow.models import infer_signature

    from mlops_demo.churn import FEATURES, fit_baseline_model, generate_week

    train = generate_week(rows=5_000, seed=seed)
    pipeline = fit_baseline_model(train)
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
    mlflow.MlflowClient().set_registered_model_alias(MODEL_NAME, alias, version)
    return version


def register_model() -> tuple[str, str, list[dict[str, Any]]]:
    """Register the champion; return its name, version and sample request rows."""
    import mlflow

    from mlops_demo.churn import FEATURES, generate_week

    # Artifacts go under the throwaway directory, not into ./mlruns.
    mlflow.create_experiment("serving-bench", artifact_location=(WORK / "artifacts").as_uri())
    mlflow.set_experiment("serving-bench")
    version = register_pipeline(seed=1, alias="champion")
    rows = json.loads(generate_week(rows=500, seed=2, week=2)[FEATURES].to_json(orient="records"))
    return MODEL_NAME, version, rows


def register_challenger() -> str:
    """Register a second pipeline (other data, other seed) as the ``challenger``; return its version."""
    return register_pipeline(seed=3, alias="challenger")


def package(version: str, shadow_version: str | None = None) -> dict[str, Any]:
    from airflow_mlops_provider.operators.bentoml import BentoPackageOperator

    ti = SimpleNamespace(task_id="package", dag_id="bench", run_id="manual__bench", try_number=1)
    op = BentoPackageOperator(
        task_id="package", model_name=MODEL_NAME, version=version, shadow_version=shadow_version
    )
    return op.execute({"ti": ti, "task_instance": ti})


class Server:
    """One server under test: how to start it, where to send a row, how to check it is up."""

    def __init__(
        self,
        name: str,
        command: list[str],
        path: str,
        body: Any,
        ready: str,
        env: dict[str, str],
        metrics: str | None = None,
    ) -> None:
        from airflow_mlops_provider.processes import free_port

        self.name, self.path, self.body, self.ready_path = name, path, body, ready
        self.metrics_path = metrics
        self.port = free_port()
        self.command = [part.replace("{port}", str(self.port)) for part in command]
        self.env = env
        self.proc: Any = None
        #: 200 answers to ``path`` so far: rows, since every request is one row.
        self.answered = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        from airflow_mlops_provider.processes import start_process, wait_http

        log = WORK / f"{self.name}.log"
        started = time.monotonic()
        self.proc = start_process(self.name, self.command, self.env, log, cwd=WORK)
        wait_http(f"{self.url}{self.ready_path}", 300, proc=self.proc, log_path=log)
        return time.monotonic() - started

    def stop(self) -> float:
        """Stop the server (SIGTERM to its process group, SIGKILL after 30 s); return the seconds taken."""
        started = time.monotonic()
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
        return time.monotonic() - started

    def cpu_s(self) -> float:
        """Return the CPU seconds used so far by the server and every process it spawned."""
        import psutil

        root = psutil.Process(self.proc.pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue  # exited in between
            total += times.user + times.system
        return total

    def batches(self) -> tuple[float, float]:
        """Return the rows and the batches the adaptive batcher has dispatched so far (BentoML only)."""
        rows, batches = (f"bentoml_service_adaptive_batch_size_{part}" for part in ("sum", "count"))
        sums = self.metrics(rows, batches)
        return sums[rows], sums[batches]

    def metrics(self, *names: str) -> dict[str, float]:
        """Return each Prometheus sample ``name`` summed over its labels (0 without ``/metrics``)."""
        import httpx

        sums = dict.fromkeys(names, 0.0)
        if self.metrics_path:
            for line in httpx.get(f"{self.url}{self.metrics_path}", timeout=30).text.splitlines():
                name = line.split("{", 1)[0].split(" ", 1)[0]
                if name in sums:
                    sums[name] += float(line.rsplit(" ", 1)[1])
        return sums


def load(
    server: Server,
    rows: list[dict[str, Any]],
    clients: int,
    requests: int,
    max_s: float,
    expected: list[Any] | None = None,
) -> dict[str, Any]:
    """Send single-row requests from ``clients`` concurrent clients; return throughput and latencies.

    The load generator (``loadgen.py``) runs in its own process; the CPU time it and the server
    (with every process it spawned) used during the measurement are returned with the result.
    With ``expected``, every 200 answer to the first rows must carry those predictions.
    """
    spec = {
        "port": server.port,
        "path": server.path,
        "bodies": [json.dumps(server.body(row), separators=(",", ":")) for row in rows],
        "clients": clients,
        "requests": requests,
        "max_seconds": max_s,
        "keep_bodies": len(expected or ()),
    }
    rows0, batches0 = server.batches()
    server_cpu0 = server.cpu_s()
    done = subprocess.run(
        [sys.executable, str(LOADGEN)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=max_s + 120,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"load generator failed against {server.name}:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    server.answered += result["ok"]
    result["server_cpu_s"] = round(server.cpu_s() - server_cpu0, 3)
    rows1, batches1 = server.batches()
    result["mean_batch_rows"] = (
        round((rows1 - rows0) / (batches1 - batches0), 1) if batches1 > batches0 else None
    )
    # Every distinct 200 answer to the checked rows, so a framing error would show as a wrong body.
    answers = result.pop("bodies")
    for index, want in enumerate(expected or ()):
        for body in answers.get(str(index), ()):
            if _single(json.loads(body)) != want:
                raise SystemExit(f"{server.name} answered row {index} with {body}, expected {want}")
    return result


def check_same_predictions(servers: list[Server], rows: list[dict[str, Any]]) -> list[Any]:
    """Return the predictions for the first rows, after requiring every server to give the same."""
    import httpx

    answers = {}
    for server in servers:
        answers[server.name] = []
        for row in rows[:CHECKED_ROWS]:
            response = httpx.post(f"{server.url}{server.path}", json=server.body(row), timeout=30)
            if response.status_code != 200:
                raise SystemExit(f"{server.name} answered {response.status_code}: {response.text[:500]}")
            server.answered += 1
            answers[server.name].append(_single(response.json()))
    first = next(iter(answers.values()))
    for name, predictions in answers.items():
        if predictions != first:
            raise SystemExit(f"{name} predicts differently: {predictions} vs {first}")
    return first


def own_bentoml_home(home: Path, name: str) -> str:
    """Return a BentoML home of its own for server ``name``, sharing the Bento and model stores of ``home``.

    ``bentoml serve`` empties ``$BENTOML_HOME/prometheus_multiproc_dir`` when it starts: two servers
    sharing a home would mix (and wipe) each other's ``/metrics``.
    """
    own = WORK / f"bentoml-{name}"
    own.mkdir()
    for store in ("bentos", "models"):
        (own / store).symlink_to(home / store, target_is_directory=True)
    return str(own)


def check_capture_settings(server: Server, uri: str, *, enabled: bool) -> None:
    """Require the Bento's ``/model_info`` to report capture ``enabled`` (to ``uri``), as started."""
    import httpx

    settings = httpx.post(f"{server.url}/model_info", json={}, timeout=30).json()["capture"]
    if settings["enabled"] is not enabled or settings["uri"] != uri:
        raise SystemExit(
            f"{server.name} serves with capture settings {settings}, not enabled={enabled} to {uri}"
        )


def read_capture(root: Path) -> dict[str, Any]:
    """Return the rows, distinct request ids, files and partitions in the capture store at ``root``."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    if not root.exists():
        return {"rows": 0, "distinct_request_ids": 0, "files": 0, "partitions": []}
    dataset = ds.dataset(str(root), format="parquet", partitioning="hive")
    table = dataset.to_table(columns=["request_id", "model", "version", "date"])
    partitions = {
        f"model={m}/version={v}/date={d}"
        for m, v, d in zip(*(table[c].to_pylist() for c in ("model", "version", "date")), strict=True)
    }
    return {
        "rows": table.num_rows,
        "distinct_request_ids": pc.count_distinct(table["request_id"]).as_py(),
        "files": len(dataset.files),
        "partitions": sorted(partitions),
    }


def read_shadow_capture(root: Path, champion: str, challenger: str) -> dict[str, Any]:
    """Return the champion's and the challenger's captured rows in the shadow Bento's store."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    table = ds.dataset(str(root), format="parquet", partitioning="hive").to_table(
        columns=["request_id", "model_version", "served"]
    )
    mine = {v: table.filter(pc.equal(table["model_version"], v)) for v in (champion, challenger)}
    answered = mine[champion]["request_id"]
    return {
        "champion_rows": mine[champion].num_rows,
        "champion_rows_served": int(pc.sum(mine[champion]["served"]).as_py() or 0),
        "challenger_rows": mine[challenger].num_rows,
        "challenger_rows_served": int(pc.sum(mine[challenger]["served"]).as_py() or 0),
        "challenger_rows_of_answered_requests": int(
            pc.sum(pc.is_in(mine[challenger]["request_id"], value_set=answered)).as_py() or 0
        ),
    }


def _single(answer: Any) -> Any:
    if isinstance(answer, dict):
        answer = answer["predictions"]
    return answer[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--requests", type=int, default=6000, help="requests per measurement")
    parser.add_argument("--max-seconds", type=float, default=15.0, help="seconds per measurement at most")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args()

    from airflow_mlops_provider.serving.capture import ENV as CAPTURE_ENV

    name, version, rows = register_model()
    result = package(version)
    print(f"packaged {result['bento_tag']}: smoke test {result['smoke_test']}", flush=True)
    challenger = register_challenger()
    shadowed = package(version, shadow_version=challenger)
    print(f"packaged {shadowed['bento_tag']}: smoke test {shadowed['smoke_test']}", flush=True)
    model_uri = f"models:/{name}/{version}"
    (WORK / "handwritten.py").write_text(FASTAPI_APP)
    bindir = Path(sys.executable).parent
    # `mlflow models serve` runs `uvicorn` from PATH.
    env = {**os.environ, "BENCH_MODEL_URI": model_uri, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    # The Bento's own capture settings, but for where it writes (and, for the other, whether).
    bento_env = {k: v for k, v in env.items() if k not in CAPTURE_ENV.values()}
    bento_home = Path(os.environ["BENTOML_HOME"])
    capture_dir, nocapture_dir, shadow_dir = WORK / "capture", WORK / "capture-off", WORK / "capture-shadow"

    def bento(name: str, tag: str, **capture: str) -> Server:
        """``bentoml serve`` of ``tag`` with a BentoML home of its own and these capture variables."""
        return Server(
            name,
            [sys.executable, "-m", "bentoml", "serve", tag, "--host", "127.0.0.1", "--port", "{port}"],
            "/predict",
            lambda row: {"rows": [row]},
            "/readyz",
            {
                **bento_env,
                "BENTOML_HOME": own_bentoml_home(bento_home, name),
                **{CAPTURE_ENV[k]: v for k, v in capture.items()},
            },
            metrics="/metrics",
        )

    # The shadow first, so that in every round (forwards and backwards) `bento` runs right after or
    # before it, and `bento-nocapture` on its other side.
    servers = [
        bento("bento-shadow", shadowed["bento_tag"], uri=str(shadow_dir)),
        bento("bento", result["bento_tag"], uri=str(capture_dir)),
        bento("bento-nocapture", result["bento_tag"], uri=str(nocapture_dir), enabled="false"),
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
    capture: dict[str, Any] = {}
    shadow: dict[str, Any] = {}
    by_name = {s.name: s for s in servers}
    try:
        for server in servers:
            startup[server.name] = round(server.start(), 1)
            print(f"{server.name} ready in {startup[server.name]}s at {server.url}", flush=True)
        check_capture_settings(by_name["bento"], str(capture_dir), enabled=True)
        check_capture_settings(by_name["bento-nocapture"], str(nocapture_dir), enabled=False)
        check_capture_settings(by_name["bento-shadow"], str(shadow_dir), enabled=True)
        expected = check_same_predictions(servers, rows)
        for server in servers:
            load(server, rows, 8, args.warmup, 30, expected)
        for round_ in range(args.rounds):
            for clients in args.concurrency:
                for server in servers if round_ % 2 == 0 else reversed(servers):
                    m = load(server, rows, clients, args.requests, args.max_seconds, expected)
                    measurements[server.name][clients].append(m)
                    print(
                        f"round {round_ + 1} c={clients:3d} {server.name:15s} {m['throughput_rps']:7.1f} req/s "
                        f"p50 {m['p50_ms']:7.1f} ms p99 {m['p99_ms']:7.1f} ms statuses {m['statuses']} "
                        f"cpu: client {m['client_cpu_s'] / m['seconds']:.0%} "
                        f"server {m['server_cpu_s'] / m['seconds']:.0%} of a core"
                        + (f", {m['mean_batch_rows']} rows a batch" if m["mean_batch_rows"] else ""),
                        flush=True,
                    )
        # Before the stop, so that rows dropped on the way (buffer full, store failing) show.
        capture["metrics_before_stop"] = by_name["bento"].metrics(
            "mlops_capture_written_rows_total", "mlops_capture_dropped_rows_total"
        )
        capture["answered_200"] = by_name["bento"].answered
        capture["sigterm_stop_s"] = round(by_name["bento"].stop(), 1)
        shadow["metrics_before_stop"] = by_name["bento-shadow"].metrics(
            "mlops_shadow_scored_rows_total", "mlops_shadow_dropped_rows_total", "mlops_served_rows_total"
        )
        shadow["answered_200"] = by_name["bento-shadow"].answered
        shadow["sigterm_stop_s"] = round(by_name["bento-shadow"].stop(), 1)
    finally:
        for server in servers:
            server.stop()
    capture.update(read_capture(capture_dir))
    capture["nocapture_files"] = sorted(str(p.relative_to(WORK)) for p in nocapture_dir.rglob("*"))
    capture["complete"] = (
        capture["rows"] == capture["distinct_request_ids"] == capture["answered_200"]
        and not capture["nocapture_files"]
    )
    shadow.update(read_shadow_capture(shadow_dir, version, challenger))
    seen = shadow["metrics_before_stop"]
    # Every answer captured for the champion; the challenger's rows are those it scored (the queue is
    # scored at the stop), each of an answered request, and with those dropped they are every answer.
    shadow["complete"] = (
        shadow["champion_rows"] == shadow["answered_200"] == seen["mlops_served_rows_total"]
        and shadow["challenger_rows_of_answered_requests"] == shadow["challenger_rows"]
        and shadow["challenger_rows"] >= seen["mlops_shadow_scored_rows_total"]
        and shadow["challenger_rows"] + seen["mlops_shadow_dropped_rows_total"] == shadow["answered_200"]
    )

    summary: dict[str, Any] = {}
    print(f"\nmedians of {args.rounds} rounds, single-row requests, one worker process each, loopback")
    print(
        f"{'server':15s} {'clients':>7s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-200':>8s} "
        f"{'client CPU':>10s} {'server CPU':>10s}"
    )
    for clients in args.concurrency:
        for server in servers:
            runs = measurements[server.name][clients]
            row = {
                "throughput_rps": round(statistics.median(r["throughput_rps"] for r in runs), 1),
                "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 1),
                "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 1),
                "non_200": sum(r["requests"] - r["ok"] for r in runs),
                "client_cpu_share": round(
                    statistics.median(r["client_cpu_s"] / r["seconds"] for r in runs), 2
                ),
                "server_cpu_share": round(
                    statistics.median(r["server_cpu_s"] / r["seconds"] for r in runs), 2
                ),
            }
            batch_rows = [r["mean_batch_rows"] for r in runs if r["mean_batch_rows"]]
            if batch_rows:
                row["mean_batch_rows"] = statistics.median(batch_rows)
            summary.setdefault(str(clients), {})[server.name] = row
            print(
                f"{server.name:15s} {clients:7d} {row['throughput_rps']:8.1f} {row['p50_ms']:8.1f} "
                f"{row['p99_ms']:8.1f} {row['non_200']:8d} {row['client_cpu_share']:10.0%} "
                f"{row['server_cpu_share']:10.0%}"
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
        on, off = measurements["bento"][clients], measurements["bento-nocapture"][clients]
        ratios.update(
            {
                "capture_on_vs_off_throughput": round(
                    by["bento"]["throughput_rps"] / by["bento-nocapture"]["throughput_rps"], 3
                ),
                "capture_on_vs_off_p99": round(by["bento"]["p99_ms"] / by["bento-nocapture"]["p99_ms"], 3),
                # The two Bentos run back to back in every round: the pairs share the machine's load.
                "capture_on_vs_off_throughput_by_round": [
                    round(a["throughput_rps"] / b["throughput_rps"], 3) for a, b in zip(on, off, strict=True)
                ],
                "capture_on_vs_off_p99_by_round": [
                    round(a["p99_ms"] / b["p99_ms"], 3) for a, b in zip(on, off, strict=True)
                ],
            }
        )
        with_shadow, without = measurements["bento-shadow"][clients], measurements["bento"][clients]
        ratios.update(
            {
                "shadow_vs_none_p99": round(by["bento-shadow"]["p99_ms"] / by["bento"]["p99_ms"], 3),
                "shadow_vs_none_throughput": round(
                    by["bento-shadow"]["throughput_rps"] / by["bento"]["throughput_rps"], 3
                ),
                "shadow_vs_none_p99_by_round": [
                    round(a["p99_ms"] / b["p99_ms"], 3) for a, b in zip(with_shadow, without, strict=True)
                ],
            }
        )
        summary[str(clients)]["ratios"] = ratios
        print(
            f"c={clients}: bento/mlflow throughput {ratios['bento_vs_mlflow_throughput']}x (target >= 2), "
            f"p99 {ratios['bento_vs_mlflow_p99']}x (target <= 1); bento/fastapi throughput "
            f"{ratios['bento_vs_fastapi_throughput']}x (target >= 0.8)"
        )
        targets = " (target >= 0.95)" if clients == 32 else ""
        print(
            f"c={clients}: capture on/off throughput {ratios['capture_on_vs_off_throughput']}x{targets}, "
            f"p99 {ratios['capture_on_vs_off_p99']}x{' (target <= 1.1)' if targets else ''}; by round: "
            f"throughput {ratios['capture_on_vs_off_throughput_by_round']}, "
            f"p99 {ratios['capture_on_vs_off_p99_by_round']}"
        )
    for clients in args.concurrency:
        ratios = summary[str(clients)]["ratios"]
        print(
            f"c={clients}: shadow/none p99 {ratios['shadow_vs_none_p99']}x (target <= 1.2), throughput "
            f"{ratios['shadow_vs_none_throughput']}x; p99 by round {ratios['shadow_vs_none_p99_by_round']}"
        )
    print(
        f"shadow after SIGTERM: {shadow['champion_rows']} champion rows for {shadow['answered_200']} answers, "
        f"{shadow['challenger_rows']} challenger rows (scored {seen['mlops_shadow_scored_rows_total']:.0f}, "
        f"dropped {seen['mlops_shadow_dropped_rows_total']:.0f}): {'complete' if shadow['complete'] else 'MISMATCH'}"
    )
    print(
        f"capture after SIGTERM (stopped in {capture['sigterm_stop_s']}s): {capture['rows']} rows in "
        f"{capture['files']} files, {capture['distinct_request_ids']} distinct request ids, for "
        f"{capture['answered_200']} 200 answers; before the stop /metrics counted "
        f"{capture['metrics_before_stop']['mlops_capture_written_rows_total']:.0f} written, "
        f"{capture['metrics_before_stop']['mlops_capture_dropped_rows_total']:.0f} dropped; capture-off "
        f"files: {len(capture['nocapture_files'])}: {'complete' if capture['complete'] else 'MISMATCH'}"
    )
    RESULTS.mkdir(exist_ok=True)
    out = {
        "args": vars(args),
        "cpus": os.cpu_count(),
        "loadavg_at_end": os.getloadavg(),
        "startup_s": startup,
        "summary": summary,
        "capture": capture,
        "shadow": shadow,
        "runs": measurements,
    }
    (RESULTS / "serving.json").write_text(json.dumps(out, indent=2))
    print(f"wrote {RESULTS / 'serving.json'}")
    if not capture["complete"]:
        raise SystemExit("the capture directory does not hold exactly one row per 200 answer (see above)")
    if not shadow["complete"]:
        raise SystemExit("the shadow Bento's capture does not match its answers and /metrics (see above)")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
