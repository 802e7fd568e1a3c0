"""The local stack: Airflow standalone and an MLflow server on loopback, all state in one directory.

This is the embedded default a newcomer starts with ``make up``::

    python -m mlops_demo.stack up       # start both, wait until healthy
    python -m mlops_demo.stack status   # what runs where
    python -m mlops_demo.stack down     # stop exactly what `up` started
    python -m mlops_demo.stack run -- airflow dags list   # any command in the stack's env

Everything lives under ``$MLOPS_HOME`` (default ``./.mlops``): the Airflow home and its SQLite
database, the MLflow SQLite database and artifact store, the BentoML home, logs and pid files.
The Airflow UI runs with Airflow's simple auth manager in "all admins" mode: no login, which is
only acceptable because it listens on 127.0.0.1 alone.

A development and demo tool, not part of the provider's wheel. Standard library and the provider's
own process helpers only: it imports nothing from Airflow, so that it can configure Airflow before
Airflow reads its configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from airflow_mlops_provider.processes import (
    ManagedProcess,
    pid_alive,
    start_process,
    stop_group,
    wait_http,
)

#: Every process the stack starts carries this variable, so `down` can find stragglers that left
#: their process group (and only those).
STACK_MARKER = "MLOPS_STACK_HOME"
PROVIDER_PACKAGE = "airflow-mlops-provider"


@dataclass(frozen=True)
class StackConfig:
    """Where the local stack keeps its state and which ports it uses.

    :param home: Directory holding all state.
    :param dags_folder: The DAG folder Airflow reads.
    :param airflow_port: Port of the Airflow API server and UI.
    :param mlflow_port: Port of the MLflow server.
    :param bento_port: Port the demo serves the champion's Bento on.
    :param bin_dir: Directory of the ``airflow`` and ``mlflow`` executables (the venv's ``bin``).
    """

    home: Path
    dags_folder: Path
    airflow_port: int = 8080
    mlflow_port: int = 5000
    bento_port: int = 3000
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> StackConfig:
        """Build the configuration from ``MLOPS_HOME``, ``MLOPS_DAGS_FOLDER`` and the port variables."""
        return cls(
            home=Path(environ.get("MLOPS_HOME") or ".mlops").resolve(),
            dags_folder=Path(environ.get("MLOPS_DAGS_FOLDER") or "dags").resolve(),
            airflow_port=int(environ.get("MLOPS_AIRFLOW_PORT") or 8080),
            mlflow_port=int(environ.get("MLOPS_MLFLOW_PORT") or 5000),
            bento_port=int(environ.get("MLOPS_BENTO_PORT") or 3000),
        )

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.airflow_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def bento_url(self) -> str:
        return f"http://127.0.0.1:{self.bento_port}"

    @property
    def mlflow_backend_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlflow" / "artifacts"

    def pid_file(self, name: str) -> Path:
        return self.home / "run" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.home / "logs" / f"{name}.log"

    def env(self) -> dict[str, str]:
        """Return the environment every stack process runs with."""
        env = dict(os.environ)
        env.update(
            {
                STACK_MARKER: str(self.home),
                "MLOPS_HOME": str(self.home),
                "PATH": f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}",
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.airflow_home / 'airflow.db'}",
                # Local stack only: no login, everyone is admin. It listens on loopback alone.
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.airflow_port),
                "AIRFLOW__API__BASE_URL": self.airflow_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.airflow_url}/execution/",
                # New DAG files show up within seconds rather than the default five minutes.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(
                    {"conn_type": "mlflow", "host": "127.0.0.1", "port": self.mlflow_port, "schema": "http"}
                ),
                "BENTOML_HOME": str(self.home / "bentoml"),
                # MLflow's server starts a job runner (seven huey consumers, about 580 MB) for GenAI
                # jobs that nothing here submits; on a 2-core machine it only takes memory and time.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                # whylogs and BentoML send usage statistics unless told not to.
                "WHYLOGS_NO_ANALYTICS": "True",
                "BENTOML_DO_NOT_TRACK": "True",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
            }
        )
        return env

    def mlflow_command(self, workers: int = 2) -> list[str]:
        """Return the command line of the stack's MLflow server."""
        return [
            str(self.bin_dir / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.mlflow_port),
            "--workers",
            str(workers),
            "--backend-store-uri",
            self.mlflow_backend_uri,
            "--artifacts-destination",
            str(self.mlflow_artifacts),
        ]


def marked_processes(home: Path) -> Iterator[int]:
    """Yield the pids of live processes started by the stack living in ``home``."""
    needle = f"{STACK_MARKER}={home}".encode()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        pid = int(environ.parent.name)
        if pid == os.getpid():
            continue
        try:
            if needle in environ.read_bytes().split(b"\0") and pid_alive(pid):
                yield pid
        except OSError:
            continue


class LocalStack:
    """Start, inspect and stop the local stack described by a :class:`StackConfig`."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config

    def _read_pid(self, name: str) -> int | None:
        try:
            pid = int(self.config.pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def init(self) -> None:
        """Create the state directories and migrate the Airflow database (idempotent)."""
        cfg = self.config
        for path in (cfg.airflow_home, cfg.mlflow_artifacts, cfg.home / "bentoml", cfg.home / "run"):
            path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(cfg.bin_dir / "airflow"), "db", "migrate"],
            env=cfg.env(),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start_mlflow(self, workers: int = 2, timeout: float = 120) -> ManagedProcess:
        """Start the MLflow server unless it runs, and wait until it answers ``/health``."""
        cfg = self.config
        pid = self._read_pid("mlflow")
        if pid:
            return ManagedProcess("mlflow", pid)
        cfg.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
        proc = start_process("mlflow", cfg.mlflow_command(workers), cfg.env(), cfg.log_file("mlflow"))
        cfg.pid_file("mlflow").parent.mkdir(parents=True, exist_ok=True)
        cfg.pid_file("mlflow").write_text(str(proc.pid))
        wait_http(f"{cfg.mlflow_url}/health", timeout, proc=proc, log_path=cfg.log_file("mlflow"))
        return proc

    def start_airflow(self, timeout: float = 300) -> ManagedProcess:
        """Start ``airflow standalone`` unless it runs, and wait until every component is healthy."""
        cfg = self.config
        pid = self._read_pid("airflow")
        if pid:
            return ManagedProcess("airflow", pid)
        command = [str(cfg.bin_dir / "airflow"), "standalone"]
        proc = start_process("airflow", command, cfg.env(), cfg.log_file("airflow"))
        cfg.pid_file("airflow").write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while True:
            body = wait_http(
                f"{cfg.airflow_url}/api/v2/monitor/health",
                max(deadline - time.monotonic(), 1),
                proc=proc,
                log_path=cfg.log_file("airflow"),
            )
            health = json.loads(body)
            unhealthy = [name for name, part in health.items() if part.get("status") != "healthy"]
            if not unhealthy:
                return proc
            if time.monotonic() > deadline:
                raise TimeoutError(f"Airflow components still unhealthy after {timeout:.0f}s: {unhealthy}")
            time.sleep(1)

    def serve_bento(self, tag: str, timeout: float = 180) -> ManagedProcess:
        """Serve Bento ``tag`` on ``bento_port`` (replacing a Bento of another tag) until it is ready.

        It captures what it serves where it was packaged to (``$MLOPS_HOME/capture`` by default);
        :meth:`down` stops it, and SIGTERM makes it write what it still buffers.
        """
        cfg = self.config
        tag_file = cfg.pid_file("bento").with_suffix(".tag")
        pid = self._read_pid("bento")
        if pid and tag_file.exists() and tag_file.read_text() == tag:
            return ManagedProcess("bento", pid)
        if pid:
            stop_group(pid, timeout=30)
        command = [
            str(cfg.bin_dir / "bentoml"),
            "serve",
            tag,
            "--host",
            "127.0.0.1",
            "--port",
            str(cfg.bento_port),
        ]
        proc = start_process("bento", command, cfg.env(), cfg.log_file("bento"))
        cfg.pid_file("bento").parent.mkdir(parents=True, exist_ok=True)
        cfg.pid_file("bento").write_text(str(proc.pid))
        tag_file.write_text(tag)
        wait_http(f"{cfg.bento_url}/readyz", timeout, proc=proc, log_path=cfg.log_file("bento"))
        return proc

    def up(self) -> None:
        """Start MLflow, then Airflow (which needs the MLflow connection), and print where they are."""
        self.init()
        self.start_mlflow()
        self.start_airflow()
        self.status()

    def down(self) -> list[str]:
        """Stop what :meth:`up` started, by pid, and any straggler carrying the stack's marker."""
        stopped = []
        # The Bento first: on SIGTERM it writes the predictions it still buffers.
        for name in ("bento", "airflow", "mlflow"):
            pid = self._read_pid(name)
            if pid:
                stop_group(pid, timeout=45)
                stopped.append(f"{name} (pid {pid})")
            self.config.pid_file(name).unlink(missing_ok=True)
        self.config.pid_file("bento").with_suffix(".tag").unlink(missing_ok=True)
        for pid in marked_processes(self.config.home):
            stop_group(os.getpgid(pid), timeout=10)
            stopped.append(f"straggler pid {pid}")
        return stopped

    def api(self, method: str, path: str, body: object | None = None, timeout: float = 30) -> dict:
        """Call the Airflow REST API of the running stack (no token needed on the local stack)."""
        request = urllib.request.Request(
            f"{self.config.airflow_url}/api/v2{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:500]
            raise RuntimeError(f"Airflow API {method} {path} answered HTTP {err.code}: {detail}") from None

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        """Wait until the DAG processor has parsed ``dag_id``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.api("GET", f"/dags/{dag_id}")
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    errors = self.api("GET", "/importErrors").get("import_errors", [])
                    raise TimeoutError(
                        f"DAG {dag_id!r} not parsed within {timeout:.0f}s; import errors: {errors}"
                    ) from None
                time.sleep(1)

    def trigger(self, dag_id: str, conf: dict | None = None, run_id: str | None = None) -> dict:
        """Unpause ``dag_id`` and trigger a run with ``conf`` (and ``run_id``, if given); return the run."""
        self.wait_for_dag(dag_id)
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        body: dict = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self.api("POST", f"/dags/{dag_id}/dagRuns", body)

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 600,
        on_poll: Callable[[dict[str, str]], None] | None = None,
    ) -> dict:
        """Wait until a run ends and return it; ``on_poll`` gets the task states at every poll."""
        path = f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
        deadline = time.monotonic() + timeout
        while True:
            run = self.api("GET", path)
            if on_poll is not None:
                on_poll(self.task_states(dag_id, run_id))
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} of {dag_id} still {run['state']} after {timeout:.0f}s")
            time.sleep(2)

    def run_dag(self, dag_id: str, conf: dict | None = None, timeout: float = 600) -> dict:
        """Unpause ``dag_id``, trigger a run with ``conf``, wait for it to end and return the run."""
        run = self.trigger(dag_id, conf)
        return self.wait_for_run(dag_id, run["dag_run_id"], timeout)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Task id to state (``none`` while not yet scheduled) for one run."""
        path = f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances?limit=100"
        return {ti["task_id"]: ti["state"] or "none" for ti in self.api("GET", path)["task_instances"]}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> object:
        """The XCom ``key`` a task of a run pushed, or None when it pushed none."""
        path = (
            f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
            f"/taskInstances/{task_id}/xcomEntries/{key}"
        )
        try:
            value = self.api("GET", path).get("value")
        except RuntimeError as err:
            if "HTTP 404" in str(err):
                return None
            raise
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def wait_for_dag_processor(self, timeout: float = 120) -> None:
        """Wait until every DAG file in the DAG folder has been parsed once."""
        files = {p.name for p in self.config.dags_folder.glob("*.py") if not p.name.startswith("_")}
        deadline = time.monotonic() + timeout
        while True:
            dags = self.api("GET", "/dags?limit=100").get("dags", [])
            errors = self.api("GET", "/importErrors").get("import_errors", [])
            seen = {Path(d["fileloc"]).name for d in dags} | {Path(e["filename"]).name for e in errors}
            if files <= seen:
                if errors:
                    raise RuntimeError(f"DAG import errors: {errors}")
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG files not parsed within {timeout:.0f}s: {sorted(files - seen)}")
            time.sleep(1)

    def services(self) -> dict[str, dict[str, object]]:
        """Return each service's pid, URL and whether it answers."""
        cfg = self.config
        checks = {
            "airflow": (f"{cfg.airflow_url}/api/v2/monitor/health", cfg.airflow_url),
            "mlflow": (f"{cfg.mlflow_url}/health", cfg.mlflow_url),
        }
        if self._read_pid("bento"):  # only while the demo serves one
            checks["bento"] = (f"{cfg.bento_url}/readyz", cfg.bento_url)
        result: dict[str, dict[str, object]] = {}
        for name, (health_url, url) in checks.items():
            pid = self._read_pid(name)
            answering = False
            if pid:
                try:
                    wait_http(health_url, timeout=3)
                    answering = True
                except (TimeoutError, RuntimeError):
                    pass
            result[name] = {"pid": pid, "url": url, "answering": answering, "log": str(cfg.log_file(name))}
        return result

    def status(self) -> bool:
        """Print what runs where; return whether everything runs."""
        services = self.services()
        for name, info in services.items():
            state = "running" if info["answering"] else ("starting/unhealthy" if info["pid"] else "stopped")
            pid = info["pid"] or "-"
            print(f"{name:8} {state:18} pid {pid!s:8} {info['url']}   log: {info['log']}")
        print(f"state in {self.config.home}; DAGs from {self.config.dags_folder}")
        if services["airflow"]["answering"]:
            print("Airflow UI: no login on the local stack (simple auth manager, all admins, loopback only)")
        return all(info["answering"] for info in services.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_demo.stack", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create the state directory and migrate the Airflow database")
    sub.add_parser("up", help="start Airflow standalone and the MLflow server")
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="say what runs where")
    run = sub.add_parser("run", help="run a command in the stack's environment")
    run.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    stack = LocalStack(StackConfig.from_env())
    if args.command == "init":
        stack.init()
    elif args.command == "up":
        stack.up()
    elif args.command == "down":
        stopped = stack.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    elif args.command == "status":
        return 0 if stack.status() else 3
    elif args.command == "run":
        command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not command:
            parser.error("run needs a command")
        return subprocess.run(command, env=stack.config.env()).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
