"""Processes the provider starts and waits for: a ``bentoml serve`` for a smoke test, say.

Each starts in its own session, so stopping it stops everything it spawned; ``wait_http`` waits
for a URL to answer and, when the process dies first, says so with the tail of its log. A process
started here is reaped here when it is stopped (or found dead), so none is left a zombie.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: The processes this interpreter started, by pid, until they are reaped.
_children: dict[int, subprocess.Popen[bytes]] = {}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ManagedProcess:
    """A process started in its own process group, stopped with everything it spawned."""

    name: str
    pid: int

    def alive(self) -> bool:
        return pid_alive(self.pid)

    def stop(self, timeout: float = 30.0) -> None:
        stop_group(self.pid, timeout)


def start_process(
    name: str, command: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
) -> ManagedProcess:
    """Start ``command`` in a new session with output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    return ManagedProcess(name, proc.pid)


def wait_http(
    url: str, timeout: float, *, proc: ManagedProcess | None = None, log_path: Path | None = None
) -> bytes:
    """Return the body of ``url`` once it answers 200, or raise naming the URL after ``timeout`` s.

    :param proc: Give up early when this process has died.
    :param log_path: Its log, whose tail goes into the error.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited before {url} answered{_tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return response.read()
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}"
        except (urllib.error.URLError, OSError) as err:
            last = str(err)
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s (last: {last}){_tail(log_path)}")


def _tail(log_path: Path | None, lines: int = 30) -> str:
    if log_path is None or not log_path.exists():
        return ""
    text = log_path.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last lines of {log_path} ---\n" + "\n".join(text)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not); a child of this interpreter is reaped once it has exited."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; only its parent's wait() is missing.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def stop_group(pgid: int, timeout: float) -> None:
    """Stop every process of group ``pgid``: SIGTERM, then SIGKILL after ``timeout`` s."""
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 10)
            while time.monotonic() < deadline:
                if not any(pid_alive(pid) for pid in _group_members(pgid)):
                    return
                time.sleep(0.2)
    finally:
        pid_alive(pgid)  # reaps the group's leader when this interpreter started it


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members
