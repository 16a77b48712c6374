"""The runner: moves jobs through their states on a bounded pool of threads, and what a job's
work sees while it runs (its JobContext)."""

from __future__ import annotations

import collections
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import ArchiveError, native_faults, not_found
from ..execution.pool import WATCHDOG
from ..lanes import user_share
from .model import Job, JobCanceled
from .store import JobStore

log = logging.getLogger(__name__)
LOG_DELAY = 0.1  # seconds a job's log line may wait to be written with others (``JobContext.log``)

class JobContext:
    """What a job's work sees: its job, a log, progress, and the cancel signal."""

    def __init__(self, runner: JobRunner, job: Job):
        self.runner = runner
        self.job = job
        self.canceled = threading.Event()
        self._interrupt: Callable[[], None] | None = None
        self._guard = threading.Lock()
        self._lines: list[tuple[float, str]] = []  # logged, not yet written
        self._writing = threading.Lock()  # over ``_lines``, held while they are written: later lines go after them

    def log(self, line: str) -> None:
        """Add a line to the job's log. It is written with the job's end, or by the watchdog within ``LOG_DELAY``,
        whichever is first: a job of a few milliseconds writes its log in its last move, not in one write a line
        (under load each write waited its turn on the store)."""
        with self._writing:
            self._lines.append((time.time(), line))
            first = len(self._lines) == 1
        if first:
            WATCHDOG.schedule(LOG_DELAY, self.flush)

    def flush(self) -> None:
        """Write the lines logged so far."""
        with self._writing:
            lines, self._lines = self._lines, []
            if lines:
                with contextlib.suppress(ArchiveError, sqlite3.Error):  # the job was deleted meanwhile: nothing to log
                    self.runner.store.add_log(self.job.id, lines)

    def take_lines(self, last: str) -> list[tuple[float, str]]:
        """The lines logged and not written yet, and ``last``: for the job's last move to write."""
        with self._writing:
            lines, self._lines = self._lines, []
        return [*lines, (time.time(), last)]

    def set_progress(self, fraction: float, rows: int | None = None) -> None:
        fields: dict[str, Any] = {"progress": max(0.0, min(1.0, float(fraction)))}
        if rows is not None:
            fields["rows"] = int(rows)
        self.runner.store.update(self.job.id, **fields)

    def on_cancel(self, interrupt: Callable[[], None] | None) -> None:
        """Register how to stop the work now (e.g. the engine cursor's ``interrupt``)."""
        with self._guard:
            self._interrupt = interrupt
            if interrupt is not None and self.canceled.is_set():
                interrupt()

    def check(self) -> None:
        if self.canceled.is_set():
            raise JobCanceled()

    def _cancel(self) -> None:
        self.canceled.set()
        with self._guard:
            if self._interrupt is not None:
                try:
                    self._interrupt()
                except Exception:  # noqa: BLE001 - the work may have just finished
                    log.debug("interrupt of job %s failed", self.job.id, exc_info=True)


Work = Callable[[Job, JobContext], dict | None]


