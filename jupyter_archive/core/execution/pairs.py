"""Catalog x catalog cross-matches of two HATS catalogs, partition by partition, with margin caches.

The SQL pipeline plans a cross-match (``CONTAINS(POINT(t.ra, t.dec), CIRCLE(u.ra, u.dec, r)) = 1`` or
``DISTANCE(...) < r``) as a join on HEALPix cells (``sql/crossmatch.py``): ``t``'s rows near each position
of ``u`` (a subquery aliased as ``t``, reading ``t`` as ``__xm_t``), joined with ``u``. When both are HATS
catalogs the work splits by ``u``'s partitions: every pair has its ``u`` row in exactly one of them, so the
answer is the union over ``u``'s partitions ``Q`` of the same statement over ``u``'s rows in ``Q`` and the
rows of ``t`` that can lie within ``r`` of ``Q`` (as LSDB aligns two catalogs):

- ``Q`` inside one partition ``P`` of ``t``: ``P``'s rows and ``P``'s margin rows (``t``'s margin cache:
  the rows of other partitions within its threshold of ``P``), when ``r`` is within the threshold;
- ``Q`` holding partitions ``P_i`` of ``t``: one piece per ``P_i`` (``u``'s rows in ``P_i`` with ``P_i``
  and its margin), and one for the rest of ``Q`` (``u``'s rows outside every ``P_i``, with every partition
  of ``t`` touching ``Q`` or its neighbours);
- no margin cache: ``Q``'s rows with every partition of ``t`` touching ``Q`` or its HEALPix neighbours
  (at an order whose cells cover a disc of ``r``), which holds every row within ``r`` of ``Q``.

Each piece reads distinct files (a margin's rows are never its partition's), so no pair comes twice
and none is lost at a partition's edge. A job with a Dask cluster runs the pieces as tasks, in batches
(``cluster.fan_out`` with the statement split by ``fanout.decompose``: the candidates of ``t`` are its
"shipped" table, ``u`` its partitioned one); in-process the statement reads ``u``'s partitions and only
the partitions of ``t`` near them. A radius larger than ``t``'s margin threshold, or not a constant, is
refused with what to do instead; a join of two HATS catalogs that is not such a cross-match is left as
it was (DuckDB over the partitions each read touches).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ArchiveError
from ..sql import quote_ident
from .partitions import placeholder

if TYPE_CHECKING:
    from ..backends.hats import HatsTable
    from .partitions import Partitioned

_T_ALIAS = "__xm_t"  # crossmatch.candidates: the alias of t inside its candidates subquery
_RADIUS = re.compile(r'\) AS "?__xm_s"?\("?__xm_r"?\)')  # the end of crossmatch.scale_sql's radius
_REACH0 = 0.5 * math.degrees(math.sqrt(math.pi / 3))  # degrees a cell and its neighbours cover at order 0 (crossmatch.COVER)
_PAIR_T = "__pair_t"  # the candidates of t, as the split statement's shipped table
ARCSEC = 1 / 3600


@dataclass
class Margin:
    """A margin cache of a catalog: its threshold (degrees) and its files by the primary's partition."""

    path: Path
    threshold: float
    files: dict[tuple[int, int], tuple[str, ...]]  # (order, pixel) -> files


@dataclass
class Piece:
    """The work for one part of one partition of ``u``: its rows (those of ``u_ranges`` only, if given)
    against ``t``'s partitions ``t_parts`` and the margin files ``margin``."""

    u_part: int
    u_ranges: list[tuple[int, int]] | None
    t_parts: list[int]
    margin: tuple[str, ...] = ()


