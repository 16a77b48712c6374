"""One job system for every face: the Job model, its state machine, a persistent store and a runner.

Every long thing (long query, Quasar large query, TAP async, dataset reset, directive run,
async cutout) is a Job here. Faces only rename states (CasJobs numbers, UWS phases, SAS and
Kasabi words). Jobs live in SQLite (WAL) in the data dir, so they survive a restart; a job
that was running when the process died is failed with "interrupted by server restart".
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import params, times
from ..errors import ArchiveError, not_found

log = logging.getLogger(__name__)

STATES = ("pending", "scheduled", "queued", "running", "canceling", "completed", "failed", "canceled")
FINAL = frozenset({"completed", "failed", "canceled"})
ACTIVE = frozenset({"running", "canceling"})
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"queued", "scheduled", "canceled"}),
    "scheduled": frozenset({"queued", "canceled"}),
    "queued": frozenset({"running", "canceled"}),
    "running": frozenset({"completed", "failed", "canceling"}),
    "canceling": frozenset({"canceled", "failed", "completed"}),
}
RESTART_MESSAGE = "interrupted by server restart"
#: The owner of anonymous jobs (TAP async without a token, when anonymous access is on):
#: no user can be named so (``users.valid_user_name``).
ANONYMOUS_OWNER = "anonymous"
# The times a job keeps, and the words an error about one uses.
TIME_FIELDS = {"submitted": "submitted", "scheduled": "start time", "started": "started", "ended": "ended",
               "destruction": "destruction"}  # fmt: skip

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    face TEXT NOT NULL DEFAULT 'native',
    request TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    submitted REAL NOT NULL,
    scheduled REAL,
    started REAL,
    ended REAL,
    progress REAL NOT NULL DEFAULT 0,
    rows INTEGER,
    error_code TEXT,
    error_message TEXT,
    results TEXT NOT NULL DEFAULT '{}',
    destruction REAL,
    owner_uid TEXT
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner, id);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);
CREATE TABLE IF NOT EXISTS job_log (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    ts REAL NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_log_job ON job_log(job_id, ts);
"""
_COLUMNS = (
    "id", "owner", "kind", "face", "request", "state", "submitted", "scheduled", "started", "ended",
    "progress", "rows", "error_code", "error_message", "results", "destruction", "owner_uid",
)  # fmt: skip


@dataclass
class Job:
    """A long-running unit of work owned by one user."""

    id: int
    owner: str
    kind: str  # query | directive | reset | cutout | async
    state: str
    submitted: float
    face: str = "native"
    request: dict = field(default_factory=dict)
    scheduled: float | None = None  # earliest start (unix seconds)
    started: float | None = None
    ended: float | None = None
    progress: float = 0.0  # 0..1
    rows: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    results: dict = field(default_factory=dict)
    destruction: float | None = None  # when the job is removed, whatever its state (UWS destruction)
    owner_uid: str | None = None  # the owner's identity (``Principal.ident``): what the job belongs to

    @property
    def final(self) -> bool:
        return self.state in FINAL

    @property
    def anonymous(self) -> bool:
        """Whether an anonymous caller made the job (it has no user)."""
        return self.owner == ANONYMOUS_OWNER

    @property
    def summary(self) -> str:
        """What the job does, in a line: its query, or its kind and what it works on
        (for faces whose job documents have room for a query only)."""
        query = self.request.get("query")
        if isinstance(query, str) and query:
            return query
        what = self.request.get("image") or self.request.get("context") or self.request.get("dataset") or ""
        return f"{self.kind} {what}".strip()

    def to_json(self) -> dict:
        out = {k: getattr(self, k) for k in _COLUMNS if k not in ("error_code", "error_message", "owner_uid")}
        out["error"] = {"code": self.error_code, "message": self.error_message} if self.error_message else None
        out["elapsed"] = (
            (self.ended or time.time()) - self.started if self.started else None
        )
        return out

    @classmethod
    def from_row(cls, row: tuple) -> Job:
        d = dict(zip(_COLUMNS, row, strict=True))
        d["request"] = json.loads(d["request"] or "{}")
        d["results"] = json.loads(d["results"] or "{}")
        return cls(**d)


class JobCanceled(Exception):
    """Raised inside a job's work when the job was asked to stop."""


