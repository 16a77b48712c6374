"""Mechanics of the SQL pipeline: dialects, text scanning, checks and AST rewrites.

``pipeline.py`` owns the public API and the order of the phases; this module holds the pieces it
strings together. Everything here works on sqlglot trees and raises only ``ArchiveError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from sqlglot import exp
from sqlglot import parser as sg_parser
from sqlglot.errors import ParseError, TokenError
from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.dialects.mysql import MySQL
from sqlglot.dialects.tsql import TSQL
from sqlglot.tokens import TokenType

from ..errors import ArchiveError, bad_request, permission

# Meta key set on identifiers the parser made out of a string literal (``FROM 'x.csv'``):
# sqlglot turns those into quoted identifiers, which would otherwise look like table names.
STRING_NAME = "archive_string_name"


def _marking_parser(base: type) -> type:
    """A parser class that tags identifiers built from string literals (see STRING_NAME)."""

    class Parser(base):
        def _parse_string_as_identifier(self):
            ident = super()._parse_string_as_identifier()
            if ident is not None:
                ident.meta[STRING_NAME] = True
            return ident

    return Parser


class ArchiveDuckDB(DuckDB):
    """DuckDB's dialect, with string-literal table names marked and ``SELECT TOP n`` read as
    ``LIMIT n``: the archive's default language takes the TOP that CasJobs and ADQL users
    write by habit (DuckDB has none), while ``top`` stays a usable column name."""

    class Parser(_marking_parser(DuckDB.Parser)):
        def _parse_limit(self, this=None, top=False, skip_limit_token=False):
            if top and _top_ahead(self._tokens[self._index : self._index + 5]):
                self._advance()
                return super()._parse_limit(this, top=True, skip_limit_token=True)
            return super()._parse_limit(this, top=top, skip_limit_token=skip_limit_token)


_TOP_IN_PARENS = (
    [TokenType.NUMBER, TokenType.R_PAREN],
    [TokenType.COLON, TokenType.VAR, TokenType.R_PAREN],
    [TokenType.PARAMETER, TokenType.VAR, TokenType.R_PAREN],
)


def _top_ahead(tokens: list) -> bool:
    """Whether the tokens after SELECT [DISTINCT] start ``TOP n``, ``TOP (n)`` or ``TOP (:name)``:
    where DuckDB could read neither a column nor a function named top."""
    kinds = [t.token_type for t in tokens]
    if len(kinds) < 2 or kinds[0] != TokenType.VAR or tokens[0].text.upper() != "TOP":
        return False
    if kinds[1] == TokenType.NUMBER:
        return True
    return kinds[1] == TokenType.L_PAREN and any(kinds[2 : 2 + len(c)] == c for c in _TOP_IN_PARENS)


class ArchiveTSQL(TSQL):
    """T-SQL (CasJobs), with string-literal table names marked."""

    Parser = _marking_parser(TSQL.Parser)


class ArchiveMySQL(MySQL):
    """MySQL, with string-literal table names marked."""

    Parser = _marking_parser(MySQL.Parser)


class SQL2(MySQL):
    """SlamData Quasar SQL²: MySQL's lexical rules (backtick identifiers, double-quoted
    strings, ``:name`` placeholders) except that ``||`` concatenates strings."""

    DPIPE_IS_STRING_CONCAT = True

    class Parser(_marking_parser(MySQL.Parser)):
        # MySQL reads || as OR; SQL² reads it as concatenation.
        DISJUNCTION = dict(sg_parser.Parser.DISJUNCTION)

        def _parse_bitwise(self):
            this = super()._parse_bitwise()
            while self._match(TokenType.DPIPE):
                this = self.expression(exp.DPipe(this=this, expression=super()._parse_bitwise(), safe=True))
            return this


DEFAULT_FIRST_WORDS = frozenset(
    {"SELECT", "WITH", "VALUES", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "TRUNCATE", "("}
)


@dataclass(frozen=True)
class LanguageSpec:
    """What differs between the accepted query languages, for scanning, parsing and checks."""

    name: str
    dialect: type[Dialect]
    paths: bool = False  # table references are SQL² paths resolved through resolve_path
    go_batches: bool = False  # a line holding only GO separates statements (T-SQL)
    loose_statements: bool = False  # statements may follow each other without ';' (T-SQL)
    backslash_strings: bool = False  # backslash escapes inside quoted strings (MySQL, SQL²)
    bracket_idents: bool = False  # [bracketed] identifiers (T-SQL)
    backtick_idents: bool = False
    dollar_quotes: bool = False  # $$...$$ / $tag$...$tag$ strings (DuckDB)
    hash_comments: bool = False  # '#' starts a comment (MySQL)
    quasar_ops: bool = False  # refuse the Quasar postfix operators by name
    first_words: frozenset[str] = DEFAULT_FIRST_WORDS  # leading keywords a statement may have
    statement_types: tuple[type, ...] = ()  # if set: the only statement classes allowed


# ---------------------------------------------------------------------------------------------
# Text scanning: statement splitting, positions, Quasar operators
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """One statement's text and where it starts in the whole query (1-based line/column)."""

    text: str
    offset: int
    line: int
    col: int


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def syntax_error(text: str, offset: int, what: str) -> ArchiveError:
    line, col = line_col(text, offset)
    return ArchiveError(
        "syntax_error", f"syntax error at line {line}, column {col}: {what}", 400, position=(line, col)
    )


