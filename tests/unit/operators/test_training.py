"""MLflowTrainingOperator's pod: GPUs, scheduling, security and credentials, validated against the schema."""

from __future__ import annotations

import json
import os

import kubernetes_validate
import pytest
from kubernetes.client import ApiClient
from kubernetes.client import models as k8s

from airflow_mlops_provider.exceptions import TrainingError
from airflow_mlops_provider.operators.training import (
    ANNOTATION_RUN_ID,
    ANNOTATION_SCHEDULE_TIMEOUT,
    DEFAULT_GPU_SCHEDULE_TIMEOUT,
    MLflowTrainingOperator,
    explain_pending_pod,
)
from tests.conftest import python_in_subprocess

#: The two newest Kubernetes minor versions kubernetes-validate ships schemas for.
K8S_VERSIONS = sorted(
    {kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()},
    key=lambda v: tuple(int(p) for p in v.split(".")),
)[-2:]
GPU_SELECTOR = {"cloud.google.com/gke-accelerator": "nvidia-l4"}
RUN_ID = "0123456789abcdef0123456789abcdef"
PASSWORD = "s3cr3t-pa55"


@pytest.fixture(autouse=True)
def mlflow_connection(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps({"conn_type": "mlflow", "host": "mlflow.ml.svc", "port": 5000, "schema": "http"}),
    )


def make_operator(**kwargs) -> MLflowTrainingOperator:
    defaults = {
        "task_id": "train",
        "experiment_name": "churn",
        "entrypoint": "airflow_mlops_provider.training.examples:train_sklearn",
        "train_uri": "/data/train.parquet",
        "eval_uri": "/data/eval.parquet",
        "target": "churned",
        "namespace": "ml",
        "runtime": "kubernetes",
    }
    return MLflowTrainingOperator(**{**defaults, **kwargs})


def pod_dict(op: MLflowTrainingOperator, run_id: str | None = RUN_ID) -> dict:
    op.mlflow_run_id = run_id
    return ApiClient().sanitize_for_serialization(op.build_pod_request_obj(dry_run=True))


def base_container(pod: dict) -> dict:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "base")


def assert_restricted(pod: dict) -> None:
    """The checks of the "restricted" Pod Security Standard that apply to this pod."""
    pod_sc = pod["spec"].get("securityContext", {})
    for container in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
        sc = container.get("securityContext", {})
        assert sc.get("allowPrivilegeEscalation") is False, container["name"]
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], container["name"]
        assert set(sc.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, container["name"]
        assert sc.get("runAsUser", pod_sc.get("runAsUser", 1)) != 0
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
        assert seccomp.get("type") in ("RuntimeDefault", "Localhost"), container["name"]
        assert not sc.get("privileged")
    assert not pod["spec"].get("hostNetwork")
    assert not pod["spec"].get("hostPID")


@pytest.mark.parametrize(
    "gpus", [pytest.param(0, id="cpu"), pytest.param(1, id="1gpu"), pytest.param(4, id="4gpu")]
)
@pytest.mark.parametrize(
    "node_selector", [pytest.param(None, id="any-node"), pytest.param(GPU_SELECTOR, id="gpu-selector")]
)
def test_pod_spec_is_valid_and_requests_what_was_asked(gpus, node_selector):
    op = make_operator(
        gpus=gpus,
        gpu_node_selector=node_selector,
        cpu_request="2",
        cpu_limit="4",
        memory_request="4Gi",
        memory_limit="8Gi",
    )
    pod = pod_dict(op)
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)

    container = base_container(pod)
    resources = container["resources"]
    assert resources["requests"]["cpu"] == "2"
    assert resources["limits"]["cpu"] == "4"
    assert resources["requests"]["memory"] == "4Gi"
    assert resources["limits"]["memory"] == "8Gi"
    tolerations = pod["spec"].get("tolerations", [])
    gpu_toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    if gpus:
        assert resources["limits"]["nvidia.com/gpu"] == str(gpus)
        assert resources["requests"]["nvidia.com/gpu"] == str(gpus)
        assert gpu_toleration in tolerations
        assert op.schedule_timeout_seconds == DEFAULT_GPU_SCHEDULE_TIMEOUT
        assert pod["metadata"]["annotations"][ANNOTATION_SCHEDULE_TIMEOUT] == str(
            DEFAULT_GPU_SCHEDULE_TIMEOUT
        )
        assert pod["spec"].get("nodeSelector", {}) == (node_selector or {})
    else:
        assert "nvidia.com/gpu" not in resources["limits"]
        assert "nvidia.com/gpu" not in resources["requests"]
        assert gpu_toleration not in tolerations
        assert ANNOTATION_SCHEDULE_TIMEOUT not in pod["metadata"].get("annotations", {})
        # A GPU node selector applies to GPU pods only.
        assert not pod["spec"].get("nodeSelector")
    assert_restricted(pod)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLFLOW_RUN_ID"] == RUN_ID
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.ml.svc:5000"
    assert pod["metadata"]["annotations"][ANNOTATION_RUN_ID] == RUN_ID
    assert container["command"] == ["python", "-m", "airflow_mlops_provider.training"]
    args = container["args"]
    assert args[args.index("--entrypoint") + 1] == "airflow_mlops_provider.training.examples:train_sklearn"
    assert args[args.index("--target") + 1] == "churned"
    assert pod["spec"]["restartPolicy"] == "Never"


