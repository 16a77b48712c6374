"""Which statements and functions a query may use: refused by name before parsing, and node by node after.

Engine statements (ATTACH, COPY, SET ...) and engine or file functions are a permission matter (403);
statements the archive does not run are unsupported (400); a typo at the start is a syntax error.
Whether a table may be written is the resolver's question, not this module's.
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.tokens import TokenType

from ..errors import ArchiveError, permission
from .dialects import DEFAULT_FIRST_WORDS, STRING_NAME, LanguageSpec

# Statements that reach into the engine itself: refused as a permission matter.
ENGINE_STATEMENTS = {
    "ATTACH", "DETACH", "COPY", "EXPORT", "IMPORT", "INSTALL", "FORCE", "LOAD", "PRAGMA", "SET",
    "RESET", "USE", "CALL", "CHECKPOINT", "VACUUM", "GRANT", "REVOKE", "ANALYZE", "UPDATE EXTENSIONS",
}  # fmt: skip
_CREATE_KINDS = {"TABLE", "VIEW", "INDEX"}
# Statement keywords of SQL dialects we know; anything else at the start is a typo (syntax error).
_KNOWN_STATEMENT_WORDS = ENGINE_STATEMENTS | DEFAULT_FIRST_WORDS | {
    "BEGIN", "COMMIT", "ROLLBACK", "START", "END", "ABORT", "EXPLAIN", "DESCRIBE", "DESC", "SHOW", "SUMMARIZE",
    "PIVOT", "UNPIVOT", "FROM", "MERGE", "DECLARE", "EXEC", "EXECUTE", "PREPARE", "DEALLOCATE", "COMMENT",
    "TABLE", "OPTIMIZE", "REFRESH", "CACHE", "UNCACHE", "KILL", "GO", "PRINT", "IF", "WHILE", "RETURN",
}  # fmt: skip
_NAME_MODIFIERS = {
    "OR", "REPLACE", "TEMP", "TEMPORARY", "PERSISTENT", "IF", "NOT", "EXISTS", "UNIQUE", "OR REPLACE",
    "CLUSTERED", "NONCLUSTERED",  # T-SQL's kinds of index: an index here is DuckDB's one kind (ART)
}  # fmt: skip

# Table functions that only compute values (no files, no catalog or engine introspection).
PURE_TABLE_FUNCTIONS = {"range", "generate_series", "unnest", "json_each", "json_tree"}
_FILE_FUNCTION = re.compile(
    r"^(read_\w+|\w+_scan|\w+_scan_\w+|glob|sniff_csv|parquet_\w+|iceberg_\w+|delta_\w+|"
    r"openrowset|opendatasource|openquery|openjson|load_\w+|httpfs_\w+)$"
)
# Functions refused wherever they appear (scalar or table position).
_FORBIDDEN_FUNCTION = re.compile(
    r"^(getenv|current_setting|getvariable|query|query_table|query_table_\w+|which_secret|"
    r"duckdb_\w+|pragma_\w+|sql_auto_complete)$"
)


def first_words(tokens: list) -> str:
    """The statement's leading keyword(s) as written, e.g. ``CREATE SECRET`` or ``SELECT``."""
    words = [t.text.upper() for t in tokens[:6] if t.token_type != TokenType.SEMICOLON]
    if not words:
        return ""
    if words[0] in ("CREATE", "DROP", "ALTER"):
        rest = [w for w in words[1:] if w not in _NAME_MODIFIERS]
        return f"{words[0]} {rest[0]}" if rest else words[0]
    if words[0] in ("EXPORT", "IMPORT", "UPDATE", "FORCE") and len(words) > 1 and words[1].isalpha():
        if words[0] != "UPDATE" or words[1] == "EXTENSIONS":
            return f"{words[0]} {words[1]}"
    return words[0]


def refuse_statement(name: str) -> ArchiveError:
    """The error for a statement the archive does not run, naming it."""
    head = name.split(" ")[0]
    if head in ENGINE_STATEMENTS or name in ENGINE_STATEMENTS or head in ("CREATE", "DROP", "ALTER"):
        return permission(f"{name} statements are not allowed in queries", statement=name)
    return ArchiveError("unsupported", f"{name} statements are not supported", 400, details={"statement": name})