@dataclass
class CrossMatch:
    """A compiled cross-match of two HATS catalogs, planned by ``u``'s partitions: what a plan carries
    instead of the plain ``Partitioned`` (same calls, and ``fan_out`` for the cluster)."""

    partitioned: Partitioned
    t_read: int  # index of t's read (the candidates'), and of u's reads, in ``partitioned.reads``
    u_reads: list[int]
    radius: float
    margin: Margin | None
    pieces: list[Piece] = field(default_factory=list)

    # -- what Partitioned offers ------------------------------------------------------------------
    source = property(lambda self: self.partitioned.source)
    shapes = property(lambda self: self.partitioned.shapes)
    reads = property(lambda self: self.partitioned.reads)
    partitions_read = property(lambda self: self.partitioned.partitions_read)

    def statements(self, statements: list) -> list:
        return self.partitioned.statements(statements)

    def phase_detail(self, engine: str) -> str:
        t, u = self.reads[self.t_read].table, self.reads[self.u_reads[0]].table
        how = f"{t.name}'s margin cache ({self.margin.threshold / ARCSEC:g} arcsec)" if self.margin else "padded with neighbouring partitions (no margin cache)"
        pairs = sum(len(p.t_parts) for p in self.pieces)
        detail = self.partitioned.phase_detail(engine).rsplit("\n", 1)
        line = (f"cross-match {u.name} x {t.name} at {self.radius / ARCSEC:g} arcsec, by {u.name}'s partitions: "
                f"{len(self.pieces)} pieces, {pairs} pairs of partitions, {how}")  # fmt: skip
        return "\n".join([detail[0], line, detail[-1]])

    def tasks(self, threads: int) -> int:
        from .cluster import batches

        return len(batches(self.pieces, threads))

    # -- on the cluster ------------------------------------------------------------------------------
    def fan_out(self, cluster, statements, *, time_limit=None, cancel=None, on_cursor=None):
        """The statement's rows, its pieces run as tasks on the Dask cluster (``cluster.fan_out``)."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        from sqlglot import exp, parse_one

        from .cluster import FanOut, JobView, batches, fan_out

        tree = parse_one(self.shapes[0], read="duckdb")
        inner = next(t for t in tree.find_all(exp.Table) if t.alias == _T_ALIAS).find_ancestor(exp.Subquery)
        positions = next(s for s in inner.find_all(exp.Select) if [e.alias for e in s.expressions] == ["__xm_ra", "__xm_dec"])
        positions = positions.sql(dialect="duckdb", identify=True)
        inner.replace(exp.Table(this=exp.to_identifier(_PAIR_T, quoted=True), alias=inner.args["alias"]))
        t, u = self.reads[self.t_read].table, self.reads[self.u_reads[0]].table
        (u_table,) = {t.name for t in tree.find_all(exp.Table) if t.name.startswith(placeholder(0)[:-3])}  # u's own read
        t_schema = pq.read_schema(t.files[0][0])
        u_schema = pq.read_schema(u.files[0][0])
        kinds = {f.name.lower(): f.type for f in u_schema}
        pair_schema = pa.schema([*t_schema, pa.field("__xm_ra", kinds.get(u.ra.lower(), pa.float64())),
                                 pa.field("__xm_dec", kinds.get(u.dec.lower(), pa.float64()))])  # fmt: skip
        groups = batches(self.pieces, cluster.threads())

        def pieces(task_sql: str) -> list[list[str]]:
            return [[self._piece_sql(task_sql, positions, p) for p in group] for group in groups]

        view = JobView(cancel)
        if on_cursor is not None:
            on_cursor(view)
        roots = tuple(sorted({str(t.path), str(u.path), *([str(self.margin.path)] if self.margin else [])}))
        plan = FanOut(
            sql=tree.sql(dialect="duckdb", identify=True), table=u_table,
            batches=[[f for p in g for f in u.files[p.u_part]] for g in groups], root=roots,
            params=dict(statements[0].params or {}), schema=u_schema, shipped={_PAIR_T: pair_schema.empty_table()},
            time_limit=time_limit, pieces=pieces,
        )  # fmt: skip
        return fan_out(cluster, plan, cancel=view.cancel, progress=view)

    def _piece_sql(self, task_sql: str, positions: str, piece: Piece) -> str:
        """The task SQL over one piece: ``u``'s rows of the piece, and as the candidates of ``t`` the rows of
        its files in a band of declination around each position of ``u`` (a superset of those within the
        radius: the exact test stays; planning the cells' SQL for each small piece cost more than the band)."""
        from .batch import SOURCE
        from .fanout import SHIPPED

        t, u = self.reads[self.t_read].table, self.reads[self.u_reads[0]].table
        u_sql = _filtered(u, u.read_sql([piece.u_part]), piece.u_ranges)
        t_sql = t.read_sql(piece.t_parts)
        if piece.margin:
            cols = ", ".join(quote_ident(c.name) for c in t.columns)
            t_sql = f"(SELECT {cols} FROM {t_sql} UNION ALL SELECT {cols} FROM {t.read_files_sql(list(piece.margin))})"
        at = re.sub(r'"__hats_[0-9a-f]{12}_\d+__"', lambda m: u_sql, positions, count=1)
        band = self.radius * (1 + 1e-9) + 1e-12
        dec = f"__xm_t.{quote_ident(t.dec)}"
        candidates = (
            f"SELECT __xm_t.*, __xm_c.__xm_ra, __xm_c.__xm_dec FROM {t_sql} AS __xm_t JOIN (SELECT DISTINCT * FROM ({at}) AS __xm_p) "
            f"AS __xm_c ON {dec} BETWEEN __xm_c.__xm_dec - {band!r} AND __xm_c.__xm_dec + {band!r}"
        )
        return task_sql.replace(quote_ident(SOURCE), u_sql, 1).replace(quote_ident(SHIPPED.format(0)), f"({candidates})", 1)


def _filtered(table: HatsTable, read: str, ranges: list[tuple[int, int]] | None) -> str:
    if ranges is None:
        return read
    col = quote_ident(table.index_column)
    return f"(SELECT * FROM {read} WHERE {' OR '.join(f'{col} BETWEEN {lo} AND {hi}' for lo, hi in ranges)})"


def cross_match(partitioned: Partitioned | None, statements) -> CrossMatch | None:
    """The catalog x catalog cross-match of ``statements`` (one statement, both tables HATS catalogs,
    planned by the SQL pipeline as a join on cells), pieces planned; None when it is not one."""
    if partitioned is None or len(statements) != 1 or len(partitioned.reads) < 2:
        return None
    shape = partitioned.shapes[0]
    at = re.search(r'"__hats_[0-9a-f]{12}_(\d+)__" AS "' + _T_ALIAS + '"', shape)
    if at is None:
        return None
    t_read = int(at.group(1))
    t = partitioned.reads[t_read].table
    others = [i for i, r in enumerate(partitioned.reads) if i != t_read]
    if len({id(partitioned.reads[i].table) for i in others}) != 1 or any(partitioned.reads[i].count for i in others):
        return None  # t against something else than one HATS catalog (read for its positions and its rows)
    u = partitioned.reads[others[0]].table
    radius = _radius(shape, statements[0].params or {})
    margin = margin_of(t)
    if margin is not None and radius > margin.threshold:
        raise ArchiveError(
            "bad_request",
            f"the cross-match radius {radius / ARCSEC:g} arcsec is larger than the margin cache of {t.name} "
            f"({margin.threshold / ARCSEC:g} arcsec), so pairs at its partitions' edges could be lost: use a radius of at most "
            f"{margin.threshold / ARCSEC:g} arcsec, or write {t.name} again with a larger margin (hats-import's margin_threshold)",
        )
    xm = CrossMatch(partitioned, t_read, others, radius, margin)
    # u's rows outside its most bounded read are filtered out anyway: every read of u reads only those
    parts = sorted(set.intersection(*(set(partitioned.reads[i].partitions) for i in others)))
    near: set[int] = set()
    for q in parts:
        xm.pieces.extend(_pieces(t, u, q, radius, margin))
        near.update(_padding(t, u, q, radius))
    partitioned.reads[t_read].partitions = sorted(near)  # in-process: only t's partitions near u's
    for i in others:
        partitioned.reads[i].partitions = parts
    partitioned._ready = None
    return xm


def _radius(shape: str, params: dict) -> float:
    """The radius (degrees) of the cross-match: a constant expression, perhaps of bound values (evaluated by a
    DuckDB with no tables and no file access, so a radius reading a table fails here and is refused)."""
    import duckdb

    end = _RADIUS.search(shape)
    start = shape.rfind("FROM (SELECT ", 0, end.start()) if end is not None else -1
    value = None
    if start >= 0:
        text = shape[start + len("FROM (SELECT "): end.start()]
        con = duckdb.connect(":memory:", config={"enable_external_access": False})
        try:
            used = {k: v for k, v in params.items() if f"${k}" in text}
            value = con.execute(f"SELECT CAST({text} AS DOUBLE)", used or None).fetchone()[0]
        except duckdb.Error:
            value = None
        finally:
            con.close()
    if value is None:
        raise ArchiveError(
            "bad_request",
            "a cross-match of two HATS catalogs needs a constant radius (a number, or a bound parameter), not a column: "
            "use the largest radius and filter on DISTANCE afterwards",
        )
    return float(value)


def _pieces(t: HatsTable, u: HatsTable, q: int, radius: float, margin: Margin | None) -> list[Piece]:
    """The pieces of ``u``'s partition ``q`` (see the module's docstring)."""
    lo, hi = u.starts[q], u.ends[q] - 1
    inside = t.touched([(lo, hi)])
    if margin is None:
        return [Piece(q, None, _padding(t, u, q, radius))]
    if len(inside) == 1 and t.starts[inside[0]] <= lo and t.ends[inside[0]] > hi:  # q lies in one partition of t
        p = inside[0]
        return [Piece(q, None, [p], margin.files.get(_pixel(t, p), ()))]
    pieces, covered = [], []
    for p in inside:  # t's partitions inside q (partitions are nested or disjoint)
        pieces.append(Piece(q, [(t.starts[p], t.ends[p] - 1)], [p], margin.files.get(_pixel(t, p), ())))
        covered.append((t.starts[p], t.ends[p] - 1))
    rest = _minus((lo, hi), covered)
    if rest:
        pieces.append(Piece(q, rest, _padding(t, u, q, radius)))
    return pieces


def _padding(t: HatsTable, u: HatsTable, q: int, radius: float) -> list[int]:
    """``t``'s partitions touching ``u``'s partition ``q`` or its neighbours, at an order whose cells
    (with their neighbours) cover a disc of ``radius``: every row within ``radius`` of ``q``."""
    import cdshealpix.nested as nested
    import numpy as np

    order = u.orders[q]
    reach = max(0, min(order, int(math.floor(math.log2(_REACH0 / max(radius, 1e-300))))))
    pixel = (u.starts[q] >> (2 * (29 - order))) >> (2 * (order - reach))
    cells = nested.neighbours(np.array([pixel], dtype=np.uint64), reach)[0] if reach or radius <= _REACH0 else None
    if cells is None:
        return list(range(t.partitions))
    shift = 2 * (29 - reach)
    return t.touched(sorted((int(c) << shift, ((int(c) + 1) << shift) - 1) for c in cells if c >= 0))


def _pixel(t: HatsTable, p: int) -> tuple[int, int]:
    return t.orders[p], t.starts[p] >> (2 * (29 - t.orders[p]))


def _minus(span: tuple[int, int], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, at = [], span[0]
    for lo, hi in sorted(holes):
        if lo > at:
            out.append((at, lo - 1))
        at = max(at, hi + 1)
    if at <= span[1]:
        out.append((at, span[1]))
    return out


_MARGINS: dict[tuple[str, float], Margin | None] = {}


def margin_of(table: HatsTable) -> Margin | None:
    """The widest margin cache kept beside ``table`` (read once through ``hats``), or None."""
    best = None
    for path in table.margins.values():
        key = (str(path), _stamp(path))
        if key not in _MARGINS:
            _MARGINS[key] = _read_margin(Path(path))
        m = _MARGINS[key]
        if m is not None and (best is None or m.threshold > best.threshold):
            best = m
    return best


def _stamp(path) -> float:
    try:
        return max((Path(path) / n).stat().st_mtime for n in ("properties", "hats.properties") if (Path(path) / n).exists())
    except ValueError:
        return 0.0


def _read_margin(path: Path) -> Margin | None:
    import hats
    from hats.io import paths as hats_paths

    try:
        cat = hats.read_hats(path)
        threshold = float(cat.catalog_info.margin_threshold) * ARCSEC
        suffix = getattr(cat.catalog_info, "npix_suffix", ".parquet") or ".parquet"
        files = {}
        for pixel in cat.get_healpix_pixels():
            where = Path(str(hats_paths.pixel_catalog_file(cat.catalog_base_dir, pixel, npix_suffix=suffix)))
            found = sorted(str(f) for f in where.iterdir() if f.suffix == ".parquet") if where.is_dir() else [str(where)] if where.is_file() else []
            files[(pixel.order, pixel.pixel)] = tuple(found)
    except Exception:  # noqa: BLE001 - an unreadable margin is no margin: the plan pads instead
        return None
    return Margin(path, threshold, files)