def test_gpu_resource_name_sets_limit_and_toleration_key():
    pod = pod_dict(make_operator(gpus=2, gpu_resource="amd.com/gpu"))
    assert base_container(pod)["resources"]["limits"]["amd.com/gpu"] == "2"
    assert {"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    assert "nvidia.com/gpu" not in json.dumps(pod)


def test_explicit_schedule_timeout_beats_the_gpu_default():
    assert make_operator(gpus=1, schedule_timeout_seconds=42).schedule_timeout_seconds == 42
    # Without GPUs KubernetesPodOperator's own default applies (the startup timeout).
    assert make_operator(gpus=0, startup_timeout_seconds=77).schedule_timeout_seconds == 77


def test_credentials_travel_as_a_secret_reference_never_in_plain_text(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps(
            {
                "conn_type": "mlflow",
                "host": "mlflow.ml.svc",
                "login": "trainer",
                "password": PASSWORD,
                "extra": {"kubernetes_secret_name": "mlflow-credentials", "token": "tok-123456"},
            }
        ),
    )
    pod = pod_dict(make_operator(gpus=1))
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)
    text = json.dumps(pod)
    assert PASSWORD not in text
    assert "tok-123456" not in text
    container = base_container(pod)
    assert {"secretRef": {"name": "mlflow-credentials"}} in container["envFrom"]
    names = {e["name"] for e in container["env"]}
    assert not names & {"MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME"}


def test_secret_argument_beats_the_connection_extra(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps(
            {
                "conn_type": "mlflow",
                "host": "h",
                "password": PASSWORD,
                "extra": {"kubernetes_secret_name": "a"},
            }
        ),
    )
    container = base_container(pod_dict(make_operator(mlflow_secret_name="b")))
    assert container["envFrom"] == [{"secretRef": {"name": "b"}}]


def test_password_without_a_secret_is_refused_for_kubernetes(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps({"conn_type": "mlflow", "host": "mlflow.ml.svc", "login": "u", "password": PASSWORD}),
    )
    with pytest.raises(TrainingError, match="kubernetes_secret_name") as info:
        pod_dict(make_operator())
    assert PASSWORD not in str(info.value)


def test_local_runtime_hands_credentials_to_the_subprocess_env(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps({"conn_type": "mlflow", "host": "mlflow.ml.svc", "login": "u", "password": PASSWORD}),
    )
    op = make_operator(runtime="local")
    op.mlflow_run_id = RUN_ID
    env = op.run_environment(include_credentials=True)
    assert env["MLFLOW_TRACKING_PASSWORD"] == PASSWORD
    assert env["MLFLOW_RUN_ID"] == RUN_ID


