"""A whole-catalog aggregate fanned out on a LocalCluster (1 and 2 workers) against single-process DuckDB.

Run on demand: ``python -m tests.benchmarks.bench_fanout [--rows 8000000] [--runs 5]``. The catalog (seeded,
one Parquet file per HEALPix order-2 cell, 192 files) is written once under ``--dir`` and reused. Runs are
interleaved (DuckDB, 1 worker, 2 workers, DuckDB, ...) and every run is printed; the target is the cluster
within 2.5x of DuckDB on this 2-core machine. Every fanned-out answer is checked against DuckDB's.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

from jupyter_archive.core.execution.cluster import Cluster, FanOut, batches, fan_out
from tests.support.partitioned import oracle, write_catalog

QUERY = "SELECT flags, count(*) AS n, avg(g) AS g, min(ra) AS ra, max(dec) AS dec FROM cat GROUP BY flags ORDER BY flags"


def catalog(root: Path, rows: int) -> list[str]:
    marker = root / f".rows-{rows}"
    if not marker.exists():
        t = time.perf_counter()
        write_catalog(root, rows)
        marker.write_text("")
        print(f"wrote {rows:,} rows in {time.perf_counter() - t:.1f} s")
    return sorted(str(p) for p in root.glob("Norder=*/Npix=*.parquet"))


def same(a, b) -> bool:
    return all(
        all(math.isclose(x, y, rel_tol=1e-9) if isinstance(x, float) else x == y for x, y in zip(r.values(), w.values()))
        for r, w in zip(a.to_pylist(), b.to_pylist())
    ) and a.num_rows == b.num_rows


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=8_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default="/tmp/jupyter_archive_bench_fanout")
    args = ap.parse_args(argv)

    from distributed import LocalCluster

    root = Path(args.dir)
    files = catalog(root, args.rows)
    print(f"{len(files)} files, query: {QUERY}")
    con = oracle(files)
    want = con.sql(QUERY).to_arrow_table()
    clusters = {}
    for n in (1, 2):
        t = time.perf_counter()
        local = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
        holder = Cluster(local.scheduler_address)
        clusters[n] = (local, holder, batches(files, holder.threads()))
        print(f"LocalCluster({n}x1) up in {time.perf_counter() - t:.1f} s, {len(clusters[n][2])} tasks")
        fan_out(holder, FanOut(QUERY, "cat", clusters[n][2], str(root))).read_all()  # workers import and warm up
    times: dict[str, list[float]] = {"duckdb": [], "cluster 1 worker": [], "cluster 2 workers": []}
    try:
        for run in range(args.runs):
            t = time.perf_counter()
            con.sql(QUERY).to_arrow_table()
            times["duckdb"].append(time.perf_counter() - t)
            for n in (1, 2):
                _, holder, parts = clusters[n]
                t = time.perf_counter()
                got = fan_out(holder, FanOut(QUERY, "cat", parts, str(root))).read_all()
                times[f"cluster {n} worker{'s' if n > 1 else ''}"].append(time.perf_counter() - t)
                assert same(got, want), "the fanned-out answer differs from DuckDB's"
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()))
    finally:
        for local, holder, _ in clusters.values():
            holder.close()
            local.close()
    base = statistics.median(times["duckdb"])
    for k, v in times.items():
        print(f"{k:18s} runs {', '.join(f'{x:.3f}' for x in v)} s; median {statistics.median(v):.3f} s ({statistics.median(v) / base:.2f}x DuckDB)")


if __name__ == "__main__":
    main()
