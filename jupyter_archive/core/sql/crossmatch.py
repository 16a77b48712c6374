"""Cross-matches on HEALPix cells: one strategy for every table with a positional index.

A join of a positional table ``t`` (its HEALPix index declared, ``healpix_index.HealpixIndex``) with
any table ``u`` by ``CONTAINS(POINT(t.ra, t.dec), CIRCLE(u.ra, u.dec, r)) = 1`` or
``DISTANCE(...) < r`` is planned as an equi-join on HEALPix cells, all in the engine's SQL:

- an order ``k`` is chosen from the radius, so that a disc of radius ``r`` around any point lies in
  the point's cell at order ``k`` or in one of its (up to 8) neighbours (``order_sql``);
- each distinct position of ``u`` gets its cell and the cell's neighbours at ``k`` (``cells_sql``:
  HEALPix's ang2pix from ``healpix_index.with_index``, then the neighbours by face, x and y, as in
  HEALPix's own ``neighbors``);
- ``t`` is read as the rows whose index, shifted to order ``k``, equals one of those cells (a hash
  join, one probe per row of ``t``), each with the position of ``u`` that brought it;
- the query's own join then pairs those rows with ``u`` on that position and keeps its exact test.

So the cost grows with the rows of both tables, not with their product, and compilation reads no
rows. A radius too big for even order 0 (over ~29 degrees) pairs every row (the exact test decides);
a radius that is a column of ``u`` takes ``k`` from the largest radius.
"""

from __future__ import annotations

import math

from sqlglot import exp

from .compiled import quote_ident
from .healpix_index import COLUMN, ORDER, spread, with_index
from .spherical import splice

#: The radius a cell and its neighbours always cover, as a fraction of the cell's mean size
#: (``sqrt(4 pi / 12) / 2**k`` radians): measured on cdshealpix's cells, the least such fraction
#: is about 0.65 at every order (HATS uses 1 / 1.6); 0.5 leaves a margin.
COVER = 0.5
_ORDER0 = math.degrees(math.sqrt(math.pi / 3))  # the mean size of an order-0 cell, degrees
_REACH0 = COVER * _ORDER0  # the largest radius order 0 serves
MAX_ORDER = ORDER  # the cells of uploaded positions are made at healpix_index.ORDER

# HEALPix's neighbour tables (healpix_base.cc): for a step that leaves the face on the side
# ``nb`` (0..8, 4 = the face itself: 4 - 1 for x < 0, + 1 for x >= n, - 3 for y < 0, + 3 for
# y >= n), the face reached from each face, and (by the face's row, face // 4) whether to flip x
# (1), flip y (2) and swap x and y (4) there.
_FACES = (
    (8, 9, 10, 11, -1, -1, -1, -1, 10, 11, 8, 9),
    (5, 6, 7, 4, 8, 9, 10, 11, 9, 10, 11, 8),
    (-1, -1, -1, -1, 5, 6, 7, 4, -1, -1, -1, -1),
    (4, 5, 6, 7, 11, 8, 9, 10, 11, 8, 9, 10),
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
    (1, 2, 3, 0, 0, 1, 2, 3, 5, 6, 7, 4),
    (-1, -1, -1, -1, 7, 4, 5, 6, -1, -1, -1, -1),
    (3, 0, 1, 2, 3, 0, 1, 2, 4, 5, 6, 7),
    (2, 3, 0, 1, -1, -1, -1, -1, 0, 1, 2, 3),
)
_SWAPS = ((0, 0, 3), (0, 0, 6), (0, 0, 0), (0, 0, 5), (0, 0, 0), (5, 0, 0), (0, 0, 0), (6, 0, 0), (3, 0, 0))
_STEPS = ", ".join(f"({dx}, {dy})" for dx in (-1, 0, 1) for dy in (-1, 0, 1))
_MOVES = ", ".join(
    f"({nb}, {f}, {_FACES[nb][f]}, {_SWAPS[nb][f >> 2]})" for nb in range(9) for f in range(12) if _FACES[nb][f] >= 0
)
_COMPRESS = ((1, 0x3333333333333333), (2, 0x0F0F0F0F0F0F0F0F), (4, 0x00FF00FF00FF00FF), (8, 0x0000FFFF0000FFFF), (16, 0xFFFFFFFF))


def _compress(select_sql: str, columns: tuple[str, ...]) -> str:
    """``select_sql`` with the even bits of each of ``columns`` packed into its low bits (the
    inverse of ``healpix_index.spread``), one projection per step."""
    steps = ", ".join(f"({c} & {0x5555555555555555}) AS {c}" for c in columns)
    select_sql = f"SELECT * REPLACE ({steps}) FROM ({select_sql}) AS __xm_z"
    for i, (shift, mask) in enumerate(_COMPRESS):
        steps = ", ".join(f"(({c} | ({c} >> {shift})) & {mask}) AS {c}" for c in columns)
        select_sql = f"SELECT * REPLACE ({steps}) FROM ({select_sql}) AS __xm_z{i}"
    return select_sql