def test_user_env_cannot_redirect_the_run_but_can_add_variables():
    op = make_operator(env_vars={"MLFLOW_RUN_ID": "someone-elses", "OMP_NUM_THREADS": "4"})
    env = {e["name"]: e.get("value") for e in base_container(pod_dict(op))["env"]}
    assert env["MLFLOW_RUN_ID"] == RUN_ID
    assert env["OMP_NUM_THREADS"] == "4"


def test_users_own_security_context_is_kept():
    op = make_operator(
        security_context={"runAsUser": 2000, "runAsNonRoot": True},
        container_security_context=k8s.V1SecurityContext(
            read_only_root_filesystem=True, allow_privilege_escalation=False
        ),
    )
    pod = pod_dict(op)
    assert pod["spec"]["securityContext"] == {"runAsUser": 2000, "runAsNonRoot": True}
    assert base_container(pod)["securityContext"] == {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
    }


def test_kubernetes_pod_operator_arguments_pass_through(tmp_path):
    template = tmp_path / "pod.yaml"
    template.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: from-template\n  labels: {team: ml}\n"
        "spec:\n  containers:\n  - name: base\n    image: ignored\n"
        "  volumes:\n  - name: data\n    persistentVolumeClaim: {claimName: training-data}\n"
    )
    op = make_operator(
        gpus=1,
        image="registry.example/trainer:1.2",
        service_account_name="trainer",
        pod_template_file=str(template),
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["gpu"]}]}
                    ]
                }
            }
        },
        on_finish_action="keep_pod",
        deferrable=True,
    )
    pod = pod_dict(op)
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)
    assert base_container(pod)["image"] == "registry.example/trainer:1.2"
    assert pod["spec"]["serviceAccountName"] == "trainer"
    assert pod["metadata"]["labels"]["team"] == "ml"
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "training-data"
    assert pod["spec"]["affinity"]["nodeAffinity"]
    assert op.deferrable is True
    assert op.on_finish_action.value == "keep_pod"


def test_unknown_runtime_is_refused_naming_the_allowed_values():
    with pytest.raises(TrainingError, match=r"runtime 'gpu-cloud' is not supported.*'kubernetes', 'local'"):
        make_operator(runtime="gpu-cloud")


def test_runtime_defaults_to_the_airflow_setting(monkeypatch):
    monkeypatch.setenv("AIRFLOW__MLOPS__TRAINING_RUNTIME", "kubernetes")
    assert make_operator(runtime=None).runtime == "kubernetes"
    monkeypatch.setenv("AIRFLOW__MLOPS__TRAINING_RUNTIME", "local")
    assert make_operator(runtime=None).runtime == "local"
    monkeypatch.setenv("AIRFLOW__MLOPS__TRAINING_RUNTIME", "cluster")
    with pytest.raises(TrainingError, match="'cluster'"):
        make_operator(runtime=None)


def test_training_params_may_arrive_as_rendered_json():
    op = make_operator(training_params='{"max_depth": 3}', seed=11)
    args = op.runner_arguments()
    assert json.loads(args[args.index("--params") + 1]) == {"max_depth": 3}
    assert args[args.index("--seed") + 1] == "11"
    with pytest.raises(TrainingError, match="not JSON"):
        make_operator(training_params="{max_depth").runner_arguments()


TYPED_PARAMS = {"n_estimators": 100, "learning_rate": 0.1, "early_stopping": True, "loss": "log_loss"}


def typed_dag():
    from airflow.sdk import DAG, Param

    return DAG(
        "typed_params",
        schedule=None,
        params={
            "n_estimators": Param(100, type="integer"),
            "learning_rate": Param(0.1, type="number"),
            "early_stopping": Param(True, type="boolean"),
            "loss": Param("log_loss", type="string"),
        },
    )


