"""The partitions of HATS catalogs a compiled query reads: the planner's part for ``hats`` mounts.

A compiled statement names a HATS table as ``"alias"."main"."name"``; nothing is attached under
that name. Here each such reference becomes a read of the catalog's partition files that the
query's sky region touches (``read_parquet([...])``, the paths from the catalog's metadata, never
from user text). The region is the HEALPix ranges of the index column that the SQL pipeline ANDs to
a sky region (``CONTAINS``/``INTERSECTS`` with a circle, a box or a polygon, ``DISTANCE``; ``adql._speed_up``),
as noted on the statement when its values were bound (``Statement.regions``) or read back from the compiled SQL: a range filter that is a top-level conjunct of the WHERE of the SELECT reading the table (or
of the ON of a join in which the table is not the side kept whole) bounds the rows that table can
give, so the partitions outside the ranges can be left unread; anything else reads every partition.
``COUNT(*)`` of a whole table is answered from the catalog's row count.

``Partitioned`` is what a plan carries: per statement a *shape* (the SQL with a placeholder where
each HATS table was) and per read the catalog, its pruned partitions and their files, so another
engine can run the same shape over any batch of the files (``sql_for``).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlglot import exp, parse_one

from ..sql import quote_ident
from ..sql.healpix_index import range_filter

if TYPE_CHECKING:
    from ..backends.hats import HatsTable

_TOKEN = f"__hats_{uuid.uuid4().hex[:12]}_"  # a table name no user text can have reached the engine SQL with
_PLACEHOLDER = re.compile(r'"' + _TOKEN + r'(\d+)__"')


@dataclass
class HatsRead:
    """One reference to a HATS table in a query: the catalog, and the partitions it reads."""

    alias: str  # the mount's engine alias
    table: HatsTable
    partitions: list[int]  # indexes into table.files; [] with ``count`` too
    count: bool = False  # answered from the catalog's row count: no file read
    near: Any = None  # crossmatches.Near: a cross-match's candidates, pruned by the positions of its other table when run

    @property
    def files(self) -> list[str]:
        return [f for i in self.partitions for f in self.table.files[i]]

    def describe(self) -> str:
        how = "COUNT(*) from the catalog's metadata" if self.count else f"{len(self.partitions)} of {self.table.partitions} partitions"
        if self.near is not None:
            how = f"at most: pruned by the positions of {self.near.name} when it runs"
        return f"{self.alias}.{self.table.name}: read {0 if self.count else len(self.partitions)}, total {self.table.partitions} ({how})"


@dataclass
class Partitioned:
    """The HATS reads of compiled statements: the per-statement SQL shapes and the reads they hold."""

    source: tuple[str, ...]  # the statements' SQL this was made from
    shapes: list[str]  # each statement's SQL with a placeholder per HATS read
    reads: list[HatsRead]
    _ready: list | None = dataclasses.field(default=None, repr=False)

    @property
    def partitions_read(self) -> int:
        return sum(len(r.partitions) for r in self.reads)

    def sql_for(self, index: int, files: dict[int, list[str]] | None = None) -> str:
        """Statement ``index``'s SQL, each HATS read over its pruned files or over ``files[read]`` (a batch of them)."""

        def read(m: re.Match) -> str:
            r = self.reads[int(m.group(1))]
            if files is not None and int(m.group(1)) in files:
                return r.table.read_files_sql(files[int(m.group(1))])
            return r.table.read_sql(r.partitions)

        return _PLACEHOLDER.sub(read, self.shapes[index])

    def statements(self, statements: list) -> list:
        """``statements`` (a compiled query's) as they run here; the same ones as this was made from
        unless a compile cache filled new values into a shape, which is then partitioned anew."""
        if tuple(st.sql for st in statements) != self.source:
            again = self.again(statements)
            return statements if again is None else again.statements(statements)
        for r in self.reads:  # a catalog changed on disk since it was mounted fails clearly, before DuckDB reads it
            r.table.check(r.partitions)
        if self._ready is None:
            self._ready = [dataclasses.replace(st, sql=self.sql_for(i)) for i, st in enumerate(statements)]
        return self._ready

    def again(self, statements: list) -> Partitioned | None:
        """The reads of ``statements``, a compile cache's new values filled into the shape this was made from."""
        hats: dict[str, dict[str, HatsTable]] = {}
        for r in self.reads:  # every table of each mount this read: a learnt join of two catalogs of one mount
            hats.setdefault(r.alias, {})[r.table.name.lower()] = r.table
        return partition(hats, statements)

    def tasks(self, threads: int) -> int:
        """How many tasks a cluster run makes of this: batches of its one read's files (``cluster.batches``)."""
        from .cluster import batches

        return len(batches(self.reads[0].files, threads))

    def phase_detail(self, engine: str) -> str:
        """What ``/compile`` shows: each read's partitions, and the engine."""
        return "\n".join([*(r.describe() for r in self.reads), f"engine: {engine}"])


