"""The part of the Queries service (``run.Queries``) off the quick path: compiling for ``/compile`` and jobs, plans, and
runs of compiled statements wherever the planner places them (the principal's engine, a SQL server, TAP_SCHEMA's
tables, the Dask cluster) for jobs, table reads, samples and quick queries off the engine.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Unpack

from .. import sql as sqlmod
from ..catalog.model import TAP_SCHEMA_ALIAS, ContextRef, Principal
from ..languages import DEFAULT_LANGUAGE
from . import pushdown
from .cluster import run_partitioned
from .compiling import TextOptions, compile_text, table_read, with_plan
from .planner import CLUSTER, SERVER, TAP_SCHEMA, Plan, plan
from .pool import QueryResult, rows_affected_result
from .uploads import UploadSet

if TYPE_CHECKING:
    from ..catalog.namespace import Namespace
    from .pool import EnginePool

DEFAULT = object()  # "use the configured limit"


class Runs:
    """Compiles for ``/compile`` and jobs, and runs compiled statements on their plan; ``jobs`` reads TAP uploads
    named by a job's URL."""

    def __init__(self, namespace: Namespace, engines: EnginePool, *, jobs=None):
        self._namespace = namespace
        self._engines = engines
        self.jobs = jobs
        self.cluster = None  # the archive's Dask cluster (cluster.Cluster): jobs over many HATS partitions fan out there

    # -- compiling ------------------------------------------------------------------------------
    def compile(
        self, principal: Principal, text: str, language: str = DEFAULT_LANGUAGE, *, row_limit: int | None = None, explain: bool = True,
        **options: Unpack[TextOptions],
    ) -> sqlmod.Compiled:  # fmt: skip
        """Compile without running; with ``explain`` the plan is the last phase (the engine's plan, or the SQL pushed to a server)."""
        compiled, _ = compile_text(self._namespace, principal, text, language, options, row_limit)
        return with_plan(self._namespace, self._engines, principal, compiled, explain=explain, cluster=self.cluster)

    def compile_request(self, principal: Principal, request: dict, uploads: dict | None = None):
        """Compile a stored request (a job's: query, language, context, base_path, variables, params, row_limit): the
        compiled query and its resolver; None without a ``target`` table: cached then, a job's run reuses its submit's."""
        options = {k: request.get(k) for k in ("context", "base_path", "variables", "params")}
        language, text, row_limit = request.get("language") or DEFAULT_LANGUAGE, request["query"], request.get("row_limit")
        if not uploads and not request.get("target"):
            return self._cached(principal, text, language, options, row_limit).bound(options), None
        return compile_text(self._namespace, principal, text, language, options, row_limit, uploads)

    # -- running --------------------------------------------------------------------------------
    def plan(self, principal: Principal, statements, pinned=None, *, job: bool = False) -> Plan:
        """Where compiled statements run (``planner.plan``); a ``job``'s may run on the cluster."""
        return plan(self._namespace, self._engines, principal, statements, pinned, cluster=self.cluster if job else None, job=job)

    def uploads(self, principal: Principal, entries: list[dict], *, cancel: threading.Event | None = None) -> UploadSet:
        """Staged uploads loaded into the principal's engine for one query or job (close it after)."""
        return UploadSet(self._engines, principal, entries, jobs=self.jobs, cancel=cancel)

    def run(
        self, principal: Principal, compiled: sqlmod.Compiled, *, row_limit: int | None = None, time_limit: float | None = None,
        column_meta: dict | None = None, pinned=None, plan: Plan | None = None, wait: float | None | object = DEFAULT,
        cancel: threading.Event | None = None, on_cancel=None, on_cursor=None, on_limit=None,
    ) -> QueryResult:  # fmt: skip
        """Execute an already compiled query on its plan (made now unless given).

        ``column_meta`` adds units/UCDs for tables the catalog does not know (uploads), held in the engine of the lease
        ``pinned``. A job passes ``wait=None`` and ``cancel`` (it waits for a database held elsewhere until canceled),
        ``on_cancel`` (told how to interrupt a server) and ``on_cursor`` (given the engine's cursor before the query
        runs); ``on_limit`` as ``execute``'s where the query runs on one of the principal's DuckDB cursors (its engine,
        or HATS partitions in-process).
        """
        from .run import execute, prefetched  # run.py builds Queries on this class: imported once called

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
        elif plan.where == CLUSTER:
            out = run_partitioned(self.cluster, plan, compiled.statements, time_limit=time_limit, cancel=cancel, on_cursor=on_cursor)
            result = rows_affected_result(out) if isinstance(out, int) else prefetched(out, row_limit, meta, None, None)
        else:
            cursor = plan.engine.cursor() if wait is DEFAULT else plan.engine.cursor(timeout=wait, cancel=cancel)
            if on_cursor is not None:
                on_cursor(cursor)
            result = execute(cursor, plan.ready(compiled.statements, cursor), row_limit=row_limit, time_limit=time_limit, column_meta=meta, on_limit=on_limit)
        result.compiled = compiled
        return result

    def read_table(
        self, principal: Principal, context: str | ContextRef, table: str, *,
        offset: int | None = None, limit: int | None = None, order_by: str | None = None, descending: bool = False,
    ) -> QueryResult:  # fmt: skip
        """Stream a whole table (or a page of it): no quick-query row limit applies."""
        compiled, meta = table_read(self._namespace, principal, context, table, offset=offset, limit=limit, order_by=order_by, descending=descending)
        return self.run(principal, compiled, column_meta=meta)
