"""HEALPix positional indexes made at ingest: a column of nested HEALPix indices of each row's
sky position, the table stored in its order, and the ``healpix:<table>`` declaration the ADQL
planner reads (``adql.HealpixIndex``) to turn cone searches into range scans.

A table "has sky positions" when it has a numeric RA/Dec pair: by UCD (``pos.eq.ra`` /
``pos.eq.dec``, ``;meta.main`` preferred) or by a usual name pair (ra/dec, raj2000/dej2000...).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .backends.duckdb import quote_ident

COLUMN = "healpix_index"
#: Order 20: cells of ~0.2 arcsec, fine enough for any cone; the planner picks coarser cells.
ORDER = 20
DESCRIPTION = f"nested HEALPix index (order {ORDER}) of the row's (ra, dec), added at ingest for fast positional queries"
_NAME_PAIRS = (("ra", "dec"), ("raj2000", "dej2000"), ("ra_icrs", "de_icrs"), ("ra_deg", "dec_deg"), ("alpha", "delta"))
_NUMERIC = ("DOUBLE", "FLOAT", "REAL", "DECIMAL", "NUMERIC", "INTEGER", "BIGINT", "SMALLINT", "HUGEINT")


def spec(ra: str, dec: str) -> str:
    """The ``healpix:<table>`` value for an index made here (see ``adql.parse_healpix_spec``)."""
    return f"{COLUMN},{ORDER},0,{ra},{dec}"


def sky_columns(columns: list[tuple[str, str]], meta: dict[str, dict[str, str]]) -> tuple[str, str] | None:
    """The (ra, dec) column names of a table, from ``(name, engine type)`` pairs and column
    metadata (UCDs), or None when it has no numeric sky position."""
    numeric = {n.lower(): n for n, t in columns if (t or "").upper().startswith(_NUMERIC)}
    lower_meta = {k.lower(): v for k, v in meta.items()}

    def by_ucd(word: str) -> str | None:
        found = [n for low, n in numeric.items() if (lower_meta.get(low, {}).get("ucd") or "").lower().split(";")[0] == word]
        main = [n for n in found if "meta.main" in (lower_meta.get(n.lower(), {}).get("ucd") or "").lower()]
        return (main or found or [None])[0]

    ra, dec = by_ucd("pos.eq.ra"), by_ucd("pos.eq.dec")
    if ra and dec:
        return ra, dec
    for r, d in _NAME_PAIRS:
        if r in numeric and d in numeric:
            return numeric[r], numeric[d]
    return None


def indices(ra: np.ndarray, dec: np.ndarray) -> pa.Array:
    """Nested HEALPix indices at ``ORDER`` of positions in degrees; null where a position is
    missing or out of range."""
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix.nested import lonlat_to_healpix

    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    out = np.zeros(len(ra), dtype=np.int64)
    if ok.any():
        out[ok] = lonlat_to_healpix(Longitude(ra[ok] % 360, u.deg), Latitude(dec[ok], u.deg), ORDER).astype(np.int64)
    return pa.array(out, mask=~ok)


def index_table(cur, alias: str, table: str, ra: str, dec: str) -> None:
    """Give ``alias.main.table`` its index column: a new column with the rows rewritten in index
    order, or (column already there, e.g. after an append) the missing values filled in."""
    target = f"{quote_ident(alias)}.main.{quote_ident(table)}"
    has = cur.execute(
        "SELECT 1 FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main' AND table_name = ? AND column_name = ?",
        [alias, table, COLUMN],
    ).fetchall()
    where = f" WHERE {quote_ident(COLUMN)} IS NULL" if has else ""
    got = cur.execute(f"SELECT rowid, {quote_ident(ra)}::DOUBLE, {quote_ident(dec)}::DOUBLE FROM {target}{where}").fetchnumpy()
    rowid, ras, decs = (got[k] for k in got)
    values = pa.table({"rid": np.asarray(rowid, dtype=np.int64), "hpx": indices(np.ma.filled(ras, np.nan), np.ma.filled(decs, np.nan))})
    view = f"_hpx_{abs(hash((alias, table))) % 10**12}"
    cur.register(view, values)
    try:
        if has:
            cur.execute(f"UPDATE {target} SET {quote_ident(COLUMN)} = h.hpx FROM {view} AS h WHERE {target}.rowid = h.rid")
        else:
            # rewriting the table in index order is what lets a range of the index skip storage
            cur.execute(
                f"CREATE OR REPLACE TABLE {target} AS SELECT t.*, h.hpx AS {quote_ident(COLUMN)} "
                f"FROM {target} AS t JOIN {view} AS h ON t.rowid = h.rid ORDER BY h.hpx NULLS LAST"
            )
    finally:
        cur.unregister(view)
