"""A cheap closed-loop HTTP/1.1 load generator for ``serving.py``, run in its own process.

    echo '{"port": 3000, "path": "/predict", "bodies": ["{...}"], "clients": 32}' | python loadgen.py

Each of ``clients`` simulated clients holds one keep-alive connection and sends the next request
when the previous answer is complete (closed loop, no pipelining). Requests are encoded once,
up front; answers are framed by their ``Content-Length`` or ``Transfer-Encoding: chunked`` (or read
to the end when the server closes), so a framing error shows up as a wrong body, not a silent miss.
A connection the server closes (``Connection: close``) or resets is reopened; a reset counts as
status 0 and is not retried. Latency is measured from the first byte written to the last byte read.

Stdlib only (plus uvloop when installed): the client has to stay far cheaper than the servers it
measures, which share its CPU cores. Reads a JSON spec on stdin, writes a JSON result on stdout:
statuses, throughput of 200 answers, p50/p99 latency, the client's own CPU seconds, and the
distinct bodies of the 200 answers to each of the first ``keep_bodies`` requests in ``bodies``
(for checking answers).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any


class Connection:
    """One keep-alive HTTP/1.1 connection to the server under test."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one pre-encoded request; return the status and the body of its answer."""
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader = self.reader
        self.writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = await reader.read()  # delimited by the server closing the connection
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            # Trailers, if any, end with an empty line.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def encode(host: str, port: int, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1") + body


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    host, port, clients = spec.get("host", "127.0.0.1"), int(spec["port"]), int(spec["clients"])
    requests, max_s = int(spec.get("requests", 2000)), float(spec.get("max_seconds", 20.0))
    keep_bodies = int(spec.get("keep_bodies", 0))
    raws = [encode(host, port, spec["path"], b.encode()) for b in spec["bodies"]]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    bodies: dict[int, set[bytes]] = {}
    sent = 0
    connections = [Connection(host, port) for _ in range(clients)]
    # Connect first, so that the measurement is of requests, not of the TCP handshakes.
    await asyncio.gather(*(c.open() for c in connections))

    async def client(conn: Connection) -> None:
        nonlocal sent
        while sent < requests and time.monotonic() < deadline:
            index = sent % len(raws)
            sent += 1
            t0 = time.perf_counter()
            try:
                status, body = await conn.request(raws[index])
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                status, body = 0, b""  # reset, refused or garbled: counted, reported, not retried
                conn.close()
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200 and index < keep_bodies:
                bodies.setdefault(index, set()).add(body)

    cpu0 = _cpu_s()
    deadline = time.monotonic() + max_s
    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in connections))
    elapsed = time.perf_counter() - started
    cpu = _cpu_s() - cpu0
    for c in connections:
        c.close()
    latencies.sort()
    ok = statuses.get(200, 0)
    n = len(latencies)
    return {
        "requests": n,
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(elapsed, 3),
        "throughput_rps": ok / elapsed if elapsed else 0.0,
        "p50_ms": 1000 * latencies[n // 2] if n else float("nan"),
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else float("nan"),
        "client_cpu_s": round(cpu, 3),
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "bodies": {str(k): sorted(b.decode() for b in v) for k, v in bodies.items()},
    }


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    spec = json.load(sys.stdin)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(spec))
    else:
        result = uvloop.run(run(spec))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