_GO_LINE = re.compile(r"[ \t]*GO[ \t]*(?:--[^\n]*)?(?=\r?\n|$)", re.IGNORECASE)
_LEADING_GO = re.compile(r"\s*GO[ \t]*(?:--[^\n]*)?(?:\r?\n|$)", re.IGNORECASE)
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")

# Quasar SQL² operators we do not translate; matched only in code, never inside quotes.
_QUASAR_OPS = re.compile(r"\[\s*:?\s*[*_]\s*:?\s*\]|\{\s*:?\s*[*_]\s*:?\s*\}|\?\?|~~")


def _skip_quoted(text: str, i: int, close: str, backslash: bool) -> int:
    """Index just past the quoted span opening at ``i``; doubled ``close`` is an escape."""
    j, n = i + 1, len(text)
    while j < n:
        c = text[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == close:
            if j + 1 < n and text[j + 1] == close:
                j += 2
                continue
            return j + 1
        j += 1
    kind = {"'": "string", '"': "quoted text", "`": "identifier", "]": "identifier"}[close]
    raise syntax_error(text, i, f"unterminated {kind} starting here")


def scan(text: str, spec: LanguageSpec) -> tuple[list[Chunk], list[tuple[int, int]]]:
    """Split ``text`` into statements at top-level ``;`` (and ``GO`` lines in T-SQL).

    Returns the non-empty chunks and the spans of unquoted, uncommented code (for operator
    checks). Raises a positioned syntax error for an unterminated string or comment.
    """
    chunks: list[Chunk] = []
    code: list[tuple[int, int]] = []
    n = len(text)
    i = start = 0
    code_start = 0
    has_code = False

    def emit(end: int) -> None:
        if not has_code:
            return
        begin = start
        if spec.go_batches:  # "...; GO" ends a batch too, though GO is not alone on its line
            m = _LEADING_GO.match(text, begin, end)
            if m:
                begin = m.end()
        piece = text[begin:end]
        if not piece.strip():
            return
        lead = len(piece) - len(piece.lstrip())
        line, col = line_col(text, begin + lead)
        chunks.append(Chunk(piece.strip(), begin + lead, line, col))

    while i < n:
        if spec.go_batches and (i == 0 or text[i - 1] == "\n"):
            m = _GO_LINE.match(text, i)
            if m:
                code.append((code_start, i))
                emit(i)
                i = start = code_start = m.end()
                has_code = False
                continue
        c = text[i]
        j = None  # end of a quoted/comment span starting at i
        quoted = True
        if c == "'":
            escape = spec.backslash_strings or (
                spec.dollar_quotes and i > 0 and text[i - 1] in "eE" and (i < 2 or not text[i - 2].isalnum())
            )
            j = _skip_quoted(text, i, "'", escape)
        elif c == '"':
            j = _skip_quoted(text, i, '"', spec.backslash_strings)
        elif c == "`" and spec.backtick_idents:
            j = _skip_quoted(text, i, "`", False)
        elif c == "[" and spec.bracket_idents:
            j = _skip_quoted(text, i, "]", False)
        elif text.startswith("--", i) or (c == "#" and spec.hash_comments):
            k = text.find("\n", i)
            j, quoted = (n if k < 0 else k), False
        elif text.startswith("/*", i):
            k = text.find("*/", i + 2)
            if k < 0:
                raise syntax_error(text, i, "unterminated comment starting here")
            j, quoted = k + 2, False
        elif c == "$" and spec.dollar_quotes:
            m = _DOLLAR_TAG.match(text, i)
            if m:
                k = text.find(m.group(0), m.end())
                if k < 0:
                    raise syntax_error(text, i, "unterminated $-quoted string starting here")
                j = k + len(m.group(0))
        if j is not None:
            code.append((code_start, i))
            code_start = j
            has_code = has_code or quoted
            i = j
            continue
        if c == ";":
            code.append((code_start, i))
            emit(i)
            start = code_start = i + 1
            has_code = False
        elif not c.isspace():
            has_code = True
        i += 1
    code.append((code_start, n))
    emit(n)
    return chunks, [(a, b) for a, b in code if b > a]


def check_quasar_operators(text: str, code: list[tuple[int, int]]) -> None:
    """Refuse Quasar's structural operators (``[*]``, ``{*}``, ``??``, ``~~`` ...) by name."""
    for a, b in code:
        m = _QUASAR_OPS.search(text, a, b)
        if m:
            op = re.sub(r"\s+", "", m.group(0))
            line, col = line_col(text, m.start())
            raise ArchiveError(
                "unsupported",
                f"the SQL² operator {op} is not supported (line {line}, column {col})",
                400,
                position=(line, col),
                details={"operator": op},
            )


# ---------------------------------------------------------------------------------------------
# Checks: which statements and functions a query may use
# ---------------------------------------------------------------------------------------------

# Statements that reach into the engine itself: refused as a permission matter.
ENGINE_STATEMENTS = {
    "ATTACH", "DETACH", "COPY", "EXPORT", "IMPORT", "INSTALL", "FORCE", "LOAD", "PRAGMA", "SET",
    "RESET", "USE", "CALL", "CHECKPOINT", "VACUUM", "GRANT", "REVOKE", "ANALYZE", "UPDATE EXTENSIONS",
}  # fmt: skip
_CREATE_KINDS = {"TABLE", "VIEW"}
# Statement keywords of SQL dialects we know; anything else at the start is a typo (syntax error).
_KNOWN_STATEMENT_WORDS = ENGINE_STATEMENTS | DEFAULT_FIRST_WORDS | {
    "BEGIN", "COMMIT", "ROLLBACK", "START", "END", "ABORT", "EXPLAIN", "DESCRIBE", "DESC", "SHOW", "SUMMARIZE",
    "PIVOT", "UNPIVOT", "FROM", "MERGE", "DECLARE", "EXEC", "EXECUTE", "PREPARE", "DEALLOCATE", "COMMENT",
    "TABLE", "OPTIMIZE", "REFRESH", "CACHE", "UNCACHE", "KILL", "GO", "PRINT", "IF", "WHILE", "RETURN",
}  # fmt: skip
_NAME_MODIFIERS = {"OR", "REPLACE", "TEMP", "TEMPORARY", "PERSISTENT", "IF", "NOT", "EXISTS", "UNIQUE", "OR REPLACE"}

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
        return f"{stmt.key.upper()} {str(kind).upper()}"
    return stmt.key.upper()


_ALTER_ACTIONS = (exp.AlterRename, exp.RenameColumn, exp.ColumnDef)


def check_statement(stmt: exp.Expr, spec: LanguageSpec, locate=None) -> None:
    """Refuse anything but the allowed statement types, engine functions and file reads.

    ``locate(node)`` gives the (line, column) of a node for the error, if it can."""
    allowed = spec.statement_types or (
        exp.Query, exp.Values, exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Alter,
        exp.TruncateTable,
    )  # fmt: skip
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
    if isinstance(stmt, (exp.Create, exp.Drop)) and str(stmt.args.get("kind") or "").upper() not in _CREATE_KINDS:
        raise refuse_statement(_statement_name(stmt))
    if isinstance(stmt, exp.Create) and isinstance(stmt.args.get("properties"), exp.Properties):
        if stmt.args["properties"].find(exp.TemporaryProperty):
            raise ArchiveError("unsupported", "temporary tables are not supported; create the table in your MyDB", 400)
    if isinstance(stmt, exp.Drop) and len(stmt.args.get("tables") or []) > 1:
        raise ArchiveError("unsupported", "DROP one table per statement", 400)
    if isinstance(stmt, exp.Alter):
        if str(stmt.args.get("kind") or "").upper() != "TABLE":
            raise refuse_statement(_statement_name(stmt))
        for action in stmt.args.get("actions") or []:
            ok = isinstance(action, _ALTER_ACTIONS) or (
                isinstance(action, exp.Drop) and str(action.args.get("kind") or "").upper() == "COLUMN"
            )
            if not ok:
                raise ArchiveError(
                    "unsupported",
                    "ALTER TABLE supports only RENAME, RENAME COLUMN, ADD COLUMN and DROP COLUMN",
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


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def parse_chunk(text: str, chunk: Chunk, spec: LanguageSpec) -> list[tuple[Chunk, exp.Expr]]:
    """Parse one statement's text (``text`` is the whole query, for positions); T-SQL may
    hold several statements without separators, each returned with its own chunk."""
    dialect = spec.dialect()
    try:
        tokens = dialect.tokenize(chunk.text)
    except TokenError as e:
        raise ArchiveError(
            "syntax_error",
            f"syntax error at line {chunk.line}, column {chunk.col}: {e}",
            400,
            position=(chunk.line, chunk.col),
        ) from None
    if not tokens:
        return []
    try:
        check_first_words(tokens, spec)
    except ArchiveError as err:
        err.position = err.position or (chunk.line, chunk.col)
        raise
    try:
        stmts = dialect.parser().parse(tokens, chunk.text)
    except ParseError as e:
        info = e.errors[0] if e.errors else {}
        line, col = info.get("line"), info.get("col")
        highlight = info.get("highlight") or ""
        description = info.get("description") or str(e).splitlines()[0]
        if line is None or col is None:
            raise ArchiveError(
                "syntax_error", f"syntax error at line {chunk.line}, column {chunk.col}: {description}", 400,
                position=(chunk.line, chunk.col),
            ) from None
        if highlight and "\n" not in highlight:
            col = max(1, col - len(highlight) + 1)  # sqlglot points at the token's end
        lines = chunk.text.split("\n")
        local = sum(len(x) + 1 for x in lines[: line - 1]) + col - 1
        line, col = line_col(text, chunk.offset + local)
        near = f" near '{highlight}'" if highlight else ""
        error = ArchiveError(
            "syntax_error", f"syntax error at line {line}, column {col}: {description}{near}", 400, position=(line, col)
        )
        split = _statement_split(tokens, local, highlight) if spec.loose_statements else None
        if split is None:
            raise error from None
        # T-SQL runs statements one after the other without ';': split where the next one
        # starts, provided what comes before it parses on its own.
        head, tail = _sub_chunk(text, chunk, 0, split), _sub_chunk(text, chunk, split, len(chunk.text))
        try:
            first = parse_chunk(text, head, spec)
        except ArchiveError as err:
            if err.code == "syntax_error":
                raise error from None
            raise
        return first + parse_chunk(text, tail, spec)
    stmts = [s for s in stmts if s is not None]
    return [(chunk, s) for s in stmts]


_STATEMENT_STARTS = (DEFAULT_FIRST_WORDS - {"("}) | ENGINE_STATEMENTS | {
    "DECLARE", "EXEC", "EXECUTE", "PRINT", "BEGIN", "COMMIT", "ROLLBACK", "MERGE", "IF", "WHILE", "RETURN",
}  # fmt: skip


def _statement_split(tokens: list, error_at: int, highlight: str) -> int | None:
    """Where a T-SQL statement without ';' may start, for a parse error at ``error_at``:
    the offending token itself if it starts statements, else the last statement keyword
    opening a line before it (``SELECT 1`` newline ``ATTACH ...`` parses ATTACH as an alias)."""
    if error_at > 0 and highlight.upper() in _STATEMENT_STARTS:
        return error_at
    best = None
    for prev, tok in zip(tokens, tokens[1:]):
        if tok.start >= error_at:
            break
        if tok.line > prev.line and tok.text.upper() in _STATEMENT_STARTS:
            best = tok.start
    return best


def _sub_chunk(text: str, chunk: Chunk, a: int, b: int) -> Chunk:
    piece = chunk.text[a:b]
    lead = len(piece) - len(piece.lstrip())
    offset = chunk.offset + a + lead
    line, col = line_col(text, offset)
    return Chunk(piece.strip(), offset, line, col)


def absolute_path(path: str, base: str | None) -> str:
    """An SQL² path made absolute against ``base``, with "." and ".." applied."""
    written = path
    if not path.startswith("/"):
        path = "/" + (base or "/").strip("/") + "/" + path
    segments: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if not segments:
                where = "" if written.startswith("/") else f" (relative to {base or '/'})"
                raise bad_request(f"path {written} escapes the root /{where}", path=written)
            segments.pop()
        else:
            segments.append(seg)
    return "/" + "/".join(segments)


# ---------------------------------------------------------------------------------------------
# Table references
# ---------------------------------------------------------------------------------------------


def table_parts(table: exp.Table) -> tuple[str, ...]:
    """The name parts as written: ("PhotoObj",), ("mydb", "T"), ("DR16", "", "PhotoObj")."""
    this = table.this
    if isinstance(this, exp.Placeholder) or isinstance(this, exp.Parameter):
        raise bad_request(f"a variable cannot stand for a table name: {this.sql()}")
    if not isinstance(this, exp.Identifier):
        raise bad_request(f"unsupported table reference: {table.sql()}")
    parts = []
    for key in ("catalog", "db", "this"):
        part = table.args.get(key)
        if part is None:
            continue
        if isinstance(part, (exp.Placeholder, exp.Parameter)):
            raise bad_request(f"a variable cannot stand for a table name: {part.sql()}")
        parts.append(part.name if isinstance(part, exp.Identifier) else "")  # T-SQL a..b: db ""
    return tuple(parts)


def write_targets(stmt: exp.Expr) -> list[exp.Table]:
    """The tables a statement creates or changes (not the tables it reads)."""
    def unwrap(node):
        return node.this if isinstance(node, exp.Schema) else node

    if isinstance(stmt, (exp.Insert, exp.Update, exp.Delete, exp.Alter)):
        targets = [unwrap(stmt.this)]
    elif isinstance(stmt, exp.Create):
        targets = [unwrap(stmt.this)]
    elif isinstance(stmt, exp.Drop):
        targets = list(stmt.args.get("tables") or []) or [stmt.this]
    elif isinstance(stmt, exp.TruncateTable):
        targets = list(stmt.expressions)
    else:
        targets = []
    into = find_into(stmt)
    if into is not None:
        targets.append(into.this)
    return [t for t in targets if isinstance(t, exp.Table)]


def find_into(stmt: exp.Expr) -> exp.Into | None:
    """The T-SQL ``SELECT ... INTO`` clause of a statement, if any (only at its top)."""
    intos = list(stmt.find_all(exp.Into))
    if not intos:
        return None
    owner = intos[0].parent
    top = stmt
    while isinstance(top, exp.SetOperation):  # INTO sits on the leftmost SELECT of a UNION
        top = top.this
    if len(intos) > 1 or owner is not top:
        raise ArchiveError("unsupported", "SELECT ... INTO is allowed only in the outermost SELECT", 400)
    return intos[0]


def _with_of(node: exp.Expr) -> exp.With | None:
    w = node.args.get("with_")
    return w if isinstance(w, exp.With) else None


def is_cte_reference(table: exp.Table) -> bool:
    """Whether an unqualified table name refers to a CTE visible where it stands."""
    if table.args.get("db") is not None or table.args.get("catalog") is not None:
        return False
    if not isinstance(table.this, exp.Identifier):
        return False
    name = table.name.casefold()
    node: exp.Expr = table
    via_cte: exp.CTE | None = None
    while node.parent is not None:
        child, node = node, node.parent
        if isinstance(node, exp.CTE):
            via_cte = node
            continue
        if isinstance(node, exp.With):
            ctes = list(node.expressions)
            idx = next((k for k, c in enumerate(ctes) if c is via_cte), len(ctes))
            # A CTE sees the ones before it, and itself when the WITH is RECURSIVE.
            visible = ctes[: idx + 1] if node.args.get("recursive") else ctes[:idx]
            if any(c.alias.casefold() == name for c in visible):
                return True
            continue
        w = _with_of(node)
        if w is not None and child is not w and any(c.alias.casefold() == name for c in w.expressions):
            return True
    return False


def read_tables(stmt: exp.Expr, targets: list[exp.Table]) -> list[exp.Table]:
    """Every table reference a statement reads: not a write target, not a CTE name, not a
    table function, not the new name of ALTER TABLE ... RENAME TO."""
    skip = {id(t) for t in targets}
    out = []
    for table in stmt.find_all(exp.Table):
        if id(table) in skip or isinstance(table.this, exp.Func):
            continue
        if isinstance(table.parent, exp.AlterRename):
            continue
        if is_cte_reference(table):
            continue
        out.append(table)
    # find_all is breadth-first; report in text order for readable phases.
    return sorted(out, key=lambda t: (t.this.meta.get("start", 0) if isinstance(t.this, exp.Expr) else 0))


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


# ---------------------------------------------------------------------------------------------
# Rewrites
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Phase trees
# ---------------------------------------------------------------------------------------------

_LEAVES = (exp.Identifier, exp.Literal, exp.Column, exp.Table, exp.Placeholder, exp.Parameter, exp.Star,
           exp.DataType, exp.Var, exp.Boolean, exp.Null)  # fmt: skip
_TREE_BUDGET = 4000  # nodes per tree; a phase is for reading, not for shipping megabytes


def _label(node: exp.Expr, dialect) -> str:
    try:
        if isinstance(node, _LEAVES):
            return node.sql(dialect=dialect)
        if isinstance(node, exp.Func):
            return function_name(node)
        if isinstance(node, (exp.Alias, exp.TableAlias, exp.CTE)):
            return node.alias or node.name
        if isinstance(node, exp.Binary):
            return node.key.upper()
        kind = node.args.get("kind")
        if isinstance(kind, str):
            return kind.upper()
    except Exception:  # a label is cosmetic; never fail a query over it
        pass
    return ""


def ast_tree(node: exp.Expr, dialect=None, _budget: list[int] | None = None) -> dict:
    """``{"type": "AST/Select", "label": ..., "children": [...]}`` for a phase."""
    budget = _budget if _budget is not None else [_TREE_BUDGET]
    budget[0] -= 1
    out: dict = {"type": f"AST/{type(node).__name__}", "label": _label(node, dialect)}
    if isinstance(node, _LEAVES):
        return out
    children = []
    for child in node.iter_expressions():
        if budget[0] <= 0:
            children.append({"type": "AST/Truncated", "label": "..."})
            break
        children.append(ast_tree(child, dialect, budget))
    if children:
        out["children"] = children
    return out


def batch_tree(trees: list[dict]) -> dict:
    """One tree for a phase: the statement's own, or a Batch node over several."""
    if len(trees) == 1:
        return trees[0]
    return {"type": "AST/Batch", "label": f"{len(trees)} statements", "children": trees}


def walk_placeholders(stmt: exp.Expr) -> Iterator[tuple[exp.Expr, str]]:
    """Variable/parameter nodes with their names: ``:name``, ``$name``, T-SQL ``@name``.

    T-SQL has no ``$name`` syntax; sqlglot reads it as a column named ``$name``."""
    for node in list(stmt.walk()):
        if isinstance(node, exp.Placeholder):
            yield node, str(node.this or "")
        elif isinstance(node, exp.Parameter):
            yield node, node.name
        elif (
            isinstance(node, exp.Column)
            and node.args.get("table") is None
            and isinstance(node.this, exp.Identifier)
            and not node.this.quoted
            and re.fullmatch(r"\$[A-Za-z_]\w*", node.name)
        ):
            yield node, node.name[1:]
