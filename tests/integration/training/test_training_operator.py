"""MLflowTrainingOperator end to end: a Kubernetes API emulator, a stand-in kubelet, a real MLflow server.

The operator runs for real (sync, and deferrable with its trigger run to completion in-process); the
pods' commands run as local processes and log into the MLflow server over HTTP.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops_provider import lineage
from airflow_mlops_provider.exceptions import PodSchedulingError, TrainingError
from airflow_mlops_provider.lineage import TAG_ERROR, TAG_TRAINING_PARAMS
from airflow_mlops_provider.operators.training import MLflowTrainingOperator
from tests.integration.training.conftest import UNPULLABLE_REGISTRY, Cluster

pytestmark = [
    pytest.mark.integration,
    # Loading a skops model in a process that imported Airflow makes skops walk Airflow's deprecated
    # module attributes: a thousand warnings about Airflow, none about this code.
    pytest.mark.filterwarnings("ignore::airflow.utils.deprecation_tools.DeprecatedImportWarning"),
]

ENTRYPOINT = "airflow_mlops_provider.training.examples:train_sklearn"
PARAMS = {"n_estimators": 40, "max_depth": 2, "learning_rate": 0.2}
SEED = 5
DAG_ID = "churn_training"
SLEEPER = ["python", "-c", "import time; print('training...', flush=True); time.sleep(120)"]


class FakeTaskInstance:
    """The parts of a task instance the operator touches, with the XComs it pushed."""

    def __init__(self, task_id: str, try_number: int) -> None:
        self.dag_id = DAG_ID
        self.task_id = task_id
        self.try_number = try_number
        self.map_index = -1
        self.start_date = datetime.datetime.now(tz=datetime.UTC)
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def make_context(task_id: str = "train", try_number: int = 1, run_id: str | None = None) -> dict[str, Any]:
    ti = FakeTaskInstance(task_id, try_number)
    return {
        "ti": ti,
        "task_instance": ti,
        "run_id": run_id or f"manual__{uuid.uuid4().hex[:8]}",
        "dag": SimpleNamespace(dag_id=DAG_ID),
    }


@pytest.fixture(scope="module")
def connections(mlflow_server, cluster: Cluster) -> Iterator[Cluster]:
    """``mlflow_default`` is the MLflow server, ``kubernetes_default`` the emulator, for the module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("KUBECONFIG", raising=False)
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_server.conn_uri())
        mp.setenv(
            "AIRFLOW_CONN_KUBERNETES_DEFAULT",
            json.dumps(
                {"conn_type": "kubernetes", "extra": {"kube_config": json.dumps(cluster.kube_config())}}
            ),
        )
        yield cluster


@pytest.fixture(scope="module")
def client(connections):
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    return MlflowHook().get_client()


def namespace() -> str:
    return f"ml-{uuid.uuid4().hex[:8]}"


def operator_factory(churn_data, ns: str, **kwargs: Any) -> Callable[[], MLflowTrainingOperator]:
    arguments = {
        "task_id": "train",
        "experiment_name": "churn-integration",
        "entrypoint": ENTRYPOINT,
        "train_uri": str(churn_data["train"]),
        "eval_uri": str(churn_data["eval"]),
        "target": "churned",
        "training_params": PARAMS,
        "seed": SEED,
        "code_version": "1.4.0",
        "git_sha": "0f3c2a1",
        "validation_report_uri": "file:///evidence/validation.json",
        "training_profile_uri": "file:///evidence/profile.bin",
        "validation_status": "warned",
        "runtime": "kubernetes",
        "namespace": ns,
        "image": "airflow-mlops-trainer:test",
        "startup_check_interval_seconds": 1,
        "base_container_status_polling_interval": 0.2,
        "poll_interval": 0.5,
        **kwargs,
    }
    return lambda: MLflowTrainingOperator(**arguments)


async def _first_event(trigger: Any) -> Any:
    async for event in trigger.run():
        return event
    raise AssertionError("the trigger ended without an event")


def run_task(
    make_operator: Callable[[], MLflowTrainingOperator],
    context: dict[str, Any],
    used: list[MLflowTrainingOperator] | None = None,
) -> Any:
    """Execute like the task runner does, resuming a deferred task on a fresh operator with the event.

    The operators that ran go into ``used``: the task runner pushes the result to XCom when the last
    one's ``do_xcom_push`` is true.
    """
    from airflow.sdk.exceptions import TaskDeferred

    used = [] if used is None else used
    used.append(make_operator())
    try:
        return used[-1].execute(context)
    except TaskDeferred as deferred:
        classpath, kwargs = deferred.trigger.serialize()
        module, _, name = classpath.rpartition(".")
        trigger = getattr(importlib.import_module(module), name)(**kwargs)
        event = asyncio.run(_first_event(trigger))
        used.append(make_operator())
        return getattr(used[-1], deferred.method_name)(context, event=event.payload)


