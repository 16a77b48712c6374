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

import contextlib
import dataclasses
import functools
import threading
import time
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
from sqlglot import exp

from ..backends.hats import HEALPIX_ORDER
from ..errors import ArchiveError
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


def pruned(partitioned: Partitioned, statements: list, cursor, cells: Cells | None = None) -> list:
    """``statements`` as they run in-process: each cross-match's HATS read over only the partitions the
    positions of its ``u`` touch (``cells``: those of the one read, found as a job was planned)."""
    if tuple(st.sql for st in statements) != partitioned.source:  # new values in a cached shape: its reads anew
        partitioned, cells = partitioned.again(statements) or partitioned, None
    shaped = partitioned.statements(statements)
    out = []
    for i, st in enumerate(statements):
        files = {}
        for j, read in enumerate(partitioned.reads):
            if read.near is not None and _reads(partitioned, i, j):
                parts = cells.touched if cells is not None and len(partitioned.reads) == 1 else touched(read, cursor, st.params)
                files[j] = [f for p in parts for f in read.table.files[p]]
        out.append(dataclasses.replace(st, sql=partitioned.sql_for(i, files)) if files else shaped[i])
    return out


def _reads(partitioned: Partitioned, statement: int, read: int) -> bool:
    return quote_ident(placeholder(read)) in partitioned.shapes[statement]


CELLS = "__xm_cells"  # in a task: the shipped cells of its rows of u, (__xm_ra, __xm_dec, __xm_cell)


@dataclass
class Cells:
    """``u``'s positions with their cells (and the cells' neighbours) at the match order ``k``, made once by the
    coordinator (``cells_of``): what decides where a cross-match job runs and what its tasks are shipped."""

    table: pa.Table  # (__xm_ra, __xm_dec, __xm_cell): one row per position and cell
    k: int  # the match order
    every: bool  # the radius is over what order 0 serves: every pair is a candidate (cell 0)
    rows: np.ndarray  # (row of table, partition) pairs: each cell with every partition of the read it meets
    parts: np.ndarray
    positions: int  # distinct positions of u

    @functools.cached_property
    def touched(self) -> list[int]:
        return np.flatnonzero(np.bincount(self.parts, minlength=1)).tolist()  # few partitions: a count, not a sort


def cells_of(read: HatsRead, cursor, params: dict | None) -> Cells:
    """The ``Cells`` of a cross-match's read: one DuckDB query over ``u`` (through ``cursor``)."""
    scale, cells = read.near._parts
    sql = (
        "SELECT c.__xm_ra, c.__xm_dec, c.__xm_cell, o.__xm_k, o.__xm_all "
        f"FROM ({scale}) AS o CROSS JOIN ({cells}) AS c"
    )
    got = _query(cursor, sql, params)
    if got.num_rows == 0:
        return _no_cells(got)
    k, every = got.column("__xm_k")[0].as_py(), bool(got.column("__xm_all")[0].as_py())
    if k is None:  # a NULL radius: no position has cells
        return _no_cells(got)
    cell = got.column("__xm_cell").to_numpy(zero_copy_only=False).astype(np.int64)
    m = min(k, max(read.table.orders))  # see Near.cells_sql: the partitions a cell at m meets are those its cells at k meet
    a = np.full(len(cell), -1, np.int64) if every else cell >> (2 * (k - m))
    rows, parts = _partition_of(read, pa.table({"a": a, "m": np.full(len(cell), m, np.int64)}))
    table = got.select(["__xm_ra", "__xm_dec", "__xm_cell"])
    return Cells(table, k, every, rows, parts, len(table.select(["__xm_ra", "__xm_dec"]).group_by(["__xm_ra", "__xm_dec"]).aggregate([])))


def _no_cells(got: pa.Table) -> Cells:
    empty = np.zeros(0, np.int64)
    return Cells(got.select(["__xm_ra", "__xm_dec", "__xm_cell"]).slice(0, 0), 0, False, empty, empty, 0)


