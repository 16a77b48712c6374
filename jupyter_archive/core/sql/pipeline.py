"""The one SQL pipeline: every query text, in any accepted language, becomes DuckDB SQL here.

parse (sqlglot) -> check -> bind variables as parameters -> resolve tables -> rewrite -> emit.
Each step is recorded as a ``Phase`` so a /compile endpoint and error replies can show it.
Values never enter the SQL text: they travel as DuckDB ``$pN`` parameters.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from collections.abc import Callable
from typing import Any, Iterator, Protocol

from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError, TokenError, UnsupportedError
from sqlglot.tokens import TokenType

from . import adql
from ..errors import ArchiveError, bad_request
from ..languages import LANGUAGES
from .rewrite import (
    SQL2,
    ArchiveDuckDB,
    ArchiveMySQL,
    ArchiveTSQL,
    Chunk,
    DEFAULT_FIRST_WORDS,
    LanguageSpec,
    absolute_path,
    apply_limit,
    ast_tree,
    batch_tree,
    check_quasar_operators,
    check_statement,
    find_into,
    into_to_create,
    line_col,
    parse_chunk,
    qualify,
    read_tables,
    scan,
    strip_column_qualifiers,
    table_parts,
    walk_placeholders,
    write_targets,
)

# Adding a language: a sqlglot dialect (subclass one if needed) plus a LanguageSpec entry.
_SPECS: dict[str, LanguageSpec] = {
    "sql": LanguageSpec("sql", ArchiveDuckDB, dollar_quotes=True, first_words=DEFAULT_FIRST_WORDS | {"FROM"}),
    "tsql": LanguageSpec("tsql", ArchiveTSQL, go_batches=True, loose_statements=True, bracket_idents=True),
    "sql2": LanguageSpec(
        "sql2",
        SQL2,
        paths=True,
        backslash_strings=True,
        backtick_idents=True,
        quasar_ops=True,
        first_words=frozenset({"SELECT", "WITH", "INSERT", "DELETE", "("}),
        statement_types=(exp.Query, exp.Values, exp.Insert, exp.Delete),
    ),
    "mysql": LanguageSpec("mysql", ArchiveMySQL, backslash_strings=True, backtick_idents=True, hash_comments=True),
    "adql": LanguageSpec("adql", adql.ADQL, first_words=frozenset({"SELECT", "WITH", "("}), statement_types=(exp.Query,)),
}
if set(_SPECS) != set(LANGUAGES):  # pragma: no cover - a language added in one place only
    raise ImportError(f"query languages {sorted(LANGUAGES)} and their specs {sorted(_SPECS)} differ")

PHASE_AST = "SQL AST"
PHASE_VARIABLES = "Variables Substituted"
PHASE_RESOLVED = "Resolved"
PHASE_REWRITTEN = "Rewritten"
PHASE_ENGINE_SQL = "Engine SQL"

_ENGINE_DIALECT = "duckdb"


@dataclass(frozen=True)
class TableTarget:
    """What a table reference resolves to in the engine."""

    catalog: str  # engine database alias, e.g. "demo", "mydb"
    schema: str  # engine schema, usually "main"
    name: str  # table name in the engine (canonical case)
    context: str  # the archive context it belongs to, e.g. "DEMO", "MyDB"
    writable: bool


class Resolver(Protocol):
    """Built by the archive per request: knows the caller, the default context and (sql2) the base path."""

    def resolve_name(self, parts: tuple[str, ...], *, write: bool = False) -> TableTarget: ...

    def resolve_path(self, path: str, *, write: bool = False) -> TableTarget: ...

    def new_table(self, parts_or_path: tuple[str, ...] | str, *, language: str) -> TableTarget: ...


@dataclass
class Phase:
    """One step of the pipeline as shown to the user: a tree, a text, or the error it stopped at."""

    name: str
    tree: dict | None = None
    detail: str | None = None
    error: str | None = None
    # Trees are for /compile and errors; a query that just runs never needs one, so it is made
    # on first use (building it costs as much as the rest of a small query's compile).
    tree_of: Callable[[], dict] | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        if self.tree is None and self.tree_of is not None:
            self.tree, self.tree_of = self.tree_of(), None
        out: dict = {"name": self.name}
        for key in ("tree", "detail", "error"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass
class Statement:
    """One engine statement, ready to run with ``con.sql(sql, params=params)``."""

    kind: str  # "read" (returns rows), "write" (changes/creates data), "ddl" (schema only)
    sql: str
    params: dict[str, Any]
    source: str
    into: TableTarget | None
    tables: list[TableTarget]


@dataclass
class Compiled:
    """The result of compiling a query text: statements to run, and how we got there."""

    language: str
    statements: list[Statement]
    phases: list[Phase]
    modified: str | Callable[[], str]  # the modified query, or how to make it (on first use)
    param_names: dict[str, str] = field(default_factory=dict)  # variable name -> engine parameter name

    @property
    def modified_query(self) -> str:
        """The query as the user wrote it minus what the archive took over (CasJobs' ModifiedQuery)."""
        if callable(self.modified):
            self.modified = self.modified()
        return self.modified


# ---------------------------------------------------------------------------------------------
# Variables
# ---------------------------------------------------------------------------------------------

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_TEMPORAL = {
    "DATE": _dt.date.fromisoformat,
    "TIME": _dt.time.fromisoformat,
    "TIMESTAMP": _dt.datetime.fromisoformat,
    "DATETIME": _dt.datetime.fromisoformat,
}
# Values a native-API parameter may have (numpy scalars are turned into these first).
_PARAM_TYPES = (type(None), bool, int, float, Decimal, str, bytes, _dt.date, _dt.time, _dt.timedelta, uuid.UUID)


def _plain(value: Any) -> Any:
    """A numpy scalar as the python value DuckDB can bind; anything else unchanged."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()  # scalar -> int/float/..., array -> list
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _malformed(name: str, raw: str, why: str) -> ArchiveError:
    return ArchiveError(
        "malformed_variable",
        f"Malformed variable {name}: {why}",
        400,
        details={"varName": name, "varValue": raw},
    )


def parse_variable(name: str, raw: str) -> Any:
    """Turn one SQL literal text (a Quasar ``var.name=value``) into a python value.

    Accepts exactly one literal: a number, a '...' or "..." string, true/false/null, or
    DATE/TIME/TIMESTAMP with a string (``DATE '2015-07-06'`` or ``DATE("2015-07-06")``).
    Anything else (expressions, several tokens, names, other functions) is refused.
    """
    text = (raw or "").strip()
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    try:
        tokens = SQL2().tokenize(text)
    except (TokenError, SqlglotError):
        raise _malformed(name, raw, f"cannot read {raw!r} as a literal") from None
    kinds = [t.token_type for t in tokens]
    if kinds == [TokenType.STRING]:
        return tokens[0].text
    if len(tokens) == 1 and kinds[0] in (TokenType.TRUE, TokenType.FALSE, TokenType.NULL):
        return {TokenType.TRUE: True, TokenType.FALSE: False, TokenType.NULL: None}[kinds[0]]
    if tokens and tokens[0].text.upper() in _TEMPORAL and kinds[0] not in (TokenType.STRING, TokenType.IDENTIFIER):
        rest = kinds[1:]
        if rest == [TokenType.STRING] or rest == [TokenType.L_PAREN, TokenType.STRING, TokenType.R_PAREN]:
            word = tokens[0].text.upper()
            literal = tokens[1].text if rest == [TokenType.STRING] else tokens[2].text
            try:
                return _TEMPORAL[word](literal)
            except ValueError:
                raise _malformed(name, raw, f"{literal!r} is not a valid {word}") from None
    raise _malformed(name, raw, f"{raw!r} is not a single literal value")


class _Binder:
    """Replaces variable nodes by ``$pN`` placeholders and collects their values."""

    def __init__(self, variables: dict[str, str] | None, params: dict[str, Any] | None):
        self.variables = dict(variables or {})
        self.params = dict(params or {})
        self.names: dict[str, str] = {}  # variable name -> engine parameter name
        self.values: dict[str, Any] = {}  # engine parameter name -> value
        self.sources: dict[str, str] = {}  # engine parameter name -> "var"/"param"

    def _value(self, name: str) -> tuple[Any, str]:
        if name in self.params:
            value = _plain(self.params[name])
            if not isinstance(value, _PARAM_TYPES) and not (
                isinstance(value, (list, tuple)) and all(isinstance(v, _PARAM_TYPES) for v in value)
            ):
                raise bad_request(f"parameter {name}: unsupported value type {type(value).__name__}", varName=name)
            return value, "param"
        if name in self.variables:
            return parse_variable(name, self.variables[name]), "var"
        raise ArchiveError("unbound_variable", f"Unbound variable: {name}", 400, details={"varName": name})

    def bind(self, stmt: exp.Expr, position) -> dict[str, Any]:
        used: dict[str, Any] = {}
        for node, name in list(walk_placeholders(stmt)):
            try:
                if not name or name.isdigit():
                    raise bad_request("positional parameters (? or $1) are not supported; name them, e.g. :ra_min")
                parent = node.parent
                if isinstance(parent, exp.Table) and node.arg_key in ("this", "db", "catalog"):
                    raise bad_request(f"a variable cannot stand for a table name: {name}", varName=name)
                if name not in self.names:
                    pname = f"p{len(self.names) + 1}"
                    value, source = self._value(name)
                    self.names[name], self.values[pname], self.sources[pname] = pname, value, source
            except ArchiveError as err:
                if err.position is None:
                    err.position = position(node)
                raise
            pname = self.names[name]
            used[pname] = self.values[pname]
            node.replace(exp.Placeholder(this=pname))
        return used

    def describe(self) -> str:
        if not self.names:
            return "no variables"
        lines = []
        for name, pname in self.names.items():
            value = self.values[pname]
            kind = "null" if value is None else type(value).__name__
            origin = "var." + name if self.sources[pname] == "var" else "params"
            lines.append(f"${pname} <- {name} ({kind}, from {origin})")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------


@dataclass
class _Parsed:
    """One statement on its way through the pipeline."""

    chunk: Chunk
    stmt: exp.Expr
    original: exp.Expr  # before binding and rewriting, for modified_query
    source: str
    params: dict[str, Any] = field(default_factory=dict)
    # (table node, its target, role "read"/"write"/"new", name parts as written)
    refs: list[tuple[exp.Table, TableTarget, str, tuple[str, ...]]] = field(default_factory=list)
    kind: str = "read"
    into: TableTarget | None = None


class _Run:
    """The phases of one compilation; attaches them to any error raised inside a phase."""

    def __init__(self) -> None:
        self.phases: list[Phase] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        ph = Phase(name)
        try:
            yield ph
        except ArchiveError as err:
            self._fail(ph, err)
            raise
        except UnsupportedError as e:
            err = ArchiveError("unsupported", f"cannot translate to the engine's SQL: {e}", 400)
            self._fail(ph, err)
            raise err from None
        except SqlglotError as e:
            err = ArchiveError("syntax_error", f"syntax error: {e}", 400)
            self._fail(ph, err)
            raise err from None
        except RecursionError:
            err = bad_request("the query is nested too deeply")
            self._fail(ph, err)
            raise err from None
        self.phases.append(ph)

    def _fail(self, ph: Phase, err: ArchiveError) -> None:
        ph.error = err.message
        self.phases.append(ph)
        err.details["phases"] = [p.to_json() for p in self.phases]


def _check_int(what: str, value: Any, minimum: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value) if isinstance(value, (int, str)) else None
        if number is None or (isinstance(value, str) and not _INT.fullmatch(value.strip())):
            raise ValueError
    except ValueError:
        raise bad_request(f"invalid {what}: {value!r} (must be an integer >= {minimum})") from None
    if number < minimum:
        raise bad_request(f"invalid {what}: {number} (must be >= {minimum})")
    return number


def _spec(language: str) -> LanguageSpec:
    spec = _SPECS.get((language or "").lower())
    if spec is None:
        raise bad_request(f"unknown query language {language!r}; expected one of {', '.join(LANGUAGES)}")
    return spec


class _Resolution:
    """Resolves a batch's table references through the resolver, remembering the tables the
    batch itself creates so that a later statement may read them before they exist."""

    def __init__(self, resolver: Resolver, spec: LanguageSpec, base_path: str | None):
        self.resolver, self.spec, self.base_path = resolver, spec, base_path
        self.created: list[TableTarget] = []

    def key(self, table: exp.Table) -> tuple[tuple[str, ...], tuple[str, ...] | str]:
        """(written parts, what the resolver is asked with: parts, or an absolute path)."""
        parts = table_parts(table)
        if not self.spec.paths:
            return parts, parts
        path = absolute_path("/".join(parts), self.base_path)
        return tuple(p for p in parts[-1].split("/") if p) or parts, path

    def resolve(self, table: exp.Table, role: str, *, missing_ok: bool = False) -> TableTarget:
        _, key = self.key(table)
        if role == "new":
            target = self.resolver.new_table(key, language=self.spec.name)
            self.created.append(target)
            return target
        write = role == "write"
        try:
            if isinstance(key, str):
                return self.resolver.resolve_path(key, write=write)
            return self.resolver.resolve_name(key, write=write)
        except ArchiveError as err:
            if err.code != "unknown_table":
                raise
            if not (missing_ok or self.created):
                raise
            try:
                target = self.resolver.new_table(key, language=self.spec.name)
            except ArchiveError:
                raise err from None
            same = _same_table
            if missing_ok or any(same(target, c) for c in self.created):
                return target
            raise


def _same_table(a: TableTarget, b: TableTarget) -> bool:
    return (a.catalog.casefold(), a.schema.casefold(), a.name.casefold()) == (
        b.catalog.casefold(),
        b.schema.casefold(),
        b.name.casefold(),
    )


def _label(written: tuple[str, ...], key) -> str:
    return key if isinstance(key, str) else ".".join(written)


def _node_position(text: str, chunk: Chunk, node: exp.Expr) -> tuple[int, int] | None:
    """Where a node was written in the whole query text, if the parser recorded it
    (sqlglot records positions on identifiers and some literals; take the first one)."""
    starts = [n.meta["start"] for n in node.walk() if "start" in n.meta]
    if not starts:
        return None
    return line_col(text, chunk.offset + min(starts))


def _resolve_statement(p: _Parsed, res: _Resolution, text: str) -> list[str]:
    stmt = p.stmt
    targets = write_targets(stmt)
    lines: list[str] = []

    def add(table: exp.Table, role: str, *, missing_ok: bool = False) -> TableTarget:
        try:
            written, key = res.key(table)
            target = res.resolve(table, role, missing_ok=missing_ok)
        except ArchiveError as err:
            err.position = err.position or _node_position(text, p.chunk, table)
            raise
        p.refs.append((table, target, role, written))
        mark = {"read": "", "write": " (write)", "new": " (new table)"}[role]
        engine_name = f"{target.catalog}.{target.schema}.{target.name}"
        lines.append(f"{_label(written, key)} -> {target.context}: {engine_name}{mark}")
        return target

    into = find_into(stmt)
    if into is not None:
        p.kind, p.into = "write", add(into.this, "new")
    elif isinstance(stmt, exp.Create):
        p.into = add(targets[0], "new")
        as_select = stmt.args.get("expression") is not None and str(stmt.args.get("kind")).upper() == "TABLE"
        p.kind = "write" if as_select else "ddl"
    elif isinstance(stmt, (exp.Insert, exp.Update, exp.Delete)):
        p.kind, p.into = "write", add(targets[0], "write")
    elif isinstance(stmt, (exp.Drop, exp.Alter, exp.TruncateTable)):
        p.kind = "ddl"
        exists = isinstance(stmt, exp.Drop) and bool(stmt.args.get("exists"))
        for t in targets:
            target = add(t, "write", missing_ok=exists)
            p.into = p.into or target
        for rename in stmt.find_all(exp.AlterRename):
            # Later statements of the batch may use the new name before it exists.
            if p.into is not None and isinstance(rename.this, exp.Table):
                t = p.into
                res.created.append(TableTarget(t.catalog, t.schema, rename.this.name, t.context, t.writable))
    for table in read_tables(stmt, targets):
        add(table, "read")
    return lines


def _rewrite_statement(p: _Parsed, spec: LanguageSpec) -> None:
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
    if find_into(p.stmt) is not None:
        p.stmt = into_to_create(p.stmt)


def compile_query(
    text: str,
    language: str,
    resolver: Resolver,
    *,
    variables: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    base_path: str | None = None,
    offset: int | None = None,
    limit: int | None = None,
    row_limit: int | None = None,
    positional_index=None,
) -> Compiled:
    """Compile a query text into DuckDB statements with bound parameters.

    ``positional_index`` (ADQL only): ``TableTarget -> adql.HealpixIndex | None``, enabling
    HEALPix range filters for cone searches on tables stored in HEALPix-index order.
    Raises ``ArchiveError``; ``err.details["phases"]`` holds the phases computed so far,
    the failing one last with its ``error`` set.
    """
    run = _Run()
    try:
        spec = _spec(language)
        offset = _check_int("offset", offset, 0)
        limit = _check_int("limit", limit, 1)
        row_limit = _check_int("row_limit", row_limit, 0)
        text = text or ""
        user_dialect = spec.dialect

        with run.phase(PHASE_AST) as ph:
            chunks, code = scan(text, spec)
            if spec.quasar_ops:
                check_quasar_operators(text, code)
            parsed: list[_Parsed] = []
            for chunk in chunks:
                pieces = parse_chunk(text, chunk, spec)
                for piece, stmt in pieces:
                    alone = sum(1 for c, _ in pieces if c is piece) == 1
                    source = piece.text if alone else stmt.sql(dialect=user_dialect)
                    parsed.append(_Parsed(piece, stmt, stmt.copy(), source))
            if not parsed:
                raise bad_request("the query is empty")
            originals = [p.original for p in parsed]  # untouched copies: the tree as parsed
            ph.tree_of = lambda: batch_tree([ast_tree(o, user_dialect) for o in originals])
            if spec.name == "adql":
                adql.check_batch([p.stmt for p in parsed])
            for p in parsed:
                try:
                    check_statement(p.stmt, spec, lambda node, p=p: _node_position(text, p.chunk, node))
                except ArchiveError as err:
                    err.position = err.position or (p.chunk.line, p.chunk.col)
                    raise

        with run.phase(PHASE_VARIABLES) as ph:
            binder = _Binder(variables, params)
            for p in parsed:
                p.params = binder.bind(p.stmt, lambda node, p=p: _node_position(text, p.chunk, node))
            ph.detail = binder.describe()

        with run.phase(PHASE_RESOLVED) as ph:
            res = _Resolution(resolver, spec, base_path)
            lines = []
            for p in parsed:
                lines += _resolve_statement(p, res, text)
            ph.detail = "\n".join(lines) or "no tables"

        with run.phase(PHASE_REWRITTEN) as ph:
            for p in parsed:
                _rewrite_statement(p, spec)
                if spec.name == "adql":
                    xtypes = adql.geometry_columns(getattr(resolver, "column_meta", None), p.refs)
                    p.stmt = adql.rewrite(p.stmt, p.refs, p.params, positional_index, xtypes)
            reads = [i for i, p in enumerate(parsed) if p.kind == "read"]
            if reads:
                last = parsed[reads[-1]]
                cap = limit
                if row_limit is not None:
                    # One extra row lets the caller see that the result was truncated.
                    cap = row_limit + 1 if cap is None else min(cap, row_limit + 1)
                last.stmt = apply_limit(last.stmt, cap, offset)
            final = [p.stmt for p in parsed]  # not changed after this phase
            ph.tree_of = lambda: batch_tree([ast_tree(st, _ENGINE_DIALECT) for st in final])

        with run.phase(PHASE_ENGINE_SQL) as ph:
            statements = []
            for p in parsed:
                # copy=False: the generator's own defensive copy of the tree costs ~1 ms, and the
                # tree is not used again except to show the rewritten phase
                sql = p.stmt.sql(dialect=_ENGINE_DIALECT, identify=True, unsupported_level=ErrorLevel.RAISE, copy=False)
                tables: list[TableTarget] = []
                for _, target, role, _ in p.refs:
                    if role == "read" and not any(_same_table(target, t) for t in tables):
                        tables.append(target)
                statements.append(Statement(p.kind, sql, dict(p.params), p.source, p.into, tables))
            ph.detail = ";\n".join(s.sql for s in statements)

        return Compiled(spec.name, statements, run.phases, lambda: _modified_query(parsed, user_dialect), dict(binder.names))
    except ArchiveError as err:
        err.details.setdefault("phases", [p.to_json() for p in run.phases])
        raise


def rebind(compiled: Compiled, *, variables: dict[str, str] | None = None, params: dict[str, Any] | None = None) -> Compiled:
    """The same compiled query with new values for its variables (a compile cache's hit).

    Values are checked exactly as a fresh compile checks them; the SQL text is untouched.
    """
    binder = _Binder(variables, params)
    values = {}
    for name, pname in compiled.param_names.items():
        values[pname] = binder._value(name)[0]
    statements = [
        Statement(st.kind, st.sql, {k: values[k] for k in st.params}, st.source, st.into, st.tables)
        for st in compiled.statements
    ]
    return Compiled(compiled.language, statements, compiled.phases, compiled.modified, compiled.param_names)


def _modified_query(parsed: list[_Parsed], dialect) -> str:
    """The query as the user wrote it, minus what the archive took over: like CasJobs'
    ModifiedQuery, SELECT ... INTO loses its INTO and gains a trailing marker comment."""
    out = []
    for p in parsed:
        stmt = p.original.copy()
        into = find_into(stmt)
        if into is not None:
            into.parent.set("into", None)
        try:
            sql = stmt.sql(dialect=dialect)
        except SqlglotError:  # only cosmetic: fall back to the text as written
            sql = p.source
        if into is not None and p.into is not None:
            sql += f" /*CASJOBS_INTO_TABLE:{p.into.context}.{p.into.name}*/"
        out.append(sql)
    return ";\n".join(out)
