"""A quick query that outgrows its time limit goes on as a job: the same run, not a new one (issue 18).

A face's quick query (``faces/base/handler.py`` ``quick_query``, its ``Continuation``) runs on a quick worker with
an ``on_limit``: when the quick time limit passes, the watchdog asks it before it interrupts the engine, and it asks
``adopt`` (``Jobs.continued``) to make the run a job. Nothing here runs before the limit, so a quick query answered
in time walks through no module of the jobs package. ``adopt`` makes a running job of the caller's, whose start is
the request's and whose face is the face's (a TAP sync query becomes a TAP async job, a CasJobs quick query a CasJobs
job, with what those faces keep in a submitted job's request), counted against the jobs' limits: the runner's
workers and the owner's ``jobs_per_user``. None when no job can be made (an anonymous caller where anonymous jobs are
not allowed, jobs at their limits): the limit then interrupts the query as before.

Why the statement keeps its thread and engine connection: DuckDB runs a statement on the thread that called it, so
handing it to another thread means restarting it. The thread is a quick pool thread, but the quick pool has one thread
more per job worker (``Archive.executor``) and a continued query takes a job worker's place, so continued queries
never take a quick worker away. That thread ``deliver``s the rows into the job's result, as a query job does
(``QueryJobs.keep``); progress is polled from the cursor; cancel interrupts the statement. A stop cancels it and a
restart fails it, as every running job (``JobRunner.adopt``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from .query import follow_progress, query_request

if TYPE_CHECKING:
    from ..catalog import Principal
    from ..execution.pool import QueryResult
    from .runner import JobContext
    from .service import Jobs

log = logging.getLogger(__name__)


def adopt(
    jobs: Jobs, principal: Principal, text: str, language: str, cursor, *, face: str, started: float | None, options: dict[str, Any],
    request: dict[str, Any], row_limit: int | None,
) -> ContinuedQuery | None:  # fmt: skip
    """The run of a quick query (``queries.query``'s ``options``) past its time limit, on ``cursor``, as a running job
    of the principal's of ``face`` (``request``: the face's own fields of its request); None when none can be made."""
    if principal.anonymous and not jobs.allow_anonymous:
        return None
    req = query_request(
        text, language, context=options.get("context"), base_path=options.get("base_path"), variables=options.get("variables"),
        params=options.get("params"), row_limit=options.get("row_limit", row_limit), continued=True, **request,
    )  # fmt: skip
    owner, uid = jobs.owner_of(principal)
    try:
        ctx = jobs.runner.adopt(owner, "query", req, face=face, started=started or time.time(), owner_uid=uid)
    except Exception:  # noqa: BLE001 - no job then: the limit interrupts the query, as before
        log.exception("a quick query past its time limit could not go on as a job")
        return None
    return None if ctx is None else ContinuedQuery(jobs, ctx, cursor)


class ContinuedQuery:
    """A quick query's run gone on as a job: its progress followed from the cursor, a cancel interrupting it, until
    ``deliver`` (on the run's thread) ends the job with what the run gave."""

    def __init__(self, jobs: Jobs, ctx: JobContext, cursor):
        self._jobs, self._ctx = jobs, ctx
        self.job = ctx.job
        self._done, self._guard = threading.Event(), threading.Lock()  # the progress poller's end (``follow_progress``)
        ctx.on_cancel(cursor.interrupt)
        follow_progress(ctx, cursor, self._done, self._guard)

    def deliver(self, outcome: QueryResult | BaseException) -> None:
        """End the job with the run's result (its rows into the job's result, the quick query's row limit still
        applying) or its error."""
        with self._guard:
            self._done.set()  # no progress read nor interrupt once the cursor may go back to the pool
        self._ctx.on_cancel(None)  # from here a cancel is seen between batches (``keep``'s ``ctx.check``)
        if isinstance(outcome, BaseException):

            def work(job, ctx):
                raise outcome

        else:
            compiled = outcome.compiled
            into = next((st.into for st in reversed(compiled.statements) if st.kind == "write" and st.into is not None), None)

            def work(job, ctx):
                return self._jobs.query_jobs.keep(job, ctx, outcome, compiled, into)

        self._jobs.runner.finish(self._ctx, work)
