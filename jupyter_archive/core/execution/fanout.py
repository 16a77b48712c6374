"""Splitting one compiled SELECT over a partitioned table into per-batch tasks and a merge (sqlglot over DuckDB SQL).

A fanned-out query runs the *task* SQL once per batch of partition files (on a Dask worker, ``cluster``),
each reading the view ``SOURCE`` over its batch's files and the small *shipped* tables (an upload), and the
coordinator runs the *merge* SQL over ``PARTS``, the tasks' outputs, to finish it:

- scan, filter, project: the parts are concatenated (no merge SQL; a LIMIT stops the stream early);
- ORDER BY and LIMIT (TOP): applied in each task, then again over the parts;
- COUNT, SUM, MIN, MAX, AVG (AVG from a sum and a count), FILTER clauses, GROUP BY, HAVING: partial
  aggregates per task, finished (and HAVING, ORDER BY, LIMIT applied) at the merge; SELECT DISTINCT likewise;
- ``QUALIFY row_number()|rank()|dense_rank() OVER (PARTITION BY .. ORDER BY ..) <= n`` (the nearest match per
  uploaded row): the top n of each group in each task, then again over the parts.

Everything else (COUNT DISTINCT, other aggregates, window functions over the whole table, a join of the
partitioned table with itself, subqueries that read it, set operations) is refused with an ``ArchiveError``
that says what to do instead: never run silently on one node. Task columns are renamed by position in the
task (``__c0``, ``__c1``, ...): the first ``hidden`` ones are what the merge needs besides the result's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from ..errors import ArchiveError

SOURCE = "__source"  # in a task: the view over its batch's files
PARTS = "__parts"  # at the coordinator: every task's output
SHIPPED = "__shipped{}"  # in a task: the shipped tables, in the order given
TOP_N = (exp.RowNumber, exp.Rank, exp.DenseRank)  # top n per group survives a split
INSTEAD = "run it on a region of the sky (a cone or a box) or a list of objects, or first SELECT ... INTO mydb a reduced table and query that"


@dataclass(frozen=True)
class Decomposition:
    """What runs where: ``task_sql`` per batch, ``merge_sql`` over ``PARTS`` (None: concatenate the parts)."""

    original_sql: str  # the statement with its tables renamed (SOURCE, SHIPPED): binds the result's columns
    task_sql: str
    merge_sql: str | None
    hidden: int  # leading task columns that are not the result's (None merge: dropped from each part)
    limit: int | None = None  # concatenation only: rows kept, after skipping ``offset``
    offset: int = 0


def refuse(what: str) -> ArchiveError:
    """A statement the cluster cannot split by partition, and what to do instead."""
    return ArchiveError("bad_request", f"{what} cannot be split over the catalog's partitions: {INSTEAD}", 400)


def col(i: int) -> exp.Column:
    return exp.column(f"__c{i}", quoted=True)


def key(node: exp.Expression) -> str:
    """An expression's identity for matching GROUP BY keys and ORDER BY items (DuckDB's names ignore case)."""
    return node.transform(lambda n: exp.to_identifier(n.name.lower()) if isinstance(n, exp.Identifier) else n).sql("duckdb")


def duck(node: exp.Expression) -> str:
    return node.sql("duckdb")


@functools.cache
def duckdb_aggregates() -> frozenset[str]:
    """Names of DuckDB's aggregate functions (sqlglot reads one it does not know as a plain function)."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        rows = con.execute("SELECT DISTINCT lower(function_name) FROM duckdb_functions() WHERE function_type = 'aggregate'").fetchall()
    finally:
        con.close()
    return frozenset(r[0] for r in rows)


