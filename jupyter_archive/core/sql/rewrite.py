"""Rewrites of a resolved statement: tables pointed at the engine, INTO as CREATE TABLE, row caps."""

from __future__ import annotations

from sqlglot import exp

from .compiled import Parsed
from .tables import find_into


def rewrite_statement(p: Parsed) -> None:
    """Point the statement's tables at their engine names, and turn SELECT ... INTO into CREATE TABLE."""
    bare_names = []  # names unaliased tables are known by in column qualifiers
    for table, target, role, written in p.refs:
        alias = None
        if role == "read" and written and written[-1].casefold() != target.name.casefold():
            alias = written[-1]  # keep the name the query uses for it (e.g. a path's last segment)
        if role == "read" and not table.alias and written:
            bare_names.append(written[-1])
        qualify(table, target.catalog, target.schema, target.name, alias=alias)
    strip_column_qualifiers(p.stmt, bare_names)
    for rename in p.stmt.find_all(exp.AlterRename):
        # DuckDB renames within the table's schema and wants a bare new name.
        new = rename.this
        if isinstance(new, exp.Table):
            new.set("db", None)
            new.set("catalog", None)
            new.set("this", exp.to_identifier(new.name, quoted=True))
    if str(p.stmt.args.get("kind") or "").upper().endswith(" INDEX"):
        p.stmt.set("kind", "INDEX")  # T-SQL's CLUSTERED / NONCLUSTERED: DuckDB has one kind of index
    for key in p.stmt.find_all(exp.PrimaryKey):
        # T-SQL writes key columns as ordered (ASC, NULLS FIRST), which DuckDB's key does not take
        key.set("expressions", [c.this if isinstance(c, exp.Ordered) else c for c in key.expressions])
    if find_into(p.stmt) is not None:
        p.stmt = into_to_create(p.stmt)


def qualify(table: exp.Table, catalog: str, schema: str, name: str, *, alias: str | None = None) -> None:
    """Point a table reference at ``"catalog"."schema"."name"`` (quoted), keeping its alias."""
    table.set("this", exp.to_identifier(name, quoted=True))
    table.set("db", exp.to_identifier(schema, quoted=True))
    table.set("catalog", exp.to_identifier(catalog, quoted=True))
    if alias and not table.alias:
        table.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))


def strip_column_qualifiers(stmt: exp.Expr, names: list[str]) -> None:
    """``DEMO.dbo.PhotoObj.ra`` -> ``PhotoObj.ra`` when ``PhotoObj`` is the name of an
    unaliased table the statement reads: the rewritten table is known to the engine by its
    name (or alias) only, not by the context and schema the user wrote."""
    lowered = {n.casefold() for n in names}
    if not lowered:
        return
    for col in stmt.find_all(exp.Column):
        if col.args.get("db") is None or col.args.get("table") is None:
            continue
        if col.args["table"].name.casefold() in lowered:
            col.set("db", None)
            col.set("catalog", None)


def into_to_create(stmt: exp.Expr) -> exp.Expr:
    """``SELECT ... INTO t FROM ...`` -> ``CREATE TABLE t AS SELECT ... FROM ...``."""
    into = find_into(stmt)
    if into is None:
        return stmt
    target = into.this
    into.parent.set("into", None)
    return exp.Create(this=target, kind="TABLE", expression=stmt)


def has_limit(query: exp.Expr) -> bool:
    return any(query.args.get(k) is not None for k in ("limit", "offset", "fetch"))


def _constant_limit(query: exp.Expr) -> int | None:
    """The row count of a query's own plain ``LIMIT n`` (``TOP n``), else None (no limit, a
    parameter, PERCENT, WITH TIES: nothing that bounds the rows by a known number)."""
    lim = query.args.get("limit") if isinstance(query, (exp.Select, exp.SetOperation)) else None
    if not isinstance(lim, exp.Limit) or query.args.get("fetch") is not None:
        return None
    opts = lim.args.get("limit_options")
    if opts is not None and (opts.args.get("percent") or opts.args.get("with_ties")):
        return None
    n = lim.expression
    if isinstance(n, exp.Literal) and not n.is_string and n.this.isdigit():
        return int(n.this)
    return None


def apply_limit(query: exp.Expr, limit: int | None, offset: int | None) -> exp.Expr:
    """Cap a read: attach LIMIT/OFFSET to a query that has none, else wrap it as
    ``SELECT * FROM (<q>) AS _q LIMIT .. OFFSET ..``. Attaching keeps duplicate column names,
    which a wrapping subquery would rename (a, a_1)."""
    if limit is None and not offset:
        return query
    if not offset and limit is not None and (own := _constant_limit(query)) is not None and own <= limit:
        return query  # its own LIMIT is tighter: a wrapper would only cost the engine time
    if isinstance(query, (exp.Select, exp.SetOperation)) and not has_limit(query):
        target = query
    else:
        target = exp.select("*").from_(exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier("_q"))))
    if limit is not None:
        target.set("limit", exp.Limit(expression=exp.Literal.number(limit)))
    if offset:
        target.set("offset", exp.Offset(expression=exp.Literal.number(offset)))
    return target
