"""A cross-match of a table ``u`` (an upload, a MyDB table) with a HATS catalog ``t``, planned on ``t``'s partitions.

``sql/crossmatch.py`` reads ``t`` in a cross-match as its *candidates*: the rows whose HEALPix cell at an order
``k`` chosen from the radius is the cell of a position of ``u`` or one of its neighbours (a derived table whose
``t`` is aliased ``__xm_t``, joined with the order ``__xm_o`` and the cells ``__xm_c``). So ``t``'s rows can
only come from the partitions holding those cells: ``Near`` is that knowledge, found on the parsed statement
when its HATS reads are made (``near_of``), and used when it runs, since the cells are a query on ``u``'s rows
(compiling reads no rows):

- in-process, ``pruned`` reads only the partitions those cells touch;
- on the cluster, ``shipped`` batches the touched partitions and gives each batch the rows of ``u`` whose
  cells touch it (a row near a partition edge goes to each batch it touches), so no task gets all of ``u``;
  each pair (a row of ``u``, a row of ``t``) is still made exactly once, in the batch holding the row of ``t``.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from ..backends.hats import HEALPIX_ORDER
from ..sql import quote_ident
from .engines import engine_error
from .fanout import placeholders
from .partitions import HatsRead, Partitioned, placeholder

_ALIASES = ("__xm_t", "__xm_o", "__xm_c")  # crossmatch.candidates: t, the order, the cells
_ALL = (1 << 62) - 1  # past every order-29 cell: a radius over what order 0 serves pairs every row


@dataclass
class Near:
    """A HATS read that is a cross-match's candidates: the table of ``u`` and the SQL of its cells (made on
    first use: generating the cells' SQL costs as much as a small compile)."""

    upload: exp.Table  # u's table node, as the statement names it
    alias: str  # u's name in the positions' SELECT
    ra: str  # u's columns of the positions (quoted)
    dec: str
    _scale: exp.Expression = dataclasses.field(repr=False)
    _cells: exp.Expression = dataclasses.field(repr=False)

    @property
    def table_sql(self) -> str:
        bare = self.upload.copy()
        bare.set("alias", None)
        return bare.sql("duckdb", identify=True)

    @property
    def name(self) -> str:
        return ".".join(p.name for p in self.upload.parts)

    @functools.cached_property
    def _parts(self) -> tuple[str, str]:
        return self._scale.sql("duckdb", identify=True), self._cells.sql("duckdb", identify=True)

    def cells_sql(self, order: int, positions: bool) -> str:
        """The distinct cells of ``u``'s positions (and their neighbours at the match order ``k``) at order
        ``m = min(k, order)``: ``(a, m)``, ``a`` -1 when every pair is a candidate; with ``positions``, each with
        the position it came from (``__xm_ra``, ``__xm_dec``). With ``order`` the finest of a catalog's
        partitions, the partitions a cell at ``m`` meets are exactly those its cells at ``k`` meet (a partition
        holds a cell at ``m`` whole, or none of it), and far fewer cells are distinct than at ``k``."""
        scale, cells = self._parts
        m = f"LEAST(o.__xm_k, {int(order)})"
        return (
            f"SELECT DISTINCT {'c.__xm_ra, c.__xm_dec, ' if positions else ''}"
            f"CASE WHEN o.__xm_all THEN -1 ELSE c.__xm_cell >> (2 * (o.__xm_k - {m})) END AS a, {m} AS m "
            f"FROM ({scale}) AS o CROSS JOIN ({cells}) AS c"
        )


def near_of(node: exp.Table, hats: dict) -> Near | None:
    """The ``Near`` of a HATS table node of a parsed statement when it is a cross-match's candidates and
    ``u`` is a plain table this process's engine reads (not a HATS catalog, not a CTE); else None."""
    if node.alias != _ALIASES[0] or not isinstance(node.parent, exp.From) or not isinstance(select := node.parent.parent, exp.Select):
        return None
    joined = {j.this.alias: j.this for j in select.args.get("joins") or [] if isinstance(j.this, exp.Subquery)}
    scale, cells = joined.get(_ALIASES[1]), joined.get(_ALIASES[2])
    if scale is None or cells is None:
        return None
    for inner in cells.find_all(exp.Select):
        if [e.alias for e in inner.expressions] != ["__xm_ra", "__xm_dec"]:
            continue
        source = inner.args.get("from") or inner.args.get("from_")
        u = source.this if source is not None else None
        if not isinstance(u, exp.Table) or not u.catalog or u.catalog in hats or inner.args.get("joins") or inner.args.get("where"):
            return None
        ra, dec = (e.this for e in inner.expressions)
        if not (isinstance(ra, exp.Column) and isinstance(dec, exp.Column)):
            return None
        return Near(u, u.alias_or_name, quote_ident(ra.name), quote_ident(dec.name), scale.this, cells.this)
    return None


def _params(sql: str, params: dict | None) -> dict | None:
    if not params:
        return None
    used = placeholders(sql)
    return {k: v for k, v in params.items() if k in used} or None