def order_sql(radius: str, max_order: int) -> str:
    """SQL: the finest order (at most ``max_order``) whose cells and their neighbours cover every
    disc of ``radius`` degrees; NULL when the radius is NULL."""
    k = f"FLOOR(LOG2({_REACH0!r} / GREATEST({radius}, 1e-300)))"
    return f"CAST(LEAST({min(max_order, MAX_ORDER)}, GREATEST(0, {k})) AS BIGINT)"


def scale_sql(radius: str, max_order: int) -> str:
    """One row ``(__xm_k, __xm_all)``: the order of the cells, and whether the radius is over what
    order 0 serves (then every pair is a candidate). ``radius`` may be an aggregate of a table."""
    return f"SELECT {order_sql('__xm_r', max_order)} AS __xm_k, __xm_r > {_REACH0!r} AS __xm_all FROM ({radius}) AS __xm_s(__xm_r)"


def cells_sql(positions: str, scale: str) -> str:
    """SQL: ``(__xm_ra, __xm_dec, __xm_cell)``, each distinct position of ``positions`` (a query of
    ``(__xm_ra, __xm_dec)``) with its cell and the cell's neighbours at the order of ``scale``
    (``scale_sql``); with ``__xm_all``, the one cell 0."""
    at = with_index(positions, "__xm_ra", "__xm_dec")
    cell = (
        f"SELECT DISTINCT __xm_ra, __xm_dec, __xm_k, __xm_all, {COLUMN} >> (2 * ({ORDER} - __xm_k)) AS c "
        f"FROM ({at}) AS __xm_p CROSS JOIN ({scale}) AS __xm_o WHERE {COLUMN} IS NOT NULL"
    )
    # the face, and x and y within it: the odd and even bits of the cell's number on the face
    low = "(c & ((CAST(1 AS BIGINT) << (2 * __xm_k)) - 1))"
    xy = (
        f"SELECT *, c >> (2 * __xm_k) AS f, {low} AS ix, {low} >> 1 AS iy, CAST(1 AS BIGINT) << __xm_k AS n "
        f"FROM ({cell}) AS __xm_c0"
    )
    # a step off the face (x or y outside [0, n)) lands on the neighbouring face's far edge
    step = (
        f"SELECT __xm_ra, __xm_dec, __xm_k, __xm_all, f, n, ((ix + dx) % n + n) % n AS x, ((iy + dy) % n + n) % n AS y, "
        f"4 + CASE WHEN ix + dx < 0 THEN -1 WHEN ix + dx >= n THEN 1 ELSE 0 END "
        f"+ CASE WHEN iy + dy < 0 THEN -3 WHEN iy + dy >= n THEN 3 ELSE 0 END AS nb "
        f"FROM ({_compress(xy, ('ix', 'iy'))}) AS __xm_b CROSS JOIN (VALUES {_STEPS}) AS __xm_d(dx, dy) "
        f"WHERE NOT __xm_all OR dx = 0 AND dy = 0"
    )
    moved = (
        f"SELECT __xm_ra, __xm_dec, __xm_k, __xm_all, m.face, "
        f"CASE WHEN m.bits & 4 = 4 THEN (CASE WHEN m.bits & 2 = 2 THEN n - y - 1 ELSE y END) "
        f"ELSE (CASE WHEN m.bits & 1 = 1 THEN n - x - 1 ELSE x END) END AS x, "
        f"CASE WHEN m.bits & 4 = 4 THEN (CASE WHEN m.bits & 1 = 1 THEN n - x - 1 ELSE x END) "
        f"ELSE (CASE WHEN m.bits & 2 = 2 THEN n - y - 1 ELSE y END) END AS y "
        f"FROM ({step}) AS __xm_n JOIN (VALUES {_MOVES}) AS m(nb, f, face, bits) ON __xm_n.nb = m.nb AND __xm_n.f = m.f"
    )
    # a cell's neighbours are distinct (checked against cdshealpix at every order): no DISTINCT here
    return (
        f"SELECT __xm_ra, __xm_dec, CASE WHEN __xm_all THEN 0 ELSE (face << (2 * __xm_k)) | x | (y << 1) END "
        f"AS __xm_cell FROM ({spread(moved, ('x', 'y'))}) AS __xm_m"
    )


def key_sql(index_column: str, order: int, shift: int) -> str:
    """SQL: a row's cell at the order of ``__xm_o`` (``scale_sql``) from its index column; 0 for
    every row when every pair is a candidate (indices are never negative)."""
    return f"({index_column} >> CASE WHEN __xm_o.__xm_all THEN 63 ELSE {shift} + 2 * ({order} - __xm_o.__xm_k) END)"


