"""The one SQL pipeline: every query text, in any accepted language, becomes DuckDB SQL here.

parse (sqlglot) -> check -> bind variables as parameters -> resolve tables -> rewrite -> emit.
Each step is recorded as a ``Phase`` so a /compile endpoint and error replies can show it.
Values never enter the SQL text: they travel as DuckDB ``$pN`` parameters. The steps themselves
live in this package's other modules; this one holds their order and the compile cache's ``rebind``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from typing import Any

from sqlglot.errors import ErrorLevel, SqlglotError

from ..errors import ArchiveError, bad_request
from . import adql
from .bounds import guard_values
from .checks import check_statement
from .compiled import Compiled, Late, Parsed, Resolver, Statement, TableTarget
from .healpix_index import bind
from .dialects import language_spec
from .parse import parse_chunk
from .phases import PHASE_AST, PHASE_ENGINE_SQL, PHASE_RESOLVED, PHASE_REWRITTEN, PHASE_VARIABLES, PhaseLog, ast_tree, batch_tree
from .rewrite import apply_limit, rewrite_statement
from .scan import check_quasar_operators, node_position, scan
from .tables import Resolution, find_into, resolve_statement, same_table
from .variables import INTEGER, Binder

ENGINE_DIALECT = "duckdb"
# Bounds on compiling one query, so no text holds a worker for long (each is a clear 400):
MAX_QUERY_CHARS = 1_000_000
MAX_STATEMENTS = 1_000
COMPILE_SECONDS = 10.0
# A long text takes seconds of Python to compile (30,000 ORs: ~3 s), all of it holding the interpreter's lock, which
# every other request needs too: long ones compile one at a time, so one user's cannot stall everyone's.
LONG_QUERY_CHARS = 16_384
LONG_QUERY_WAIT = 10.0  # seconds a long text waits for its turn; then a 429 (but see ``patiently``)
_LONG_COMPILE = threading.Lock()
_PATIENT = threading.local()


class _Budget:
    """The time one compilation may take; checked between statements of every phase."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise bad_request(f"compiling the query took longer than {self.seconds:g} s; make it shorter or split it")


def _check_int(what: str, value: Any, minimum: int) -> int | None:
    """An offset or limit argument as an int (None when absent); 400 unless an integer >= minimum."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value) if isinstance(value, (int, str)) else None
        if number is None or (isinstance(value, str) and not INTEGER.fullmatch(value.strip())):
            raise ValueError
    except ValueError:
        raise bad_request(f"invalid {what}: {value!r} (must be an integer >= {minimum})") from None
    if number < minimum:
        raise bad_request(f"invalid {what}: {number} (must be >= {minimum})")
    return number


def _long_ones_in_turn(compile_fn):
    """``compile_fn`` with texts over ``LONG_QUERY_CHARS`` compiled one at a time (see ``LONG_QUERY_CHARS``)."""

    @functools.wraps(compile_fn)
    def in_turn(text: str, *args, **kwargs) -> Compiled:
        if len(text or "") <= LONG_QUERY_CHARS:
            return compile_fn(text, *args, **kwargs)
        if not _LONG_COMPILE.acquire(timeout=-1 if getattr(_PATIENT, "on", False) else LONG_QUERY_WAIT):
            raise ArchiveError("too_many_requests", f"long queries (over {LONG_QUERY_CHARS:,} characters) are compiled one "
                               "at a time and others are waiting; retry shortly", 429, details={"retry_after": 5})
        try:
            return compile_fn(text, *args, **kwargs)
        finally:
            _LONG_COMPILE.release()

    return in_turn


@contextlib.contextmanager
def patiently():
    """Within it (on this thread), a long text waits for its compile turn as long as that takes, not
    ``LONG_QUERY_WAIT``: a job's, which nobody waits on, should run late rather than fail."""
    _PATIENT.on = True
    try:
        yield
    finally:
        _PATIENT.on = False


