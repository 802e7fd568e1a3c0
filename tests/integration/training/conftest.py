"""A Kubernetes API emulator on loopback and a stand-in kubelet that runs pods as local processes.

The emulator is kmock's ``KubernetesEmulator`` (an in-memory API server over real HTTP), served from
a thread of its own. The kubelet stand-in watches it through the ordinary Kubernetes client, as a
node would: a pod asking for more GPUs than the node has stays Pending as Unschedulable (with a
FailedScheduling event); a pod whose image is on ``registry.invalid`` stays Pending with ErrImagePull;
any other pod runs its command and args as a subprocess with the pod's environment, and its phase,
exit code and log go back through the emulator. Deleting a pod kills its process.

``dags_test`` runs a DAG of a given folder with ``airflow dags test``, Airflow's own task runner.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_STACK

UNPULLABLE_REGISTRY = "registry.invalid/"


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakePod:
    """What the kubelet stand-in knows about one pod it was given."""

    namespace: str
    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    deleted_while_running: bool = False


class Cluster:
    """The emulator's URL, a client on it, and what the kubelet stand-in did."""

    def __init__(self, url: str, emulator: Any, workdir: Path, node_gpus: int = 0) -> None:
        from kubernetes import client

        self.url = url.rstrip("/")
        self.emulator = emulator
        self.workdir = workdir
        self.node_gpus = node_gpus
        config = client.Configuration()
        config.host = self.url
        self.api = client.CoreV1Api(client.ApiClient(config))
        self.pods: dict[tuple[str, str], FakePod] = {}
        self.created: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._kubelet, name="fake-kubelet", daemon=True)

    # ---- what tests use ----

    def kube_config(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "not-checked"}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "tester"}}],
            "current-context": "emulator",
        }

    def pods_created_in(self, namespace: str) -> list[str]:
        return [name for ns, name in self.created if ns == namespace]

    def live_pods(self, namespace: str) -> list[str]:
        return [p.metadata.name for p in self.api.list_namespaced_pod(namespace).items]

    def wait_running(self, namespace: str, timeout: float = 60) -> FakePod:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for (ns, _), pod in list(self.pods.items()):
                started = ns == namespace and pod.process is not None and pod.log_path.exists()
                if started and pod.log_path.read_text():
                    return pod
            time.sleep(0.1)
        raise AssertionError(f"no pod started printing in {namespace} within {timeout}s")

    # ---- the kubelet stand-in ----

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for pod in self.pods.values():
            self._kill(pod)

    def _kubelet(self) -> None:
        while not self._stop.is_set():
            try:
                live = {
                    (p.metadata.namespace, p.metadata.name): p
                    for p in self.api.list_pod_for_all_namespaces().items
                }
            except Exception:
                time.sleep(0.2)
                continue
            for key, pod in live.items():
                if key not in self.pods:
                    self.created.append(key)
                    self._admit(pod)
            for key, fake in self.pods.items():
                if key not in live and fake.exit_code is None and not fake.deleted_while_running:
                    fake.deleted_while_running = True
                    self._kill(fake)
                elif key in live and fake.process is not None and fake.exit_code is None:
                    code = fake.process.poll()
                    if code is not None:
                        self._finish(fake, code)
            time.sleep(0.2)

    def _event(self, pod: Any, reason: str, message: str, kind: str = "Warning") -> None:
        from kubernetes import client

        self.api.create_namespaced_event(
            pod.metadata.namespace,
            client.CoreV1Event(
                metadata=client.V1ObjectMeta(
                    name=f"{pod.metadata.name}.{reason.lower()}", namespace=pod.metadata.namespace
                ),
                involved_object=client.V1ObjectReference(
                    kind="Pod", name=pod.metadata.name, namespace=pod.metadata.namespace
                ),
                reason=reason,
                message=message,
                type=kind,
            ),
        )

    def _status(self, pod: Any, status: dict[str, Any]) -> None:
        self.api.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, {"status": status})

    def _admit(self, pod: Any) -> None:
        ns, name = pod.metadata.namespace, pod.metadata.name
        container = pod.spec.containers[0]
        limits = (container.resources.limits or {}) if container.resources else {}
        gpus = sum(int(v) for k, v in limits.items() if k.endswith("/gpu"))
        log_path = self.workdir / f"{ns}-{name}.log"
        fake = FakePod(ns, name, [*(container.command or []), *(container.args or [])], {}, log_path)
        self.pods[(ns, name)] = fake
        if gpus > self.node_gpus:
            message = (
                f"0/1 nodes are available: 1 Insufficient {next(k for k in limits if k.endswith('/gpu'))}."
            )
            self._status(
                pod,
                {
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": message,
                        }
                    ],
                },
            )
            self._event(pod, "FailedScheduling", message)
            return
        scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": _now()}
        if container.image.startswith(UNPULLABLE_REGISTRY):
            message = f'failed to pull and unpack image "{container.image}": not found'
            self._status(
                pod,
                {
                    "phase": "Pending",
                    "conditions": [scheduled],
                    "containerStatuses": [
                        {
                            "name": container.name,
                            "image": container.image,
                            "imageID": "",
                            "ready": False,
                            "restartCount": 0,
                            "state": {"waiting": {"reason": "ErrImagePull", "message": message}},
                        }
                    ],
                },
            )
            self._event(pod, "Failed", f"Failed to pull image {container.image!r}: {message}")
            return
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
        env.update({e.name: e.value for e in container.env or [] if e.value is not None})
        fake.env = env
        command = [sys.executable if c in ("python", "python3") else c for c in fake.command]
        with open(log_path, "wb") as log:
            fake.process = subprocess.Popen(
                command,
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._status(
            pod,
            {
                "phase": "Running",
                "startTime": _now(),
                "conditions": [scheduled],
                "containerStatuses": [
                    {
                        "name": container.name,
                        "image": container.image,
                        "imageID": "",
                        "ready": True,
                        "started": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": _now()}},
                    }
                ],
            },
        )

    def _finish(self, fake: FakePod, code: int) -> None:
        fake.exit_code = code
        pod = self.api.read_namespaced_pod(fake.name, fake.namespace)
        container = pod.spec.containers[0]
        self._status(
            pod,
            {
                "phase": "Succeeded" if code == 0 else "Failed",
                "containerStatuses": [
                    {
                        "name": container.name,
                        "image": container.image,
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {
                            "terminated": {
                                "exitCode": code,
                                "reason": "Completed" if code == 0 else "Error",
                                "startedAt": _now(),
                                "finishedAt": _now(),
                            }
                        },
                    }
                ],
            },
        )
        fake.finished.set()

    def _kill(self, fake: FakePod) -> None:
        if fake.process is not None and fake.process.poll() is None:
            os.killpg(fake.process.pid, signal.SIGTERM)
            try:
                fake.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(fake.process.pid, signal.SIGKILL)
        fake.finished.set()

    # ---- served by the emulator ----

    async def serve_log(self, request: Any) -> bytes:
        """The ``pods/<name>/log`` subresource: the process output, after it ends when following."""
        fake = self.pods.get((request.namespace, request.name))
        if fake is None or fake.process is None:
            # A container that never started has no log (a real API server answers 400).
            return b""
        if request.params.get("follow") in ("true", "True", "1"):
            while not fake.finished.is_set():
                await asyncio.sleep(0.1)
        text = fake.log_path.read_bytes() if fake.log_path.exists() else b""
        if request.params.get("timestamps") in ("true", "True", "1"):
            stamp = datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
            text = b"".join(stamp + b" " + line for line in text.splitlines(keepends=True))
        return text


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """kmock's Kubernetes emulator on a loopback port, with the kubelet stand-in watching it."""
    import logging

    from kmock._internal import apps, enums, k8s

    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    class PodDefaultingEmulator(k8s.KubernetesEmulator):
        """Sets what the API server sets on a new pod (phase Pending, uid, creation time)."""

        async def _handle(self, request: Any) -> Any:
            creates_pod = (
                request.action == enums.action.CREATE
                and isinstance(request.data, dict)
                and request.resource is not None
                and request.resource.plural == "pods"
            )
            if creates_pod:
                request.data.setdefault("status", {"phase": "Pending"})
                meta = request.data.setdefault("metadata", {})
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", _now())
            return await super()._handle(request)

    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        async with PodDefaultingEmulator() as emulator, apps.Server(emulator) as server:
            holder.update(emulator=emulator, url=str(server.url), loop=asyncio.get_running_loop())
            holder["stop"] = stop = asyncio.Event()
            emulator.resources["v1/pods"] = {}
            emulator.resources["v1/events"] = {}
            emulator[emulator.subresource("log")] << (lambda request: holder["cluster"].serve_log(request))
            ready.set()
            await stop.wait()

    def run() -> None:
        asyncio.run(serve())

    thread = threading.Thread(target=run, name="kube-emulator", daemon=True)
    # The kubelet needs the URL first, and the log handler needs the kubelet: wire them in order.
    holder["cluster"] = None
    thread.start()
    assert ready.wait(30), "the Kubernetes emulator did not start"
    cluster = Cluster(holder["url"], holder["emulator"], tmp_path_factory.mktemp("kubelet"))
    holder["cluster"] = cluster
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)