def _query(cursor, sql: str, params: dict | None) -> pa.Table:
    try:
        return cursor.sql(sql, params=_params(sql, params)).to_arrow_table()
    except duckdb.Error as exc:
        raise engine_error(exc) from None


def _partition_of(read: HatsRead, cells: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(row, partition) pairs: each cell of ``cells`` (``Near.cells_sql``) with every partition of ``read`` it meets."""
    a, m = (cells.column(n).to_numpy(zero_copy_only=False).astype(np.int64) for n in ("a", "m"))
    shift = 2 * (HEALPIX_ORDER - m)
    lo = np.where(a < 0, 0, a << shift)
    hi = np.where(a < 0, _ALL, ((a + 1) << shift) - 1)
    starts, ends = np.asarray(read.table.starts, dtype=np.int64), np.asarray(read.table.ends, dtype=np.int64)
    first = np.maximum(np.searchsorted(starts, lo, side="right") - 1, 0)
    first = np.where(ends[first] > lo, first, first + 1)  # lo in a gap between partitions: the next one
    last = np.searchsorted(starts, hi, side="right") - 1
    span = np.maximum(last - first + 1, 0)  # every pair: one cell spans all the partitions
    rows = np.repeat(np.arange(len(lo)), span)
    offsets = np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span)
    parts = np.repeat(first, span) + offsets
    keep = np.isin(parts, read.partitions)  # and within a cone of the query, if any
    return rows[keep], parts[keep]


def touched(read: HatsRead, cursor, params: dict | None) -> list[int]:
    """The partitions of ``read`` the cells of ``u``'s positions meet (a query on ``u`` through ``cursor``)."""
    cells = _query(cursor, read.near.cells_sql(max(read.table.orders), positions=False), params)
    return np.unique(_partition_of(read, cells)[1]).tolist()


def pruned(partitioned: Partitioned, statements: list, cursor) -> list:
    """``statements`` as they run in-process: each cross-match's HATS read over only the partitions the
    positions of its ``u`` touch."""
    if tuple(st.sql for st in statements) != partitioned.source:  # new values in a cached shape: its reads anew
        partitioned = partitioned.again(statements) or partitioned
    shaped = partitioned.statements(statements)
    out = []
    for i, st in enumerate(statements):
        files = {}
        for j, read in enumerate(partitioned.reads):
            if read.near is not None and _reads(partitioned, i, j):
                files[j] = [f for p in touched(read, cursor, st.params) for f in read.table.files[p]]
        out.append(dataclasses.replace(st, sql=partitioned.sql_for(i, files)) if files else shaped[i])
    return out


def _reads(partitioned: Partitioned, statement: int, read: int) -> bool:
    return quote_ident(placeholder(read)) in partitioned.shapes[statement]


@dataclass
class Shipment:
    """What a fanned-out cross-match sends: the partitions' files by batch, and each batch's rows of ``u``."""

    batches: list[list[str]]
    rows: list[pa.Table]  # u's rows, one table per batch
    schema: pa.Schema  # u's columns
    partitions: int = 0  # how many partitions the batches hold


def shipped(read: HatsRead, cursor, params: dict | None, threads: int, batch) -> Shipment:
    """The batches of the partitions ``u``'s positions touch (``batch(partitions, threads)``: lists of
    partitions) and, for each, the rows of ``u`` whose cells meet one of its partitions; a batch no row
    of ``u`` can match is left out."""
    near = read.near
    cells = _query(cursor, near.cells_sql(max(read.table.orders), positions=True), params)
    rows, parts = _partition_of(read, cells)
    order = np.unique(parts).tolist()
    groups = batch(order, threads)
    batch_of = np.zeros(read.table.partitions, dtype=np.int32)
    for b, group in enumerate(groups):
        batch_of[group] = b
    pairs = pa.table({
        "__xm_ra": cells.column("__xm_ra").take(pa.array(rows)), "__xm_dec": cells.column("__xm_dec").take(pa.array(rows)),
        "__xm_batch": pa.array(batch_of[parts] if len(parts) else np.zeros(0, np.int32), pa.int32()),
    })  # fmt: skip
    alias = quote_ident(near.alias)
    sql = (
        f"SELECT {alias}.*, b.__xm_batch FROM {near.table_sql} AS {alias} "
        f"JOIN (SELECT DISTINCT * FROM __xm_pairs) AS b ON {alias}.{near.ra} = b.__xm_ra AND {alias}.{near.dec} = b.__xm_dec"
    )
    cursor.register("__xm_pairs", pairs)
    try:
        u = _query(cursor, sql, None)
    finally:
        cursor.unregister("__xm_pairs")
    which = u.column("__xm_batch")
    u = u.drop_columns(["__xm_batch"])
    out = Shipment([], [], u.schema)
    for b, group in enumerate(groups):
        mine = u.filter(pc.equal(which, b))
        if mine.num_rows:
            out.batches.append([f for p in group for f in read.table.files[p]])
            out.rows.append(mine)
            out.partitions += len(group)
    return out
