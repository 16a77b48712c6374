"""Cross-matches of TAP uploads through TAP sync against DuckDB's band join on the same rows, in one run
(issue 17, "First, cross-matches on what exists").

Run on demand: ``python -m tests.benchmarks.bench_xmatch [--sizes 500 5000 50000] [--rounds 3]``.
The demo's 100,000 rows (``demo_data(100_000)``) are uploaded into MyDB (which gives them their
HEALPix index); positions (half within 1 arcsec of a row, half anywhere) are uploaded with each
query and matched at 2 arcsec with CONTAINS and with DISTANCE, against the MyDB table and the demo's
PhotoObj. The band join (a Dec band, then the exact distance) runs on the same rows in an
in-process DuckDB. Rounds take turns (every method once per round, per size); every run's time is
printed, then the ratios of the medians. Target (DaCHS on the same rows): 500 in 0.18 s, 5,000 in
0.59-0.73 s.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import duckdb
import numpy as np
from astropy.io.votable import from_table, parse_single_table
from astropy.table import Table

from .common import DATA_ROOT, Server, demo_data

R = 2 / 3600
QUERIES = {
    "contains mydb": "SELECT u.id, p.objid FROM TAP_UPLOAD.up AS u JOIN mydb.stars AS p "
                     f"ON CONTAINS(POINT('ICRS', p.ra, p.dec), CIRCLE('ICRS', u.ra, u.dec, {R!r})) = 1",
    "distance mydb": "SELECT u.id, p.objid FROM TAP_UPLOAD.up AS u JOIN mydb.stars AS p "
                     f"ON DISTANCE(POINT('ICRS', p.ra, p.dec), POINT('ICRS', u.ra, u.dec)) < {R!r}",
    "contains demo": "SELECT u.id, p.objid FROM TAP_UPLOAD.up AS u JOIN demo.PhotoObj AS p "
                     f"ON CONTAINS(POINT('ICRS', p.ra, p.dec), CIRCLE('ICRS', u.ra, u.dec, {R!r})) = 1",
}
BAND = (
    f"SELECT u.id, p.objid FROM up AS u JOIN stars AS p ON p.dec BETWEEN u.dec - {R!r} AND u.dec + {R!r} "
    "AND DEGREES(2 * ASIN(LEAST(1.0, SQRT(POWER(SIN(RADIANS(p.dec - u.dec) / 2), 2) + COS(RADIANS(u.dec)) "
    f"* COS(RADIANS(p.dec)) * POWER(SIN(RADIANS(p.ra - u.ra) / 2), 2))))) <= {R!r}"
)


def positions(stars: Table, n: int) -> Table:
    """``n`` seeded positions: half within 1 arcsec of a row of ``stars``, half uniform on the sky."""
    rng = np.random.default_rng(n)
    k = n // 2
    pick = rng.integers(0, len(stars), k)
    dec = np.clip(np.asarray(stars["dec"])[pick] + rng.uniform(-1, 1, k) / 3600, -90, 90)
    ra = (np.asarray(stars["ra"])[pick] + rng.uniform(-1, 1, k) / 3600 / np.maximum(np.cos(np.radians(dec)), 1e-3)) % 360
    ra = np.concatenate([ra, rng.uniform(0, 360, n - k)])
    dec = np.concatenate([dec, np.degrees(np.arcsin(rng.uniform(-1, 1, n - k)))])
    return Table({"id": np.arange(n), "ra": ra, "dec": dec})


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 5000, 50000])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)

    data = demo_data(100_000)
    demo = duckdb.connect(str(data / "demo" / "demo.duckdb"), read_only=True)
    stars = demo.sql("SELECT objid, ra, dec FROM PhotoObj").fetch_arrow_table()
    demo.close()
    band = duckdb.connect()
    band.register("src", stars)
    band.sql("CREATE TABLE stars AS SELECT * FROM src")
    csv = DATA_ROOT / "xmatch-stars.csv"
    band.sql(f"COPY stars TO '{csv}' (FORMAT csv, HEADER)")
    ups = {n: positions(Table(stars.to_pydict()), n) for n in args.sizes}
    bodies = {}
    for n, t in ups.items():
        buf = io.BytesIO()
        from_table(t).to_xml(buf, tabledata_format="tabledata")
        bodies[n] = buf.getvalue()

    server = Server(data, "--ArchiveApp.demo_rows=100000")
    s = server.session
    try:
        with open(csv, "rb") as fh:
            r = s.put(server.url + "archive/api/contexts/MyDB/tables/stars", data=fh, headers={"Content-Type": "text/csv"})
        assert r.status_code in (200, 201), r.text

        def tap(n: int, query: str) -> list:
            r = s.post(server.url + "archive/tap/sync", data={"LANG": "ADQL", "QUERY": query, "UPLOAD": "up,param:up",
                                                              "MAXREC": "10000000"},
                       files={"up": ("up.xml", bodies[n], "application/x-votable+xml")})
            assert r.status_code == 200 and b'value="OK"' in r.content, r.text[:500]
            return sorted(map(tuple, parse_single_table(io.BytesIO(r.content)).to_table()[["id", "objid"]].as_array().tolist()))

        def duck(n: int) -> list:
            band.register("up", ups[n].to_pandas())
            return sorted(band.sql(BAND).fetchall())

        times: dict[tuple, list[float]] = {}
        for n in args.sizes:  # every method gives the same pairs (and warms up)
            want = duck(n)
            for name, q in QUERIES.items():
                assert tap(n, q) == want, f"{name} at {n} differs from the band join"
            print(f"# {n:,} positions: {len(want):,} pairs, every method the same")
        print(f"\n## cross-match at 2 arcsec with 100,000 rows: seconds per run ({args.rounds} rounds, interleaved)")
        for rnd in range(args.rounds):
            for n in args.sizes:
                for name in ("band join", *QUERIES):
                    t = time.perf_counter()
                    duck(n) if name == "band join" else tap(n, QUERIES[name])
                    times.setdefault((n, name), []).append(time.perf_counter() - t)
        for n in args.sizes:
            base = statistics.median(times[(n, "band join")])
            for name in ("band join", *QUERIES):
                runs = times[(n, name)]
                print(f"{n:7,} {name:15} " + " ".join(f"{x:7.3f}" for x in runs)
                      + f"   median {statistics.median(runs):7.3f}   ratio to band join {statistics.median(runs) / base:6.2f}")
        print("(TAP times include the upload, VOTable parsing both ways and HTTP; the band join's only the query)")
    finally:
        server.stop()
        band.close()


if __name__ == "__main__":
    main()