class JobStore:
    """Jobs and their logs in SQLite; every state change goes through ``transition``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
        if "destruction" not in columns:  # a store made before jobs had a destruction time
            self._db.execute("ALTER TABLE jobs ADD COLUMN destruction REAL")
        if "owner_uid" not in columns:  # a store made before identities: owners keep their names as uid
            self._db.execute("ALTER TABLE jobs ADD COLUMN owner_uid TEXT")
            self._db.execute("UPDATE jobs SET owner_uid = owner")
        self._db.execute("CREATE INDEX IF NOT EXISTS jobs_owner_uid ON jobs(owner_uid, id)")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(
        self, owner: str, kind: str, request: dict, *, face: str, state: str, scheduled: float | None, owner_uid: str | None = None
    ) -> Job:
        """A new job of ``owner`` (a user name), belonging to the identity ``owner_uid`` (default: the name)."""
        now = time.time()
        if scheduled is not None:
            scheduled = times.check(TIME_FIELDS["scheduled"], scheduled)
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO jobs(owner, owner_uid, kind, face, request, state, submitted, scheduled) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (owner, owner_uid or owner, kind, face, json.dumps(request, default=str), state, now, scheduled),
            )
            job_id = cur.lastrowid
        return self.get(job_id)

    def get(self, job_id: int | str) -> Job | None:
        """The job with this id; None for an id no job can have (not a 64-bit row id)."""
        jid = params.identifier(job_id)
        if jid is None:
            return None
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ?", (jid,)).fetchone()
        return Job.from_row(row) if row else None

    def list(
        self,
        owner: str | None = None,
        *,
        states: list[str] | None = None,
        kinds: list[str] | None = None,
        face: str | None = None,
        submitted_from: float | None = None,
        submitted_to: float | None = None,
        offset: int = 0,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> tuple[list[Job], int]:
        """Jobs matching the filters (a page of them) and how many match in all; ``owner`` is
        the owner's identity (``Principal.ident``)."""
        where, args = [], []
        if owner is not None:
            where.append("owner_uid = ?")
            args.append(owner)
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args.extend(states)
        if kinds:
            where.append(f"kind IN ({', '.join('?' * len(kinds))})")
            args.extend(kinds)
        if face:
            where.append("face = ?")
            args.append(face)
        if submitted_from is not None:
            where.append("submitted >= ?")
            args.append(submitted_from)
        if submitted_to is not None:
            where.append("submitted <= ?")
            args.append(submitted_to)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        order = "DESC" if newest_first else "ASC"
        offset = params.integer("offset", offset, default=0, minimum=0)
        limit = params.integer("limit", limit, minimum=0)
        page = f" LIMIT {-1 if limit is None else limit} OFFSET {offset}"
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM jobs{clause}", args).fetchone()[0]
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs{clause} ORDER BY id {order}{page}", args).fetchall()
        return [Job.from_row(r) for r in rows], total

    def transition(self, job_id: int, new: str, **fields: Any) -> Job:
        """Move a job to state ``new`` (refusing an illegal move) and set other fields with it."""
        with self._lock:
            job = self.get(job_id)
            if job is None:
                raise not_found(f"unknown job {job_id}", job=job_id)
            if new != job.state and new not in TRANSITIONS.get(job.state, ()):
                raise ArchiveError(
                    "conflict", f"job {job_id} is {job.state}; it cannot become {new}", 409, details={"state": job.state}
                )
            self._update(job_id, state=new, **fields)
            return self.get(job_id)

    def update(self, job_id: int, **fields: Any) -> None:
        """Set fields other than the state (progress, rows, results, request)."""
        if "state" in fields:
            raise ValueError("use transition() to change a job's state")
        with self._lock:
            self._update(job_id, **fields)

    def _update(self, job_id: int, **fields: Any) -> None:
        if not fields:
            return
        for key, name in TIME_FIELDS.items():
            if fields.get(key) is not None:
                # checked where it is kept, so every face can show it later
                fields[key] = times.check(name, fields[key])
        for key in ("request", "results"):
            if key in fields:
                fields[key] = json.dumps(fields[key], default=str)
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*fields.values(), int(job_id)])

    def delete(self, job_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (int(job_id),))

    def add_log(self, job_id: int, line: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO job_log(job_id, ts, line) VALUES (?, ?, ?)", (int(job_id), time.time(), line))

    def log_lines(self, job_id: int) -> list[tuple[float, str]]:
        with self._lock:
            return self._db.execute("SELECT ts, line FROM job_log WHERE job_id = ? ORDER BY rowid", (int(job_id),)).fetchall()

    def recover(self) -> list[int]:
        """After a restart: fail the jobs that were running; returns their ids."""
        now = time.time()
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM jobs WHERE state IN ('running', 'canceling')")]
            for job_id in ids:
                self._update(job_id, state="failed", ended=now, error_code="interrupted", error_message=RESTART_MESSAGE)
                self._db.execute("INSERT INTO job_log(job_id, ts, line) VALUES (?, ?, ?)", (job_id, now, RESTART_MESSAGE))
        return ids

    def expired(self, before: float | None, now: float) -> list[Job]:
        """Jobs to remove: finished before ``before`` (None: kept forever), or past their destruction time."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE "
                "(state IN ('completed', 'failed', 'canceled') AND ended < ?) OR destruction < ?",
                (before if before is not None else float("-inf"), now),
            ).fetchall()
        return [Job.from_row(r) for r in rows]


class JobContext:
    """What a job's work sees: its job, a log, progress, and the cancel signal."""

    def __init__(self, runner: JobRunner, job: Job):
        self.runner = runner
        self.job = job
        self.canceled = threading.Event()
        self._interrupt: Callable[[], None] | None = None
        self._guard = threading.Lock()

    def log(self, line: str) -> None:
        self.runner.store.add_log(self.job.id, line)

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
    """Runs jobs from the store on a bounded pool, never more than ``per_user`` at once per owner.

    A dispatcher thread moves due scheduled jobs to the queue and queued jobs to running.
    The work of a kind is a function registered with ``register``; it returns the job's
    results (a dict, may carry ``rows``) or raises ``ArchiveError`` / ``JobCanceled``.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        workers: int = 2,
        per_user: int = 2,
        retention: float | None = 7 * 24 * 3600,
        on_expire: Callable[[Job], None] | None = None,
    ):
        self.store = store
        self.workers = max(1, workers)
        self.per_user = max(1, per_user)
        self.retention = retention
        self.on_expire = on_expire
        self._work: dict[str, Work] = {}
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="archive-job")
        self._cond = threading.Condition()
        self._running: dict[int, JobContext] = {}
        self._stop = False
        self._thread: threading.Thread | None = None
        self._last_sweep = 0.0
        self.sweep_interval = 60.0  # seconds between looks for expired jobs

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
        for ctx in contexts:
            ctx._cancel()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

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
        if not run:
            state = "pending"
        elif start_time is not None and start_time > time.time():
            state = "scheduled"
        else:
            state = "queued"
        job = self.store.create(owner, kind, request, face=face, state=state, scheduled=start_time, owner_uid=owner_uid)
        self.store.add_log(job.id, f"submitted ({state})")
        self.wake()
        return job

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
                job = self.store.transition(job_id, "canceled", ended=time.time())
                self.store.add_log(job_id, "canceled before it ran")
                return job
            job = self.store.transition(job_id, "canceling")
            self.store.add_log(job_id, "cancel requested")
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
        while True:
            with self._cond:
                if self._stop:
                    return
                try:
                    delay = self._dispatch_once()
                except Exception:  # noqa: BLE001 - keep the dispatcher alive whatever happens
                    log.exception("job dispatcher failed")
                    delay = 1.0
                self._cond.wait(delay)

    def _dispatch_once(self) -> float:
        now = time.time()
        scheduled, _ = self.store.list(states=["scheduled"], newest_first=False)
        next_due = 1.0
        for job in scheduled:
            if job.scheduled is None or job.scheduled <= now:
                self.store.transition(job.id, "queued")
                self.store.add_log(job.id, "start time reached; queued")
            else:
                next_due = min(next_due, job.scheduled - now)
        if len(self._running) < self.workers:
            queued, _ = self.store.list(states=["queued"], newest_first=False)
            per_owner: dict[str, int] = {}
            for ctx in self._running.values():
                per_owner[ctx.job.owner] = per_owner.get(ctx.job.owner, 0) + 1
            for job in queued:
                if len(self._running) >= self.workers:
                    break
                if per_owner.get(job.owner, 0) >= self.per_user:
                    continue
                job = self.store.transition(job.id, "running", started=time.time())
                ctx = JobContext(self, job)
                self._running[job.id] = ctx
                per_owner[job.owner] = per_owner.get(job.owner, 0) + 1
                self._pool.submit(self._execute, ctx)
        if now - self._last_sweep > self.sweep_interval:
            self._last_sweep = now
            self._expire(None if self.retention is None else now - self.retention, now)
        return max(0.01, next_due)

    def _expire(self, before: float | None, now: float) -> None:
        for job in self.store.expired(before, now):
            if not job.final:
                # a destruction time reached while the job waits or runs: stop it, then forget it
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

    def _execute(self, ctx: JobContext) -> None:
        try:
            self._run_work(ctx)
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

    def _run_work(self, ctx: JobContext) -> None:
        job = ctx.job
        work = self._work[job.kind]
        self.store.add_log(job.id, "running")
        try:
            results = work(job, ctx) or {}
            if ctx.canceled.is_set():
                raise JobCanceled()
            rows = results.get("rows")
            self.store.transition(
                job.id, "completed", ended=time.time(), progress=1.0, results=results, **({"rows": rows} if rows is not None else {})
            )
            self.store.add_log(job.id, f"completed{f' ({rows} rows)' if rows is not None else ''}")
        except JobCanceled:
            self._finish_canceled(job.id)
        except ArchiveError as exc:
            if ctx.canceled.is_set() and exc.code in ("canceled", "time_limit"):
                self._finish_canceled(job.id)
            else:
                self._fail(job.id, exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - a job must end, whatever its work raised
            log.exception("job %s failed", job.id)
            self._fail(job.id, "server_error", f"internal error: {type(exc).__name__}: {exc}")

    def _finish_canceled(self, job_id: int) -> None:
        job = self.store.get(job_id)
        if job is not None and job.state == "running":
            self.store.transition(job_id, "canceling")
        self.store.transition(job_id, "canceled", ended=time.time())
        self.store.add_log(job_id, "canceled")

    def _fail(self, job_id: int, code: str, message: str) -> None:
        self.store.transition(job_id, "failed", ended=time.time(), error_code=code, error_message=message)
        self.store.add_log(job_id, f"failed: {message}")
