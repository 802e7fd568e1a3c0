"""The local runtime: the training command as a subprocess of the worker, in the pod's environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any


def local_command(cmds: Sequence[str], arguments: Sequence[str]) -> list[str]:
    """Return the command to run: ``python`` is the worker's own interpreter."""
    return [sys.executable if c in ("python", "python3") else c for c in cmds] + list(arguments)


def local_environment(
    base: Mapping[str, str],
    run: Mapping[str, str],
    env_vars: Any,
    run_variables: Sequence[str],
    dag_fileloc: str | None = None,
) -> dict[str, str]:
    """Return the subprocess's environment: the worker's, the run's, the task's ``env_vars``, and the
    run's ``run_variables`` again (they must point at this task's run, whatever ``env_vars`` say).

    An entrypoint module kept beside the DAG file must import in the subprocess, which inherits none
    of the worker's ``sys.path`` (where Airflow put the DAGs folder), only its environment: the DAG
    file's folder goes first on ``PYTHONPATH``.
    """
    env = {**base, **run}
    if isinstance(env_vars, dict):
        env.update({str(k): str(v) for k, v in env_vars.items()})
    else:
        env.update({e.name: e.value for e in env_vars or [] if e.value is not None})
    env.update({k: v for k, v in run.items() if k in run_variables})
    if dag_fileloc:
        paths = [os.path.dirname(os.path.abspath(dag_fileloc)), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


class LocalProcess:
    """One training subprocess, in its own session; :meth:`stop` (from ``on_kill``) ends it with
    everything it spawned."""

    def __init__(self) -> None:
        #: The process last run (ended once :meth:`run` returns).
        self.process: subprocess.Popen[str] | None = None

    def run(self, command: Sequence[str], env: Mapping[str, str], cwd: str | None, log: Any) -> int:
        """Run ``command``, logging its output line by line, and return its exit status."""
        with subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        ) as process:
            self.process = process
            assert process.stdout is not None
            for line in process.stdout:
                log.info("[training] %s", line.rstrip())
            return process.wait()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; nothing when it has ended."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
