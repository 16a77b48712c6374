"""CSV upload through HTTP against DuckDB's own read_csv of the same file, in one run.

Run on demand: ``python -m tests.benchmarks.bench_upload [--rows 1000000]``. Target: the
HTTP upload at least half the engine's rate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from .common import DATA_ROOT, Server, demo_data


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    data = demo_data(100_000)
    csv = DATA_ROOT / f"upload-{args.rows}.csv"
    if not csv.exists():
        con = duckdb.connect()
        # The same seeded generator's photometry, repeated up to the row count, as the CSV to upload.
        con.execute(f"ATTACH '{data / 'demo' / 'demo.duckdb'}' AS d (READ_ONLY)")
        con.execute(
            f"COPY (SELECT p.* FROM d.PhotoObj p, range({(args.rows + 99_999) // 100_000}) LIMIT {args.rows}) "
            f"TO '{csv}' (FORMAT csv, HEADER)"
        )
        con.close()
    size = csv.stat().st_size

    def engine_rate(database: str) -> float:
        con = duckdb.connect(database)
        t = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TABLE t AS SELECT * FROM read_csv('{csv}')")
        rate = args.rows / (time.perf_counter() - t)
        con.close()
        return rate

    server = Server(data, "--ArchiveApp.demo_rows=100000", "--ArchiveApp.upload_limit=10000000000")
    try:

        def http_rate() -> float:
            with open(csv, "rb") as fh:
                t = time.perf_counter()
                r = server.session.put(server.url + "archive/api/contexts/MyDB/tables/upload", data=fh,
                                       headers={"Content-Type": "text/csv"})
                rate = args.rows / (time.perf_counter() - t)
            assert r.status_code in (200, 201), r.text
            assert r.json()["rows"] == args.rows, r.text
            return rate

        # Best of a few runs of each, taking turns: one run on this 2-core machine can be
        # slowed by anything, and the engine's first read of the file by a cold page cache.
        with tempfile.TemporaryDirectory() as tmp:
            runs = [(engine_rate(":memory:"), engine_rate(str(Path(tmp) / "x.duckdb")), http_rate()) for _ in range(args.repeat)]
        memory, on_disk, http = (max(r[i] for r in runs) for i in range(3))
        print(f"CSV upload of {args.rows:,} rows ({size / 1e6:.0f} MB), best of {args.repeat}")
        print(f"engine read_csv into an in-memory table  {memory:12,.0f} rows/s")
        print(f"engine read_csv into a database file     {on_disk:12,.0f} rows/s   (what an upload to MyDB also does)")
        print(f"HTTP upload into MyDB                    {http:12,.0f} rows/s   ratio {http / memory:4.2f} to in-memory "
              f"(target >= 0.5), {http / on_disk:4.2f} to the file")
        print("  (the upload also checks integer columns for late non-integers, and computes and sorts by a HEALPix index)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
