"""Quick queries and exports through HTTP against DuckDB directly, in one run (issue: archive core).

Run on demand: ``python -m tests.benchmarks.bench_quick [--rows 5000000] [--export-rows 1000000]``.
Quick queries are timed through a lean HTTP client (``http.client``, kept alive), with
``requests`` alongside, since requests alone spends ~0.6 ms a call. Prints p50/p95
latencies and rows/s, each with its ratio to the raw engine, and the service's peak
memory while exporting the whole table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import duckdb

from .common import LeanClient, Server, demo_data, percentiles, time_paired


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000, help="rows of the demo PhotoObj (the memory run exports them all)")
    ap.add_argument("--export-rows", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--engine-memory", default="64MB", help="engine memory limit of the server in the memory run")
    args = ap.parse_args(argv)

    data = demo_data(args.rows)
    db_file = data / "demo" / "demo.duckdb"
    con = duckdb.connect(str(db_file), read_only=True)
    ids = [r[0] for r in con.sql(f"SELECT objid FROM PhotoObj USING SAMPLE {args.requests} ROWS").fetchall()]
    server = Server(data, f"--ArchiveApp.demo_rows={args.rows}", "--ArchiveApp.quick_row_limit=10000000")
    s = server.session
    try:
        print(f"\n## quick queries ({args.requests} requests each; p50 / p95 in ms; engine and HTTP take turns every 25 calls)")
        lean = LeanClient(server.port)
        point_sql = "SELECT * FROM PhotoObj WHERE objid = $id"

        def engine_point(i):
            con.sql(point_sql, params={"id": ids[i % len(ids)]}).fetchall()

        def point_body(i):
            return {"query": point_sql, "context": "DEMO", "params": {"id": ids[i % len(ids)]}}

        def http_point(i):
            status, body = lean.request("POST", "/archive/api/query", point_body(i))
            assert status == 200 and json.loads(body)["rows"] == 1, body

        def requests_point(i):
            r = s.post(server.url + "archive/api/query", json=point_body(i))
            assert r.status_code == 200 and r.json()["rows"] == 1, r.text

        top_sql = "SELECT TOP 10 objid, ra, dec FROM PhotoObj"

        def engine_top(i):
            con.sql("SELECT objid, ra, dec FROM PhotoObj LIMIT 10").fetchall()

        def http_top(i):
            status, body = lean.request("POST", "/archive/casjobs/contexts/DEMO/query", {"Query": top_sql})
            assert status == 200, body

        def requests_top(i):
            r = s.post(server.url + "archive/casjobs/contexts/DEMO/query", json={"Query": top_sql})
            assert r.status_code == 200, r.text

        for name, eng, http, req in (("point query by objid", engine_point, http_point, requests_point),
                                     ("TOP 10 (CasJobs)", engine_top, http_top, requests_top)):
            e, h, q = (percentiles(x) for x in time_paired((eng, http, req), args.requests))
            print(f"{name:24s} engine {e[0]:7.3f} / {e[1]:7.3f}   http {h[0]:7.3f} / {h[1]:7.3f}   "
                  f"p50 overhead {h[0] - e[0]:+.3f} ms (target <= 1.5)   ratio {h[0] / e[0]:5.1f}x")
            print(f"{'':24s} the same through requests {q[0]:7.3f} / {q[1]:7.3f}   p50 overhead {q[0] - e[0]:+.3f} ms")
        floor = [percentiles(x)[0] for x in time_paired(
            (lambda i: lean.request("GET", "/api/status"), lambda i: s.get(server.url + "api/status")), args.requests)]
        print(f"{'client floor':24s} Jupyter's own GET /api/status: http.client {floor[0]:.3f} ms, requests {floor[1]:.3f} ms")
        lean.close()

        print(f"\n## export of {args.export_rows:,} rows (rows/s, best of 2 through HTTP, best of 3 for COPY; ratio = http / engine COPY)")
        with tempfile.TemporaryDirectory() as tmp:
            copies = {}
            for fmt, opts in (("csv", "(FORMAT csv, HEADER)"), ("parquet", "(FORMAT parquet)")):
                rates = []
                for _ in range(3):  # best of 3: one COPY on this 2-core machine varies by a third
                    t = time.perf_counter()
                    con.sql(f"COPY (SELECT * FROM PhotoObj LIMIT {args.export_rows}) TO '{Path(tmp) / ('x.' + fmt)}' {opts}")
                    rates.append(args.export_rows / (time.perf_counter() - t))
                copies[fmt] = max(rates)
            for fmt, target, enc in (("csv", "80% of COPY", "identity"), ("csv", "(gzip)", "gzip"), ("parquet", "", "identity"),
                                     ("votable/binary2", ">= 1,000,000 rows/s", "identity"), ("votable/tabledata", "", "identity"),
                                     ("fits", ">= 1,000,000 rows/s", "identity")):
                rate = 0.0
                for _ in range(2):  # best of 2, as the engine's best of 3
                    t = time.perf_counter()
                    size = 0
                    with s.get(server.url + "archive/api/contexts/DEMO/tables/PhotoObj/rows",
                               params={"limit": args.export_rows, "format": fmt}, headers={"Accept-Encoding": enc}, stream=True) as r:
                        assert r.status_code == 200, r.text[:500]
                        for chunk in r.iter_content(1 << 20):
                            size += len(chunk)
                    rate = max(rate, args.export_rows / (time.perf_counter() - t))
                ref = copies.get(fmt.split("/")[0], copies["csv"])
                print(f"{fmt:18s} http {rate:12,.0f} rows/s  ({size / 1e6:8.1f} MB)   engine COPY {ref:12,.0f}   "
                      f"ratio {rate / ref:5.2f}   {('target ' + target) if target else ''}")

    finally:
        server.stop()

    # A fresh server, so the peak is the export's own; DuckDB's block cache is bounded by the
    # engine memory limit (its default is 80% of RAM, which would count cached table data).
    server = Server(data, f"--ArchiveApp.demo_rows={args.rows}", f"--ArchiveApp.engine_memory_limit={args.engine_memory}")
    s = server.session
    try:
        print(f"\n## peak memory exporting all {args.rows:,} rows, engine memory limit {args.engine_memory} (target < 500 MB)")
        for fmt in ("csv", "parquet", "votable/binary2", "fits"):
            before = server.rss_mb()
            peak = [before]
            done = threading.Event()

            def watch():
                while not done.is_set():
                    peak[0] = max(peak[0], server.rss_mb())
                    time.sleep(0.05)

            w = threading.Thread(target=watch)
            w.start()
            t = time.perf_counter()
            with s.get(server.url + "archive/api/contexts/DEMO/tables/PhotoObj/rows", params={"limit": args.rows, "format": fmt},
                       headers={"Accept-Encoding": "identity"}, stream=True) as r:
                for _ in r.iter_content(1 << 20):
                    pass
            done.set()
            w.join()
            print(f"{fmt:18s} rss before {before:7.1f} MB   peak during {peak[0]:7.1f} MB   "
                  f"{args.rows / (time.perf_counter() - t):12,.0f} rows/s")
        print(f"peak RSS of the server process over the whole run (VmHWM): {server.peak_rss_mb():.1f} MB")
    finally:
        server.stop()
        con.close()


if __name__ == "__main__":
    main()