class JobRunner:
    """Runs jobs from the store on a bounded pool, never more than ``per_user`` at once per owner
    (default: every worker but one, so that another user always finds one free).

    A dispatcher thread moves due scheduled jobs to the queue and queued jobs to running: a free worker goes
    to the owner running the fewest, ties to the oldest job (round robin across users, not first come).
    The work of a kind is a function registered with ``register``; it returns the job's
    results (a dict, may carry ``rows``) or raises ``ArchiveError`` / ``JobCanceled``.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        workers: int = 2,
        per_user: int = 0,
        waiting_per_user: int | None = 1000,
        retention: float | None = 7 * 24 * 3600,
        on_expire: Callable[[Job], None] | None = None,
    ):
        self.store = store
        self.workers = max(1, workers)
        self.per_user = user_share(self.workers, per_user)
        self.waiting_per_user = waiting_per_user  # jobs one owner may have pending, scheduled or queued (None: any)
        self.retention = retention
        self.on_expire = on_expire
        self._work: dict[str, Work] = {}
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="archive-job")
        self._cond = threading.Condition()  # over ``_running`` and ``_stop``; told when a job ends
        # The dispatcher's call: a submit or a job's end sets it and goes on, never waiting for a dispatch under way;
        # the dispatcher clears it before it looks, so no call is missed.
        self._due = threading.Event()
        self._running: dict[int, JobContext] = {}
        self._stop = False
        self._thread: threading.Thread | None = None
        self._last_sweep = 0.0
        self.sweep_interval = 60.0  # seconds between looks for expired jobs
        self.sweeps: list[Callable[[float, float | None], None]] = []  # what is kept as long as jobs: (now, retention)

    def register(self, kind: str, work: Work) -> None:
        self._work[kind] = work

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        failed = self.store.recover()
        if failed:
            log.warning("jobs %s were running when the server stopped; marked failed", failed)
        self._thread = threading.Thread(target=self._dispatch, name="archive-job-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            contexts = list(self._running.values())
            self._cond.notify_all()
        self._due.set()
        for ctx in contexts:
            ctx._cancel()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._cond:  # adopted jobs end on their own threads (``adopt``), interrupted above
            self._cond.wait_for(lambda: not self._running, timeout)

    def wake(self) -> None:
        """Have the dispatcher look at the queue now (a job was queued, or a worker is free)."""
        self._due.set()

    # -- requests ---------------------------------------------------------------------------------
    def submit(
        self,
        owner: str,
        kind: str,
        request: dict,
        *,
        face: str = "native",
        start_time: float | None = None,
        run: bool = True,
        owner_uid: str | None = None,
    ) -> Job:
        """Create a job: queued now, scheduled for ``start_time``, or pending until ``run_job``."""
        if kind not in self._work:
            raise ArchiveError("bad_request", f"unknown job kind {kind!r}")
        most = self.waiting_per_user
        if most and self.store.waiting_of(owner, most) >= most:
            raise ArchiveError(
                "too_many_requests", f"you have {most:,} jobs waiting to run, the most one user may have; "
                "wait for some to finish, or cancel some, and submit again", 429, details={"retry_after": 30})
        if not run:
            state = "pending"
        elif start_time is not None and start_time > time.time():
            state = "scheduled"
        else:
            state = "queued"
        job = self.store.create(owner, kind, request, face=face, state=state, scheduled=start_time, owner_uid=owner_uid,
                                log=f"submitted ({state})")
        self.wake()
        return job

    def adopt(self, owner: str, kind: str, request: dict, *, face: str, started: float, owner_uid: str | None = None) -> JobContext | None:
        """Make a running job of work already under way on the caller's thread (a quick query past its time limit:
        ``jobs/continued.py``), counted against the jobs' limits like any running job; None when they are full.
        The caller ends it with ``finish``; a stop cancels it, a restart fails it, as every running job."""
        with self._cond:  # the dispatcher looks at the running jobs under this lock too
            mine = sum(ctx.job.owner == owner for ctx in self._running.values())
            if self._stop or len(self._running) >= self.workers or mine >= self.per_user:
                return None
            job = self.store.create(owner, kind, request, face=face, state="queued", scheduled=None, owner_uid=owner_uid)
            job = self.store.transition(job.id, "running", started=started, submitted=started,  # asked for then
                                        log="a quick query past its time limit: the same run goes on as this job")
            self._running[job.id] = ctx = JobContext(self, job)
            return ctx

    def finish(self, ctx: JobContext, work: Work) -> None:
        """End an adopted job on the caller's thread: ``work(job, ctx)`` gives its results or raises."""
        self._execute(ctx, work)

    def run_job(self, job_id: int) -> Job:
        """Start a pending job (UWS ``PHASE=RUN``); a job already past pending is left alone."""
        job = self.require(job_id)
        if job.state != "pending":
            return job
        if job.scheduled is not None and job.scheduled > time.time():
            job = self.store.transition(job_id, "scheduled")
        else:
            job = self.store.transition(job_id, "queued")
        self.wake()
        return job

    def cancel(self, job_id: int) -> Job:
        """Ask a job to stop: a waiting job is canceled at once; a running one goes through canceling."""
        with self._cond:
            job = self.require(job_id)
            if job.final or job.state == "canceling":
                return job
            if job.state in ("pending", "scheduled", "queued"):
                return self.store.transition(job_id, "canceled", ended=time.time(), log="canceled before it ran")
            job = self.store.transition(job_id, "canceling", log="cancel requested")
            ctx = self._running.get(job_id)
        if ctx is not None:
            ctx._cancel()
        return job

    def delete(self, job_id: int) -> None:
        """Cancel (if needed) and forget a job, removing what it produced in the result store."""
        job = self.require(job_id)
        if not job.final:
            self.cancel(job_id)
            self.wait(job_id, timeout=10)
        job = self.require(job_id)
        if self.on_expire is not None:
            self.on_expire(job)
        self.store.delete(job_id)

    def require(self, job_id: int) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise not_found(f"unknown job {job_id}", job=job_id)
        return job

    def wait(self, job_id: int, timeout: float | None = None, *, until: Callable[[Job], bool] | None = None) -> Job:
        """Block until the job is final (or ``until(job)``), or the timeout passes; returns the job."""
        until = until or (lambda j: j.final)
        deadline = None if timeout is None else time.time() + timeout
        with self._cond:
            while True:
                job = self.require(job_id)
                if until(job):
                    return job
                remaining = None if deadline is None else deadline - time.time()
                if remaining is not None and remaining <= 0:
                    return job
                self._cond.wait(0.25 if remaining is None else min(0.25, remaining))

    # -- dispatcher -------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        while not self._stop:
            self._due.clear()
            try:
                delay = self._dispatch_once()
            except Exception:  # noqa: BLE001 - keep the dispatcher alive whatever happens
                log.exception("job dispatcher failed")
                delay = 1.0
            self._due.wait(delay)

    def _dispatch_once(self) -> float:
        now = time.time()
        # Only ids are read here: a dispatch runs on every submit and every end, and a long queue
        # (one user's thousand jobs) must not make each of them parse every queued job.
        # The store is read without ``_cond`` (a job ending waits for it, to say so); only the starts hold it. A job
        # canceled (or deleted) since it was read is not started: its move is refused, and the others go on.
        next_due = 1.0
        for job_id, at in self.store.waiting():
            if at is None or at <= now:
                with contextlib.suppress(ArchiveError):
                    self.store.transition(job_id, "queued", log="start time reached; queued")
            else:
                next_due = min(next_due, at - now)
        with self._cond:
            per_owner = collections.Counter(ctx.job.owner for ctx in self._running.values())
        if sum(per_owner.values()) < self.workers:
            # One user's thousand queued jobs, older than another's one, must not all run first.
            turns: dict[str, int] = {}
            order = []
            for job_id, owner in self.store.startable(self.per_user, [o for o, n in per_owner.items() if n >= self.per_user]):
                turns[owner] = turns.get(owner, per_owner.get(owner, 0)) + 1
                order.append((turns[owner], job_id, owner))
            with self._cond:
                per_owner = collections.Counter(ctx.job.owner for ctx in self._running.values())
                for _turn, job_id, owner in sorted(order):
                    if self._stop or len(self._running) >= self.workers:
                        break
                    if per_owner[owner] >= self.per_user:
                        continue
                    try:
                        job = self.store.transition(job_id, "running", started=time.time())
                    except ArchiveError:
                        continue
                    self._running[job.id] = ctx = JobContext(self, job)
                    per_owner[owner] += 1
                    self._pool.submit(self._execute, ctx)
        if now - self._last_sweep > self.sweep_interval:
            self._last_sweep = now
            self._expire(now)
        return max(0.01, next_due)

    def _expire(self, now: float) -> None:
        # The store finds the jobs past ``model.destruction_time``; a retention only ever finds
        # finished ones, so it never stops work.
        for sweep in self.sweeps:
            sweep(now, self.retention)
        for job in self.store.expired(now, self.retention):
            if not job.final:
                # its own destruction time reached while the job waits or runs: stop it, then forget it
                threading.Thread(target=self._destroy, args=(job.id,), daemon=True).start()
                continue
            try:
                if self.on_expire is not None:
                    self.on_expire(job)
                self.store.delete(job.id)
            except Exception:  # noqa: BLE001
                log.exception("could not expire job %s", job.id)

    def _destroy(self, job_id: int) -> None:
        try:
            self.delete(job_id)
        except ArchiveError:
            pass  # already gone
        except Exception:  # noqa: BLE001
            log.exception("could not destroy job %s", job_id)

    def _execute(self, ctx: JobContext, work: Work | None = None) -> None:
        try:
            self._run_work(ctx, work)
        except Exception:  # noqa: BLE001
            if self.store.get(ctx.job.id) is not None:
                log.exception("job %s could not be finished", ctx.job.id)
            elif self.on_expire is not None:
                # Deleted while it ran (its owner was deleted, or its destruction time came):
                # what it made after the deletion goes too.
                try:
                    self.on_expire(ctx.job)
                except Exception:  # noqa: BLE001
                    log.exception("could not remove what deleted job %s made", ctx.job.id)
        finally:
            with self._cond:
                self._running.pop(ctx.job.id, None)
                self._cond.notify_all()
            self._due.set()

    def _run_work(self, ctx: JobContext, work: Work | None = None) -> None:
        job = ctx.job
        work = work or self._work[job.kind]
        ctx.log("running")
        try:
            with native_faults():  # a panic in a native library fails the job too
                results = work(job, ctx) or {}
            if ctx.canceled.is_set():
                raise JobCanceled()
            rows = results.get("rows")
            self.store.transition(
                job.id, "completed", ended=time.time(), progress=1.0, results=results, **({"rows": rows} if rows is not None else {}),
                log=ctx.take_lines(f"completed{f' ({rows} rows)' if rows is not None else ''}"),
            )
        except JobCanceled:
            self._finish_canceled(ctx)
        except ArchiveError as exc:
            if ctx.canceled.is_set() and exc.code in ("canceled", "time_limit"):
                self._finish_canceled(ctx)
            else:
                self._fail(ctx, exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - a job must end, whatever its work raised
            log.exception("job %s failed", job.id)
            self._fail(ctx, "server_error", f"internal error: {type(exc).__name__}: {exc}")

    def _finish_canceled(self, ctx: JobContext) -> None:
        job = self.store.get(ctx.job.id)
        if job is not None and job.state == "running":
            self.store.transition(ctx.job.id, "canceling")
        self.store.transition(ctx.job.id, "canceled", ended=time.time(), log=ctx.take_lines("canceled"))

    def _fail(self, ctx: JobContext, code: str, message: str) -> None:
        self.store.transition(ctx.job.id, "failed", ended=time.time(), error_code=code, error_message=message,
                              log=ctx.take_lines(f"failed: {message}"))