@dataclass
class Shipment:
    """What a fanned-out cross-match sends: the partitions' files by batch, each batch's rows of ``u`` and
    their cells, and the task SQL that reads the cells shipped instead of making them."""

    batches: list[list[str]]
    rows: list[pa.Table]  # u's rows, one table per batch
    cells: list[pa.Table]  # their cells, one table per batch (CELLS)
    schema: pa.Schema  # u's columns
    order: Cells  # the cells' order, and whether every pair is a candidate
    name: str  # u's table, as the task SQL names it
    partitions: int = 0  # how many partitions the batches hold

    def into(self, fan) -> None:
        """Give ``fan`` (a ``cluster.FanOut`` of ``task_shape``'s SQL) the batches and what each is shipped."""
        name = self.name
        fan.batches = self.batches
        fan.shipped = {name: self.schema.empty_table(), CELLS: self.order.table.schema.empty_table()}
        fan.shipped_per_batch = [{name: r, CELLS: c} for r, c in zip(self.rows, self.cells)]


def shipped(read: HatsRead, cursor, params: dict | None, threads: int, batch, cells: Cells | None = None) -> Shipment:
    """The batches of the partitions ``u``'s positions touch (``batch(partitions, threads)``: lists of
    partitions) and, for each, the rows of ``u`` whose cells meet one of its partitions, with those cells
    (``cells``: made now when not given); a batch no row of ``u`` can match is left out."""
    near = read.near
    if cells is None:
        cells = cells_of(read, cursor, params)
    rows, parts = cells.rows, cells.parts
    groups = batch(cells.touched, threads)
    batch_of = np.zeros(read.table.partitions, dtype=np.int32)
    for b, group in enumerate(groups):
        batch_of[group] = b
    which = batch_of[parts] if len(parts) else np.zeros(0, np.int32)
    pairs = pa.table({
        "__xm_ra": cells.table.column("__xm_ra").take(pa.array(rows)), "__xm_dec": cells.table.column("__xm_dec").take(pa.array(rows)),
        "__xm_batch": pa.array(which, pa.int32()),
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
    mine = u.column("__xm_batch").to_numpy(zero_copy_only=False)
    u = u.drop_columns(["__xm_batch"])
    out = Shipment([], [], [], u.schema, cells, near.table_sql)
    for b, group in enumerate(groups):
        taken = np.nonzero(mine == b)[0]
        if len(taken):
            out.batches.append([f for p in group for f in read.table.files[p]])
            out.rows.append(u.take(taken))
            mine_rows = rows[which == b]  # in order (``_partition_of``): a cell spanning partitions of a batch is there once
            out.cells.append(cells.table.take(mine_rows[np.r_[True, mine_rows[1:] != mine_rows[:-1]]] if len(mine_rows) else mine_rows))
            out.partitions += len(group)
    return out


def task_shape(near: Near, shape: str, cells: Cells) -> str | None:
    """``shape`` (a cross-match's SQL) reading the shipped ``CELLS`` and the order as constants instead of
    making them from ``u`` (planning and running that SQL in every task cost more than its join); None when
    the shape does not hold them as made (then each task makes its own)."""
    scale, made = near._parts
    o, c = f"({scale}) AS {quote_ident(_ALIASES[1])}", f"({made}) AS {quote_ident(_ALIASES[2])}"
    if shape.count(c) != 1:
        return None
    shape = shape.replace(c, f"(SELECT __xm_ra, __xm_dec, __xm_cell FROM {quote_ident(CELLS)}) AS {quote_ident(_ALIASES[2])}")
    if shape.count(o) != 1:  # the cells held the order's SQL too: once left
        return None
    k, every = cells.k, cells.every
    return shape.replace(o, f"(SELECT CAST({k} AS BIGINT) AS __xm_k, {'TRUE' if every else 'FALSE'} AS __xm_all) AS {quote_ident(_ALIASES[1])}")


MATCHED = "__xm_matched"  # at the coordinator: the catalog's rows the cluster found matched, standing for its candidates


def outer_split(select: str, near: Near) -> tuple[str, exp.Select, exp.Subquery]:
    """A cross-match ``select`` (with its HATS read as ``placeholder(0)``) that ``fanout.decompose`` cannot
    split, e.g. ``u LEFT JOIN t`` keeping ``u``'s unmatched rows, split by its matched rows instead: the task
    SQL, the candidates of ``t`` (with the position each pairs with) that some row of ``u`` matches by the
    join's own condition (a semi join, which splits by partition), and the statement's tree and its candidates
    node, which ``outer`` replaces by those rows to finish the statement at the coordinator over ``u``, in the
    archive. Since only rows that match are left out of nothing, the answer is the statement's own.
    Raises ``ArchiveError`` (what to do instead) when the statement is not such a cross-match."""
    import sqlglot

    from .fanout import decompose, refuse

    tree = sqlglot.parse_one(select, read="duckdb")
    source = next((t for t in tree.find_all(exp.Table) if t.name == placeholder(0)), None)
    cand = source.find_ancestor(exp.Subquery) if source is not None else None
    wanted = tuple(p.name.lower() for p in near.upload.parts)
    us = [t for t in tree.find_all(exp.Table) if tuple(p.name.lower() for p in t.parts) == wanted and t.find_ancestor(exp.Subquery) is None]
    joins = [j for j in tree.args.get("joins") or [] if j.args.get("on") is not None and any(c.name == "__xm_ra" for c in j.args["on"].find_all(exp.Column))]
    if cand is None or not isinstance(tree, exp.Select) or cand.parent.parent is not tree or len(us) != 1 or len(joins) != 1:
        raise refuse("this cross-match (its upload joined with the catalog other than once, by its position)")
    t_alias, u_node, on = cand.alias_or_name, us[0], joins[0].args["on"]
    if any(c.table not in (t_alias, u_node.alias_or_name) for c in on.find_all(exp.Column)):
        raise refuse("a cross-match whose join condition names a third table")
    task = (f"SELECT {quote_ident(t_alias)}.* FROM {cand.sql('duckdb', identify=True)} "
            f"SEMI JOIN {u_node.sql('duckdb', identify=True)} ON {on.sql('duckdb', identify=True)}")  # fmt: skip
    decompose(task, placeholder(0), [near.table_sql, CELLS])
    return task, tree, cand


def outer(plan, st, select: str, create: str | None, typed: str | None, read: HatsRead, ship: Shipment, fan_out, view, time_limit=None):
    """Run a cross-match split by ``outer_split``: its matched rows of the catalog found on the cluster
    (``fan_out(FanOut)``), then the whole statement at the coordinator, on the plan's engine, over ``u`` and
    those rows; its rows as a reader, or (``create``: an INTO) how many it wrote."""
    from .cluster import FanOut
    from .cluster_writes import written

    task, tree, cand = outer_split(select, read.near)
    deadline = time.monotonic() + time_limit if time_limit else None
    fan = FanOut(sql=task, table=placeholder(0), batches=[], root=str(read.table.path), params=dict(st.params or {}), time_limit=time_limit)
    ship.into(fan)
    view.detail = (
        f"the Dask cluster: {len(fan.batches)} tasks over {ship.partitions} of {read.table.partitions} partitions "
        f"(those the positions of {read.near.name} touch), {sum(r.num_rows for r in ship.rows)} of its rows shipped; "
        f"the rows of {read.near.name} joined with the {{}} matched rows of the catalog in-process (an outer cross-match)"
    )
    matched = fan_out(fan).read_all()
    view.detail = view.detail.format(matched.num_rows)
    cand.replace(exp.Table(this=exp.to_identifier(MATCHED, quoted=True), alias=exp.TableAlias(this=exp.to_identifier(cand.alias_or_name, quoted=True))))
    final = tree.sql("duckdb", identify=True)
    cursor = plan.engine.cursor(timeout=None, cancel=view.cancel)
    try:
        cursor.register(MATCHED, matched)
        try:
            with _watched(cursor, view.cancel, deadline, time_limit):
                result = _query(cursor, final, st.params)
        finally:
            cursor.unregister(MATCHED)
    finally:
        cursor.close()
    reader = pa.RecordBatchReader.from_batches(result.schema, result.to_batches())
    if create is None:
        return reader
    return written(plan.engine, create, typed, _params(typed, st.params), reader, view.cancel)


@contextlib.contextmanager
def _watched(cursor, cancel: threading.Event, deadline: float | None, time_limit: float | None):
    """Interrupt ``cursor``'s statement when the job is canceled (``cancel`` set) or its ``deadline`` passes
    (then the job's time-limit error): the coordinator's own statement obeys the job as its tasks do."""
    done, late = threading.Event(), []

    def watch():
        while not done.wait(0.05):
            if cancel.is_set() or (deadline is not None and time.monotonic() > deadline):
                late.append(not cancel.is_set())
                cursor.interrupt()
                return

    watcher = threading.Thread(target=watch, name="archive-outer-watch", daemon=True)
    watcher.start()
    try:
        yield
    except ArchiveError:
        if late and late[0]:
            raise ArchiveError("time_limit", f"the query ran longer than its limit of {time_limit:g} s", 400) from None
        if late:
            raise ArchiveError("canceled", "the query was canceled", 409) from None
        raise
    finally:
        done.set()
        watcher.join()  # never interrupts the connection once it is given back
