"""Closed-loop load from threads over kept-alive ``http.client`` connections, and what it can reach.

A request is a function ``(conn, rng) -> bool`` (True: the answer was right); ``closed_loop``
runs it from ``connections`` threads for ``seconds`` and returns a `Stats`. The generator is
Python on the same (2-core) machine as the server, so it has a ceiling of its own:
``generator_ceiling`` measures it against a trivial HTTP server in another process.
"""

from __future__ import annotations

import http.client
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from .common import free_port


class Conn:
    """One kept-alive connection; reconnects after a failure (a failure counts as an error)."""

    def __init__(self, port: int, headers: dict[str, str] | None = None):
        self.port = port
        self.headers = headers or {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method: str, path: str, body: bytes | str | None = None, headers: dict | None = None) -> tuple[int, bytes]:
        h = {**self.headers, **headers} if headers else self.headers
        try:
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            raise

    def get(self, path: str, **query) -> tuple[int, bytes]:
        return self.request("GET", f"{path}?{urlencode(query)}" if query else path)

    def post_json(self, path: str, body: str) -> tuple[int, bytes]:
        return self.request("POST", path, body, {"Content-Type": "application/json"})

    def post_form(self, path: str, fields: dict) -> tuple[int, bytes]:
        return self.request("POST", path, urlencode(fields), {"Content-Type": "application/x-www-form-urlencoded"})

    def close(self):
        self.conn.close()


@dataclass
class Stats:
    """Latencies (ms) and errors of one closed-loop run, by kind of request."""

    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    first_error: str = ""

    def all(self) -> list[float]:
        return [x for v in self.latencies.values() for x in v]

    @property
    def count(self) -> int:
        return len(self.all())

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def pct(self, q: float, kind: str | None = None) -> float:
        s = sorted(self.latencies.get(kind, []) if kind else self.all())
        return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))] if s else float("nan")

    def line(self, kind: str | None = None) -> str:
        n = len(self.latencies.get(kind, [])) if kind else self.count
        err = self.errors.get(kind, 0) if kind else self.error_count
        rate = n / self.seconds if self.seconds else 0.0
        return f"{rate:8.1f} req/s  p50 {self.pct(0.5, kind):7.2f}  p99 {self.pct(0.99, kind):7.2f} ms  n {n:6d}  errors {err}"


def closed_loop(port: int, headers: dict | list[dict], requests: dict[str, tuple[float, callable]], connections: int, seconds: float,
                seed: int = 1, rate: float | None = None) -> Stats:
    """Each of ``connections`` threads sends, back to back for ``seconds``, requests drawn from
    ``requests`` (kind -> (weight, fn)) on its own kept-alive connection, with ``headers`` (a list: connection n
    has its n-th, in turn, e.g. each a user's token).

    ``rate``: paced instead, each connection a user sending ``rate`` requests a second on average (Poisson
    arrivals); a request's latency counts from when it was due, so a server that falls behind shows it (no
    coordinated omission). Back to back, latency is connections / throughput (Little's law) whatever the server."""
    stats = Stats()
    kinds = list(requests)
    weights = [requests[k][0] for k in kinds]
    lock = threading.Lock()
    start = threading.Barrier(connections + 1)
    deadline = [0.0]

    def worker(n: int):
        rng = random.Random(seed * 1000 + n)
        conn = Conn(port, headers[n % len(headers)] if isinstance(headers, list) else headers)
        lat: dict[str, list[float]] = {k: [] for k in kinds}
        err: dict[str, int] = dict.fromkeys(kinds, 0)
        first = ""
        start.wait()
        due = time.perf_counter() + (rng.expovariate(rate) if rate else 0.0)
        while time.perf_counter() < deadline[0]:
            kind = rng.choices(kinds, weights)[0] if len(kinds) > 1 else kinds[0]
            if rate:
                if due >= deadline[0]:
                    break
                time.sleep(max(0.0, due - time.perf_counter()))
                t, due = due, due + rng.expovariate(rate)
            else:
                t = time.perf_counter()
            try:
                ok = requests[kind][1](conn, rng)
            except Exception as exc:  # noqa: BLE001 - any failure is an error of the service under load
                ok, first = False, first or f"{kind}: {exc!r}"
            if ok is True:
                lat[kind].append((time.perf_counter() - t) * 1000)
            else:
                err[kind] += 1
                if ok is not False and not first:
                    first = f"{kind}: {str(ok)[:300]}"
        conn.close()
        with lock:
            for k in kinds:
                stats.latencies.setdefault(k, []).extend(lat[k])
                stats.errors[k] = stats.errors.get(k, 0) + err[k]
            stats.first_error = stats.first_error or first

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(connections)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    deadline[0] = t0 + seconds
    start.wait()
    for t in threads:
        t.join()
    stats.seconds = time.perf_counter() - t0
    return stats


def ok_200(answer: tuple[int, bytes]) -> bool | str:
    """True for a 200, else the answer's status and start (what the error count reports first)."""
    status, body = answer
    return True if status == 200 else f"{status} {body[:200]!r}"


# A trivial HTTP/1.1 server (keep-alive, a fixed 2-byte answer) in its own process: it costs
# the server side next to nothing, so a run against it shows what the load generator can do.
_TRIVIAL = r"""
import asyncio, sys
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    await reader.readexactly(int(line.split(b":")[1]))
            writer.write(ANSWER)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def generator_ceiling(connections: int, seconds: float) -> Stats:
    """The load generator's own limit: ``connections`` threads against the trivial server."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _TRIVIAL, str(port)], stdout=subprocess.PIPE)
    try:
        proc.stdout.readline()
        return closed_loop(port, {}, {"trivial": (1, lambda c, r: ok_200(c.get("/")))}, connections, seconds)
    finally:
        proc.terminate()
        proc.wait(10)