def template_context(dag, task, conf: dict | None = None, **extra) -> dict:
    """The parts of the task runner's template context that rendering training_params reads."""
    from airflow.sdk.definitions.param import process_params

    return {
        "dag": dag,
        "run_id": "manual__1",
        "params": process_params(dag, task, conf, suppress_exception=False),
        **extra,
    }


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("{{ params.n_estimators }}", 100, id="int"),
        pytest.param("{{params.learning_rate}}", 0.1, id="float-no-spaces"),
        pytest.param("{{ params['early_stopping'] }}", True, id="bool-subscript"),
        pytest.param("{{ params.loss }}", "log_loss", id="string"),
        pytest.param("{{ params.n_estimators }} trees", "100 trees", id="mixed-stays-text"),
        pytest.param("{{ params.n_estimators * 2 }}", "200", id="expression-stays-text"),
        pytest.param("{{ run_id }}", "manual__1", id="other-template-stays-text"),
    ],
)
def test_param_references_in_training_params_keep_the_param_type(template, expected):
    with typed_dag() as dag:
        op = make_operator(training_params={"value": template, "fixed": 3})
    op.render_template_fields(template_context(dag, op))
    assert op.training_params == {"value": expected, "fixed": 3}
    assert type(op.training_params["value"]) is type(expected)


def test_native_params_reach_the_runner_and_the_lineage_tag_as_json_with_their_types():
    from types import SimpleNamespace

    from airflow_mlops_provider.lineage import TAG_TRAINING_PARAMS

    with typed_dag() as dag:
        op = make_operator(training_params={k: f"{{{{ params.{k} }}}}" for k in TYPED_PARAMS})
    # A run's conf overrides a default and keeps its type as well.
    context = template_context(dag, op, {"n_estimators": 250})
    op.render_template_fields(context)
    expected = {**TYPED_PARAMS, "n_estimators": 250}
    args = op.runner_arguments()
    assert json.loads(args[args.index("--params") + 1]) == expected
    ti = SimpleNamespace(dag_id="typed_params", task_id="train", try_number=1)
    tags = op._lineage_tags({**context, "ti": ti})
    recorded = json.loads(tags[TAG_TRAINING_PARAMS])
    assert recorded == expected
    assert {k: type(v) for k, v in recorded.items()} == {
        "n_estimators": int,
        "learning_rate": float,
        "early_stopping": bool,
        "loss": str,
    }


def test_a_mapped_training_task_keeps_the_param_types_too():
    from types import SimpleNamespace

    with typed_dag() as dag:
        mapped = MLflowTrainingOperator.partial(
            task_id="train",
            experiment_name="churn",
            entrypoint="airflow_mlops_provider.training.examples:train_sklearn",
            train_uri="/data/train.parquet",
            eval_uri="/data/eval.parquet",
            target="churned",
            runtime="local",
            training_params={
                "n_estimators": "{{ params.n_estimators }}",
                "label": "v{{ params.n_estimators }}",
            },
        ).expand(seed=[1, 2])
    context = template_context(
        dag,
        mapped,
        ti=SimpleNamespace(map_index=1, task=mapped),
        dag_run=SimpleNamespace(conf={"n_estimators": 7}),
    )
    mapped.render_template_fields(context)
    unmapped = context["task"]
    assert unmapped.seed == 2
    assert unmapped.training_params == {"n_estimators": 7, "label": "v7"}


def test_native_params_still_match_a_version_recorded_with_text_params():
    from types import SimpleNamespace

    from airflow_mlops_provider import lineage
    from airflow_mlops_provider.promotion import trained_version

    # Recorded before params kept their types: the rendered text.
    earlier = SimpleNamespace(
        version="3",
        tags={
            lineage.TAG_TRAINING_PARAMS: json.dumps(
                {"n_estimators": "100", "learning_rate": "0.1", "early_stopping": "True"}
            ),
            lineage.TAG_SEED: "42",
        },
    )
    client = SimpleNamespace(search_model_versions=lambda *args, **kwargs: [earlier])
    native = {"n_estimators": 100, "learning_rate": 0.1, "early_stopping": True}
    assert trained_version(client, "churn", "sha256:abc", native, 42) is earlier
    assert trained_version(client, "churn", "sha256:abc", {**native, "n_estimators": 101}, 42) is None


