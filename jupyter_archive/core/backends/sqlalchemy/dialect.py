"""The pipeline's DuckDB SQL as a SQL server runs it: re-parsed with sqlglot, its tables the remote
schema-qualified names, its columns spelled as the server spells them, emitted in the server's dialect."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import sqlglot
from sqlglot import exp
from sqlglot.dialects.sqlite import SQLite
from sqlglot.errors import ErrorLevel, SqlglotError

from ...errors import ArchiveError
from ...sql.bounds import unguard


class _SQLite(SQLite):
    """SQLite with `backquoted` names: SQLite reads an unknown "name" as a string (a typo as data)."""

    class Tokenizer(SQLite.Tokenizer):
        IDENTIFIERS = ["`", '"', ("[", "]")]


def parse(duckdb_sql: str, where: str) -> exp.Expr:
    """The one statement of the pipeline's DuckDB SQL (``where``: the server, for the message)."""
    try:
        trees = [t for t in sqlglot.parse(duckdb_sql, read="duckdb") if t is not None]
    except SqlglotError as exc:
        raise ArchiveError("syntax_error", f"cannot parse the engine SQL: {exc}", 400) from None
    if len(trees) != 1:
        raise ArchiveError("bad_request", f"expected one statement to push down to {where}, got {len(trees)}", 400)
    return unguard(trees[0])  # the server bounds its own values, and has no error()


def write_kind(tree: exp.Expr) -> str | None:
    """What the statement writes with (``INSERT``, ...), anywhere in it (a data-modifying CTE too)."""
    kinds = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Command)
    node = next((n for n in tree.walk() if isinstance(n, kinds)), None)
    return None if node is None else str(node.this if isinstance(node, exp.Command) else node.key).upper()


def emit(
    tree: exp.Expr, tables: dict[tuple[str, str, str], str], *, dialect: str, where: str,
    remote: Callable[[str], tuple[str | None, str, list[str]]],
) -> str:  # fmt: skip
    """``tree`` in the server's ``dialect``; ``tables`` maps the engine's (catalog, schema, table)
    to archive table names, ``remote`` an archive name to the server's (schema, table, columns)."""
    tree = tree.copy()
    lookup = {tuple(p.lower() for p in key): name for key, name in tables.items()}
    qualifiers: dict[str, str] = {}  # a column qualifier (lower) -> the name its table goes by
    columns: dict[str, str] = {}  # lower -> the remote spelling, over the referenced tables
    exact: set[str] = set()
    placed: set[int] = set()  # identifiers written here: already the remote's names
    for t in list(tree.find_all(exp.Table)):
        key = (t.catalog.lower(), t.db.lower(), t.name.lower())
        if key not in lookup:
            if t.catalog or t.db:
                raise ArchiveError("unknown_table", f"table {'.'.join(p for p in key if p)} is not in {where}", 400)
            continue  # a CTE's name
        engine_name = t.name
        schema, name, remote_columns = remote(lookup[key])
        for c in remote_columns:
            columns.setdefault(c.lower(), c)
            exact.add(c)
        t.set("this", exp.to_identifier(name, quoted=True))
        t.set("db", exp.to_identifier(schema, quoted=True) if schema else None)
        t.set("catalog", None)
        placed.update(id(t.args[k]) for k in ("this", "db") if t.args.get(k))
        if t.args.get("alias") is None:
            if name != engine_name:  # keep the name the query's column qualifiers use
                t.set("alias", exp.TableAlias(this=exp.to_identifier(engine_name, quoted=True)))
            qualifiers[engine_name.lower()] = engine_name
    for col in tree.find_all(exp.Column):  # "pg"."main"."stars"."mag" -> "stars"."mag"
        col.set("catalog", None)
        col.set("db", None)
    # DuckDB matches names case-insensitively, PostgreSQL (quoted) does not: write every column
    # as the server spells it, and every other name (aliases) as it was defined.
    first: dict[str, str] = {}
    for ident in tree.find_all(exp.Identifier):
        if isinstance(ident.parent, (exp.TableAlias, exp.Alias)) and id(ident) not in placed:
            first.setdefault(ident.name.lower(), ident.name)
    for ident in list(tree.find_all(exp.Identifier)):
        if id(ident) in placed or isinstance(ident.parent, (exp.Anonymous, exp.UserDefinedFunction)):
            continue
        name, low = ident.name, ident.name.lower()
        if isinstance(ident.parent, exp.Column) and ident.arg_key == "table" and low in qualifiers:
            new = qualifiers[low]
        else:
            new = name if name in exact else columns.get(low) or first.setdefault(low, name)
        ident.set("this", new)
        ident.set("quoted", True)
    token = "ARCHIVEPARAM" + uuid.uuid4().hex  # a stand-in no SQL text contains
    for ph in list(tree.find_all(exp.Placeholder)):
        if not re.fullmatch(r"\w+", ph.name or ""):
            raise ArchiveError("bad_request", f"unsupported parameter {ph.sql('duckdb')!r} in the engine SQL", 400)
        ph.replace(exp.Var(this=f"{token}{ph.name}{token}"))
    try:
        sql = tree.sql(dialect=_SQLite if dialect == "sqlite" else dialect, identify=True, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise ArchiveError("invalid_query", f"this query cannot run on {where}: {exc}", 400) from None
    if dialect == "postgres":
        sql = sql.replace("%", "%%")  # psycopg reads every % as the start of a placeholder
        return re.sub(f"{token}(\\w+){token}", r"%(\1)s", sql)
    return re.sub(f"{token}(\\w+){token}", r":\1", sql)
