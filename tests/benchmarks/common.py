"""Shared pieces of the benchmarks: seeded data, a server started from the command line, timing."""

from __future__ import annotations

import http.client
import json
import statistics
import time
from pathlib import Path

import requests

from tests.support import servers
from tests.support.servers import BIN, free_port, root_flags

DATA_ROOT = Path(__file__).parent / "data"  # generated, git-ignored


def demo_data(rows: int) -> Path:
    """A data dir holding a demo archive of ``rows`` rows (made once, by the seeded generator)."""
    from jupyter_archive.core.catalog.mounts import describe_apart
    from jupyter_archive.core.demo import ensure_demo

    data = DATA_ROOT / f"demo-{rows}"
    t = time.perf_counter()
    describe_apart(ensure_demo(data, rows=rows), data)  # kept beside it: a server on a copy does not describe it again
    print(f"# demo data: {rows:,} rows ready in {time.perf_counter() - t:.1f} s ({data})")
    return data


class Server(servers.Server):
    """`jupyter archive` in a subprocess on a data dir; ``session`` is an authenticated requests session."""

    def __init__(self, data_dir: Path, *extra: str, token: str = "bench-token"):
        port = free_port()
        argv = [str(BIN / "jupyter"), "archive", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
                f"--IdentityProvider.token={token}", f"--ArchiveApp.data_dir={data_dir}", *extra, *root_flags()]
        super().__init__(argv, port, token, data_dir / "bench-server.log")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"
        self.wait(timeout=300)

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the server process so far (VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def rss_mb(self) -> float:
        """Resident memory of the server process now (VmRSS)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def memory_mb(self) -> dict[str, float]:
        """Resident memory now, split: ``rss``, ``heap`` (anonymous: what the process allocated) and
        ``files`` (mapped files, mostly the code of Python and its libraries, shared with other processes)."""
        got = {}
        for line in Path(f"/proc/{self.proc.pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, value = line.split(":", 1)
            got[name] = int(value.split()[0]) / 1024
        return {"rss": got["Rss"], "heap": got["Anonymous"], "files": got["Rss"] - got["Anonymous"]}


class LeanClient:
    """One kept-alive HTTP/1.1 connection through ``http.client``: the least a client can spend.

    requests spends ~0.6 ms of its own per call on this machine, which would be counted as
    the service's latency; this client measures (nearly) only the server and the socket.
    """

    def __init__(self, port: int, token: str = "bench-token"):
        self.conn = http.client.HTTPConnection("127.0.0.1", port)
        self.headers = {"Authorization": f"token {token}"}

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        cookie = r.getheader("Set-Cookie")
        if cookie:
            # Keep Jupyter's login cookie as requests' session (and a browser) would.
            self.headers["Cookie"] = cookie.split(";", 1)[0]
        return r.status, r.read()

    def close(self):
        self.conn.close()


def time_calls(fn, n: int, warm: int = 10) -> list[float]:
    """Milliseconds of ``fn(i)`` for i in range(n), after ``warm`` untimed calls."""
    for i in range(warm):
        fn(i)
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1000)
    return out


def time_paired(fns, n: int, warm: int = 10, block: int = 25) -> list[list[float]]:
    """Milliseconds of each ``fn(i)`` in ``fns``, taking turns every ``block`` calls, so every
    one sees the same machine load (a 2-core machine's load drifts over a run)."""
    for i in range(warm):
        for fn in fns:
            fn(i)
    out: list[list[float]] = [[] for _ in fns]
    for start in range(0, n, block):
        # In blocks: a call right after another process's work pays for it (caches, DuckDB's
        # spinning threads); alternating call by call would charge that to both sides.
        for fn, samples in zip(fns, out):
            for i in range(start, min(n, start + block)):
                t = time.perf_counter()
                fn(i)
                samples.append((time.perf_counter() - t) * 1000)
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]
