"""Shared pieces of the registry integration tests: tiny models logged to the real MLflow server,
evaluation data, a minimal task context, and a TCP proxy that can cut MLflow off mid-promotion."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from airflow_mlops_provider import lineage
from airflow_mlops_provider.promotion import LeaseSettings

#: Short lease timings so that the race and recovery tests take seconds, not minutes.
FAST_LEASE = LeaseSettings(ttl_s=6.0, max_write_s=1.0, settle_s=1.2, acquire_timeout_s=60.0, poll_s=0.2)
FEATURES = [f"f{i}" for i in range(6)]


class FakeTI:
    """The slice of a task instance the registry operators use: XCom and identity."""

    def __init__(self, task_id: str = "promote", xcoms: dict[str, Any] | None = None) -> None:
        self.task_id = task_id
        self.dag_id = "registry_test"
        self.run_id = "manual__test"
        self.try_number = 1
        self.map_index = -1
        self.pushed: dict[str, Any] = {}
        self.xcoms = xcoms or {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value") -> Any:
        return self.xcoms.get(task_ids) if key == "return_value" else None


def make_context(task_id: str = "promote", xcoms: dict[str, Any] | None = None) -> dict[str, Any]:
    ti = FakeTI(task_id, xcoms)
    return {"ti": ti, "task_instance": ti, "dag_run": SimpleNamespace(dag_id=ti.dag_id, run_id=ti.run_id)}


class SlowModel:
    """A pyfunc model that answers like the wrapped scikit-learn model, slowly."""

    def __init__(self, model: Any, delay_s: float) -> None:
        self.model, self.delay_s = model, delay_s

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        time.sleep(self.delay_s)
        return self.model.predict_proba(model_input[FEATURES])[:, 1]


class SliceBreakingModel:
    """Good everywhere except on month-to-month contracts (f5 > 1), where its scores are inverted."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        scores = self.model.predict_proba(model_input[FEATURES])[:, 1]
        flip = model_input["f5"].to_numpy() > 1.0
        scores[flip] = 1 - scores[flip]
        return scores


@dataclass
class Trained:
    """Tiny models logged to the session's MLflow server, and the data they are judged on."""

    eval_csv: Path
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)


def _python_model(wrapper: Any) -> Any:
    import mlflow.pyfunc

    class Wrapped(mlflow.pyfunc.PythonModel):
        def __init__(self) -> None:
            self.inner = wrapper

        # A DataFrame hint: MLflow reads no signature from it (the model is logged with one), and
        # neither warns that a hint is missing nor that it cannot use it.
        def predict(
            self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
        ) -> Any:
            return self.inner.predict(context, model_input, params)

    return Wrapped()


@pytest.fixture(scope="session")
def trained(mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Train a baseline, two better, a worse, a slice-breaking, a slow and an evidence-less model."""
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("registry")
    x, y = make_classification(
        n_samples=1200, n_features=6, n_informative=5, n_redundant=0, class_sep=1.0, random_state=7
    )
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["contract"] = np.where(frame["f5"] > 1.0, "month-to-month", "two-year")
    frame["churned"] = y
    train, evaluation = frame.iloc[:800], frame.iloc[800:]
    eval_csv = root / "eval.csv"
    evaluation.to_csv(eval_csv, index=False)
    report = root / "validation_report.json"
    report.write_text(json.dumps({"success": True}))
    profile = root / "training_profile.bin"
    profile.write_bytes(b"whylogs-profile")
    evidence = {
        lineage.TAG_VALIDATION_REPORT_URI: str(report),
        lineage.TAG_TRAINING_PROFILE_URI: profile.as_uri(),
        lineage.TAG_VALIDATION_STATUS: "passed",
        lineage.TAG_DATA_FINGERPRINT: lineage.data_fingerprint(eval_csv),
        lineage.TAG_DAG_ID: "train_churn",
    }

    def fit(columns: list[str], c: float = 1.0) -> Any:
        model = LogisticRegression(C=c, max_iter=500)
        return model.fit(train[columns].to_numpy(), train["churned"])

    class Columns:
        """Feeds a model trained on a subset of the features only those columns."""

        def __init__(self, model: Any, columns: list[str]) -> None:
            self.model, self.columns = model, columns

        # A DataFrame hint: MLflow reads no signature from it (the model is logged with one), and
        # neither warns that a hint is missing nor that it cannot use it.
        def predict(
            self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
        ) -> Any:
            return self.model.predict_proba(model_input[self.columns].to_numpy())[:, 1]

    full_pd = LogisticRegression(max_iter=500).fit(train[FEATURES], train["churned"])
    specs: dict[str, tuple[Any, dict[str, str]]] = {
        "baseline": (
            _python_model(Columns(fit(["f0", "f1", "f2", "f3"]), ["f0", "f1", "f2", "f3"])),
            evidence,
        ),
        "better": (full_pd, evidence),
        "better_too": (
            LogisticRegression(C=0.5, max_iter=500).fit(train[FEATURES], train["churned"]),
            evidence,
        ),
        "worse": (_python_model(Columns(fit(["f0"]), ["f0"])), evidence),
        "slice_breaker": (_python_model(SliceBreakingModel(full_pd)), evidence),
        "slow": (_python_model(SlowModel(full_pd, 0.06)), evidence),
        "no_evidence": (full_pd, {lineage.TAG_VALIDATION_STATUS: "passed"}),
    }
    mlflow.set_tracking_uri(mlflow_server.url)
    experiment = mlflow.set_experiment(f"registry-tests-{uuid.uuid4().hex[:6]}")
    out = Trained(eval_csv)
    for label, (model, tags) in specs.items():
        with mlflow.start_run(experiment_id=experiment.experiment_id, tags=tags) as run:
            if hasattr(model, "predict_proba"):
                info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
            else:
                info = mlflow.pyfunc.log_model(name="model", python_model=model, pip_requirements=["pandas"])
        out.runs[label] = {"run_id": run.info.run_id, "model_uri": info.model_uri, "metrics": {}}
    return out


@pytest.fixture(scope="module", autouse=True)
def _mlflow_default(mlflow_server: Any) -> Iterator[None]:
    """Define ``mlflow_default`` as the session's MLflow server for every test module here."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_server.conn_uri())
        yield


@pytest.fixture
def client(mlflow_server: Any) -> Any:
    """An MLflow client of the session server, independent of the connection under test."""
    from mlflow import MlflowClient

    return MlflowClient(mlflow_server.url, registry_uri=mlflow_server.url)


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to the MLflow server until :meth:`cut`, then refuses everything."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        # cut() and the accepting thread take turns: a connection is either refused or recorded
        # (and so closed by cut), never accepted after cut has closed the recorded ones.
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.stopped.is_set():
                    client.close()
                    return
                try:
                    upstream = socket.create_connection(self.target)
                except OSError:
                    client.close()
                    continue
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self.lock:
            self.stopped.set()
            # shutdown() wakes the thread blocked in accept(); close() alone would not, and the
            # listening socket would take one more connection (kept alive for every later request).
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            for s in self.open:
                # A pump may have shut the socket down already (shutdown then fails): close it anyway,
                # or it is left for the garbage collector, which warns.
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def conn_json(self) -> str:
        return json.dumps(
            {
                "conn_type": "mlflow",
                "host": "127.0.0.1",
                "port": self.port,
                "schema": "http",
                "extra": {"max_retries": 0, "request_timeout": 5},
            }
        )


@pytest.fixture
def proxy(mlflow_server: Any) -> Iterator[CuttableProxy]:
    p = CuttableProxy(mlflow_server.config.mlflow_port)
    try:
        yield p
    finally:
        p.cut()
