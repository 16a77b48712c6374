"""The HEALPix positional index: a column of nested HEALPix indices of each row's sky position,
with the table stored in its order, so that a cone search reads only ranges of it.

- Declared per table in its database's ``archive_meta.info`` (``healpix:<table>``, see
  ``HEALPIX_INFO_PREFIX``), read back as a ``HealpixIndex``.
- Made at ingest (``index_table``): HEALPix's ``ang2pix_nest`` as DuckDB SQL, run by the engine.
- Used by the ADQL rewrite (``adql.py``): the cells covering a cone become ``BETWEEN`` ranges of the
  column (``healpix_ranges``), ANDed to the exact test.

A table "has sky positions" when it has a numeric RA/Dec pair: by UCD (``pos.eq.ra`` /
``pos.eq.dec``, ``;meta.main`` preferred) or by a usual name pair (ra/dec, raj2000/dej2000...).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

from .compiled import quote_ident

#: ``archive_meta.info`` key ``healpix:<table>`` = ``"<column>,<order>,<shift>,<ra>,<dec>"``:
#: ``column >> shift`` is the nested HEALPix index at ``order`` of (ra, dec), and the table is
#: stored in ``column`` order so that ranges of it are cheap to read.
HEALPIX_INFO_PREFIX = "healpix:"
#: The demo's PhotoObj (see ``demo.OBJID_HEALPIX_ORDER`` / ``OBJID_SHIFT``).
DEMO_PHOTOOBJ_HEALPIX = "objid,12,35,ra,dec"


class HealpixIndex(NamedTuple):
    """A column holding the nested HEALPix index (``column >> shift``, order ``order``) of the
    position columns (``ra``, ``dec``) in degrees."""

    column: str
    order: int
    shift: int
    ra: str
    dec: str


def parse_healpix_spec(text: str) -> HealpixIndex:
    """``"objid,12,35,ra,dec"`` -> HealpixIndex; ValueError if malformed."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 5 or not all(parts):
        raise ValueError(f"healpix index spec must be 'column,order,shift,ra,dec', not {text!r}")
    order, shift = int(parts[1]), int(parts[2])
    if not (0 <= order <= 29 and 0 <= shift and shift + 4 + 2 * order <= 63):
        raise ValueError(f"healpix order/shift out of range in {text!r}")
    return HealpixIndex(parts[0], order, shift, parts[3], parts[4])


def healpix_index_from_info(info: Mapping[str, str], table: str) -> HealpixIndex | None:
    """The index a context's ``archive_meta.info`` declares for ``table`` (key matched
    case-insensitively), or None. For wiring ``compile_query(positional_index=...)``."""
    wanted = (HEALPIX_INFO_PREFIX + table).casefold()
    for key, value in info.items():
        if key.casefold() == wanted:
            return parse_healpix_spec(value)
    return None


# ---------------------------------------------------------------------------------------------
# Made at ingest
# ---------------------------------------------------------------------------------------------

COLUMN = "healpix_index"
#: Order 20: cells of ~0.2 arcsec, fine enough for any cone; the planner picks coarser cells.
ORDER = 20
DESCRIPTION = f"nested HEALPix index (order {ORDER}) of the row's (ra, dec), added at ingest for fast positional queries"
_NAME_PAIRS = (("ra", "dec"), ("raj2000", "dej2000"), ("ra_icrs", "de_icrs"), ("ra_deg", "dec_deg"), ("alpha", "delta"))
_NUMERIC = ("DOUBLE", "FLOAT", "REAL", "DECIMAL", "NUMERIC", "INTEGER", "BIGINT", "SMALLINT", "HUGEINT")


def spec(ra: str, dec: str) -> str:
    """The ``healpix:<table>`` value for an index made here (see ``parse_healpix_spec``)."""
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


_N = 1 << ORDER
_HELPERS = ("__hpx_z", "__hpx_t", "__hpx_s", "__hpx_eq", "__hpx_n", "__hpx_jp", "__hpx_jm", "__hpx_f", "__hpx_x", "__hpx_y")


