"""The HEALPix positional index: a column of nested HEALPix indices of each row's sky position,
with the table stored in its order, so that a cone search reads only ranges of it.

- Declared per table in its database's ``archive_meta.info`` (``healpix:<table>``, see
  ``HEALPIX_INFO_PREFIX``), read back as a ``HealpixIndex``.
- Made at ingest (``index_table``): HEALPix's ``ang2pix_nest`` as DuckDB SQL, run by the engine.
- Used by the ADQL rewrite (``adql.py``): the cells covering a cone, a box or a polygon become
  ``BETWEEN`` ranges of the column (``sky_ranges``), ANDed to the exact test when values are bound (``fill``).

A table "has sky positions" when it has a numeric RA/Dec pair: by UCD (``pos.eq.ra`` /
``pos.eq.dec``, ``;meta.main`` preferred) or by a usual name pair (ra/dec, raj2000/dej2000...).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import native_faults
from .compiled import Statement, quote_ident

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
# Used by sky searches (cones, boxes, polygons): ranges of the index made when values are bound
# ---------------------------------------------------------------------------------------------

_TOKEN = f"__hpx_{uuid.uuid4().hex[:12]}_"  # no user text can have reached the engine SQL with it


@dataclass(frozen=True)
class SkyRegion:
    """A constant sky region (``kind`` circle, box or polygon) whose rows a range filter on ``index``
    may be ANDed to. ``values`` are its numbers as engine SQL (literals, ``$pN``, arithmetic of them):
    the ranges are made from them when values are bound (``fill``), not when the text is compiled, so
    two queries differing only in their numbers share one compilation (``literals``)."""

    token: str  # stands in the SQL for the range filter until it is filled in
    index: HealpixIndex
    column: str  # the index column as engine SQL
    kind: str
    values: tuple[str, ...]


def region_token(n: int) -> str:
    """The placeholder of a statement's ``n``th region in its SQL."""
    return f"{_TOKEN}{n}__"


def late_token(n: int) -> str:
    """The placeholder of a statement's ``n``th late exact test (``geometry.LateTest``) in its SQL."""
    return f"{_TOKEN}t{n}__"


def bind(st: Statement, params: dict[str, Any]) -> Statement:
    """``st`` with ``params`` bound, its sky regions' range filters made for them."""
    if st.late is None:
        return dataclasses.replace(st, params=params)
    sql, regions = fill(st.late, params)
    return dataclasses.replace(st, sql=sql, params=params, regions=regions)


def fill(late, params: Mapping[str, Any]) -> tuple[str, dict]:
    """The SQL of ``late`` (``compiled.Late``) with each region's range filter for the bound ``params`` (and
    each late exact test made),
    and what bounds each table's rows (``Statement.regions``): per region its ranges, the values they were
    made for and the index column (its filter is ``range_filter(column, ranges)`` in the SQL)."""
    sql, made = late.sql, {}
    for region in late.regions:
        used: dict[str, Any] = {}
        values = [_value(v, params, used) for v in region.values]
        if not isinstance(region, SkyRegion):  # an exact test made from its numbers (geometry.LateTest)
            sql = sql.replace(region.token, region.text(values))
            continue
        ranges = None if None in values else sky_ranges(region.index, region.kind, values)
        sql = sql.replace(region.token, "TRUE" if ranges is None else range_filter(region.column, ranges))
        if ranges is not None:
            made[region.token] = (ranges, used, region.column)
    regions = {target: [made[t] for t in tokens if t in made] for target, tokens in late.bounds.items()}
    return sql, {target: noted for target, noted in regions.items() if noted}


def range_filter(column: str, ranges) -> str:
    """The engine condition that ``column`` (engine SQL) lies in one of the inclusive ``ranges``."""
    return " OR ".join(f"{column} BETWEEN {lo} AND {hi}" for lo, hi in ranges) or "FALSE"


def _value(text: str, params: Mapping[str, Any], used: dict) -> float | None:
    try:
        return float(text)  # the usual case: a number as written
    except ValueError:
        from .spherical import constant, parse_duckdb

        return constant(parse_duckdb(text), params, used)