@_long_ones_in_turn
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
    time_budget: float = COMPILE_SECONDS,
) -> Compiled:
    """Compile a query text into DuckDB statements with bound parameters.

    ``positional_index`` (ADQL only): ``TableTarget -> healpix_index.HealpixIndex | None``, enabling
    HEALPix range filters for cone searches on tables stored in HEALPix-index order.
    Raises ``ArchiveError``; ``err.details["phases"]`` holds the phases computed so far,
    the failing one last with its ``error`` set. A text over ``MAX_QUERY_CHARS`` characters or
    ``MAX_STATEMENTS`` statements, or a compilation over ``time_budget`` seconds, is a 400.
    """
    run = PhaseLog()
    try:
        spec = language_spec(language)
        offset = _check_int("offset", offset, 0)
        limit = _check_int("limit", limit, 1)
        row_limit = _check_int("row_limit", row_limit, 0)
        text = text or ""
        if len(text) > MAX_QUERY_CHARS:
            raise bad_request(f"the query is {len(text):,} characters long; at most {MAX_QUERY_CHARS:,} are accepted")
        if "\x00" in text:  # no SQL has it; DuckDB's column names ended at it (its C strings), and so did PostgreSQL's text
            line = text.count("\n", 0, text.index("\x00")) + 1
            raise bad_request(f"the query holds a NUL character (U+0000) on line {line}; no SQL text may")
        budget = _Budget(time_budget)
        user_dialect = spec.dialect

        with run.phase(PHASE_AST) as ph:
            chunks, code = scan(text, spec)
            if spec.quasar_ops:
                check_quasar_operators(text, code)
            parsed: list[Parsed] = []
            for chunk in chunks:
                budget.check()
                pieces = parse_chunk(text, chunk, spec)
                if len(parsed) + len(pieces) > MAX_STATEMENTS:
                    raise bad_request(f"the query has more than {MAX_STATEMENTS:,} statements; split it into several queries")
                for piece, stmt in pieces:
                    alone = sum(1 for c, _ in pieces if c is piece) == 1
                    source = piece.text if alone else stmt.sql(dialect=user_dialect)
                    parsed.append(Parsed(piece, stmt, stmt.copy(), source))
            if not parsed:
                raise bad_request("the query is empty")
            originals = [p.original for p in parsed]  # untouched copies: the tree as parsed
            ph.tree_of = lambda: batch_tree([ast_tree(o, user_dialect) for o in originals])
            if spec.name == "adql":
                adql.check_batch([p.stmt for p in parsed])
            for p in parsed:
                budget.check()
                try:
                    check_statement(p.stmt, spec, lambda node, p=p: node_position(text, p.chunk, node))
                except ArchiveError as err:
                    err.position = err.position or (p.chunk.line, p.chunk.col)
                    raise

        with run.phase(PHASE_VARIABLES) as ph:
            binder = Binder(variables, params)
            for p in parsed:
                budget.check()
                p.params = binder.bind(p.stmt, lambda node, p=p: node_position(text, p.chunk, node))
            ph.detail = binder.describe()

        with run.phase(PHASE_RESOLVED) as ph:
            res = Resolution(resolver, spec, base_path)
            lines = []
            for p in parsed:
                budget.check()
                lines += resolve_statement(p, res, text)
            ph.detail = "\n".join(lines) or "no tables"

        sky: dict[int, list] = {}  # per statement: the sky regions whose range filters are filled in when values are bound
        with run.phase(PHASE_REWRITTEN) as ph:
            for i, p in enumerate(parsed):
                budget.check()
                rewrite_statement(p)
                guard_values(p.stmt)
                if spec.name == "adql":
                    xtypes = adql.geometry_columns(getattr(resolver, "column_meta", None), p.refs)
                    p.stmt = adql.rewrite(p.stmt, p.refs, p.params, positional_index, xtypes, sky.setdefault(i, []))
            reads = [i for i, p in enumerate(parsed) if p.kind == "read"]
            if reads:
                last = parsed[reads[-1]]
                cap = limit
                if row_limit is not None:
                    # One extra row lets the caller see that the result was truncated.
                    cap = row_limit + 1 if cap is None else min(cap, row_limit + 1)
                last.stmt = apply_limit(last.stmt, cap, offset)
            final = [p.stmt for p in parsed]  # not changed after this phase
            ph.tree_of = lambda: batch_tree([ast_tree(st, ENGINE_DIALECT) for st in final])

        with run.phase(PHASE_ENGINE_SQL) as ph:
            statements = []
            for i, p in enumerate(parsed):
                budget.check()
                # copy=False: the generator's own defensive copy of the tree costs ~1 ms, and the
                # tree is not used again except to show the rewritten phase
                sql = p.stmt.sql(dialect=ENGINE_DIALECT, identify=True, unsupported_level=ErrorLevel.RAISE, copy=False)
                tables: list[TableTarget] = []
                bounds: dict = {}
                for node, target, role, _ in p.refs:
                    if role == "read" and not any(same_table(target, t) for t in tables):
                        tables.append(target)
                        if "healpix_regions" in node.meta:
                            bounds[target] = node.meta["healpix_regions"]
                    elif role == "read":  # read twice: which read the ranges bound is not kept
                        bounds = {k: v for k, v in bounds.items() if not same_table(k, target)}
                late = Late(sql, sky[i], bounds) if sky.get(i) else None
                statements.append(bind(Statement(p.kind, sql, {}, p.source, p.into, tables, late=late), dict(p.params)))
            ph.detail = ";\n".join(s.sql for s in statements)

        return Compiled(spec.name, statements, run.phases, lambda: _modified_query(parsed, user_dialect), dict(binder.names))
    except ArchiveError as err:
        err.details.setdefault("phases", [p.to_json() for p in run.phases])
        raise


def rebind(compiled: Compiled, *, variables: dict[str, str] | None = None, params: dict[str, Any] | None = None) -> Compiled:
    """The same compiled query with new values for its variables (a compile cache's hit).

    Values are checked exactly as a fresh compile checks them; the SQL text is untouched.
    """
    binder = Binder(variables, params)
    values = {}
    for name, pname in compiled.param_names.items():
        values[pname] = binder.value(name)[0]
    statements = [bind(st, {k: values[k] for k in st.params}) for st in compiled.statements]
    return Compiled(compiled.language, statements, compiled.phases, compiled.modified, compiled.param_names)


def _modified_query(parsed: list[Parsed], dialect) -> str:
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