def test_local_runtime_puts_the_dag_files_folder_first_on_the_subprocess_pythonpath(tmp_path, monkeypatch):
    from types import SimpleNamespace

    seen = tmp_path / "pythonpath.txt"
    dag_folder = tmp_path / "dags"
    monkeypatch.setenv("PYTHONPATH", "/opt/existing")
    op = make_operator(
        runtime="local",
        cmds=["python", "-c", "import os, sys; open(sys.argv[1], 'w').write(os.environ['PYTHONPATH'])"],
        arguments=[str(seen)],
    )
    op.mlflow_run_id = RUN_ID
    op.run_local({"dag": SimpleNamespace(fileloc=str(dag_folder / "churn.py"))})  # type: ignore[typeddict-item]
    assert seen.read_text().split(os.pathsep) == [str(dag_folder), "/opt/existing"]
    # Without a DAG file (a task run outside a DAG) the variable is left as it was.
    op.run_local({})
    assert seen.read_text() == "/opt/existing"


def test_dry_run_prints_the_pod_yaml(capsys):
    import yaml

    make_operator(gpus=1).dry_run()
    out = capsys.readouterr().out
    # Airflow's log lines may share stdout; the YAML starts at its first key.
    pod = yaml.safe_load(out[out.index("api_version:") :])
    assert pod["kind"] == "Pod"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def _pending(conditions=None, waiting=None) -> k8s.V1Pod:
    statuses = (
        [
            k8s.V1ContainerStatus(
                name="base",
                image="reg/x:1",
                image_id="",
                ready=False,
                restart_count=0,
                state=k8s.V1ContainerState(waiting=waiting),
            )
        ]
        if waiting
        else None
    )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="train-abc", namespace="ml"),
        spec=k8s.V1PodSpec(containers=[], node_selector=GPU_SELECTOR),
        status=k8s.V1PodStatus(phase="Pending", conditions=conditions, container_statuses=statuses),
    )


def test_pending_diagnosis_tells_an_unschedulable_gpu_request_from_a_bad_image():
    unschedulable = _pending(
        conditions=[
            k8s.V1PodCondition(
                type="PodScheduled",
                status="False",
                reason="Unschedulable",
                message="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            )
        ]
    )
    message = explain_pending_pod(unschedulable, gpus=4, schedule_timeout=900)
    assert message.startswith("unschedulable GPU request")
    assert "4 nvidia.com/gpu" in message
    assert "Insufficient nvidia.com/gpu" in message
    assert "900s" in message

    bad_image = _pending(
        conditions=[k8s.V1PodCondition(type="PodScheduled", status="True")],
        waiting=k8s.V1ContainerStateWaiting(reason="ErrImagePull", message="manifest unknown"),
    )
    message = explain_pending_pod(bad_image, gpus=4)
    assert message.startswith("image pull failure")
    assert "'reg/x:1'" in message
    assert "manifest unknown" in message

    running = _pending()
    running.status.phase = "Running"
    assert explain_pending_pod(running, gpus=1) is None


def test_pending_diagnosis_reads_events_when_the_status_says_nothing():
    events = [
        k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(name="e"),
            involved_object=k8s.V1ObjectReference(),
            reason="FailedScheduling",
            message="0/1 nodes: untolerated taint",
        )
    ]
    assert explain_pending_pod(_pending(), events, gpus=0).startswith("unschedulable: no node could take pod")


def test_importing_the_operator_loads_no_heavy_library():
    result = python_in_subprocess(
        "import sys, json\n"
        "import airflow_mlops_provider.operators.training\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'mlflow', 'pandas', 'sklearn', 'xgboost', 'numpy'})))"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