@pytest.fixture(scope="module")
def kubernetes_training(connections, churn_data) -> dict[str, Any]:
    """One successful sync training on the emulator, shared by the tests that compare against it."""
    ns = namespace()
    context = make_context()
    used: list[MLflowTrainingOperator] = []
    result = run_task(operator_factory(churn_data, ns), context, used)
    return {"result": result, "context": context, "namespace": ns, "operator": used[-1]}


def eventually(condition: Callable[[], bool], timeout: float = 15) -> bool:
    """Whether ``condition`` holds within ``timeout`` seconds (the kubelet stand-in polls)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def assert_one_pod_per_try_and_none_left(cluster: Cluster, ns: str, tries: int = 1) -> None:
    assert len(cluster.pods_created_in(ns)) == tries
    assert cluster.live_pods(ns) == []


def assert_trained_run(client, result: dict[str, Any], churn_data, runtime: str) -> Any:
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert result["experiment_id"] == run.info.experiment_id
    assert result["model_uri"].startswith("models:/")
    assert run.data.params["n_estimators"] == "40"
    assert run.data.params["seed"] == str(SEED)
    assert result["metrics"] == run.data.metrics
    # Held-out metrics of a real model on learnable data: far better than chance, and consistent.
    assert run.data.metrics["roc_auc"] > 0.8
    assert 0.7 < run.data.metrics["accuracy"] <= 1.0
    assert run.data.metrics["log_loss"] > 0
    assert run.data.metrics["eval_rows"] == 150
    tags = run.data.tags
    assert tags[lineage.TAG_DAG_ID] == DAG_ID
    assert tags[lineage.TAG_TASK_ID] == "train"
    assert tags[lineage.TAG_TRY_NUMBER] == "1"
    assert tags[lineage.TAG_RUNTIME] == runtime
    assert tags[lineage.TAG_ENTRYPOINT] == ENTRYPOINT
    assert tags[lineage.TAG_SEED] == str(SEED)
    assert tags[lineage.TAG_CODE_VERSION] == "1.4.0"
    assert tags[lineage.TAG_GIT_SHA] == "0f3c2a1"
    assert tags[lineage.TAG_DATA_FINGERPRINT] == lineage.data_fingerprint(churn_data["train"])
    assert tags[lineage.TAG_EVAL_DATA_FINGERPRINT] == lineage.data_fingerprint(churn_data["eval"])
    assert tags[lineage.TAG_VALIDATION_REPORT_URI] == "file:///evidence/validation.json"
    assert tags[lineage.TAG_TRAINING_PROFILE_URI] == "file:///evidence/profile.bin"
    assert tags[lineage.TAG_VALIDATION_STATUS] == "warned"
    assert json.loads(tags[TAG_TRAINING_PARAMS]) == PARAMS
    assert tags["mlops.env.python"]
    assert tags["mlops.env.gpu_count"] == "0"
    return run


def test_sync_training_pod_logs_params_metrics_and_model_to_mlflow(
    kubernetes_training, client, churn_data, cluster
):
    import mlflow
    import pandas as pd

    result = kubernetes_training["result"]
    assert kubernetes_training["context"]["ti"].xcoms["mlflow_run_id"] == result["run_id"]
    assert kubernetes_training["operator"].do_xcom_push is True
    run = assert_trained_run(client, result, churn_data, "kubernetes")
    assert run.data.tags[lineage.TAG_IMAGE] == "airflow-mlops-trainer:test"
    model = mlflow.sklearn.load_model(result["model_uri"])
    eval_frame = pd.read_parquet(churn_data["eval"])
    assert len(model.predict(eval_frame.drop(columns=["churned"]))) == 150
    assert_one_pod_per_try_and_none_left(cluster, kubernetes_training["namespace"])


def test_deferrable_training_resumes_on_a_fresh_operator_and_finds_its_run(connections, client, churn_data):
    ns = namespace()
    context = make_context()
    make_operator = operator_factory(churn_data, ns, deferrable=True)
    used: list[MLflowTrainingOperator] = []
    result = run_task(make_operator, context, used)
    assert len(used) == 2, "the task did not defer"
    assert used[-1].do_xcom_push is True
    assert context["ti"].xcoms["mlflow_run_id"] == result["run_id"]
    assert_trained_run(client, result, churn_data, "kubernetes")
    assert_one_pod_per_try_and_none_left(connections, ns)


def test_failing_pod_fails_the_task_and_marks_the_run_failed(connections, client, churn_data):
    from airflow.sdk.exceptions import AirflowException

    ns = namespace()
    context = make_context()
    with pytest.raises(AirflowException):
        run_task(operator_factory(churn_data, ns, target="no_such_column"), context)
    run = client.get_run(context["ti"].xcoms["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert "'no_such_column'" in run.data.tags[TAG_ERROR]
    assert_one_pod_per_try_and_none_left(connections, ns)


def test_pod_exiting_zero_without_a_model_fails_and_a_retry_gets_a_fresh_run(connections, client, churn_data):
    ns = namespace()
    make_operator = operator_factory(
        churn_data, ns, cmds=["python", "-c", "print('forgot to log a model')"], arguments=[]
    )
    run_ids = []
    for try_number in (1, 2):
        context = make_context(try_number=try_number, run_id="scheduled__retry")
        with pytest.raises(TrainingError, match="has no logged model"):
            run_task(make_operator, context)
        run_ids.append(context["ti"].xcoms["mlflow_run_id"])
    assert run_ids[0] != run_ids[1]
    for run_id, try_number in zip(run_ids, (1, 2), strict=True):
        run = client.get_run(run_id)
        assert run.info.status == "FAILED"
        assert run.data.tags[lineage.TAG_TRY_NUMBER] == str(try_number)
    assert_one_pod_per_try_and_none_left(connections, ns, tries=2)


@pytest.mark.parametrize("deferrable", [pytest.param(False, id="sync"), pytest.param(True, id="deferrable")])
@pytest.mark.parametrize(
    ("pod_kwargs", "expected"),
    [
        pytest.param(
            {"gpus": 2}, r"^unschedulable GPU request: .*2 nvidia\.com/gpu.*Insufficient", id="no-gpu-node"
        ),
        pytest.param(
            {"image": f"{UNPULLABLE_REGISTRY}trainer:0"},
            r"^image pull failure: .*registry\.invalid",
            id="bad-image",
        ),
    ],
)
def test_pending_pod_fails_with_the_reason_it_never_started(
    connections, client, churn_data, deferrable, pod_kwargs, expected
):
    ns = namespace()
    context = make_context()
    make_operator = operator_factory(
        churn_data,
        ns,
        deferrable=deferrable,
        schedule_timeout_seconds=3,
        startup_timeout_seconds=3,
        **pod_kwargs,
    )
    with pytest.raises(PodSchedulingError, match=expected):
        run_task(make_operator, context)
    run = client.get_run(context["ti"].xcoms["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert run.data.tags[TAG_ERROR].split(":")[0] == expected.lstrip("^").split(":")[0]
    assert_one_pod_per_try_and_none_left(connections, ns)


def test_killed_task_deletes_the_pod_and_marks_the_run_killed(connections, client, churn_data):
    ns = namespace()
    context = make_context()
    operator = operator_factory(churn_data, ns, cmds=SLEEPER, arguments=[])()
    errors: list[BaseException] = []

    def execute() -> None:
        try:
            operator.execute(context)
        except BaseException as err:
            errors.append(err)

    worker = threading.Thread(target=execute)
    worker.start()
    pod = connections.wait_running(ns)
    operator.on_kill()
    worker.join(60)
    assert not worker.is_alive()
    assert errors, "the killed task returned normally"
    assert eventually(lambda: pod.deleted_while_running)
    assert pod.process is not None
    assert eventually(lambda: pod.process.poll() is not None)
    assert client.get_run(context["ti"].xcoms["mlflow_run_id"]).info.status == "KILLED"
    assert_one_pod_per_try_and_none_left(connections, ns)


def test_deferred_task_past_its_execution_timeout_deletes_the_pod_and_marks_the_run_killed(
    connections, client, churn_data
):
    ns = namespace()
    context = make_context()
    make_operator = operator_factory(
        churn_data,
        ns,
        cmds=SLEEPER,
        arguments=[],
        deferrable=True,
        execution_timeout=datetime.timedelta(seconds=6),
    )
    with pytest.raises(Exception, match="execution_timeout"):
        run_task(make_operator, context)
    assert client.get_run(context["ti"].xcoms["mlflow_run_id"]).info.status == "KILLED"
    pod = next(p for (n, _), p in connections.pods.items() if n == ns)
    assert eventually(lambda: pod.deleted_while_running)
    assert_one_pod_per_try_and_none_left(connections, ns)


def test_local_runtime_produces_an_equivalent_run(kubernetes_training, client, churn_data):
    context = make_context()
    result = run_task(operator_factory(churn_data, "unused", runtime="local"), context)
    assert context["ti"].xcoms["mlflow_run_id"] == result["run_id"]
    local = assert_trained_run(client, result, churn_data, "local")
    remote = client.get_run(kubernetes_training["result"]["run_id"])
    assert lineage.TAG_IMAGE not in local.data.tags
    assert local.data.params == remote.data.params
    # Same data, params and seed in the same environment contract: the same held-out evaluation.
    held_out = ("roc_auc", "accuracy", "log_loss", "f1")
    assert {k: local.data.metrics[k] for k in held_out} == {k: remote.data.metrics[k] for k in held_out}


def test_retraining_from_recorded_lineage_gives_identical_predictions(
    kubernetes_training, client, churn_data
):
    import mlflow
    import numpy as np
    import pandas as pd

    from airflow_mlops_provider.training.runner import RunnerConfig, train

    run = client.get_run(kubernetes_training["result"]["run_id"])
    tags = run.data.tags
    # The lineage must still describe the data on disk, or the retrain would prove nothing.
    assert lineage.data_fingerprint(tags[lineage.TAG_DATA_URI]) == tags[lineage.TAG_DATA_FINGERPRINT]
    config = RunnerConfig(
        entrypoint=tags[lineage.TAG_ENTRYPOINT],
        train_uri=tags[lineage.TAG_DATA_URI],
        eval_uri=tags[lineage.TAG_EVAL_DATA_URI],
        target="churned",
        params=json.loads(tags[TAG_TRAINING_PARAMS]),
        seed=int(tags[lineage.TAG_SEED]),
    )
    features = pd.read_parquet(tags[lineage.TAG_EVAL_DATA_URI]).drop(columns=["churned"])
    logged = mlflow.sklearn.load_model(kubernetes_training["result"]["model_uri"])
    retrained = train(config).model
    np.testing.assert_array_equal(retrained.predict_proba(features), logged.predict_proba(features))
    # The seed matters (the trees subsample): another seed gives another model.
    other = train(RunnerConfig(**{**config.__dict__, "seed": config.seed + 1})).model
    assert not np.array_equal(other.predict_proba(features), logged.predict_proba(features))


def test_killed_local_task_stops_its_process_and_marks_the_run_killed(
    connections, client, churn_data, tmp_path
):
    import time

    marker = tmp_path / "started"
    context = make_context()
    operator = operator_factory(
        churn_data,
        "unused",
        runtime="local",
        cmds=[
            "python",
            "-c",
            f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(120)",
        ],
        arguments=[],
    )()
    errors: list[BaseException] = []

    def execute() -> None:
        try:
            operator.execute(context)
        except BaseException as err:
            errors.append(err)

    worker = threading.Thread(target=execute)
    worker.start()
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the local training process never started"
    started = time.monotonic()
    operator.on_kill()
    worker.join(30)
    assert not worker.is_alive()
    assert time.monotonic() - started < 15
    assert isinstance(errors[0], TrainingError)
    assert "killed" in str(errors[0])
    assert operator._local.process is not None
    assert operator._local.process.poll() is not None
    assert client.get_run(context["ti"].xcoms["mlflow_run_id"]).info.status == "KILLED"


def test_a_new_try_marks_runs_its_predecessors_left_running_failed(connections, client, churn_data):
    make_operator = operator_factory(churn_data, "unused", runtime="local")
    first = make_operator().start_run(make_context(try_number=1, run_id="scheduled__stale"))
    other_dag_run = make_operator().start_run(make_context(try_number=1, run_id="scheduled__other"))
    second = make_operator().start_run(make_context(try_number=2, run_id="scheduled__stale"))
    assert client.get_run(first).info.status == "FAILED"
    assert "superseded" in client.get_run(first).data.tags[TAG_ERROR]
    assert client.get_run(second).info.status == "RUNNING"
    assert client.get_run(other_dag_run).info.status == "RUNNING"
    for run_id in (second, other_dag_run):
        client.set_terminated(run_id, status="KILLED")