def spread(select_sql: str, columns: tuple[str, ...]) -> str:
    """``select_sql`` with the 20 low bits of each of ``columns`` spread to the even bits
    (Morton interleave). One projection per step: nested in one expression, each step would
    repeat the previous one twice over."""
    for i, (shift, mask) in enumerate(
        ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F), (2, 0x3333333333333333), (1, 0x5555555555555555))
    ):
        steps = ", ".join(f"(({c} | ({c} << {shift})) & {mask}) AS {c}" for c in columns)
        select_sql = f"SELECT * REPLACE ({steps}) FROM ({select_sql}) AS __hpx_s{i}"
    return select_sql


def with_index(select_sql: str, ra: str, dec: str) -> str:
    """A query: every column of ``select_sql`` plus ``healpix_index``, the nested HEALPix index
    at ``ORDER`` of (ra, dec) in degrees (null where either is missing or out of range).

    HEALPix's ``ang2pix_nest`` (Gorski et al. 2005) written as DuckDB SQL, so that the index
    is computed by the engine, in parallel, in the same pass that loads an upload. Cells agree
    with CDS's ``cdshealpix`` except for positions exactly on a cell's edge, which may go to the
    neighbouring cell; a cone's cell coverage always holds both, so no search misses them.
    """
    r, d, n = f"CAST({quote_ident(ra)} AS DOUBLE)", f"CAST({quote_ident(dec)} AS DOUBLE)", _N
    ok = f"{d} BETWEEN -90 AND 90 AND isfinite({r})"
    # z = sin(dec); t = ra in quarter turns [0, 4); s = sqrt(3 (1 - |z|)), written to stay exact near the poles
    step1 = (
        f"SELECT *, CASE WHEN {ok} THEN sin(radians({d})) END AS __hpx_z, "
        f"CASE WHEN {ok} THEN (({r} % 360 + 360) % 360) / 90.0 END AS __hpx_t, "
        f"CASE WHEN {ok} THEN sqrt(6) * sin(radians(90 - abs({d})) / 2) END AS __hpx_s FROM ({select_sql}) AS __hpx_0"
    )
    # jp, jm: indices along the two edge directions (equatorial belt, or a polar cap's triangle)
    tp = "(__hpx_t - least(3, floor(__hpx_t)))"
    step2 = (
        f"SELECT *, abs(__hpx_z) <= 2.0 / 3 AS __hpx_eq, CAST(least(3, floor(__hpx_t)) AS BIGINT) AS __hpx_n, "
        f"CAST(CASE WHEN abs(__hpx_z) <= 2.0 / 3 THEN floor({n} * (0.5 + __hpx_t) - {n} * 0.75 * __hpx_z) "
        f"ELSE least({n - 1}, floor({tp} * {n} * __hpx_s)) END AS BIGINT) AS __hpx_jp, "
        f"CAST(CASE WHEN abs(__hpx_z) <= 2.0 / 3 THEN floor({n} * (0.5 + __hpx_t) + {n} * 0.75 * __hpx_z) "
        f"ELSE least({n - 1}, floor((1 - {tp}) * {n} * __hpx_s)) END AS BIGINT) AS __hpx_jm FROM ({step1}) AS __hpx_1"
    )
    fp, fm = f"(__hpx_jp >> {ORDER})", f"(__hpx_jm >> {ORDER})"
    step3 = (
        f"SELECT *, CASE WHEN __hpx_eq THEN (CASE WHEN {fp} = {fm} THEN {fp} | 4 WHEN {fp} < {fm} THEN {fp} ELSE {fm} + 8 END) "
        f"WHEN __hpx_z >= 0 THEN __hpx_n ELSE __hpx_n + 8 END AS __hpx_f, "
        f"CASE WHEN __hpx_eq THEN __hpx_jm & {n - 1} WHEN __hpx_z >= 0 THEN {n - 1} - __hpx_jm ELSE __hpx_jp END AS __hpx_x, "
        f"CASE WHEN __hpx_eq THEN {n - 1} - (__hpx_jp & {n - 1}) WHEN __hpx_z >= 0 THEN {n - 1} - __hpx_jp ELSE __hpx_jm END "
        f"AS __hpx_y FROM ({step2}) AS __hpx_2"
    )
    return (
        f"SELECT * EXCLUDE ({', '.join(_HELPERS)}), "
        # (least() skips nulls, so a missing position is tested once more here)
        f"CASE WHEN __hpx_z IS NOT NULL THEN (__hpx_f << {2 * ORDER}) | __hpx_x | (__hpx_y << 1) END "
        f"AS {quote_ident(COLUMN)} "
        f"FROM ({spread(step3, ('__hpx_x', '__hpx_y'))}) AS __hpx_3"
    )


