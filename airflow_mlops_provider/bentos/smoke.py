"""Smoke-test a built Bento: serve it on loopback and require the registry model's answers."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.bentos.build import bentoml_env, servable_columns
from airflow_mlops_provider.exceptions import PackagingError

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops_provider.processes import ManagedProcess


def read_sample(uri: str, columns: list[dict[str, Any]], rows: int) -> pd.DataFrame:
    """Return the first ``rows`` rows of the dataset at ``uri``, refusing one without the model's
    required input columns."""
    from airflow_mlops_provider.data.datasets import DatasetError, read_dataframe

    try:
        frame = read_dataframe(uri, numpy_dtypes=True)
    except DatasetError as err:
        raise PackagingError(f"evaluation sample {uri!r} cannot be read: {err}") from None
    missing = [c["name"] for c in columns if c["name"] not in frame.columns and c.get("required", True)]
    if missing:
        raise PackagingError(f"evaluation sample {uri!r} lacks the model's input columns {missing}")
    return frame.head(rows)


def smoke_sample(
    bento_model: Any, columns: list[dict[str, Any]], eval_data_uri: str | None, rows: int
) -> pd.DataFrame:
    """Return the rows to smoke-test with: ``eval_data_uri``, else the model's input example."""
    if eval_data_uri:
        return read_sample(eval_data_uri, columns, rows)
    import pandas as pd
    from mlflow.models import Model

    path = bento_model.path_of("mlflow_model")
    example = Model.load(path).load_input_example(path)
    if example is None:
        raise PackagingError(
            "no evaluation sample for the smoke test: pass eval_data_uri, or log the model with an "
            "input_example"
        )
    frame = example if isinstance(example, pd.DataFrame) else pd.DataFrame(example)
    return frame.head(rows)


