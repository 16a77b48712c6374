"""The Queries service (``archive.queries``): compile, and run a compiled query where the planner says.

``compile`` shows a query's phases and its plan (the engine's, or the SQL pushed to a
server); ``query`` compiles (through the compile cache) and runs a quick query; ``read_table``
streams a table page by page; ``run`` executes compiled statements on their plan: quick
queries, paged reads and jobs all end there.

A compile-cache hit without variables or parameters goes straight to the engine: the cached
entry carries the compiled statements, their column metadata and their plan.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import duckdb

from .. import sql as sqlmod
from ..catalog.model import TAP_SCHEMA_ALIAS, ContextRef, Principal
from ..errors import ArchiveError
from ..languages import DEFAULT_LANGUAGE
from ..sql import quote_ident
from . import pushdown
from .planner import ENGINE, SERVER, TAP_SCHEMA, Plan, plan
from .engines import engine_error
from .result import QueryResult, execute
from .uploads import UploadSet

if TYPE_CHECKING:
    from ..catalog.namespace import Namespace
    from .pool import EnginePool

DEFAULT = object()  # "use the configured limit"
COMPILE_CACHE_SIZE = 512


class _Entry:
    """A compile-cache entry: the compiled query, its column metadata and its plan."""

    __slots__ = ("compiled", "meta", "plan", "plain")

    def __init__(self, compiled: sqlmod.Compiled, meta: dict, plan: Plan):
        self.compiled = compiled
        self.meta = meta
        self.plan = plan
        self.plain = not compiled.param_names  # no values to bind again on a hit


class Queries:
    """Compiles and runs queries for principals; ``jobs`` reads TAP uploads named by a job's URL."""

    def __init__(self, namespace: Namespace, engines: EnginePool, *, row_limit: int | None, time_limit: float | None, jobs=None):
        self._namespace = namespace
        self._engines = engines
        self.row_limit = row_limit  # the quick-query limits
        self.time_limit = time_limit
        self.jobs = jobs
        self._cache: OrderedDict = OrderedDict()
        self._cache_version = namespace.version
        self._lock = threading.Lock()
        self.column_meta_for = namespace.column_meta_for

    # -- compiling ------------------------------------------------------------------------------
    def compile(
        self,
        principal: Principal,
        text: str,
        language: str = DEFAULT_LANGUAGE,
        *,
        context: str | None = None,
        base_path: str | None = None,
        variables: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        offset: int | None = None,
        limit: int | None = None,
        row_limit: int | None = None,
        explain: bool = True,
    ) -> sqlmod.Compiled:
        """Compile without running; with ``explain`` the plan is the last phase (the engine's
        plan, or the SQL pushed to a server)."""
        compiled = self._compile(principal, text, language, context, base_path, variables, params, offset, limit, row_limit)
        where = plan(self._namespace, self._engines, principal, compiled.statements, engine=explain)
        if where.where == SERVER:
            compiled.phases.append(sqlmod.Phase("Pushed SQL", detail=pushdown.pushed_sql(where.backend, compiled)))
        elif explain and where.where == ENGINE:
            plans = []
            cur = where.engine.cursor()
            try:
                for st in compiled.statements:
                    rows = cur.sql("EXPLAIN " + st.sql, params=st.params or None).fetchall()
                    plans.append("\n".join(str(r[-1]) for r in rows))
            except duckdb.Error as exc:
                err = engine_error(exc)
                phases = [p.to_json() for p in compiled.phases] + [{"name": "Engine Plan", "error": err.message}]
                err.details["phases"] = phases
                raise err from None
            finally:
                cur.close()
            compiled.phases.append(sqlmod.Phase("Engine Plan", detail="\n\n".join(plans)))
        return compiled

    def compile_request(self, principal: Principal, request: dict, uploads: dict | None = None):
        """Compile a stored request (a job's: query, language, context, base_path, variables,
        params, row_limit); returns the compiled query and its resolver (for a target table)."""
        language = request.get("language") or DEFAULT_LANGUAGE
        resolver = self._namespace.resolver(
            principal, request.get("context"), request.get("base_path"), language=language, uploads=uploads
        )
        compiled = sqlmod.compile_query(
            request["query"],
            language,
            resolver,
            variables=request.get("variables"),
            params=request.get("params"),
            base_path=request.get("base_path"),
            row_limit=request.get("row_limit"),
            positional_index=self._namespace.positional_lookup(principal),
        )
        return compiled, resolver

    def _compile(self, principal, text, language, context, base_path, variables, params, offset, limit, row_limit, uploads=None):
        return sqlmod.compile_query(
            text,
            language,
            self._namespace.resolver(principal, context, base_path, language=language, uploads=uploads),
            variables=variables,
            params=params,
            base_path=base_path,
            offset=offset,
            limit=limit,
            row_limit=row_limit,
            positional_index=self._namespace.positional_lookup(principal),
        )

    def _cached(self, principal, text, language, context, base_path, variables, params, offset, limit, row_limit) -> _Entry | None:
        """Compile, reusing an earlier compile of the same text with new values when possible.

        Only reads of mounted (read-only) tables are cached: their resolution cannot change
        until the mounts do, which empties the cache. MyDB tables come and go, so queries
        touching them are compiled afresh (None: run it as compiled, not from the cache).
        """
        key = (
            principal, language, context, base_path, text,
            tuple(sorted(variables)) if variables else (), tuple(sorted(params)) if params else (), offset, limit, row_limit,
        )  # fmt: skip
        with self._lock:
            if self._cache_version != self._namespace.version:
                self._cache.clear()
                self._cache_version = self._namespace.version
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        compiled = self._compile(principal, text, language, context, base_path, variables, params, offset, limit, row_limit)
        read_only = {m.alias for m in self._namespace.mounts() if m.read_only}
        cacheable = all(st.kind == "read" and all(t.catalog in read_only for t in st.tables) for st in compiled.statements)
        entry = _Entry(compiled, self._namespace.column_meta_for(principal, compiled.statements[-1]), self.plan(principal, compiled.statements))
        if cacheable:
            with self._lock:
                self._cache[key] = entry
                while len(self._cache) > COMPILE_CACHE_SIZE:
                    self._cache.popitem(last=False)
        return entry

    # -- running --------------------------------------------------------------------------------
    def plan(self, principal: Principal, statements, pinned=None) -> Plan:
        """Where compiled statements run (``planner.plan``)."""
        return plan(self._namespace, self._engines, principal, statements, pinned)

    def query(
        self,
        principal: Principal,
        text: str,
        language: str = DEFAULT_LANGUAGE,
        *,
        context: str | None = None,
        base_path: str | None = None,
        variables: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        offset: int | None = None,
        limit: int | None = None,
        row_limit: int | None | object = DEFAULT,
        time_limit: float | None | object = DEFAULT,
        uploads=None,
    ) -> QueryResult:
        """Run a quick query and return its streamed result (``Rows Affected`` for writes).

        ``uploads`` makes tables readable as ``TAP_UPLOAD.x``: an ``UploadSet`` the caller
        closes, or staged entries (``uploads.stage``), loaded now and dropped with the result.
        """
        if row_limit is DEFAULT:
            row_limit = self.row_limit
        if time_limit is DEFAULT:
            time_limit = self.time_limit
        if uploads is not None:
            return self._query_with_uploads(
                principal, text, language, context, base_path, variables, params, offset, limit, row_limit, time_limit, uploads
            )
        entry = self._cached(principal, text, language, context, base_path, variables, params, offset, limit, row_limit)
        compiled = entry.compiled if entry.plain else sqlmod.rebind(entry.compiled, variables=variables, params=params)
        if entry.plan.where != ENGINE:
            return self.run(principal, compiled, plan=entry.plan, row_limit=row_limit, time_limit=time_limit, column_meta=entry.meta)
        result = execute(
            entry.plan.engine.cursor(), compiled.statements, row_limit=row_limit, time_limit=time_limit, column_meta=entry.meta
        )
        result.compiled = compiled
        return result

    def _query_with_uploads(self, principal, text, language, context, base_path, variables, params, offset, limit, row_limit, time_limit, uploads):
        own = not isinstance(uploads, UploadSet)
        if own:
            if not uploads:
                return self.query(principal, text, language, context=context, base_path=base_path, variables=variables,
                                  params=params, offset=offset, limit=limit, row_limit=row_limit, time_limit=time_limit)  # fmt: skip
            uploads = UploadSet(self._engines, principal, uploads, jobs=self.jobs)
        try:
            compiled = self._compile(
                principal, text, language, context, base_path, variables, params, offset, limit, row_limit, uploads.targets
            )
            result = self.run(
                principal, compiled, row_limit=row_limit, time_limit=time_limit, column_meta=uploads.column_meta, pinned=uploads.pin
            )
        except BaseException:
            if own:
                uploads.close()
            raise
        if own:
            result.also_on_close(uploads.close)
        return result

    def uploads(self, principal: Principal, entries: list[dict], *, cancel: threading.Event | None = None) -> UploadSet:
        """Staged uploads loaded into the principal's engine for one query or job (close it after)."""
        return UploadSet(self._engines, principal, entries, jobs=self.jobs, cancel=cancel)

    def run(
        self,
        principal: Principal,
        compiled: sqlmod.Compiled,
        *,
        row_limit: int | None = None,
        time_limit: float | None = None,
        column_meta: dict | None = None,
        pinned=None,
        plan: Plan | None = None,
        wait: float | None | object = DEFAULT,
        cancel: threading.Event | None = None,
        on_cancel=None,
        on_cursor=None,
    ) -> QueryResult:
        """Execute an already compiled query on its plan (made now unless given).

        ``column_meta`` adds units/UCDs for tables the catalog does not know (uploads), held in
        the engine of the lease ``pinned``. A job passes ``wait=None`` and ``cancel`` (it waits
        for a database held elsewhere until canceled), ``on_cancel`` (told how to interrupt a
        server) and ``on_cursor`` (given the engine's cursor before the query runs).
        """
        plan = plan or self.plan(principal, compiled.statements, pinned)
        meta = self._namespace.column_meta_for(principal, compiled.statements[-1])
        if column_meta:
            meta = {**column_meta, **meta} if meta else column_meta
        if plan.where == SERVER:
            result = pushdown.run(
                plan.backend, compiled, target=plan.engine, row_limit=row_limit, time_limit=time_limit, column_meta=meta, on_cancel=on_cancel
            )
        elif plan.where == TAP_SCHEMA:
            from ..catalog.tap_schema import COLUMN_META, arrow_tables, describe
            from .engines import memory_engine

            # execute() closes what it is given when the result closes: here the whole in-memory engine.
            con = memory_engine(TAP_SCHEMA_ALIAS, arrow_tables(describe(self._namespace, principal)))
            result = execute(con, compiled.statements, row_limit=row_limit, time_limit=time_limit, column_meta=COLUMN_META)
        else:
            cursor = plan.engine.cursor() if wait is DEFAULT else plan.engine.cursor(timeout=wait, cancel=cancel)
            if on_cursor is not None:
                on_cursor(cursor)
            result = execute(cursor, compiled.statements, row_limit=row_limit, time_limit=time_limit, column_meta=meta)
        result.compiled = compiled
        return result

    def read_table(
        self,
        principal: Principal,
        context: str | ContextRef,
        table: str,
        *,
        offset: int | None = None,
        limit: int | None = None,
        order_by: str | None = None,
        descending: bool = False,
    ) -> QueryResult:
        """Stream a whole table (or a page of it): no quick-query row limit applies."""
        ns = self._namespace
        ref = context if isinstance(context, ContextRef) else ns.context(principal, context)
        info = ns.table(principal, ref, table)
        if offset is not None and offset < 0:
            raise ArchiveError("bad_request", f"invalid offset: {offset} (must be >= 0)")
        if limit is not None and limit < 1:
            raise ArchiveError("bad_request", f"invalid limit: {limit} (must be >= 1)")
        text = f"SELECT * FROM {quote_ident(ref.alias)}.main.{quote_ident(info.name)}"
        if order_by:
            names = {c.name.lower(): c.name for c in info.columns}
            if order_by.lower() not in names:
                raise ArchiveError("bad_request", f"unknown column {order_by!r} in table {info.name}")
            text += f" ORDER BY {quote_ident(names[order_by.lower()])} {'DESC' if descending else 'ASC'}"
        if limit is not None:
            text += f" LIMIT {int(limit)}"
        if offset:
            text += f" OFFSET {int(offset)}"
        target = sqlmod.TableTarget(ref.alias, "main", info.name, ref.name, ref.writable)
        st = sqlmod.Statement(kind="read", sql=text, params={}, source=text, into=None, tables=[target])
        compiled = sqlmod.Compiled("sql", [st], [], text, {})
        return self.run(principal, compiled, column_meta=info.column_meta())
