"""The training pod: what the operator adds to KubernetesPodOperator's pod, and why one never started."""

from __future__ import annotations

from collections.abc import Sequence

from kubernetes.client import models as k8s

#: GPU nodes often scale up from zero; a GPU pod gets this long to be scheduled unless told otherwise.
DEFAULT_GPU_SCHEDULE_TIMEOUT = 900
#: The non-root user of the trainer image.
TRAINER_UID = 10001
#: Pod annotations carrying the run id and the scheduling timeout, for whoever inspects the pod.
ANNOTATION_RUN_ID = "mlops.airflow.apache.org/mlflow-run-id"
ANNOTATION_SCHEDULE_TIMEOUT = "mlops.airflow.apache.org/schedule-timeout-seconds"
_IMAGE_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")


def restricted_pod_security_context() -> k8s.V1PodSecurityContext:
    """Return a pod security context that passes the "restricted" Pod Security Standard."""
    return k8s.V1PodSecurityContext(
        run_as_non_root=True,
        run_as_user=TRAINER_UID,
        run_as_group=TRAINER_UID,
        fs_group=TRAINER_UID,
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def restricted_container_security_context() -> k8s.V1SecurityContext:
    """Return a container security context that passes the "restricted" Pod Security Standard."""
    return k8s.V1SecurityContext(
        allow_privilege_escalation=False,
        run_as_non_root=True,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def resources(
    given: k8s.V1ResourceRequirements | None,
    *,
    cpu_request: str | None = None,
    cpu_limit: str | None = None,
    memory_request: str | None = None,
    memory_limit: str | None = None,
    gpus: int = 0,
    gpu_resource: str = "nvidia.com/gpu",
) -> k8s.V1ResourceRequirements | None:
    """Return the container's resources: ``given``, with each request and limit that is set on top."""
    requests = dict((given.requests or {}) if given else {})
    limits = dict((given.limits or {}) if given else {})
    for bucket, key, value in (
        (requests, "cpu", cpu_request),
        (limits, "cpu", cpu_limit),
        (requests, "memory", memory_request),
        (limits, "memory", memory_limit),
    ):
        if value:
            bucket[key] = str(value)
    if gpus:
        # Extended resources cannot be overcommitted: request and limit must be equal.
        requests[gpu_resource] = limits[gpu_resource] = str(gpus)
    if not requests and not limits:
        return given
    return k8s.V1ResourceRequirements(requests=requests or None, limits=limits or None)


def schedule_on_gpus(spec: k8s.V1PodSpec, gpu_resource: str, node_selector: dict[str, str]) -> None:
    """Let the pod onto nodes tainted for ``gpu_resource`` and hold it to the GPU nodes' labels."""
    tolerations = list(spec.tolerations or [])
    if not any(t.key == gpu_resource for t in tolerations):
        tolerations.append(k8s.V1Toleration(key=gpu_resource, operator="Exists", effect="NoSchedule"))
    spec.tolerations = tolerations
    spec.node_selector = {**(spec.node_selector or {}), **node_selector} or None


def explain_pending_pod(
    pod: k8s.V1Pod | None,
    events: Sequence[k8s.CoreV1Event] = (),
    *,
    gpus: int = 0,
    gpu_resource: str = "nvidia.com/gpu",
    schedule_timeout: int | None = None,
) -> str | None:
    """Say why ``pod`` never started: an image that cannot be pulled, or a request no node can take.

    Return ``None`` when the pod is not Pending (it started, so something else went wrong).
    """
    if pod is None or pod.status is None or pod.status.phase != "Pending":
        return None
    name = pod.metadata.name
    for status in pod.status.container_statuses or []:
        waiting = status.state.waiting if status.state else None
        if waiting and waiting.reason in _IMAGE_PULL_REASONS:
            return (
                f"image pull failure: pod {name} cannot pull image {status.image!r} "
                f"({waiting.reason}: {waiting.message or 'no message'}); check the image name and tag, "
                f"the registry and imagePullSecrets"
            )
    for event in events:
        if event.reason in ("ErrImagePull", "ImagePullBackOff") or (
            event.reason == "Failed" and "pull" in (event.message or "").lower()
        ):
            return (
                f"image pull failure: pod {name} cannot pull its image ({event.reason}: {event.message}); "
                f"check the image name and tag, the registry and imagePullSecrets"
            )
    scheduler_says = None
    for condition in pod.status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "False":
            scheduler_says = f"{condition.reason}: {condition.message}"
    for event in events:
        if event.reason == "FailedScheduling":
            scheduler_says = scheduler_says or f"FailedScheduling: {event.message}"
    waited = f" within {schedule_timeout}s" if schedule_timeout else ""
    if scheduler_says:
        if gpus:
            selector = (pod.spec.node_selector or {}) if pod.spec else {}
            return (
                f"unschedulable GPU request: no node could take pod {name} asking for {gpus} "
                f"{gpu_resource}{waited} (scheduler: {scheduler_says}); check that GPU nodes exist or "
                f"can scale up, their taints, and the node selector {selector}"
            )
        return f"unschedulable: no node could take pod {name}{waited} (scheduler: {scheduler_says})"
    return None
