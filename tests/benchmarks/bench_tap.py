"""Positional queries through TAP against a full scan on DuckDB directly, in one run (issue: TAP).

Run on demand: ``python -m tests.benchmarks.bench_tap [--rows 10000000]``.
A seeded all-sky catalog (made once under tests/benchmarks/data, HEALPix-indexed and ordered
the way ingest does it) is mounted read-only; cone searches of 0.1 degree go through the TAP
sync endpoint (ADQL ``CONTAINS``) and the same cones run on DuckDB as a plain scan. Prints
p50/p95 and the ratio (target: TAP >= 20x faster than the scan), and a point lookup (a cone of
1 arcsec around a known object) through TAP (target: p50 < 10 ms).
"""

from __future__ import annotations

import argparse
import io
import json
import time

import duckdb
import numpy as np
import pyarrow as pa
from astropy.io.votable import parse_single_table

from jupyter_archive.core.sql import healpix_index
from jupyter_archive.core.backends import metadata as md

from .common import DATA_ROOT, Server, percentiles, time_calls

CONE = ("SELECT id, ra, dec, mag FROM cone.Catalog "
        "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, {r})) = 1")
SCAN = ("SELECT id, ra, dec, mag FROM Catalog WHERE 2 * asin(sqrt(pow(sin(radians(dec - $dec) / 2), 2) + "
        "cos(radians(dec)) * cos(radians($dec)) * pow(sin(radians(ra - $ra) / 2), 2))) <= radians($r)")


def catalog(rows: int) -> tuple:
    """(data dir, database file) of the seeded catalog, made once."""
    data = DATA_ROOT / f"tap-{rows}"
    path = data / "cone.duckdb"
    if path.exists():
        return data, path
    data.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    rng = np.random.default_rng(20261123)
    ra = rng.uniform(0, 360, rows)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, rows)))  # uniform on the sphere
    table = pa.table({
        "id": np.arange(rows, dtype=np.int64), "ra": ra, "dec": dec, "mag": rng.uniform(14, 24, rows).astype(np.float32),
    })
    tmp = path.with_suffix(".tmp")
    con = duckdb.connect(str(tmp))
    try:
        con.execute("SET preserve_insertion_order = true")
        con.register("src", table)
        # indexed and stored in index order exactly as ingest does it
        con.execute(f"CREATE TABLE Catalog AS {healpix_index.ordered(healpix_index.with_index('SELECT * FROM src', 'ra', 'dec'))}")
        md.write_metadata(con, "Catalog", "seeded all-sky benchmark catalog", {
            "ra": {"unit": "deg", "ucd": "pos.eq.ra;meta.main"}, "dec": {"unit": "deg", "ucd": "pos.eq.dec;meta.main"},
            "mag": {"unit": "mag", "ucd": "phot.mag"},
        })
        md.set_info(con, "healpix:Catalog", healpix_index.spec("ra", "dec"))
        con.execute("CHECKPOINT")
    finally:
        con.close()
    tmp.rename(path)
    print(f"# catalog: {rows:,} rows made in {time.perf_counter() - t:.1f} s ({path})")
    return data, path


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--cones", type=int, default=50, help="TAP cone searches (the scan runs a fifth as many)")
    ap.add_argument("--radius", type=float, default=0.1)
    args = ap.parse_args(argv)

    data, path = catalog(args.rows)
    con = duckdb.connect(str(path), read_only=True)
    rng = np.random.default_rng(7)
    centres = [(float(a), float(np.degrees(np.arcsin(b)))) for a, b in zip(rng.uniform(0, 360, 200), rng.uniform(-1, 1, 200))]
    known = con.sql("SELECT ra, dec, id FROM Catalog USING SAMPLE 200 ROWS (reservoir, 3)").fetchall()
    conf = data / "bench_config.json"
    conf.write_text(json.dumps({"ArchiveApp": {"mounts": [
        {"path": "/cone", "type": "duckdb", "location": str(path), "context": "CONE", "readOnly": True, "public": True},
    ]}}))
    server = Server(data, f"--config={conf}")
    s = server.session
    try:
        def tap(q: str) -> bytes:
            # the whole answer is received (as the scan's rows are fetched); parsing it is the client's time
            r = s.post(server.url + "archive/tap/sync", data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": q})
            assert r.status_code == 200 and b'value="OK"' in r.content, r.text[:500]
            return r.content

        def rows_of(body: bytes) -> int:
            return len(parse_single_table(io.BytesIO(body)).array)

        answers = []

        def tap_cone(i):
            ra, dec = centres[i % len(centres)]
            answers.append(tap(CONE.format(ra=ra, dec=dec, r=args.radius)))

        def scan_cone(i):
            ra, dec = centres[i % len(centres)]
            con.sql(SCAN, params={"ra": ra, "dec": dec, "r": args.radius}).fetchall()

        def tap_point(i):
            ra, dec, _ = known[i % len(known)]
            answers.append(tap(CONE.format(ra=ra, dec=dec, r=1 / 3600)))

        # the same cones both ways, and the same rows back
        ra0, dec0 = centres[0]
        want = sorted(r[0] for r in con.sql(SCAN, params={"ra": ra0, "dec": dec0, "r": args.radius}).fetchall())
        r = s.post(server.url + "archive/tap/sync", data={"LANG": "ADQL", "QUERY": CONE.format(ra=ra0, dec=dec0, r=args.radius)})
        got = sorted(int(x) for x in parse_single_table(io.BytesIO(r.content)).array["id"])
        assert got == want, "TAP and the scan disagree"

        print(f"\n## cone searches, radius {args.radius} deg, on {args.rows:,} rows (p50 / p95 in ms)")
        s50, s95 = percentiles(time_calls(scan_cone, max(5, args.cones // 5), warm=1))
        t50, t95 = percentiles(time_calls(tap_cone, args.cones, warm=3))
        print(f"DuckDB full scan       {s50:9.2f} / {s95:9.2f}")
        print(f"TAP sync (HEALPix)     {t50:9.2f} / {t95:9.2f}   {np.mean([rows_of(b) for b in answers]):.1f} rows per cone")
        print(f"speed-up {s50 / t50:6.1f}x (target >= 20x)")
        answers.clear()
        p50, p95 = percentiles(time_calls(tap_point, 100, warm=3))
        assert all(rows_of(b) >= 1 for b in answers), "a point lookup missed its object"
        print(f"\n## point lookup through TAP (1 arcsec cone at a known object)\n"
              f"TAP sync               {p50:9.2f} / {p95:9.2f}   (target p50 < 10 ms)")
    finally:
        server.stop()
        con.close()


if __name__ == "__main__":
    main()