@dataclass
class SmokeTest:
    """Serve the Bento ``tag`` on a free loopback port and compare its predictions with the pyfunc
    model's at ``model_uri`` (labels exactly, floats within ``rel_tol``).

    :meth:`stop` (from another thread: a task's ``on_kill``) stops a server that is up.
    """

    tag: str
    model_uri: str
    columns: list[dict[str, Any]]
    log: Any
    max_batch_size: int = 64
    serve_timeout_s: float = 180.0
    rel_tol: float = 1e-6
    server: ManagedProcess | None = None

    def run(self, sample: pd.DataFrame, shadow: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return ``{status: passed, rows, ready_s}``, or raise :class:`PackagingError` naming the rows
        that differ.

        A shadow must predict, one prediction per row, on the same rows (in process: the served Bento
        answers with the champion alone, and its shadow's scores are only captured).
        """
        import mlflow.pyfunc

        from airflow_mlops_provider.processes import free_port, start_process, wait_http
        from airflow_mlops_provider.serving.capture import ENV as CAPTURE_ENV
        from airflow_mlops_provider.serving.schema import compare_predictions, to_frame, to_json, to_records
        from airflow_mlops_provider.serving.shadow import ENV as SHADOW_ENV

        tag = self.tag
        records = to_records(sample, self.columns)
        expected = to_json(mlflow.pyfunc.load_model(self.model_uri).predict(to_frame(records, self.columns)))
        if shadow is not None:
            _check_shadow_predicts(shadow["model_uri"], records)

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = Path(tempfile.mkdtemp(prefix="bento-smoke-")) / "serve.log"
        command = [sys.executable, "-m", "bentoml", "serve", tag, "--host", "127.0.0.1", "--port", str(port)]
        self.log.info("Smoke test: serving %s at %s (log %s)", tag, url, log_path)
        started = time.monotonic()
        # The smoke test's own requests are not traffic: nothing of them is captured.
        env = {
            **os.environ,
            **bentoml_env(),
            CAPTURE_ENV["enabled"]: "false",
            SHADOW_ENV["canary_share"]: "0",
        }
        if shadow is not None:
            # A shadow is only loaded and scored where capture is on: capture the smoke test's traffic
            # to a throwaway directory, so that the served Bento scores the shadow as it will in service.
            env[CAPTURE_ENV["enabled"]] = "true"
            env[CAPTURE_ENV["uri"]] = str(log_path.parent / "capture")
        self.server = start_process("bentoml-smoke", command, env, log_path)
        try:
            try:
                wait_http(f"{url}/readyz", self.serve_timeout_s, proc=self.server, log_path=log_path)
            except (RuntimeError, TimeoutError) as err:
                raise PackagingError(f"smoke test: the Bento {tag} did not become ready: {err}") from None
            ready_s = time.monotonic() - started
            actual: list[Any] = []
            for start in range(0, len(records), self.max_batch_size):
                actual.extend(
                    post_json(f"{url}/predict", {"rows": records[start : start + self.max_batch_size]})
                )
                if shadow is not None:
                    # Each batch scored before the next is sent: the smoke test's own pace must not
                    # fill the shadow's queue.
                    _check_shadow_scored(url, tag, len(actual), log_path)
        finally:
            self.stop()
            # Errors above already carry the tail of this log.
            shutil.rmtree(log_path.parent, ignore_errors=True)
        mismatches = compare_predictions(expected, actual, rel_tol=self.rel_tol)
        if mismatches:
            raise PackagingError(
                f"smoke test failed: the Bento {tag} answered differently from {self.model_uri} on "
                f"{len(mismatches)} of {len(records)} rows: " + "; ".join(mismatches[:5])
            )
        self.log.info("Smoke test passed: %d rows agree (ready in %.1fs)", len(records), ready_s)
        return {"status": "passed", "rows": len(records), "ready_s": round(ready_s, 1)}

    def stop(self) -> None:
        """Stop the server, when one is up."""
        server, self.server = self.server, None
        if server is not None:
            server.stop()


def _check_shadow_predicts(model_uri: str, records: list[dict[str, Any]]) -> None:
    """Require the shadow model to give one prediction per row of the smoke sample, in process."""
    import mlflow.pyfunc

    from airflow_mlops_provider.serving.schema import to_frame, to_json

    try:
        scored = to_json(
            mlflow.pyfunc.load_model(model_uri).predict(to_frame(records, servable_columns(model_uri)))
        )
    except PackagingError:
        raise
    except Exception as err:
        raise PackagingError(
            f"smoke test: the shadow {model_uri} fails on the sample: {type(err).__name__}: {err}"
        ) from None
    if len(scored) != len(records):
        raise PackagingError(
            f"smoke test: the shadow {model_uri} gave {len(scored)} predictions for {len(records)} rows"
        )


def _check_shadow_scored(url: str, tag: str, rows: int, log_path: Path, wait_s: float = 30.0) -> None:
    """Require the served Bento to have loaded its shadow and scored every smoke-test row."""

    def log_tail() -> str:
        lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
        shadow_lines = [line for line in lines if "shadow" in line.lower() or "Error" in line]
        return "\n".join((shadow_lines or lines)[-15:])

    info = post_json(f"{url}/model_info", {})
    if not (info.get("shadow") or {}).get("scoring"):
        raise PackagingError(
            f"smoke test: the Bento {tag} serves without its shadow (it did not load in the server): "
            f"{info.get('shadow')}; the server's log:\n{log_tail()}"
        )
    deadline = time.monotonic() + wait_s
    while True:
        scored = _metric_sum(url, "mlops_shadow_scored_rows_total")
        failed = _metric_sum(url, "mlops_shadow_dropped_rows_total")
        if scored >= rows:
            return
        if failed or time.monotonic() > deadline:
            raise PackagingError(
                f"smoke test: the Bento {tag}'s shadow scored {scored:.0f} of {rows} rows and dropped "
                f"{failed:.0f} (it raises in the server, or is too slow); the server's log:\n{log_tail()}"
            )
        time.sleep(0.2)


def _metric_sum(url: str, name: str) -> float:
    """The sum of every sample of ``name`` in the server's ``/metrics``."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.split("{", 1)[0].split(" ", 1)[0] == name:
            total += float(line.rsplit(" ", 1)[1])
    return total


def post_json(url: str, body: Any, timeout: float = 60) -> Any:
    """POST ``body`` as JSON and return the decoded answer, or raise with the status and error."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")[:1000]
        raise PackagingError(f"smoke test: POST {url} answered HTTP {err.code}: {detail}") from None
