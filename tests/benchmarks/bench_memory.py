"""Memory at rest (issue 16): the server's resident memory after start, after a query through each
face, after exports, and once idle engines have closed.

Run on demand: ``python -m tests.benchmarks.bench_memory [--rows 1000000] [--idle 5]``. Prints
RSS, heap (anonymous) and mapped files (code) in MB at each step; the target is <= 150 MB at rest.
"""

from __future__ import annotations

import argparse
import time

from .common import Server, demo_data

ADQL = "SELECT TOP 10 objid, ra, dec FROM demo.PhotoObj"
STEPS = [  # (what, method, path, arguments)
    ("CasJobs quick query (CSV)", "post", "casjobs/contexts/DEMO/query", {"json": {"Query": "SELECT TOP 10 objid, ra, dec FROM PhotoObj"}}),
    ("TAP sync (VOTable)", "get", "tap/sync", {"params": {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": ADQL}}),
    ("TAP sync (FITS: loads astropy)", "get", "tap/sync", {"params": {"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "fits", "QUERY": ADQL}}),
    ("TAP /tables", "get", "tap/tables", {}),
    ("Quasar query", "get", "quasar/query/fs/demo", {"params": {"q": "SELECT objid FROM PhotoObj LIMIT 10"}}),
    ("native contexts", "get", "api/contexts", {}),
    ("DAX meta", "get", "dax/meta/v0/db", {}),
    ("whole-table aggregate", "post", "api/query", {"json": {"query": "SELECT count(*), avg(ra) FROM PhotoObj", "context": "DEMO"}}),
    ("100,000-row CSV", "get", "tap/sync", {"params": {"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "csv", "MAXREC": "100000", "QUERY": "SELECT * FROM demo.PhotoObj"}}),
    ("100,000 sorted rows (VOTable)", "get", "tap/sync", {"params": {"REQUEST": "doQuery", "LANG": "ADQL", "MAXREC": "100000", "QUERY": "SELECT * FROM demo.PhotoObj ORDER BY ra"}}),
]  # fmt: skip


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the demo PhotoObj")
    ap.add_argument("--idle", type=float, default=5.0, help="the server's engine_idle_seconds")
    args = ap.parse_args(argv)
    server = Server(demo_data(args.rows), f"--ArchiveApp.demo_rows={args.rows}", f"--ArchiveApp.engine_idle_seconds={args.idle}")

    def show(what: str) -> None:
        m = server.memory_mb()
        print(f"| {what} | {m['rss']:.0f} | {m['heap']:.0f} | {m['files']:.0f} |", flush=True)

    try:
        print(f"\n## resident memory (MB) of the server on {args.rows:,} demo rows, engine_idle_seconds={args.idle:g}")
        print("| after | RSS | heap | files |\n|---|---|---|---|")
        time.sleep(2)
        show("start")
        for what, method, path, kw in STEPS:
            r = getattr(server.session, method)(server.url + "archive/" + path, timeout=300, **kw)
            assert r.ok, (what, r.status_code, r.text[:300])
            show(what)
        time.sleep(args.idle * 2 + 2)  # the idle watch closes the engines and gives memory back
        show(f"idle {args.idle * 2 + 2:g} s")
        print(f"peak (VmHWM): {server.peak_rss_mb():.0f} MB")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
