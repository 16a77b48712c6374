"""CSV upload through HTTP against DuckDB's own read_csv of the same file, in one run.

Run on demand: ``python -m tests.benchmarks.bench_upload [--rows 1000000]``. Target: the
HTTP upload at least half the engine's rate.
"""

from __future__ import annotations

import argparse
import time

import duckdb

from .common import DATA_ROOT, Server, demo_data


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
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
    con = duckdb.connect()
    t = time.perf_counter()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{csv}')")
    engine = args.rows / (time.perf_counter() - t)
    con.close()

    server = Server(data, "--ArchiveApp.demo_rows=100000", "--ArchiveApp.upload_limit=10000000000")
    try:
        with open(csv, "rb") as fh:
            t = time.perf_counter()
            r = server.session.put(server.url + "archive/api/contexts/MyDB/tables/upload", data=fh,
                                   headers={"Content-Type": "text/csv"})
            http = args.rows / (time.perf_counter() - t)
        assert r.status_code in (200, 201), r.text
        assert r.json()["rows"] == args.rows, r.text
        print(f"CSV upload of {args.rows:,} rows ({size / 1e6:.0f} MB)")
        print(f"engine read_csv  {engine:12,.0f} rows/s")
        print(f"HTTP upload      {http:12,.0f} rows/s   ratio {http / engine:4.2f}   (target >= 0.5)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
