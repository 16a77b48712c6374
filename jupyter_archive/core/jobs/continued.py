"""A quick query that outgrows its time limit goes on as a job: the same run, not a new one (issue 18).

``Jobs.quick`` makes a ``ContinuedQuery``; ``run`` runs it on a quick worker. Answered within the quick time
limit it returns its result, as any quick query. When the limit passes, the watchdog asks ``_adopt`` instead of
interrupting the engine: the job runner adopts the run as a running job of the caller's whose start is the
request's, counted against the jobs' limits (the runner's workers and the owner's ``jobs_per_user``; when those
are full, the limit interrupts the query as before); ``job`` (a Future) resolves with it, so the face answers
202 and gives the request's turn on the quick workers back.

Why the statement keeps its thread and engine connection: DuckDB runs a statement on the thread that called
it, so handing it to another thread means restarting it. The thread is a quick pool thread, but the quick pool
has one thread more per job worker (``Archive.executor``) and a continued query takes a job worker's place, so
continued queries never take a quick worker away. That thread writes the rows into the job's result, as a query
job does (``QueryJobs.keep``); progress is polled from the cursor; cancel interrupts the statement. A stop
cancels it and a restart fails it, as every running job (``JobRunner.adopt``).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from .query import follow_progress, query_request

if TYPE_CHECKING:
    from ..catalog import Principal
    from ..execution.pool import QueryResult
    from .service import Jobs

QUICK, ANSWERED, JOB = "quick", "answered", "job"


class ContinuedQuery:
    """One quick query that may go on as a job; ``job`` resolves with the Job if it does."""

    def __init__(self, jobs: Jobs, queries, principal: Principal, text: str, language: str, *, face: str, options: dict[str, Any]):
        self._jobs, self._queries = jobs, queries
        self._principal, self._text, self._language, self._face, self._options = principal, text, language, face, options
        # Where the run's history entry goes (``Queries.query``'s ``history=``): the archive's history unless the caller said.
        self._history = options.pop("history", queries.history.append)
        self.job: Future = Future()  # the Job, set (on the watchdog's thread) once the run goes on as one
        self._state = QUICK  # then ANSWERED (its result returned in time) or JOB, whichever comes first
        self._lock = threading.Lock()
        self._started = time.time()  # the job's start: the request's
        self._ctx = None
        self._done, self._guard = threading.Event(), threading.Lock()  # the progress poller's end (``follow_progress``)

    def run(self) -> QueryResult | None:
        """Run the query on this thread: its result when answered within the quick time limit; None when it went
        on as a job (ended here: the job has its rows, or its error)."""
        may = not self._principal.anonymous or self._jobs.allow_anonymous  # whoever may have jobs
        try:
            on_limit = self._adopt if may else None
            history = self._record if self._history else None
            result = self._queries.query(self._principal, self._text, self._language, on_limit=on_limit, history=history, **self._options)
        except BaseException as exc:
            if self._settle():
                raise

            def failed(job, ctx):
                raise exc

            self._finish(failed)
            return None
        if self._settle():
            return result
        compiled = result.compiled
        into = next((st.into for st in reversed(compiled.statements) if st.kind == "write" and st.into is not None), None)
        self._finish(lambda job, ctx: self._jobs.query_jobs.keep(job, ctx, result, compiled, into))
        return None

    def _record(self, entry: tuple) -> None:
        """The run's history entry, once it failed or its result closes: kept if the run stays a quick query. A run
        that went on as a job is listed as that job when it ends, so the query is listed once."""
        # Settled here (as ``run`` settles it after): a limit passing just as the query fails cannot make it both.
        if self._settle():
            self._history(entry)

    def _settle(self) -> bool:
        """The query returned (or failed): True if that was in time (it stays a quick query)."""
        with self._lock:
            if self._state == QUICK:
                self._state = ANSWERED
            return self._state == ANSWERED

    def _adopt(self, cursor) -> bool:
        """The quick time limit passed (the watchdog's thread): make the run a job, unless it was answered or the
        caller's jobs are at their limit (False: the engine is interrupted)."""
        with self._lock:
            if self._state != QUICK:
                return False
            owner, uid = self._jobs.owner_of(self._principal)
            opts = self._options
            request = query_request(
                self._text, self._language, context=opts.get("context"), base_path=opts.get("base_path"), variables=opts.get("variables"),
                params=opts.get("params"), row_limit=opts.get("row_limit", self._queries.row_limit), continued=True,
            )  # fmt: skip
            ctx = self._jobs.runner.adopt(owner, "query", request, face=self._face, started=self._started, owner_uid=uid)
            if ctx is None:
                return False
            self._state, self._ctx = JOB, ctx
            ctx.on_cancel(cursor.interrupt)
            follow_progress(ctx, cursor, self._done, self._guard)
            self.job.set_result(ctx.job)
            return True

    def _finish(self, work) -> None:
        with self._guard:
            self._done.set()  # no progress read nor interrupt once the cursor may go back to the pool
        self._ctx.on_cancel(None)  # from here a cancel is seen between batches (``keep``'s ``ctx.check``)
        self._jobs.runner.finish(self._ctx, work)