def check_first_words(tokens: list, spec: LanguageSpec) -> None:
    """Refuse a statement by its leading keywords, before sqlglot gets a chance to fall back
    to a generic Command or to a syntax error for statements it does not know."""
    name = first_words(tokens)
    head = name.split(" ")[0]
    if name in ENGINE_STATEMENTS:
        raise refuse_statement(name)
    if head not in spec.first_words:
        if spec.statement_types and head in DEFAULT_FIRST_WORDS:
            raise ArchiveError(
                "unsupported",
                f"{name} statements are not supported in {spec.name}; use SELECT, INSERT INTO or DELETE FROM",
                400,
                details={"statement": name},
            )
        if head and head not in _KNOWN_STATEMENT_WORDS:
            tok = tokens[0]
            line, col = getattr(tok, "line", 1) or 1, max(1, (getattr(tok, "col", 1) or 1) - len(tok.text) + 1)
            raise ArchiveError(
                "syntax_error",
                f"syntax error at line {line}, column {col}: unknown statement {tok.text!r} (a query starts with SELECT)",
                400,
                position=(line, col),
            )
        raise refuse_statement(name or "empty")
    words = [t.text.upper() for t in tokens[:4]]
    if head == "CREATE":
        if any(w in ("TEMP", "TEMPORARY") for w in words):
            raise ArchiveError(
                "unsupported", "temporary tables are not supported; create the table in your MyDB", 400
            )
        if name.split(" ")[-1] not in _CREATE_KINDS:
            raise refuse_statement(name)
    elif head == "DROP" and name.split(" ")[-1] not in _CREATE_KINDS:
        raise refuse_statement(name)
    elif head == "ALTER" and name != "ALTER TABLE":
        raise refuse_statement(name)


def function_name(node: exp.Expr) -> str:
    """Lower-case name of a function call node as the engine will see it."""
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    if isinstance(node, exp.GenerateSeries) and node.args.get("is_end_exclusive"):
        return "range"
    return node.sql_name().lower()


def _statement_name(stmt: exp.Expr) -> str:
    if isinstance(stmt, exp.Command):
        return str(stmt.this).upper()
    kind = stmt.args.get("kind")
    if isinstance(stmt, (exp.Create, exp.Drop, exp.Alter)) and kind:
        if str(kind).upper().endswith(" INDEX"):  # T-SQL's CLUSTERED / NONCLUSTERED INDEX
            return f"{stmt.key.upper()} INDEX"
        return f"{stmt.key.upper()} {str(kind).upper()}"
    return stmt.key.upper()


_ALTER_ACTIONS = (exp.AlterRename, exp.RenameColumn, exp.ColumnDef)


def _is_primary_key(action: exp.Expr) -> bool:
    """``ADD PRIMARY KEY (cols)`` or ``ADD CONSTRAINT name PRIMARY KEY (cols)``."""
    if not isinstance(action, exp.AddConstraint) or len(action.expressions) != 1:
        return False
    key = action.expressions[0]
    if isinstance(key, exp.Constraint) and len(key.expressions) == 1:
        key = key.expressions[0]
    return isinstance(key, exp.PrimaryKey) and all(
        isinstance(c.this if isinstance(c, exp.Ordered) else c, (exp.Column, exp.Identifier)) for c in key.expressions
    )


_INDEX_FORM = "write CREATE [UNIQUE] INDEX name ON table (column, ...): the index is named without a context"
_INDEX_COMMAND = re.compile(r"(?i)\s*CREATE\s+(?:UNIQUE\s+)?((?:NON)?CLUSTERED\s+)?INDEX\b")


def check_index(index: exp.Index) -> None:
    """Refuse what an index here cannot be: DuckDB's (ART) index over plain columns of one table,
    named without a context (it lives beside its table)."""
    params = index.args.get("params")
    columns = params.args.get("columns") if isinstance(params, exp.IndexParameters) else None
    if not isinstance(index.this, exp.Identifier) or not isinstance(index.args.get("table"), exp.Table) or not columns:
        raise ArchiveError("unsupported", _INDEX_FORM, 400)
    using = params.args.get("using")
    extra = [k for k, v in params.args.items() if v and k not in ("columns", "using")]
    if extra or (using is not None and str(using.name if isinstance(using, exp.Expr) else using).lower() != "art"):
        raise ArchiveError(
            "unsupported", f"index options are not supported ({params.sql()}); an index is a plain list of columns", 400
        )
    for col in columns:
        col = col.this if isinstance(col, exp.Ordered) else col
        if not isinstance(col, exp.Column) or col.table:
            raise ArchiveError(
                "unsupported", f"an index covers columns of its table by name, not expressions: {col.sql()}", 400
            )


