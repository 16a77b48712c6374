"""Jobs through HTTP: submit-to-running latency when idle and jobs per second, against the engine's time.

Run on demand: ``python -m tests.benchmarks.bench_jobs [--jobs 200]``. The same query's
engine time is measured in the same run; the target is submit-to-running under 20 ms idle.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import duckdb

from .common import Server, demo_data, percentiles

QUERY = "SELECT count(*) AS n, avg(r) AS r FROM PhotoObj WHERE r < 20"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=200)
    args = ap.parse_args(argv)

    data = demo_data(args.rows)
    con = duckdb.connect(str(data / "demo" / "demo.duckdb"), read_only=True)
    engine = []
    for _ in range(args.samples):
        t = time.perf_counter()
        con.sql(QUERY).fetchall()
        engine.append((time.perf_counter() - t) * 1000)
    server = Server(data, f"--ArchiveApp.demo_rows={args.rows}", "--ArchiveApp.job_workers=2", "--ArchiveApp.jobs_per_user=2")
    s = server.session
    try:
        latencies, totals = [], []
        for _ in range(args.samples):
            t0 = time.time()
            job = s.post(server.url + "archive/api/jobs", json={"query": QUERY, "context": "DEMO"}).json()
            done = s.get(server.url + f"archive/api/jobs/{job['id']}", params={"wait": "30"}).json()
            assert done["state"] == "completed", done
            latencies.append((done["started"] - done["submitted"]) * 1000)
            totals.append((time.time() - t0) * 1000)
        e50, e95 = percentiles(engine)
        l50, l95 = percentiles(latencies)
        t50, t95 = percentiles(totals)
        print(f"engine time of the query      p50 {e50:8.2f} ms   p95 {e95:8.2f} ms")
        print(f"submit -> running (idle)      p50 {l50:8.2f} ms   p95 {l95:8.2f} ms   (target < 20 ms)")
        print(f"submit -> result known (HTTP) p50 {t50:8.2f} ms   p95 {t95:8.2f} ms   ratio to engine {t50 / e50:5.1f}x")

        t = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda i: s.post(server.url + "archive/api/jobs", json={"query": QUERY, "context": "DEMO"}).json()["id"],
                                range(args.jobs)))
        for jid in ids:
            while True:
                j = s.get(server.url + f"archive/api/jobs/{jid}", params={"wait": "30"}).json()
                if j["state"] in ("completed", "failed", "canceled"):
                    assert j["state"] == "completed", j
                    break
        elapsed = time.perf_counter() - t
        rate = args.jobs / elapsed
        print(f"{args.jobs} jobs through HTTP: {rate:8.1f} jobs/s   (engine alone: {1000 / e50:8.1f} queries/s on one thread)")
    finally:
        server.stop()
        con.close()


if __name__ == "__main__":
    main()