@pytest.fixture
def kube_conn(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """Define ``kubernetes_default`` as the emulator."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBERNETES_DEFAULT",
        json.dumps({"conn_type": "kubernetes", "extra": {"kube_config": json.dumps(cluster.kube_config())}}),
    )
    return cluster


@pytest.fixture(scope="session")
def churn_data(tmp_path_factory) -> dict[str, Path]:
    """A generated binary-classification dataset with numeric and categorical columns."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    features, labels = make_classification(
        n_samples=600, n_features=6, n_informative=4, random_state=7, flip_y=0.05
    )
    frame = pd.DataFrame(features, columns=[f"usage_{i}" for i in range(6)])
    frame["plan"] = np.where(features[:, 0] > 0.3, "pro", np.where(features[:, 1] > 0, "team", "basic"))
    frame["churned"] = labels
    root = tmp_path_factory.mktemp("churn")
    frame.iloc[:450].to_csv(root / "train.csv", index=False)
    frame.iloc[450:].to_parquet(root / "eval.parquet", index=False)
    return {"train": root / "train.csv", "eval": root / "eval.parquet"}


def dags_test(dag_id: str, conf: dict[str, Any], dags_folder: Path, **env: str) -> tuple[str, str]:
    """Run a DAG with ``airflow dags test``, asserting it succeeds; return its log and run id."""
    result = subprocess.run(
        [str(TEST_STACK.bin_dir / "airflow"), "dags", "test", dag_id, "--conf", json.dumps(conf)],
        env={**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    return log, re.findall(r"run_id=(manual__[^ ,]+)", log)[-1]