def check_statement(stmt: exp.Expr, spec: LanguageSpec, locate=None) -> None:
    """Refuse anything but the allowed statement types, engine functions and file reads.

    ``locate(node)`` gives the (line, column) of a node for the error, if it can."""
    allowed = spec.statement_types or (
        exp.Query, exp.Values, exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Alter,
        exp.TruncateTable,
    )  # fmt: skip
    if isinstance(stmt, exp.Command) and (m := _INDEX_COMMAND.match(f"{stmt.this} {stmt.expression or ''}")):
        # a CREATE INDEX sqlglot could not parse: say what form is taken rather than refuse CREATE
        tsql = f"CLUSTERED and NONCLUSTERED are T-SQL; in {spec.name} " if m.group(1) else ""
        raise ArchiveError("unsupported", f"{tsql}{_INDEX_FORM}", 400)
    if not isinstance(stmt, allowed):
        name = _statement_name(stmt)
        if spec.statement_types:
            raise ArchiveError(
                "unsupported",
                f"{name} statements are not supported in {spec.name}; use SELECT, INSERT INTO or DELETE FROM",
                400,
                details={"statement": name},
            )
        raise refuse_statement(name)
    if isinstance(stmt, (exp.Create, exp.Drop)) and _statement_name(stmt).split(" ")[-1] not in _CREATE_KINDS:
        raise refuse_statement(_statement_name(stmt))
    if isinstance(stmt, exp.Create) and isinstance(stmt.this, exp.Index):
        check_index(stmt.this)
    if isinstance(stmt, exp.Create) and isinstance(stmt.args.get("properties"), exp.Properties):
        if stmt.args["properties"].find(exp.TemporaryProperty):
            raise ArchiveError("unsupported", "temporary tables are not supported; create the table in your MyDB", 400)
    if isinstance(stmt, exp.Drop) and len(stmt.args.get("tables") or []) > 1:
        raise ArchiveError("unsupported", "DROP one table per statement", 400)
    if isinstance(stmt, exp.Alter):
        if str(stmt.args.get("kind") or "").upper() != "TABLE":
            raise refuse_statement(_statement_name(stmt))
        for action in stmt.args.get("actions") or []:
            ok = isinstance(action, _ALTER_ACTIONS) or _is_primary_key(action) or (
                isinstance(action, exp.Drop) and str(action.args.get("kind") or "").upper() == "COLUMN"
            )
            if not ok:
                raise ArchiveError(
                    "unsupported",
                    "ALTER TABLE supports only RENAME, RENAME COLUMN, ADD COLUMN, DROP COLUMN and ADD PRIMARY KEY (columns)",
                    400,
                )
    if isinstance(stmt, exp.Delete) and stmt.args.get("tables"):
        raise ArchiveError("unsupported", "multi-table DELETE is not supported", 400)
    if isinstance(stmt, exp.Insert) and not isinstance(stmt.this, (exp.Table, exp.Schema)):
        raise ArchiveError("unsupported", "INSERT must name a table", 400)

    for node in stmt.walk():
        try:
            _check_node(node)
        except ArchiveError as err:
            if err.position is None and locate is not None:
                err.position = locate(node)
            raise


def _check_node(node: exp.Expr) -> None:
    """Refuse one node: nested commands, engine statements, engine or file functions,
    unsupported LIMIT options and temporary tables."""
    if isinstance(node, exp.Command):
        raise refuse_statement(str(node.this).upper())
    if isinstance(node, (exp.Attach, exp.Detach, exp.Copy, exp.Pragma, exp.Set, exp.Use, exp.Install)):
        raise refuse_statement(_statement_name(node))
    if isinstance(node, exp.SessionParameter):
        raise ArchiveError("unsupported", f"session variables are not supported: {node.sql()}", 400)
    if isinstance(node, exp.Limit):
        opts = node.args.get("limit_options")
        if opts is not None and (opts.args.get("percent") or opts.args.get("with_ties")):
            what = "PERCENT" if opts.args.get("percent") else "WITH TIES"
            raise ArchiveError("unsupported", f"TOP/LIMIT ... {what} is not supported", 400)
    if isinstance(node, exp.Into) and (node.args.get("temporary") or node.args.get("unlogged")):
        raise ArchiveError(
            "unsupported", "temporary tables (#name) are not supported; SELECT ... INTO mydb.name instead", 400
        )
    if isinstance(node, exp.Identifier) and node.args.get("temporary"):
        raise ArchiveError(
            "unsupported", f"temporary tables (#{node.name}) are not supported; use your MyDB instead", 400
        )
    if isinstance(node, exp.Table):
        _check_table(node)
    elif isinstance(node, exp.Func):
        name = function_name(node)
        if _FORBIDDEN_FUNCTION.match(name):
            raise permission(f"function {name} is not allowed in queries", function=name)
        if _FILE_FUNCTION.match(name):
            raise permission(f"reading files is not allowed in queries ({name})", function=name)


def _check_table(table: exp.Table) -> None:
    target = table.this
    if isinstance(target, exp.Func):
        name = function_name(target)
        if name in PURE_TABLE_FUNCTIONS:
            return
        if _FILE_FUNCTION.match(name):
            raise permission(f"reading files is not allowed in queries ({name})", function=name)
        raise permission(f"table function {name} is not allowed in queries", function=name)
    for part in table.parts:
        if isinstance(part, exp.Identifier) and part.meta.get(STRING_NAME):
            raise permission(f"reading files is not allowed in queries ('{part.name}')", path=part.name)
    if isinstance(target, exp.Literal) and target.is_string:
        raise permission(f"reading files is not allowed in queries ('{target.name}')", path=target.name)