def placeholder(index: int) -> str:
    """The table name standing for HATS read ``index`` in a shape."""
    return f"{_TOKEN}{index}__"


def partition(hats: dict[str, dict[str, HatsTable]], statements: list) -> Partitioned | None:
    """The HATS reads of compiled ``statements`` (``hats``: mount alias -> its tables by lower-case
    name), or None when they read no HATS table."""
    if not any(t.catalog in hats for st in statements for t in (st.tables or [])):
        return None
    from .crossmatches import near_of  # which reads are a cross-match's candidates (that module reads these)

    shapes, reads = [], []
    for st in statements:
        if not any(t.catalog in hats for t in (st.tables or [])):
            shapes.append(st.sql)
            continue
        if (shape := _bounded_shape(st, hats, reads)) is not None:
            shapes.append(shape)
            continue
        tree = parse_one(st.sql, read="duckdb")
        count = _whole_count(tree, hats)
        if count is not None:
            reads.append(HatsRead(count[0], count[1], [], count=True))
            shapes.append(count[2])
            continue
        for node in list(tree.find_all(exp.Table)):
            table = _hats_table(node, hats)
            if table is None:
                continue
            ranges = _ranges(node, table)
            reads.append(HatsRead(node.catalog, table, table.touched(ranges), near=near_of(node, hats)))
            alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(node.name))
            node.replace(exp.Table(this=exp.to_identifier(f"{_TOKEN}{len(reads) - 1}__"), alias=alias))
        shapes.append(tree.sql(dialect="duckdb", identify=True))
    return Partitioned(tuple(st.sql for st in statements), shapes, reads)


def _bounded_shape(st, hats, reads: list[HatsRead]) -> str | None:
    """The shape of a statement whose every HATS table is read once, in a FROM or JOIN, and bounded by
    the ranges the compiler noted (``Statement.regions``, a cone's), made without parsing the SQL
    again (parsing it cost more than the cone's whole compile); None: not such a statement."""
    found = []
    for target in st.tables:
        tables = hats.get(target.catalog)
        if tables is None:
            continue
        table = tables.get(target.name.lower())
        noted = st.regions.get(target)
        if table is None or target.schema.lower() != "main" or not noted:
            return None
        ref = ".".join(quote_ident(x) for x in (target.catalog, target.schema, target.name))
        at = [m.start() for m in re.finditer(re.escape(ref), st.sql)]
        if len(at) != 1 or not st.sql[: at[0]].endswith(("FROM ", "JOIN ")):
            return None
        bounds = None
        for ranges, used, _ in noted:
            if any(st.params.get(k) != v for k, v in used.items()):
                return None  # the values bound now are not those the ranges were made for
            bounds = sorted(ranges) if bounds is None else _intersect(bounds, sorted(ranges))
        found.append((at[0], ref, target, table, bounds))
    shape = st.sql
    for at, ref, target, table, bounds in sorted(found, key=lambda f: f[0], reverse=True):
        reads.append(HatsRead(target.catalog, table, table.touched(bounds)))
        name = quote_ident(f"{_TOKEN}{len(reads) - 1}__")
        aliased = shape[at + len(ref):].startswith(" AS ")
        shape = shape[:at] + name + ("" if aliased else " AS " + quote_ident(target.name)) + shape[at + len(ref):]
    return _coarsened(shape, st, found)


def _coarsened(shape: str, st, found) -> str:
    """``shape`` with each HATS table's range filter (when one region's, standing once in the SQL) in as few
    ranges as read the same row groups (``HatsTable.coarsen``): planning a range costs DuckDB more than
    the rows of a gap inside a row group it reads anyway (the exact test drops them)."""
    for _, _, target, table, _ in found:
        noted = st.regions[target]
        if len(noted) != 1:
            continue
        ranges, _, column = noted[0]
        old = range_filter(column, ranges)
        fewer = table.coarsen(sorted(ranges))
        if len(fewer) < len(ranges) and shape.count(old) == 1:
            shape = shape.replace(old, range_filter(column, fewer))
    return shape


def _hats_table(node: exp.Table, hats) -> HatsTable | None:
    tables = hats.get(node.catalog)
    if tables is None or node.db.lower() != "main":
        return None
    return tables.get(node.name.lower())