def index_table(cur, alias: str, table: str, ra: str, dec: str) -> None:
    """Give ``alias.main.table`` its index column: a new column with the rows rewritten in index
    order, or (column already there, e.g. after an append) the missing values filled in."""
    target = f"{quote_ident(alias)}.main.{quote_ident(table)}"
    has = cur.execute(
        "SELECT 1 FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main' AND table_name = ? AND column_name = ?",
        [alias, table, COLUMN],
    ).fetchall()
    if has:
        missing = with_index(
            f"SELECT rowid AS __hpx_rid, {quote_ident(ra)}, {quote_ident(dec)} FROM {target} WHERE {quote_ident(COLUMN)} IS NULL",
            ra, dec,
        )  # fmt: skip
        cur.execute(
            f"UPDATE {target} SET {quote_ident(COLUMN)} = h.{quote_ident(COLUMN)} FROM ({missing}) AS h "
            f"WHERE {target}.rowid = h.__hpx_rid"
        )
    else:
        # rewriting the table in index order is what lets a range of the index skip storage
        cur.execute(f"CREATE OR REPLACE TABLE {target} AS {ordered(with_index(f'SELECT * FROM {target}', ra, dec))}")


def ordered(select_sql: str) -> str:
    """``select_sql`` (which has the index column) in index order, as tables are stored."""
    return f"{select_sql} ORDER BY {quote_ident(COLUMN)} NULLS LAST"


# ---------------------------------------------------------------------------------------------
# Used by cone searches
# ---------------------------------------------------------------------------------------------

def healpix_ranges(index: HealpixIndex, ra: float, dec: float, radius: float, max_ranges: int = 48):
    """Inclusive ``[(lo, hi), ...]`` ranges of ``index.column`` covering the cone, or None
    when a range filter would not help (bad or huge cone)."""
    cells = _cone_cells(index, ra, dec, radius)
    return None if cells is None else _ranges(index, cells, max_ranges)


def _cone_cells(index: HealpixIndex, ra: float, dec: float, radius: float):
    """``[(first, end), ...)`` cells at ``index.order`` covering the cone, or None."""
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix.nested import cone_search

    if not all(math.isfinite(v) for v in (ra, dec, radius)) or not (0 < radius <= 60 and -90 <= dec <= 90):
        return None
    # Cells about half the radius across (order-0 cells are ~58.6 deg): a few dozen cells.
    depth = max(0, min(index.order, math.ceil(math.log2(117.3 / radius))))
    ipix, depths, _ = cone_search(Longitude(ra % 360, u.deg), Latitude(dec, u.deg), radius * u.deg, depth)
    return [(int(p) << (2 * (index.order - int(d))), (int(p) + 1) << (2 * (index.order - int(d)))) for p, d in zip(ipix, depths)]


def _ranges(index: HealpixIndex, cells, max_ranges: int):
    merged: list[list[int]] = []
    for a, b in sorted(cells):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    while len(merged) > max_ranges:  # close the smallest gap: fewer ORs, a little more read
        k = min(range(len(merged) - 1), key=lambda i: merged[i + 1][0] - merged[i][1])
        merged[k][1] = merged.pop(k + 1)[1]
    return [(a << index.shift, (b << index.shift) - 1) for a, b in merged]
