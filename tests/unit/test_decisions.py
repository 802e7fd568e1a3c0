"""The decision log never fails a task, and its summary cells read the recorded steps."""

from __future__ import annotations

from types import SimpleNamespace

from airflow_mlops_provider.decisions import _candidate, _decision, _gates
from airflow_mlops_provider.hooks import MlflowHookMixin


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: object) -> None:
        self.lines.append(message % args)

    warning = info


class Recorder(MlflowHookMixin):
    mlflow_conn_id = "mlflow_default"

    def __init__(self) -> None:
        self.log = Log()


def test_recording_without_a_dag_run_or_a_reachable_mlflow_only_logs(monkeypatch):
    recorder = Recorder()
    recorder.record_decision_step({"dag": None, "run_id": None}, "churn", "drift", {"outcome": "x"})
    assert recorder.log.lines == ["No DAG run to record the drift step of churn under"]
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        '{"conn_type": "mlflow", "host": "127.0.0.1", "port": 9, "schema": "http", "extra": {"max_retries": 0, "request_timeout": 2}}',
    )
    ti = SimpleNamespace(dag_id="d", run_id="r")
    recorder = Recorder()
    recorder.record_decision_step({"ti": ti, "run_id": "r"}, "churn", "drift", {"outcome": "x"})
    (line,) = recorder.log.lines
    assert line.startswith("Could not record the drift step of churn in the decision log: ")


def test_summary_cells_say_what_the_promotion_decided():
    step = {
        "version": "3",
        "decision": "rejected",
        "reasons": ["gate 'no_regression:rmse' failed: observed 61.2, required <= 55.5"],
        "gates": {"threshold:rmse": "passed", "no_regression:rmse": "failed"},
        "metrics": ["rmse"],
        "candidate": {"rmse": 61.2},
        "champion_metrics": {"rmse": 55.0},
        "evaluated_against": "2",
    }
    assert _candidate(step) == "v3 rmse 61.2 vs v2 55"
    assert _gates(step) == "failed: no_regression:rmse"
    assert _decision({"promotion": step}).startswith("rejected: gate 'no_regression:rmse' failed")
    assert (
        _gates({**step, "gates": {"threshold:rmse": "passed", "no_regression:rmse": "skipped"}})
        == "passed 1/2"
    )
    assert _decision({"validation": {"status": "failed"}}) == "not trained"


def test_a_monitoring_window_shows_its_live_metric_and_what_it_scheduled():
    from airflow_mlops_provider.decisions import _live, monitoring_step

    result = {
        "status": "degraded",
        "metric": "roc_auc",
        "version": "2",
        "live": {"metrics": {"roc_auc": {"value": 0.412345, "rows": 2000}}},
        "offline": {"roc_auc": 0.81},
        "rollback": {"recommended": False},
    }
    step = monitoring_step(result)
    assert _live(step) == "degraded: v2 roc_auc 0.4123 vs 0.81 offline, 2000 labelled"
    assert _decision({"monitoring": step}) == "retraining scheduled"
    rolled = monitoring_step({**result, "rollback": {"recommended": True}})
    assert _decision({"monitoring": rolled}) == "retraining scheduled, rollback"
    waiting = monitoring_step({**result, "status": "insufficient_data", "live": {"metrics": {}}})
    assert _live(waiting) == "insufficient_data (0 labelled)"
    assert _decision({"monitoring": {**waiting}}) == "-"
