"""Train a model in a Kubernetes pod (optionally on GPUs) or a local subprocess, tracked in MLflow.

Needs: an ``mlflow`` connection (``mlflow_default``); for the ``kubernetes`` runtime a Kubernetes
connection (``kubernetes_default``) or a kube config, and the trainer image
(``deploy/docker/trainer.Dockerfile``). The runtime defaults to ``[mlops] training_runtime``
(``AIRFLOW__MLOPS__TRAINING_RUNTIME``), itself defaulting to ``local``, so one DAG file runs on a
laptop and on a cluster.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, get_args

from airflow.configuration import conf
from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import PodLaunchFailedException
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.pod_manager import PodLaunchTimeoutException
from airflow.sdk.exceptions import AirflowTaskTimeout, TaskDeferred
from kubernetes.client import models as k8s

from airflow_mlops_provider import __version__, lineage
from airflow_mlops_provider.exceptions import PodSchedulingError, TrainingError
from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID, MlflowHookMixin
from airflow_mlops_provider.openlineage import OpenLineageMixin
from airflow_mlops_provider.operators.training.local import LocalProcess, local_command, local_environment
from airflow_mlops_provider.operators.training.pod import (
    ANNOTATION_RUN_ID,
    ANNOTATION_SCHEDULE_TIMEOUT,
    DEFAULT_GPU_SCHEDULE_TIMEOUT,
    explain_pending_pod,
    resources,
    restricted_container_security_context,
    restricted_pod_security_context,
    schedule_on_gpus,
)
from airflow_mlops_provider.operators.training.run import end_run, fail_stale_runs, finish_run

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context

TrainingRuntime = Literal["kubernetes", "local"]
RUNTIMES: tuple[str, ...] = get_args(TrainingRuntime)

#: The image ``deploy/docker/trainer.Dockerfile`` builds, by the tag deploy/README.md gives it.
DEFAULT_IMAGE = f"airflow-mlops-trainer:{__version__}"
#: The runner inside that image; ``python`` is the worker's own interpreter in the local runtime.
DEFAULT_CMDS = ["python", "-m", "airflow_mlops_provider.training"]
#: Keys under which the run travels through the deferral (KubernetesPodOperator's trigger_kwargs).
EVENT_RUN_ID = "mlflow_run_id"
EVENT_EXPERIMENT_ID = "mlflow_experiment_id"
#: Variables that must point at this task's run, whatever the user's env_vars say.
_RUN_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")
_SECRET_VARIABLES = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
#: A template that is one reference to a DAG param and nothing else: ``{{ params.x }}``, ``{{ params['x'] }}``.
_PARAM_REFERENCE = re.compile(r"\{\{-?\s*params(?:\.([A-Za-z_]\w*)|\[\s*(['\"])(.+?)\2\s*\])\s*-?\}\}")


def default_runtime() -> str:
    """Return ``[mlops] training_runtime`` (env ``AIRFLOW__MLOPS__TRAINING_RUNTIME``), default ``local``."""
    return conf.get("mlops", "training_runtime", fallback="local") or "local"


def validate_runtime(runtime: str) -> TrainingRuntime:
    """Return ``runtime`` if it is a known runtime, else raise naming the allowed values."""
    if runtime not in RUNTIMES:
        raise TrainingError(f"runtime {runtime!r} is not supported; expected one of {list(RUNTIMES)}")
    return runtime  # type: ignore[return-value]


def _param_reference(value: Any) -> str | None:
    """Return ``x`` when ``value`` is exactly the template ``{{ params.x }}``, else ``None``."""
    match = _PARAM_REFERENCE.fullmatch(value) if isinstance(value, str) else None
    return (match.group(1) or match.group(3)) if match else None


def _caused_by(err: BaseException | None, kind: type[BaseException]) -> bool:
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, kind):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


class MLflowTrainingOperator(OpenLineageMixin, MlflowHookMixin, KubernetesPodOperator):
    """Train a model, tracked in MLflow, in a Kubernetes pod or in a local subprocess.

    The operator creates the MLflow run before the pod (or subprocess) starts and tags it with its
    lineage; the process inherits ``MLFLOW_TRACKING_URI``, ``MLFLOW_RUN_ID`` and
    ``MLFLOW_EXPERIMENT_ID`` and logs into that run. Afterwards the operator reads the run back and
    returns ``{run_id, experiment_id, model_uri, metrics}``. A failed pod marks the run FAILED, a
    killed task KILLED; each try has its own run, and a new try marks runs its predecessors left
    RUNNING as FAILED.

    By default the process is ``python -m airflow_mlops_provider.training`` with arguments built from
    ``entrypoint``, ``train_uri``, ``eval_uri``, ``target``, ``training_params`` and ``seed``. Give
    ``cmds``/``arguments`` to run another program in the same environment contract; it must log a
    model to ``MLFLOW_RUN_ID``.

    Every other argument is :class:`KubernetesPodOperator`'s and applies to the ``kubernetes``
    runtime (``image``, ``namespace``, ``service_account_name``, ``affinity``, ``pod_template_file``,
    ``deferrable``, ``on_finish_action``…). The result comes from MLflow, never from the XCom
    sidecar, so ``do_xcom_push`` only says whether the result is pushed.

    :param experiment_name: MLflow experiment, created when absent. (templated)
    :param entrypoint: ``package.module:function`` of the training function. (templated)
    :param train_uri: Training data: CSV or Parquet file, directory or glob. (templated)
    :param eval_uri: Held-out evaluation data, same forms. (templated)
    :param target: Target column. (templated)
    :param training_params: Hyper-parameters for the entrypoint (a dict or a JSON object). A value that
        is exactly ``"{{ params.x }}"`` gets the param's value with its type (int, float, bool…); any
        other template renders to text. (templated)
    :param seed: Random seed; the same data, params and seed give the same model.
    :param code_version: Version of the training code, recorded as lineage. (templated)
    :param git_sha: Git commit of the training code; defaults to ``$MLOPS_GIT_SHA``. (templated)
    :param validation_report_uri: URI of the data-validation report, set as evidence on the run. (templated)
    :param training_profile_uri: URI of the training-data profile, set as evidence on the run. (templated)
    :param validation_status: Outcome of the data validation (``passed``/``warned``), set as evidence on
        the run; the promotion gate refuses a candidate without it. (templated)
    :param run_name: MLflow run name; default ``<task_id>-try<n>``. (templated)
    :param mlflow_conn_id: The ``mlflow`` connection.
    :param mlflow_secret_name: Kubernetes Secret holding the ``MLFLOW_TRACKING_*`` credentials, loaded
        into the pod with ``envFrom``; overrides the connection's ``kubernetes_secret_name`` extra.
    :param runtime: ``kubernetes`` or ``local``; default ``[mlops] training_runtime``, else ``local``.
    :param gpus: Number of GPUs to request (requests and limits).
    :param gpu_resource: Extended resource name of the GPUs; also the key of the tolerated taint.
    :param gpu_node_selector: Node labels a GPU pod must match, e.g. ``{"accelerator": "nvidia-l4"}``.
    :param gpu_schedule_timeout_seconds: How long a GPU pod may wait for a node, unless
        ``schedule_timeout_seconds`` is given; waiting for a GPU node to scale up is normal.
    :param cpu_request: CPU request, e.g. ``"2"``.
    :param cpu_limit: CPU limit.
    :param memory_request: Memory request, e.g. ``"4Gi"``.
    :param memory_limit: Memory limit.
    :param local_cwd: Working directory of the local subprocess; default the worker's. The subprocess
        imports from there and from the DAG file's folder, which goes first on its ``PYTHONPATH``.
    """

    template_fields: Sequence[str] = (
        *KubernetesPodOperator.template_fields,
        "experiment_name",
        "entrypoint",
        "train_uri",
        "eval_uri",
        "target",
        "training_params",
        "code_version",
        "git_sha",
        "validation_report_uri",
        "training_profile_uri",
        "validation_status",
        "run_name",
    )
    template_fields_renderers = {**KubernetesPodOperator.template_fields_renderers, "training_params": "json"}
    ui_color = "#d4e8ff"

    def __init__(
        self,
        *,
        experiment_name: str,
        entrypoint: str,
        train_uri: str,
        eval_uri: str,
        target: str,
        training_params: dict[str, Any] | str | None = None,
        seed: int = 0,
        code_version: str | None = None,
        git_sha: str | None = None,
        validation_report_uri: str | None = None,
        training_profile_uri: str | None = None,
        validation_status: str | None = None,
        run_name: str | None = None,
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        mlflow_secret_name: str | None = None,
        runtime: str | None = None,
        gpus: int = 0,
        gpu_resource: str = "nvidia.com/gpu",
        gpu_node_selector: dict[str, str] | None = None,
        gpu_schedule_timeout_seconds: int = DEFAULT_GPU_SCHEDULE_TIMEOUT,
        cpu_request: str | None = None,
        cpu_limit: str | None = None,
        memory_request: str | None = None,
        memory_limit: str | None = None,
        local_cwd: str | None = None,
        image: str | None = None,
        cmds: list[str] | None = None,
        arguments: list[str] | None = None,
        schedule_timeout_seconds: int | None = None,
        do_xcom_push: bool = True,
        **kwargs: Any,
    ) -> None:
        # KubernetesPodOperator's do_xcom_push means "read the XCom sidecar"; the result here comes
        # from MLflow, so the sidecar stays off and the flag keeps its BaseOperator meaning.
        super().__init__(
            image=image or DEFAULT_IMAGE,
            cmds=cmds or list(DEFAULT_CMDS),
            arguments=arguments,
            schedule_timeout_seconds=schedule_timeout_seconds
            or (gpu_schedule_timeout_seconds if gpus else None),
            do_xcom_push=False,
            **kwargs,
        )
        self.experiment_name = experiment_name
        self.entrypoint = entrypoint
        self.train_uri = train_uri
        self.eval_uri = eval_uri
        self.target = target
        self.training_params = training_params or {}
        self.seed = seed
        self.code_version = code_version
        self.git_sha = git_sha
        self.validation_report_uri = validation_report_uri
        self.training_profile_uri = training_profile_uri
        self.validation_status = validation_status
        self.run_name = run_name
        self.mlflow_conn_id = mlflow_conn_id
        self.mlflow_secret_name = mlflow_secret_name
        self.runtime: TrainingRuntime = validate_runtime(runtime or default_runtime())
        self.gpus = gpus
        self.gpu_resource = gpu_resource
        self.gpu_node_selector = gpu_node_selector or {}
        self.cpu_request = cpu_request
        self.cpu_limit = cpu_limit
        self.memory_request = memory_request
        self.memory_limit = memory_limit
        self.local_cwd = local_cwd
        self.use_runner_arguments = arguments is None
        self.push_result = do_xcom_push
        self.mlflow_run_id: str | None = None
        self.mlflow_experiment_id: str | None = None
        self._local = LocalProcess()
        self._run_killed = False
        self._launch_failure: str | None = None

    # ---- rendering -------------------------------------------------------------------------------

    def _do_render_template_fields(
        self,
        parent: Any,
        template_fields: Iterable[str],
        context: Context,
        jinja_env: jinja2.Environment,
        seen_oids: set[int],
    ) -> None:
        """Render as Airflow does, then give each ``{{ params.x }}`` of ``training_params`` its Param's value.

        Jinja renders to text, so ``"{{ params.n_estimators }}"`` would reach the entrypoint as
        ``"100"``; a value that is exactly one such reference gets the param's own value (int, float,
        bool…) instead. Any other template stays the text it renders to.
        """
        # Hooked here rather than in render_template_fields, as KubernetesPodOperator does for
        # env_vars: a mapped task renders through this method of its unmapped task.
        template_fields = tuple(template_fields)
        references: dict[str, str] = {}
        if parent is self and "training_params" in template_fields and isinstance(self.training_params, dict):
            references = {
                key: name for key, value in self.training_params.items() if (name := _param_reference(value))
            }
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
        params = context.get("params") or {}
        native = {key: params[name] for key, name in references.items() if name in params}
        if native and isinstance(self.training_params, dict):
            self.training_params = {**self.training_params, **native}

    # ---- what the process gets -------------------------------------------------------------------

    def parsed_training_params(self) -> dict[str, Any]:
        """Return ``training_params`` as a dict (it may have been rendered from a JSON string)."""
        params = self.training_params
        if isinstance(params, str):
            try:
                params = json.loads(params)
            except json.JSONDecodeError as err:
                raise TrainingError(f"training_params {params!r} is not JSON: {err}") from None
        if not isinstance(params, dict):
            raise TrainingError(f"training_params must be a JSON object, got {type(params).__name__}")
        return params

    def runner_arguments(self) -> list[str]:
        """Return the arguments of ``python -m airflow_mlops_provider.training`` for this task."""
        if not self.use_runner_arguments:
            return list(self.arguments)
        return [
            "--entrypoint",
            self.entrypoint,
            "--train-uri",
            self.train_uri,
            "--eval-uri",
            self.eval_uri,
            "--target",
            self.target,
            "--params",
            json.dumps(self.parsed_training_params(), sort_keys=True),
            "--seed",
            str(self.seed),
        ]

    @cached_property
    def kubernetes_secret_name(self) -> str | None:
        """The Secret with the MLflow credentials: the argument, else the connection's extra."""
        if self.mlflow_secret_name:
            return self.mlflow_secret_name
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.mlflow_hook.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            return None
        return conn.extra_dejson.get("kubernetes_secret_name") or None

    def run_environment(self, *, include_credentials: bool) -> dict[str, str]:
        """Return the variables of the environment contract: the hook's ``MLFLOW_*`` plus this run."""
        env = self.mlflow_hook.env(include_credentials=include_credentials)
        env["MLFLOW_RUN_ID"] = self.mlflow_run_id or "(set when the task runs)"
        if self.mlflow_experiment_id:
            env["MLFLOW_EXPERIMENT_ID"] = self.mlflow_experiment_id
        return env

    def refuse_plain_text_credentials(self) -> None:
        """Raise unless the pod can get the MLflow credentials without them in its spec."""
        settings = self.mlflow_hook.settings
        if not self.kubernetes_secret_name and (settings.password or settings.token):
            raise TrainingError(
                f"MLflow connection {self.mlflow_conn_id!r} has a password or token, and the kubernetes "
                f"runtime will not write it into the pod spec in plain text: store it in a Kubernetes "
                f"Secret (keys MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD or "
                f"MLFLOW_TRACKING_TOKEN) and name it in the connection's 'kubernetes_secret_name' extra "
                f"or the mlflow_secret_name argument"
            )

    def _pod_environment(self) -> tuple[list[k8s.V1EnvVar], list[k8s.V1EnvFromSource]]:
        self.refuse_plain_text_credentials()
        secret = self.kubernetes_secret_name
        settings = self.mlflow_hook.settings
        env = self.run_environment(include_credentials=False)
        if settings.username and not secret:
            env["MLFLOW_TRACKING_USERNAME"] = settings.username
        env_from = [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=secret))] if secret else []
        return [k8s.V1EnvVar(name=k, value=v) for k, v in env.items()], env_from

    def build_pod_request_obj(self, context: Context | None = None, *, dry_run: bool = False) -> k8s.V1Pod:
        """Build KubernetesPodOperator's pod, then add resources, GPU scheduling, security and the run."""
        pod = super().build_pod_request_obj(context, dry_run=dry_run)
        spec = pod.spec
        container = next(c for c in spec.containers if c.name == self.base_container_name)
        if self.use_runner_arguments:
            container.args = self.runner_arguments()
        container.resources = resources(
            container.resources,
            cpu_request=self.cpu_request,
            cpu_limit=self.cpu_limit,
            memory_request=self.memory_request,
            memory_limit=self.memory_limit,
            gpus=self.gpus,
            gpu_resource=self.gpu_resource,
        )
        annotations = pod.metadata.annotations = dict(pod.metadata.annotations or {})
        if self.mlflow_run_id:
            annotations[ANNOTATION_RUN_ID] = self.mlflow_run_id
        if self.gpus:
            schedule_on_gpus(spec, self.gpu_resource, self.gpu_node_selector)
            annotations[ANNOTATION_SCHEDULE_TIMEOUT] = str(self.schedule_timeout_seconds)
        if not spec.security_context:
            spec.security_context = restricted_pod_security_context()
        if container.security_context is None:
            container.security_context = restricted_container_security_context()
        run_env, env_from = self._pod_environment()
        user_env = [e for e in container.env or [] if e.name not in _RUN_VARIABLES]
        user_names = {e.name for e in user_env}
        container.env = [e for e in run_env if e.name not in user_names] + user_env
        container.env_from = [*(container.env_from or []), *env_from] or None
        return pod

    # ---- the run ---------------------------------------------------------------------------------

    def _lineage_tags(self, context: Context) -> dict[str, str]:
        ti = context["ti"]
        tags: dict[str, Any] = {
            lineage.TAG_DAG_ID: ti.dag_id,
            lineage.TAG_DAG_RUN_ID: context["run_id"],
            lineage.TAG_TASK_ID: ti.task_id,
            lineage.TAG_TRY_NUMBER: ti.try_number,
            lineage.TAG_DATA_URI: self.train_uri,
            lineage.TAG_EVAL_DATA_URI: self.eval_uri,
            lineage.TAG_ENTRYPOINT: self.entrypoint,
            lineage.TAG_SEED: self.seed,
            lineage.TAG_RUNTIME: self.runtime,
            lineage.TAG_CODE_VERSION: self.code_version,
            lineage.TAG_GIT_SHA: self.git_sha or os.environ.get("MLOPS_GIT_SHA"),
            lineage.TAG_IMAGE: self.image if self.runtime == "kubernetes" else None,
            lineage.TAG_VALIDATION_REPORT_URI: self.validation_report_uri,
            lineage.TAG_TRAINING_PROFILE_URI: self.training_profile_uri,
            lineage.TAG_VALIDATION_STATUS: self.validation_status,
            lineage.TAG_TRAINING_PARAMS: json.dumps(self.parsed_training_params(), sort_keys=True),
            "mlflow.source.name": f"{ti.dag_id}.{ti.task_id}",
        }
        for tag, uri in (
            (lineage.TAG_DATA_FINGERPRINT, self.train_uri),
            (lineage.TAG_EVAL_DATA_FINGERPRINT, self.eval_uri),
        ):
            try:
                tags[tag] = lineage.data_fingerprint(uri)
            except (OSError, ValueError):
                # Data the worker cannot see (a volume of the pod, object storage): the runner
                # fingerprints it where it can read it.
                self.log.info("Data %s is not readable here; the runner will fingerprint it", uri)
        return {k: str(v) for k, v in tags.items() if v is not None and v != ""}

    def start_run(self, context: Context) -> str:
        """Create this try's MLflow run with its lineage; mark runs of earlier tries left RUNNING FAILED."""
        hook = self.mlflow_hook
        experiment_id = hook.get_or_create_experiment(self.experiment_name)
        client = hook.get_client()
        tags = self._lineage_tags(context)
        fail_stale_runs(client, experiment_id, tags, self.log)
        ti = context["ti"]
        run = client.create_run(
            experiment_id, tags=tags, run_name=self.run_name or f"{ti.task_id}-try{ti.try_number}"
        )
        self.mlflow_run_id, self.mlflow_experiment_id = run.info.run_id, experiment_id
        self.log.info(
            "MLflow run %s in experiment %r (%s) at %s",
            run.info.run_id,
            self.experiment_name,
            experiment_id,
            hook.tracking_uri,
        )
        ti.xcom_push(key=EVENT_RUN_ID, value=run.info.run_id)
        return run.info.run_id

    def end_run(self, status: Literal["FAILED", "KILLED"], reason: str) -> None:
        """Mark the run ``status`` with ``reason`` unless it already ended so; log, never raise."""
        if not self.mlflow_run_id:
            return
        try:
            client = self.mlflow_hook.get_client()
        except Exception:
            self.log.exception("Could not mark MLflow run %s %s", self.mlflow_run_id, status)
            return
        end_run(client, self.mlflow_run_id, status, reason, self.log)

    def collect_result(self) -> dict[str, Any]:
        """Read the finished run back; fail when it logged no model."""
        assert self.mlflow_run_id is not None
        result = finish_run(self.mlflow_hook.get_client(), self.mlflow_run_id, self.log)
        self.record_lineage(inputs=[self.train_uri, self.eval_uri], outputs=[result["model_uri"]])
        return result

    # ---- execution -------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any] | None:
        if self.runtime == "kubernetes":
            # Before the run exists: a task that cannot start should leave no run behind.
            self.refuse_plain_text_credentials()
        self.start_run(context)
        if self.runtime == "local":
            return self._supervise(lambda: self.run_local(context))
        self.trigger_kwargs = {
            **(self.trigger_kwargs or {}),
            EVENT_RUN_ID: self.mlflow_run_id,
            EVENT_EXPERIMENT_ID: self.mlflow_experiment_id,
        }
        return self._supervise(lambda: super(MLflowTrainingOperator, self).execute(context))

    def trigger_reentry(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the trigger: finish the pod as KubernetesPodOperator does, then the run."""
        self.mlflow_run_id = event.get(EVENT_RUN_ID)
        self.mlflow_experiment_id = event.get(EVENT_EXPERIMENT_ID)
        # A re-deferral builds its trigger from trigger_kwargs: the run must travel with it again.
        self.trigger_kwargs = {
            **(self.trigger_kwargs or {}),
            EVENT_RUN_ID: self.mlflow_run_id,
            EVENT_EXPERIMENT_ID: self.mlflow_experiment_id,
        }
        if event.get("status") in ("timeout", "error", "failed"):
            self._launch_failure = self._diagnose(event.get("name"), event.get("namespace"))
        if event.get("status") == "timeout" and "execution_timeout" in str(event.get("message")):
            # The trigger's way of saying AirflowTaskTimeout. KubernetesPodOperator would now follow
            # the logs of a pod that is still running; stop it instead, as on_kill would.
            self._run_killed = True
            self._delete_pod_after_deadline(event.get("name"), event.get("namespace"))
            reason = f"the task ran past its execution_timeout: {event.get('message')}"
            self.end_run("KILLED", reason)
            raise TrainingError(reason)
        return self._supervise(lambda: super(MLflowTrainingOperator, self).trigger_reentry(context, event))

    def _delete_pod_after_deadline(self, name: str | None, namespace: str | None) -> None:
        if not name or not namespace or self.on_kill_action.value == "keep_pod":
            return
        try:
            self.pod_manager.delete_pod(self.hook.get_pod(name, namespace))
            self.log.info("Deleted pod %s/%s", namespace, name)
        except Exception as err:
            self.log.warning("Could not delete pod %s/%s: %s", namespace, name, err)

    def _supervise(self, work: Any) -> dict[str, Any] | None:
        try:
            work()
        except TaskDeferred:
            raise
        except BaseException as err:
            if _caused_by(err, AirflowTaskTimeout):
                # KubernetesPodOperator's cleanup may have replaced the timeout with its own error.
                self._run_killed = True
                self.end_run("KILLED", "the task ran past its execution_timeout")
                raise
            reason = self._launch_failure or f"{type(err).__name__}: {err}"
            if not self._run_killed:
                self.end_run("FAILED", reason)
            if self._launch_failure:
                raise PodSchedulingError(self._launch_failure) from err
            raise
        result = self.collect_result()
        self.do_xcom_push = self.push_result
        return result

    def await_pod_start(self, pod: k8s.V1Pod) -> None:
        try:
            super().await_pod_start(pod)
        except (PodLaunchTimeoutException, PodLaunchFailedException):
            self._launch_failure = self._diagnose(pod.metadata.name, pod.metadata.namespace)
            raise

    def _diagnose(self, name: str | None, namespace: str | None) -> str | None:
        if not name or not namespace:
            return None
        try:
            pod = self.client.read_namespaced_pod(name, namespace)
            events = self.client.list_namespaced_event(
                namespace, field_selector=f"involvedObject.name={name}"
            ).items
        except Exception as err:
            self.log.warning("Could not read pod %s/%s to say why it did not start: %s", namespace, name, err)
            return None
        return explain_pending_pod(
            pod,
            [e for e in events if e.involved_object is None or e.involved_object.name == name],
            gpus=self.gpus,
            gpu_resource=self.gpu_resource,
            schedule_timeout=self.schedule_timeout_seconds,
        )

    def run_local(self, context: Context) -> None:
        """Run the container's command as a subprocess of the worker, with the same environment."""
        fileloc = getattr(context.get("dag"), "fileloc", None)
        env = local_environment(
            os.environ, self.run_environment(include_credentials=True), self.env_vars, _RUN_VARIABLES, fileloc
        )
        command = local_command(self.cmds, self.runner_arguments())
        self.log.info("Running locally: %s", " ".join(command))
        code = self._local.run(command, env, self.local_cwd, self.log)
        if self._run_killed:
            raise TrainingError(f"the training process was killed (exit status {code})")
        if code != 0:
            raise TrainingError(f"the training process exited with status {code}; its output is above")

    def on_kill(self) -> None:
        self._run_killed = True
        try:
            if self.runtime == "local":
                self._local.stop()
            else:
                super().on_kill()
        finally:
            # Killing the process first: marking the run before would let it log into a KILLED run.
            self.end_run("KILLED", "the task was killed")

    def dry_run(self) -> None:
        """Print the pod YAML this task would create (without the run id, which exists only then)."""
        if self.runtime == "local":
            self.log.info("runtime is 'local': this task would run a subprocess; the pod it would run:")
        super().dry_run()


__all__ = ["DEFAULT_IMAGE", "RUNTIMES", "MLflowTrainingOperator", "default_runtime", "validate_runtime"]