def _whole_count(tree: exp.Expr, hats) -> tuple[str, HatsTable, str] | None:
    """``SELECT COUNT(*) FROM <hats table>`` and nothing else: the alias, the table and SQL answering it from the row count."""
    if not isinstance(tree, exp.Select) or len(tree.expressions) != 1:
        return None
    if any(tree.args.get(k) for k in ("where", "group", "having", "joins", "distinct", "with", "offset", "qualify", "windows")):
        return None
    proj = tree.expressions[0]
    inner = proj.this if isinstance(proj, exp.Alias) else proj
    from_ = tree.args.get("from") or tree.args.get("from_")
    if not (isinstance(inner, exp.Count) and isinstance(inner.this, exp.Star)) or inner.args.get("distinct") or from_ is None:
        return None
    node = from_.this
    table = _hats_table(node, hats) if isinstance(node, exp.Table) else None
    if table is None or table.rows is None:
        return None
    limit = tree.args.get("limit")
    if limit is not None and not (isinstance(limit.expression, exp.Literal) and int(limit.expression.name) >= 1):
        return None
    name = proj.alias if isinstance(proj, exp.Alias) else "count_star()"
    return node.catalog, table, f"SELECT CAST({int(table.rows)} AS BIGINT) AS {exp.to_identifier(name, quoted=True).sql('duckdb')}"


def _ranges(node: exp.Table, table: HatsTable) -> list[tuple[int, int]] | None:
    """The order-29 ranges that bound the rows this reference gives (None: unbounded)."""
    select, kept = _select_of(node)
    if select is None:
        return None
    from_ = select.args.get("from") or select.args.get("from_")
    sources = ([from_.this] if from_ is not None else []) + [j.this for j in select.args.get("joins") or []]
    sole = len(sources) == 1
    conditions = []
    if (where := select.args.get("where")) is not None:
        conditions += _conjuncts(where.this)
    if isinstance(node.parent, exp.Join) and not kept:
        conditions += _conjuncts(node.parent.args.get("on"))
    found: list[tuple[int, int]] | None = None
    for cond in conditions:
        ranges = _range_filter(cond, table.index_column, node.alias_or_name, sole)
        if ranges is not None:
            found = ranges if found is None else _intersect(found, ranges)
    return found


def _select_of(node: exp.Table) -> tuple[exp.Select | None, bool]:
    """The SELECT whose FROM or JOIN names ``node``, and whether a join keeps all its rows (outer side)."""
    parent = node.parent
    if isinstance(parent, exp.From) and isinstance(parent.parent, exp.Select):
        select = parent.parent
        joins = select.args.get("joins") or []
        return select, any(j.side in ("LEFT", "FULL") or j.kind == "FULL" for j in joins)
    if isinstance(parent, exp.Join) and isinstance(parent.parent, exp.Select):
        return parent.parent, parent.side in ("RIGHT", "FULL") or parent.kind == "FULL"
    return None, False


def _conjuncts(cond) -> list[exp.Expr]:
    if cond is None:
        return []
    while isinstance(cond, exp.Paren):
        cond = cond.this
    if isinstance(cond, exp.And):
        return _conjuncts(cond.this) + _conjuncts(cond.expression)
    return [cond]


def _range_filter(cond: exp.Expr, column: str, qualifier: str, sole: bool) -> list[tuple[int, int]] | None:
    """The ranges of a condition that is an OR of ``column BETWEEN lo AND hi``, or None."""
    terms: list[exp.Expr] = []

    def flatten(c):
        while isinstance(c, exp.Paren):
            c = c.this
        if isinstance(c, exp.Or):
            flatten(c.this)
            flatten(c.expression)
        else:
            terms.append(c)

    flatten(cond)
    ranges = []
    for term in terms:
        if isinstance(term, exp.Boolean) and not term.this:
            continue
        if isinstance(term, exp.Between) and isinstance(term.this, exp.Column) and term.this.name.lower() == column.lower():
            q = term.this.table
            if not ((q and q.casefold() == qualifier.casefold()) or (not q and sole)):
                return None
            lo, hi = _integer(term.args.get("low")), _integer(term.args.get("high"))
            if lo is None or hi is None:
                return None
            ranges.append((lo, hi))
        else:
            return None
    return sorted(ranges)


def _integer(node) -> int | None:
    if isinstance(node, exp.Neg):
        v = _integer(node.this)
        return None if v is None else -v
    if isinstance(node, exp.Literal) and not node.is_string and re.fullmatch(r"\d+", node.name):
        return int(node.name)
    return None


def _intersect(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out