def decompose(sql: str, table: str, shipped: list[str] | tuple[str, ...] = (), columns: frozenset[str] = frozenset()) -> Decomposition:
    """Split ``sql`` (one DuckDB SELECT reading the partitioned ``table`` once, and perhaps the ``shipped``
    tables, by their names in ``sql``) into task and merge SQL; ``columns`` are the input tables' column
    names (lower case), which GROUP BY prefers to the SELECT list's aliases, as DuckDB does."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise ArchiveError("bad_request", f"the statement cannot be read for the cluster: {exc}", 400) from None
    if not isinstance(tree, exp.Select):
        raise refuse("a set operation (UNION, INTERSECT, EXCEPT) or a statement other than SELECT")
    if tree.args.get("with"):
        raise refuse("a WITH clause")
    _rename_tables(tree, table, [_parts(n) for n in shipped])
    original = duck(tree)
    if tree.args.get("distinct") and tree.args["distinct"].args.get("on"):
        raise refuse("SELECT DISTINCT ON")
    units = _aggregates(tree)
    if any(isinstance(w, exp.Window) for w in tree.find_all(exp.Window)):
        return _top_n(tree, original, units, columns)
    if units or tree.args.get("group"):
        return _grouped(tree, original, units, columns)
    if tree.args.get("distinct"):
        return _distinct(tree, original)
    return _plain(tree, original)


def _parts(name: str) -> tuple[str, ...]:
    return tuple(p.strip('"').lower() for p in sqlglot.to_table(name, dialect="duckdb").sql("duckdb").split(".")) if name else ()


def _table_parts(node: exp.Table) -> tuple[str, ...]:
    return tuple(p.name.lower() for p in node.parts)


def _rename_tables(tree: exp.Select, table: str, shipped: list[tuple[str, ...]]) -> None:
    """Name the partitioned table ``SOURCE`` and the shipped ones ``SHIPPED``, keeping what columns call them;
    refuse any other table, and a partitioned table read twice or inside a subquery."""
    wanted = _parts(table)
    seen = 0
    source = None  # what the statement's FROM or JOIN reads the partitioned rows as: the table, or a row-wise derived table
    for node in list(tree.find_all(exp.Table)):
        if not isinstance(node.this, exp.Identifier):
            raise refuse(f"a table function ({duck(node.this)})")
        parts = _table_parts(node)
        if parts == wanted:
            seen += 1
            inner = node.find_ancestor(exp.Select)
            if inner is not tree and not _row_wise(inner, node, tree):
                raise refuse("a subquery that reads the partitioned table")
            source = inner.parent if inner is not tree else None
            name = SOURCE
        elif parts in shipped:
            name = SHIPPED.format(shipped.index(parts))
        else:
            raise ArchiveError("bad_request", f"the table {'.'.join(parts)} cannot be read by the cluster's tasks", 400)
        alias = node.alias or node.name
        renamed = exp.Table(this=exp.to_identifier(name, quoted=True), alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
        node.replace(renamed)
        if name == SOURCE and source is None:
            source = renamed
    for column in tree.find_all(exp.Column):
        if column.args.get("db") is not None:  # a column named with its table's database: the alias is enough now
            column.set("db", None)
            column.set("catalog", None)
    if seen != 1:
        raise refuse("a join of the partitioned table with itself" if seen else "a statement that does not read the partitioned table")
    source_first = tree.args["from_"].this is source
    for join in tree.args.get("joins") or []:
        target = join.this
        if not isinstance(target, exp.Table) and target is not source:
            raise refuse("a join with a subquery")
        side, kind = (join.args.get("side") or "").upper(), (join.args.get("kind") or "").upper()
        joins_source = target is source
        if kind in ("", "INNER", "CROSS") and not side:
            continue
        if side == "LEFT" and kind in ("", "OUTER") and source_first and not joins_source:
            continue  # the partitioned rows are the preserved side: each is in one batch
        if kind in ("SEMI", "ANTI") and source_first and not joins_source:
            continue
        raise refuse(f"a {' '.join(x for x in (side, kind) if x)} JOIN that keeps rows of a shipped table unmatched in a batch")


def _row_wise(inner: exp.Select, node: exp.Table, tree: exp.Select) -> bool:
    """Whether ``inner``, a derived table in ``tree``'s FROM or JOIN, gives each partitioned row (``node``, its
    FROM) on its own, so a batch's rows give that batch's part of it: inner joins with other (shipped) tables
    only, no aggregate, DISTINCT, window, ORDER BY or LIMIT (a cross-match's candidates: ``sql/crossmatch.py``)."""
    holder = inner.parent
    if not isinstance(holder, exp.Subquery) or not isinstance(holder.parent, (exp.From, exp.Join)) or holder.parent.parent is not tree:
        return False
    if (inner.args.get("from_") or inner.args.get("from")).this is not node or _aggregates(inner):
        return False
    if any(inner.args.get(k) for k in ("group", "having", "distinct", "order", "limit", "offset", "qualify", "windows", "with")):
        return False
    own = [w for w in inner.find_all(exp.Window) if w.find_ancestor(exp.Select) is inner]
    joins = inner.args.get("joins") or []
    return not own and all((j.args.get("side") or "") == "" and (j.args.get("kind") or "").upper() in ("", "INNER", "CROSS") for j in joins)


def _aggregates(tree: exp.Select) -> list[exp.Expression]:
    """The aggregate calls of the statement's own SELECT, HAVING, ORDER BY and QUALIFY (a FILTER with its call)."""
    units = []
    for part in (*tree.expressions, tree.args.get("having"), tree.args.get("order"), tree.args.get("qualify")):
        if part is None:
            continue
        for node in part.find_all(exp.Func):
            if node.find_ancestor(exp.Select) is not tree or node.find_ancestor(exp.AggFunc, exp.Window) is not None:
                continue  # in a subquery (over shipped tables only), or inside another aggregate or window
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if isinstance(node, exp.AggFunc) or name in duckdb_aggregates():
                if not isinstance(node, (exp.Count, exp.Sum, exp.Min, exp.Max, exp.Avg)):
                    raise refuse(f"the aggregate {name.upper()}")
                if isinstance(node.this, exp.Distinct) and not isinstance(node, (exp.Min, exp.Max)):
                    raise refuse(f"{name.upper()}(DISTINCT ...)")
                units.append(node.parent if isinstance(node.parent, exp.Filter) else node)
    return units


def _partials(unit: exp.Expression) -> tuple[list[exp.Expression], callable]:
    """An aggregate's per-task partials and how the merge finishes it from their columns."""
    agg = unit.this if isinstance(unit, exp.Filter) else unit
    where = unit.expression if isinstance(unit, exp.Filter) else None

    def filtered(node):
        return exp.Filter(this=node, expression=where.copy()) if where is not None else node

    if isinstance(agg, exp.Avg):
        arg = agg.this
        parts = [filtered(exp.Sum(this=arg.copy())), filtered(exp.Count(this=arg.copy()))]
        return parts, lambda s, c: exp.Div(this=exp.Cast(this=exp.Sum(this=s), to=exp.DataType.build("DOUBLE")), expression=exp.Nullif(this=exp.Sum(this=c), expression=exp.Literal.number(0)))
    finish = exp.Sum if isinstance(agg, (exp.Count, exp.Sum)) else type(agg)
    return [unit.copy()], lambda p: finish(this=p)


def _resolve(node: exp.Expression, items: list[exp.Expression], columns: frozenset[str], *, prefer_columns: bool) -> exp.Expression:
    """A GROUP BY or ORDER BY item as the expression it names: a position or an alias of the SELECT list."""
    if isinstance(node, exp.Literal) and not node.is_string:
        pos = int(node.name)
        if not 1 <= pos <= len(items) or isinstance(items[pos - 1], exp.Star):
            raise ArchiveError("bad_request", f"position {pos} is not in the SELECT list", 400)
        return items[pos - 1].unalias()
    if isinstance(node, exp.Column) and not node.table:
        name = node.name.lower()
        if not (prefer_columns and name in columns):
            for item in items:
                if isinstance(item, exp.Alias) and item.alias.lower() == name:
                    return item.this
    return node


def _limits(tree: exp.Select) -> tuple[int | None, int]:
    def number(node, what):
        if node is None:
            return None
        value = node.expression
        if not (isinstance(value, exp.Literal) and not value.is_string and value.name.isdigit()):
            raise refuse(f"a {what} that is not a plain number")
        return int(value.name)

    if tree.args.get("fetch"):
        raise refuse("FETCH FIRST (write LIMIT n)")
    return number(tree.args.get("limit"), "LIMIT"), number(tree.args.get("offset"), "OFFSET") or 0


def _order_text(ordered: list[exp.Ordered], replace) -> str:
    out = []
    for o in ordered:
        o = o.copy()
        o.set("this", replace(o.this))
        out.append(duck(o))
    return " ORDER BY " + ", ".join(out) if out else ""


def _limit_text(limit: int | None, offset: int) -> str:
    return (f" LIMIT {limit}" if limit is not None else "") + (f" OFFSET {offset}" if offset else "")


def _strip(tree: exp.Select, *names: str) -> exp.Select:
    out = tree.copy()
    for name in names:
        out.set(name, None)
    return out


def _excluding(hidden: int) -> str:
    return f"* EXCLUDE ({', '.join(duck(col(i)) for i in range(hidden))})" if hidden else "*"


def _plain(tree: exp.Select, original: str) -> Decomposition:
    """Scan, filter, project: each task sorts and cuts its rows; the merge sorts and cuts again."""
    limit, offset = _limits(tree)
    order = tree.args.get("order")
    task = _strip(tree, "offset")
    if limit is not None:
        task.set("limit", exp.Limit(expression=exp.Literal.number(limit + offset)))
    if not order:
        return Decomposition(original, duck(task), None, 0, limit, offset)
    items = [o.this for o in order.expressions]
    if any(isinstance(i, exp.Literal) and not i.is_string for i in items) and any(isinstance(e, exp.Star) for e in tree.expressions):
        raise refuse("ORDER BY a position next to SELECT *")
    keys = [_resolve(i, tree.expressions, frozenset(), prefer_columns=False) for i in items]
    task.set("expressions", [exp.alias_(k.copy(), f"__c{i}", quoted=True) for i, k in enumerate(keys)] + [e.copy() for e in tree.expressions])
    positions = iter(range(len(keys)))
    merge = f"SELECT {_excluding(len(keys))} FROM {PARTS}" + _order_text(order.expressions, lambda _: col(next(positions))) + _limit_text(limit, offset)
    return Decomposition(original, duck(task), merge, len(keys))


def _distinct(tree: exp.Select, original: str) -> Decomposition:
    """SELECT DISTINCT: distinct rows per task, then distinct again (sorted and cut) at the merge."""
    limit, offset = _limits(tree)
    items = tree.expressions
    task = _strip(tree, "order", "limit", "offset")
    order = tree.args.get("order")

    def position(node):
        target = _resolve(node, items, frozenset(), prefer_columns=False)
        for i, item in enumerate(items):
            if isinstance(item, exp.Star):
                break
            if key(item.unalias()) == key(target) or (isinstance(node, exp.Literal) and i == int(node.name) - 1):
                return col(i)
        raise refuse("an ORDER BY of a SELECT DISTINCT that is not one of its selected columns")

    merge = f"SELECT DISTINCT * FROM {PARTS}" + _order_text(order.expressions if order else [], position) + _limit_text(limit, offset)
    task_sql = duck(task)
    return Decomposition(original, task_sql, merge, 0)


def _grouped(tree: exp.Select, original: str, units: list[exp.Expression], columns: frozenset[str]) -> Decomposition:
    """Aggregates: group keys and partial aggregates per task; the merge finishes them, then HAVING, ORDER BY, LIMIT."""
    if tree.args.get("distinct"):
        raise refuse("SELECT DISTINCT with aggregates")
    if any(isinstance(e, exp.Star) for e in tree.expressions):
        raise refuse("SELECT * with GROUP BY")
    group = tree.args.get("group")
    sets = (exp.Rollup, exp.Cube, exp.GroupingSets)
    named = ("rollup", "cube", "grouping_sets", "grouping sets")
    if group is not None and (
        any(group.args.get(k) for k in ("grouping_sets", "cube", "rollup"))
        or any(isinstance(e, sets) or (isinstance(e, exp.Anonymous) and e.name.lower() in named) for e in group.expressions)
    ):
        raise refuse("GROUPING SETS, CUBE or ROLLUP")
    if group is not None and group.args.get("all"):
        keys = [e.unalias() for e in tree.expressions if not any(n is u for n in e.find_all(exp.Expression) for u in units)]
    else:
        keys = [_resolve(g, tree.expressions, columns, prefer_columns=True) for g in (group.expressions if group else [])]
    outputs: list[exp.Expression] = []
    by_key: dict[str, exp.Column] = {}
    for k in keys:
        if key(k) not in by_key:
            by_key[key(k)] = col(len(outputs))
            outputs.append(exp.alias_(k.copy(), f"__c{len(outputs)}", quoted=True))
    finished: dict[str, exp.Expression] = {}
    for unit in units:
        if key(unit) in finished:
            continue
        parts, finish = _partials(unit)
        columns_of = []
        for p in parts:
            columns_of.append(col(len(outputs)))
            outputs.append(exp.alias_(p, f"__c{len(outputs)}", quoted=True))
        finished[key(unit)] = finish(*columns_of)

    def merged(node: exp.Expression) -> exp.Expression:
        k = key(node)
        if k in by_key:
            return by_key[k].copy()
        if k in finished:
            return finished[k].copy()
        if isinstance(node, (exp.Column, exp.Literal, exp.Placeholder)):
            return node.copy()  # an alias of the SELECT list (HAVING, ORDER BY), or a constant
        if isinstance(node, (exp.Subquery, exp.Select)):
            raise refuse("a subquery next to aggregates")
        out = node.copy()
        for name, value in node.args.items():
            if isinstance(value, exp.Expression):
                out.set(name, merged(value))
            elif isinstance(value, list):
                out.set(name, [merged(v) if isinstance(v, exp.Expression) else v for v in value])
        return out

    task = _strip(tree, "having", "order", "limit", "offset", "qualify")
    task.set("expressions", outputs or [exp.alias_(exp.Count(this=exp.Star()), "__c0", quoted=True)])
    task.set("group", exp.Group(expressions=[k.copy() for k in keys]) if keys else None)
    merge_tree = exp.select(*[merged(e) for e in tree.expressions]).from_(PARTS)
    if keys:
        merge_tree.set("group", exp.Group(expressions=[by_key[key(k)].copy() for k in keys]))
    if tree.args.get("having"):
        merge_tree.set("having", exp.Having(this=merged(tree.args["having"].this)))
    limit, offset = _limits(tree)
    order = tree.args.get("order")
    merge = duck(merge_tree) + _order_text(order.expressions if order else [], merged) + _limit_text(limit, offset)
    return Decomposition(original, duck(task), merge, len(outputs))


def _top_n(tree: exp.Select, original: str, units: list[exp.Expression], columns: frozenset[str]) -> Decomposition:
    """QUALIFY rank() <= n (the nearest match of each uploaded row): the top n per group in each task, then again."""
    qualify = tree.args.get("qualify")
    windows = list(tree.find_all(exp.Window))
    if units or tree.args.get("group") or tree.args.get("distinct") or qualify is None or any(not w.find_ancestor(exp.Qualify) for w in windows):
        raise refuse("a window function over the whole table")
    cond = qualify.this
    if isinstance(cond, (exp.GTE, exp.GT)):
        cond = (exp.LTE if isinstance(cond, exp.GTE) else exp.LT)(this=cond.expression, expression=cond.this)
    ok = (
        isinstance(cond, (exp.EQ, exp.LTE, exp.LT))
        and isinstance(cond.this, exp.Window)
        and isinstance(cond.this.this, TOP_N)
        and isinstance(cond.expression, exp.Literal)
        and not cond.expression.is_string
        and (not isinstance(cond, exp.EQ) or cond.expression.name == "1")
        and not cond.this.args.get("spec")
    )
    if not ok:
        raise refuse("a QUALIFY other than row_number(), rank() or dense_rank() OVER (...) <= n")
    window = cond.this
    items = tree.expressions
    keys = [p for p in window.args.get("partition_by") or []] + [o.this for o in (window.args.get("order").expressions if window.args.get("order") else [])]
    keys = [k if isinstance(k, exp.Literal) else _resolve(k, items, columns, prefer_columns=True) for k in keys]  # an alias as its expression
    order = tree.args.get("order")
    star = any(isinstance(e, exp.Star) for e in items)
    if order is not None and star and any(isinstance(o.this, exp.Literal) for o in order.expressions):
        raise refuse("ORDER BY a position next to SELECT *")
    order_keys = [_resolve(o.this, items, frozenset(), prefer_columns=False) for o in (order.expressions if order else [])]
    hidden = [exp.alias_(k.copy(), f"__c{i}", quoted=True) for i, k in enumerate(keys + order_keys)]
    task = _strip(tree, "order", "limit", "offset")
    task.set("expressions", hidden + [e.copy() for e in items])
    counter = iter(range(len(keys) + len(order_keys)))
    w = window.copy()
    w.set("partition_by", [col(next(counter)) for _ in window.args.get("partition_by") or []])
    if window.args.get("order"):
        w.set("order", exp.Order(expressions=[exp.Ordered(this=col(next(counter)), desc=o.args.get("desc"), nulls_first=o.args.get("nulls_first")) for o in window.args["order"].expressions]))
    new_cond = cond.copy()
    new_cond.set("this", w)
    limit, offset = _limits(tree)
    merge = f"SELECT {_excluding(len(hidden))} FROM {PARTS} QUALIFY {duck(new_cond)}"
    merge += _order_text(order.expressions if order else [], lambda _: col(next(counter))) + _limit_text(limit, offset)
    return Decomposition(original, duck(task), merge, len(hidden))


def placeholders(sql: str) -> set[str]:
    """The names of the ``$name`` parameters a statement uses (each side gets only its own)."""
    return {p.name for p in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Placeholder) if p.name}
