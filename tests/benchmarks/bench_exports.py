"""Exports: speed against DuckDB's own COPY, and the server's memory exporting through every face (issue 16).

Run on demand: ``python -m tests.benchmarks.bench_exports [--rows 5000000] [--export-rows 1000000] [--rounds 3]``.

Speed: ``--export-rows`` rows of the demo PhotoObj as CSV and as Parquet through HTTP (the native
API's table rows) and through DuckDB's ``COPY ... TO`` on the same file, taking turns each round;
every run's rows/s and its ratio to the COPY runs beside it are printed (targets: CSV >= 0.8 of COPY,
Parquet >= 0.8 of COPY). Two COPYs: of the plain ``SELECT * FROM PhotoObj LIMIT n`` (``COPY``), and
like for like of the statement the server runs for that read (``COPY same``, the target's ratio): a
read of ``STREAMED_LIMIT`` rows or more is a streaming limit over a subquery, as DuckDB plans the
plain LIMIT as a semi join on rowid that gathers every row first (both sides paid ~0.4 s of it).

Memory: a fresh server exports all ``--rows`` rows through each face and format in turn (TAP sync
in CSV, VOTable BINARY2 and TABLEDATA, Parquet, FITS; the native API's query and table rows;
CasJobs; Quasar; DAX; a job writing its result, then that result read); the server's resident size is sampled every 20 ms and its
VmHWM read after each, so the largest of them is the run's peak (target: < 500 MB). The client
reads slowly on purpose for one export (``--slow``) so a server that buffers what the socket
cannot take shows it.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import duckdb

from jupyter_archive.core.execution.compiling import STREAMED_LIMIT

from .common import Server, demo_data


class RssWatch:
    """The largest VmRSS of the server while a block runs (sampled every 20 ms)."""

    def __init__(self, server: Server):
        self.server = server

    def __enter__(self):
        self.before = self.peak = self.server.rss_mb()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._done.is_set():
            self.peak = max(self.peak, self.server.rss_mb())
            time.sleep(0.02)

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self.server.rss_mb())


def drain(resp, slow: bool = False) -> int:
    assert resp.status_code == 200, resp.text[:500]
    size = 0
    for chunk in resp.iter_content(1 << 20):
        size += len(chunk)
        if slow:
            time.sleep(0.01)  # ~100 MB/s at most: slower than the server encodes most formats
    return size


def speed(args, data: Path) -> None:
    db_file = data / "demo" / "demo.duckdb"
    con = duckdb.connect(str(db_file), read_only=True)
    server = Server(data, f"--ArchiveApp.demo_rows={args.rows}")
    s = server.session
    n = args.export_rows
    print(f"\n## export of {n:,} rows: HTTP (native table rows) vs DuckDB COPY, taking turns; every run")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            plain = f"SELECT * FROM PhotoObj LIMIT {n}"
            same = f"SELECT * FROM (SELECT * FROM PhotoObj OFFSET 0) LIMIT {n}" if n >= STREAMED_LIMIT else plain
            for fmt, opts in (("csv", "(FORMAT csv, HEADER)"), ("parquet", "(FORMAT parquet)")):
                for rnd in range(args.rounds):
                    copies = []
                    for sql in (plain, same):
                        t = time.perf_counter()
                        con.sql(f"COPY ({sql}) TO '{Path(tmp) / ('x.' + fmt)}' {opts}")
                        copies.append(n / (time.perf_counter() - t))
                    copy_mb = (Path(tmp) / ("x." + fmt)).stat().st_size / 1e6
                    t = time.perf_counter()
                    with s.get(server.url + "archive/api/contexts/DEMO/tables/PhotoObj/rows",
                               params={"limit": n, "format": fmt}, headers={"Accept-Encoding": "identity"}, stream=True) as r:
                        size = drain(r)
                    http = n / (time.perf_counter() - t)
                    print(f"{fmt:8s} round {rnd + 1}: http {http:11,.0f} rows/s ({size / 1e6:6.1f} MB)   "
                          f"COPY {copies[0]:11,.0f} rows/s, ratio {http / copies[0]:5.2f}   COPY same {copies[1]:11,.0f} rows/s "
                          f"({copy_mb:6.1f} MB), ratio {http / copies[1]:5.2f}   (target >= 0.80)")
    finally:
        server.stop()
        con.close()


def exports(server: Server, rows: int) -> list[tuple[str, callable]]:
    """(name, fn) of every export of ``rows`` rows through a face; fn(slow) returns the bytes read."""
    s, url = server.session, server.url
    q = f"SELECT TOP {rows} * FROM PhotoObj"
    plain = f"SELECT * FROM PhotoObj LIMIT {rows}"

    def tap(fmt):
        def run(slow):
            data = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": f"SELECT TOP {rows} * FROM demo.PhotoObj",
                    "MAXREC": str(rows), "FORMAT": fmt}
            with s.post(url + "archive/tap/sync", data=data, stream=True, headers={"Accept-Encoding": "identity"}) as r:
                return drain(r, slow)
        return run

    def native_query(fmt):
        def run(slow):
            with s.post(url + "archive/api/query", json={"query": plain, "context": "DEMO", "format": fmt}, stream=True) as r:
                return drain(r, slow)
        return run

    def rows_of(fmt, encoding="identity"):
        def run(slow):
            with s.get(url + "archive/api/contexts/DEMO/tables/PhotoObj/rows", params={"limit": rows, "format": fmt},
                       stream=True, headers={"Accept-Encoding": encoding}) as r:
                return drain(r, slow)
        return run

    def casjobs(slow):
        with s.post(url + "archive/casjobs/contexts/DEMO/query", json={"Query": q}, stream=True,
                    headers={"Accept": "text/csv"}) as r:
            return drain(r, slow)

    def quasar(slow):
        with s.get(url + "archive/quasar/query/fs/demo", params={"q": f"SELECT * FROM PhotoObj LIMIT {rows}"}, stream=True) as r:
            return drain(r, slow)

    def dax(slow):
        with s.post(url + "archive/dax/db/v0/tap/sync", data={"query": plain, "db": "DEMO"}, stream=True,
                    headers={"Accept": "text/csv"}) as r:
            return drain(r, slow)

    job = {}

    def job_run(slow):
        # The job writing its result (a Parquet file), measured apart from the exports of that result.
        r = s.post(url + "archive/api/jobs", json={"query": plain, "context": "DEMO"})
        assert r.status_code == 201, r.text
        job["id"] = r.json()["id"]
        r = s.get(url + f"archive/api/jobs/{job['id']}", params={"wait": 60})
        assert r.json()["state"] == "completed", r.text
        return 0  # no bytes sent

    def job_results(fmt):
        def run(slow):
            if "id" not in job:
                job_run(slow)
            with s.get(url + f"archive/api/jobs/{job['id']}/results", params={"format": fmt}, stream=True,
                       headers={"Accept-Encoding": "identity"}) as r:
                return drain(r, slow)
        return run

    return [
        ("TAP sync csv", tap("csv")), ("TAP sync votable binary2", tap("votable")),
        ("TAP sync votable tabledata", tap("votable/td")), ("TAP sync parquet", tap("parquet")),
        ("TAP sync fits", tap("fits")), ("TAP sync csv, slow reader", lambda slow: tap("csv")(True)),
        ("native query csv", native_query("csv")), ("native query parquet", native_query("parquet")),
        ("native table rows votable", rows_of("votable")), ("native table rows csv gzip", rows_of("csv", "gzip")),
        ("CasJobs quick query csv", casjobs), ("Quasar query (ldjson)", quasar), ("DAX sync csv", dax),
        ("a job writing its result", job_run), ("job results csv", job_results("csv")), ("job results parquet", job_results("parquet")),
    ]


def memory(args, data: Path) -> None:
    extra = [f"--ArchiveApp.demo_rows={args.rows}", f"--ArchiveApp.quick_row_limit={args.rows}"]
    if args.engine_memory:
        extra.append(f"--ArchiveApp.engine_memory_limit={args.engine_memory}")
    server = Server(data, *extra)
    label = args.engine_memory or "DuckDB's default"
    print(f"\n## memory: every export of {args.rows:,} rows on a fresh server, engine memory limit {label} (target: peak < 500 MB)")
    print(f"server at rest: {server.rss_mb():.1f} MB")
    only = set(args.only.split(",")) if args.only else None
    try:
        for name, fn in exports(server, args.rows):
            if only and not any(o.lower() in name.lower() for o in only):
                continue
            with RssWatch(server) as w:
                t = time.perf_counter()
                size = fn(False)
                secs = time.perf_counter() - t
            print(f"{name:28s} rss before {w.before:7.1f} MB   peak during {w.peak:7.1f} MB   VmHWM {server.peak_rss_mb():7.1f} MB   "
                  f"{size / 1e6:7.1f} MB in {secs:5.1f} s ({args.rows / secs:10,.0f} rows/s)")
        print(f"peak RSS of the server over the whole run (VmHWM): {server.peak_rss_mb():.1f} MB")
    finally:
        server.stop()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000, help="rows of the demo PhotoObj; the memory run exports them all")
    ap.add_argument("--export-rows", type=int, default=1_000_000, help="rows of the speed runs")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engine-memory", default="", help="the server's engine memory limit in the memory run (empty: DuckDB's default)")
    ap.add_argument("--only", default="", help="comma-separated parts of export names to run in the memory run")
    ap.add_argument("--skip", default="", help="'speed' or 'memory'")
    args = ap.parse_args(argv)
    data = demo_data(args.rows)
    if args.skip != "speed":
        speed(args, data)
    if args.skip != "memory":
        memory(args, data)


if __name__ == "__main__":
    main()
