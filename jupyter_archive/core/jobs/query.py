"""Query jobs: long queries run by the job system, their results kept as tables or files.

A query job writes into the owner's MyDB when its query says ``INTO mydb.T`` or when the
request names a target table (CasJobs ``CreateTable``/``TableName``, Quasar ``Destination``,
a directive's target); otherwise its rows go to the result store.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .. import sql as sqlmod
from ..errors import ArchiveError, permission
from ..execution.planner import CLUSTER, SERVER
from ..execution.pool import WATCHDOG
from ..execution.uploads import UploadSet
from ..execution.uploads import discard as discard_uploads
from ..sql import quote_ident

if TYPE_CHECKING:
    from ..catalog import Principal
    from .model import Job
    from .results import ResultStore
    from .runner import JobContext
    from .service import Jobs

PROGRESS_INTERVAL = 0.1


def query_request(
    text: str,
    language: str,
    *,
    context: str | None = None,
    base_path: str | None = None,
    variables: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    target: str | tuple[str, ...] | None = None,
    replace: bool = False,
    **extra: Any,
) -> dict:
    """The request of a query job, as stored with the job (JSON-serialisable)."""
    return {
        "query": text,
        "language": language,
        "context": context,
        "base_path": base_path,
        "variables": variables or None,
        "params": params or None,
        "target": list(target) if isinstance(target, tuple) else target,
        "replace": replace,
        **extra,
    }


def follow_progress(ctx: JobContext, cursor, done: threading.Event, guard: threading.Lock) -> None:
    """Report the progress of the query running on ``cursor`` into the job, from a thread of its own, until
    ``done`` is set (under ``guard``, before the cursor goes back to the pool); on cancel, interrupt it again.
    The thread starts only for a query still running after ``PROGRESS_INTERVAL`` (the watchdog's call): most jobs
    end sooner, and a thread started for each of them cost as much as their run under load."""

    def poll():
        # DuckDB reports a percentage while a query runs (-1 when it cannot tell).
        while not done.is_set():
            if ctx.canceled.is_set():
                # DuckDB forgets an interrupt sent before the query started: repeat it, but
                # never once the connection may have gone back to the pool.
                with guard:
                    if done.is_set():
                        return
                    try:
                        cursor.interrupt()
                    except Exception:  # noqa: BLE001
                        return
            else:
                try:
                    pct = cursor.query_progress()
                except Exception:  # noqa: BLE001 - the cursor may close under us
                    return
                if pct is not None and pct >= 0:
                    ctx.set_progress(min(pct / 100.0, 0.99))
            done.wait(PROGRESS_INTERVAL)

    def begin() -> None:  # on the watchdog's thread: start the poller, and no more
        if not done.is_set():
            threading.Thread(target=poll, name=f"archive-job-{ctx.job.id}-progress", daemon=True).start()

    WATCHDOG.schedule(PROGRESS_INTERVAL, begin)


class QueryJobs:
    """The ``query`` (and ``directive``) job kind: compiles a job's request and runs it, keeping
    its rows in the result store or the table it writes."""

    def __init__(self, jobs: Jobs, results: ResultStore, *, queries):
        self._jobs = jobs
        self._results = results
        self._queries = queries

    def compile(
        self, principal: Principal, request: dict, uploads: dict | None = None
    ) -> tuple[sqlmod.Compiled, sqlmod.TableTarget | None]:
        """Compile a query job's request; returns the compiled query and the table it writes (if any)."""
        compiled, resolver = self._queries.compile_request(principal, request, uploads)
        last = compiled.statements[-1]
        target = request.get("target")
        if target:
            if last.kind != "read":
                raise ArchiveError("bad_request", "a target table needs a query that returns rows (a SELECT)")
            into = resolver.new_table(target if isinstance(target, str) else tuple(target), language=compiled.language)
            verb = "CREATE OR REPLACE TABLE" if request.get("replace") else "CREATE TABLE"
            name = f"{quote_ident(into.catalog)}.{quote_ident(into.schema)}.{quote_ident(into.name)}"
            compiled.statements[-1] = sqlmod.Statement(
                kind="write", sql=f"{verb} {name} AS {last.sql}", params=last.params, source=last.source, into=into, tables=last.tables
            )
            return compiled, into
        writes = [st.into for st in compiled.statements if st.kind == "write" and st.into is not None]
        return compiled, (writes[-1] if writes else None)

    def run(self, job: Job, ctx: JobContext) -> dict:
        """The work of a ``query`` job (also directives, which are saved queries, and TAP async jobs:
        their ``row_limit``, ``time_limit`` and ``uploads`` are request fields too)."""
        principal = self._jobs.principal_of(job)
        request = job.request
        if request.get("invalid"):  # a request its face found wrong but had to accept (UWS)
            raise ArchiveError("bad_request", request["invalid"])
        uploads = self._queries.uploads(principal, request["uploads"], cancel=ctx.canceled) if request.get("uploads") else None
        try:
            return self._run(job, ctx, principal, uploads)
        except ArchiveError as exc:
            if exc.code == "time_limit" and not ctx.canceled.is_set():
                limit = request.get("time_limit")
                raise ArchiveError("time_limit", f"the job ran longer than its execution duration of {limit:g} s", 400) from None
            raise
        finally:
            if uploads is not None:
                uploads.close()

    def _run(self, job: Job, ctx: JobContext, principal: Principal, uploads: UploadSet | None) -> dict:
        with sqlmod.patiently():  # a long text waits for its compile turn: nobody waits on a job's answer
            compiled, into = self.compile(principal, job.request, uploads.targets if uploads else None)
        if principal.anonymous and any(st.kind != "read" for st in compiled.statements):
            raise permission("writing needs a signed-in user: log in to Jupyter or send an X-Auth-Token")
        ctx.log(f"compiled {compiled.language}: {len(compiled.statements)} statement(s)")
        # A job waits as long as it must for a database still held by an engine being replaced.
        pinned = uploads.pin if uploads is not None else None
        plan = self._queries.plan(principal, compiled.statements, pinned, job=True)
        if plan.where == SERVER:
            ctx.log(f"pushed down to {plan.backend.where}")
        elif plan.partitioned is not None:
            ctx.log(plan.partitioned.phase_detail("the Dask cluster" if plan.where == CLUSTER else "in-process").replace("\n", "; "))
            if plan.why:
                ctx.log(f"{'on the Dask cluster' if plan.where == CLUSTER else 'in-process'}: {plan.why}")
        done = threading.Event()
        guard = threading.Lock()
        leased = []

        def on_cursor(cursor):
            leased.append(cursor)
            ctx.on_cancel(cursor.interrupt)
            follow_progress(ctx, cursor, done, guard)

        try:
            result = self._queries.run(
                principal, compiled, plan=plan, pinned=pinned, column_meta=uploads.column_meta if uploads else None,
                row_limit=job.request.get("row_limit"), time_limit=job.request.get("time_limit"),
                wait=None, cancel=ctx.canceled, on_cancel=ctx.on_cancel, on_cursor=on_cursor,
            )  # fmt: skip
            for cursor in leased:
                if getattr(cursor, "detail", ""):  # a fanned-out run's (cluster.JobView)
                    ctx.log(f"ran on {cursor.detail}")
            return self.keep(job, ctx, result, compiled, into)
        finally:
            with guard:
                done.set()
            ctx.on_cancel(None)
            for cursor in leased:
                try:
                    cursor.close()
                except Exception:  # noqa: BLE001
                    pass

    def keep(self, job: Job, ctx: JobContext, result, compiled, into) -> dict:
        """What a finished query job keeps: the table it wrote, or its rows in the result store."""
        ctx.check()
        if compiled is not None and (into is not None or compiled.statements[-1].kind != "read"):
            rows = result.rows_affected or 0
            result.close()
            out: dict[str, Any] = {"rows": rows}
            if into is not None:
                out["table"] = {"context": into.context, "name": into.name}
                ctx.log(f"wrote {rows} rows into {into.context}.{into.name}")
            return out
        try:
            rows = self._results.write(job.id, result.schema, result.batches(), on_rows=lambda n: ctx.check(), owner=job.owner_uid)
        finally:
            result.close()
        ctx.log(f"stored {rows} rows in the result store" + (" (cut at the row limit)" if result.truncated else ""))
        out = {"rows": rows, "store": self._results.path(job.id).name}
        if result.truncated:
            out["overflow"] = True
        return out

    def forget(self, job: Job) -> None:
        """What goes with a query job besides its stored result: its staged TAP uploads."""
        discard_uploads(job.request.get("uploads"))