def sky_ranges(index: HealpixIndex, kind: str, values: list[float], max_ranges: int = 8):
    """Inclusive ``[(lo, hi), ...]`` ranges (at most ``max_ranges``: each costs DuckDB planning time, more than the row
    groups a finer cut skips save) of ``index.column`` covering a circle ``(ra, dec, r)``, a
    box ``(ra, dec, w, h)`` or a polygon ``(ra1, dec1, ...)``, or None when a range filter would not
    help or the region cannot be covered (bad, degenerate or huge: then every row is read)."""
    if not all(math.isfinite(v) for v in values):
        return None
    if kind == "circle":
        cells = _cone_cells(index, *values)
    else:
        vertices = _box_corners(*values) if kind == "box" else [(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]
        cells = _polygon_cells(index, vertices) if vertices else None
    return None if cells is None else _ranges(index, cells, max_ranges)


def _depth(index: HealpixIndex, radius: float) -> int:
    # Cells about half the radius across (order-0 cells are ~58.6 deg): a few dozen cells. At most order 27: the cone
    # search refines two orders deeper, and cdshealpix panics past 29 (a cone or a collapsed polygon of ~1 mas).
    return max(0, min(index.order, 27, math.ceil(math.log2(117.3 / radius))))


def _cells_of(index: HealpixIndex, ipix, depths):
    return [(int(p) << (2 * (index.order - int(d))), (int(p) + 1) << (2 * (index.order - int(d)))) for p, d in zip(ipix, depths)]


def _cone_cells(index: HealpixIndex, ra: float, dec: float, radius: float):
    """``[(first, end), ...)`` cells at ``index.order`` covering the cone, or None."""
    import numpy as np
    from cdshealpix import cdshealpix

    if not (0 < radius <= 60 and -90 <= dec <= 90):
        return None
    # cdshealpix's own binding, as its nested.cone_search calls it (depth delta 2, not flat) with the radians astropy
    # would give: the astropy Longitude/Latitude that wrapper makes cost 4 times the search itself
    rad = [np.float64(math.radians(x)) for x in (ra % 360, dec, radius)]
    try:
        with native_faults():  # cdshealpix panics on what it cannot do: then no cover, and every row is tested
            ipix, depths, _ = cdshealpix.cone_search(np.uint8(_depth(index, radius)), np.uint8(2), *rad, False)
    except (ValueError, RuntimeError, OverflowError):
        return None
    return _cells_of(index, ipix, depths)


def _unit(ra: float, dec: float) -> tuple[float, float, float]:
    a, d = math.radians(ra), math.radians(dec)
    return math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d)


def _box_corners(ra: float, dec: float, w: float, h: float) -> list[tuple[float, float]] | None:
    """The four corners of an ADQL BOX (the gnomonic rectangle about its centre, ``adql.py``)."""
    if not (0 < w < 180 and 0 < h < 180 and -90 <= dec <= 90):
        return None
    c, a = _unit(ra, dec), math.radians(ra)
    east = (-math.sin(a), math.cos(a), 0.0)
    north = (c[1] * east[2] - c[2] * east[1], c[2] * east[0] - c[0] * east[2], c[0] * east[1] - c[1] * east[0])
    tw, th = math.tan(math.radians(w) / 2), math.tan(math.radians(h) / 2)
    corners = []
    for x, y in ((-tw, -th), (tw, -th), (tw, th), (-tw, th)):
        v = [c[i] + x * east[i] + y * north[i] for i in range(3)]
        corners.append((math.degrees(math.atan2(v[1], v[0])) % 360, math.degrees(math.atan2(v[2], math.hypot(v[0], v[1])))))
    return corners


def _polygon_cells(index: HealpixIndex, vertices: list[tuple[float, float]]):
    """Cells covering a polygon with great-circle edges inside a hemisphere (``adql.py``), or None.

    Its vertices lie in the cap about their mean direction through the farthest one, and so does the
    whole polygon (a cap of radius under 90 degrees is convex): that cap's cells always cover it.
    cdshealpix's polygon cover is tighter, and is used when it lies within the cap's (a self-crossing
    or degenerate polygon may give it anything, e.g. the other side of the sky)."""
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix.nested import polygon_search

    if len(vertices) < 3 or not all(-90 <= d <= 90 for _, d in vertices):
        return None
    units = [_unit(a, d) for a, d in vertices]
    mean = [sum(v[i] for v in units) for i in range(3)]
    size = math.sqrt(sum(m * m for m in mean))
    if size < 1e-9:
        return None
    centre = [m / size for m in mean]
    reach = max(math.degrees(math.acos(max(-1.0, min(1.0, sum(c * x for c, x in zip(centre, v)))))) for v in units)
    radius = reach * (1 + 1e-9) + 1e-9  # the vertices inside, whatever the rounding
    cap = _cone_cells(index, math.degrees(math.atan2(centre[1], centre[0])), math.degrees(math.asin(centre[2])), radius)
    if cap is None:
        return None
    try:
        with native_faults():  # it panics on some polygons (one of (0, 60), (39.47, 1e-12), (90, 0)): the cap then
            ipix, depths, _ = polygon_search(
                Longitude([a for a, _ in vertices], u.deg), Latitude([d for _, d in vertices], u.deg), _depth(index, radius)
            )
    except (ValueError, IndexError, RuntimeError, OverflowError):
        return cap
    cells = _cells_of(index, ipix, depths)
    return cells if cells and _within(cells, cap) else cap


def _within(cells, cover) -> bool:
    """Whether every cell of ``cells`` lies inside ``cover`` (both lists of ``[first, end)``)."""
    merged = _merge(cover)
    starts = [a for a, _ in merged]
    for a, b in cells:
        i = bisect.bisect_right(starts, a) - 1
        if i < 0 or merged[i][1] < b:
            return False
    return True


def _merge(cells) -> list[list[int]]:
    merged: list[list[int]] = []
    for a, b in sorted(cells):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged


def _ranges(index: HealpixIndex, cells, max_ranges: int):
    merged = _merge(cells)
    while len(merged) > max_ranges:  # close the smallest gap: fewer ORs, a little more read
        k = min(range(len(merged) - 1), key=lambda i: merged[i + 1][0] - merged[i][1])
        merged[k][1] = merged.pop(k + 1)[1]
    return [(a << index.shift, (b << index.shift) - 1) for a, b in merged]