def candidates(table: exp.Table, index_column: str, order: int, shift: int, positions: str, radius: str) -> exp.Select:
    """The rows of ``table`` (all its columns) near each position of ``positions``, paired with that
    position (``__xm_ra``, ``__xm_dec``), for a cross-match at ``radius`` (``scale_sql``). ``table``
    (a node of the statement, aliased ``__xm_t`` here) stays a node of the tree, so that later steps
    still find the tables a statement reads; the generated parts are text."""
    scale = scale_sql(radius, order)
    table.set("alias", exp.TableAlias(this=exp.to_identifier("__xm_t")))
    key = f"{key_sql('__xm_t.' + index_column, order, shift)} = __xm_c.__xm_cell"
    return (
        exp.select("__xm_t.*", "__xm_c.__xm_ra", "__xm_c.__xm_dec")
        .from_(table)
        .join(_text_table(scale, "__xm_o"), join_type="cross")
        .join(_text_table(cells_sql(positions, scale), "__xm_c"), on=exp.Paren(this=exp.Var(this=key)))
    )


def _text_table(sql: str, alias: str) -> exp.Subquery:
    """Generated SQL as a derived table of the tree, emitted as is (parsing it back would cost
    more than the rest of the compile)."""
    return exp.Subquery(this=exp.Var(this=sql), alias=exp.TableAlias(this=exp.to_identifier(alias)))


# ---------------------------------------------------------------------------------------------
# The rewrite of a join (called by ``adql.rewrite`` for a cone whose centre is another table's)
# ---------------------------------------------------------------------------------------------

_PAIR = ("__xm_ra", "__xm_dec")
_UNSPLIT = ("SEMI", "ANTI", "ASOF", "POSITIONAL")  # joins whose rows are not the pairs' rows


def rewrite_join(cone, where: exp.Expr, select: exp.Select, t_node: exp.Table, u_node: exp.Table, index) -> bool:
    """Plan the cross-match ``cone`` (a top-level conjunct of ``where``, a WHERE or a JOIN of
    ``select``; its point on ``t_node``, which has ``index``; its centre the columns of ``u_node``)
    as a join on HEALPix cells: ``t_node`` becomes its candidate rows, each with the position of
    ``u_node`` it is near, and the condition gains the equality of that position. False (the tree
    untouched) where that would change the result: an outer join that keeps the rows of ``t_node``,
    a radius that depends on ``t_node`` or on a third table."""
    t_name, u_name = t_node.alias_or_name, u_node.alias_or_name
    if not t_name or not u_name or t_name.casefold() == u_name.casefold():
        return False
    for join in select.args.get("joins") or []:
        if join.this is t_node and (join.args.get("using") or str(join.kind or "").upper() in _UNSPLIT):
            return False
    if isinstance(where, exp.Join):
        side, kind = str(where.side or "").upper(), str(where.kind or "").upper()
        nullable = {"LEFT": t_node, "RIGHT": u_node}.get(side)
        if (side and where.this is not nullable) or kind in _UNSPLIT or where.this not in (t_node, u_node):
            return False
    columns = list(cone.region.r.find_all(exp.Column))
    if cone.region.r.find(exp.Select, exp.AggFunc) is not None or any(c.table.casefold() != u_name.casefold() for c in columns):
        return False
    u_sql = _bare(u_node)
    u_alias = quote_ident(u_name)
    radius = splice(cone.region.r)
    scale = f"SELECT max({radius}) FROM {u_sql} AS {u_alias}" if columns else f"SELECT {radius}"
    ra, dec = (quote_ident(c.name) for c in (cone.region.center.ra, cone.region.center.dec))
    positions = f"SELECT {u_alias}.{ra} AS __xm_ra, {u_alias}.{dec} AS __xm_dec FROM {u_sql} AS {u_alias}"
    near = exp.Subquery(alias=exp.TableAlias(this=exp.to_identifier(t_name, quoted=True)))
    t_node.replace(near)
    near.set("this", candidates(t_node, quote_ident(index.column), index.order, index.shift, positions, scale))
    t_alias = quote_ident(t_name)
    pair = f"{t_alias}.__xm_ra = {u_alias}.{ra} AND {t_alias}.__xm_dec = {u_alias}.{dec}"
    node, kept = cone.node, exp.Paren()
    node.replace(exp.And(this=exp.Paren(this=exp.Var(this=pair)), expression=kept))
    kept.set("this", node)
    for item in select.expressions:  # the pairs' positions are not the query's columns
        star = item if isinstance(item, exp.Star) else item.this if isinstance(item, exp.Column) and isinstance(item.this, exp.Star) else None
        if star is not None and (star is item or item.table.casefold() == t_name.casefold()):
            star.set("except_", [*(star.args.get("except_") or []), *(exp.column(c) for c in _PAIR)])
    return True


def _bare(table: exp.Table) -> str:
    """A table reference without its alias, as engine SQL."""
    bare = table.copy()
    bare.set("alias", None)
    return bare.sql(dialect="duckdb", identify=True)
