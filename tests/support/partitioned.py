"""A seeded catalog split into Parquet files by HEALPix cell (as a HATS catalog's partitions are), for fan-out tests
and benchmarks; and the single-process DuckDB over all its files that every fanned-out result must equal."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ORDER = 29  # the catalog's HEALPix index: nested, order 29 (HATS's _healpix_29)


def write_catalog(root: Path, rows: int, *, seed: int = 17, order: int = 2, chunk: int = 1_000_000) -> list[str]:
    """``rows`` seeded rows in one Parquet file per HEALPix cell of ``order`` (sorted by ``_healpix_29`` inside),
    written under ``root``; returns the files in sky order. Columns: objid, ra, dec, g (5 % NULL), flags, _healpix_29."""
    import astropy.units as u
    import cdshealpix

    rng = np.random.default_rng(seed)
    tables = []
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        ra = rng.uniform(0, 360, n)
        dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
        g = pa.array(rng.normal(20, 2, n), mask=rng.random(n) < 0.05)
        cells = cdshealpix.lonlat_to_healpix(ra * u.deg, dec * u.deg, ORDER).astype(np.int64)
        tables.append(pa.table({
            "objid": np.arange(start, start + n, dtype=np.int64), "ra": ra, "dec": dec, "g": g,
            "flags": rng.integers(0, 16, n).astype(np.int32), "_healpix_29": cells,
        }))  # fmt: skip
    table = pa.concat_tables(tables).sort_by("_healpix_29")
    cell = pc.shift_right(table["_healpix_29"], 2 * (ORDER - order)).to_numpy()
    bounds = np.flatnonzero(np.diff(cell)) + 1
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(cell)]):
        path = root / f"Norder={order}" / f"Npix={cell[lo]}.parquet"
        path.parent.mkdir(exist_ok=True)
        pq.write_table(table.slice(lo, hi - lo), path, row_group_size=10_000)
        files.append(str(path))
    return files


def oracle(files: list[str], table: str = "cat", shipped: dict[str, pa.Table] | None = None) -> duckdb.DuckDBPyConnection:
    """Single-process DuckDB with ``table`` a view over every file (and the ``shipped`` tables)."""
    con = duckdb.connect(":memory:")
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{listed}], hive_partitioning = false)")
    for name, data in (shipped or {}).items():
        con.register(name, data)
    return con
