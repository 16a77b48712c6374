"""Where jobs live: SQLite (WAL) in the data dir, so they survive a restart; a job that was
running when the process died is failed with "interrupted by server restart"."""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .. import params, times
from ..errors import ArchiveError, not_found
from .model import COLUMNS, FINAL, RESTART_MESSAGE, TIME_FIELDS, TRANSITIONS, Job

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
CREATE INDEX IF NOT EXISTS jobs_state_owner ON jobs(state, owner, id);
CREATE TABLE IF NOT EXISTS job_log (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    ts REAL NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_log_job ON job_log(job_id, ts);
"""

class JobStore:
    """Jobs and their logs in SQLite; every state change goes through ``transition``.

    Writes go through one connection under ``_lock``. Reads take a connection of their own from a small
    pool, without the lock: WAL lets them read beside the writer, and each statement sees every write
    committed before it began. Status polls, submits and the dispatcher then never queue behind each
    other's writes (under load they did, and held a quick worker while they waited).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()  # idle read connections
        self._opened: list[sqlite3.Connection] = []  # every read connection, to close
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
        self.on_final: Callable[[Job], None] | None = None  # told of each job that ends (the query history)

    def close(self) -> None:
        with self._lock:
            self._db.close()
            for db in self._opened:
                db.close()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A read connection for this call (opened when none is idle: as many as reads run at once)."""
        try:
            db = self._readers.get_nowait()
        except queue.Empty:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA cache_size=-256")  # KiB: reads are lookups by index; ~20 connections stay small at rest
            self._opened.append(db)  # not under ``_lock``: a write under way must not hold a reader back
        try:
            yield db
        finally:
            self._readers.put(db)

    @staticmethod
    @contextlib.contextmanager
    def _together(db: sqlite3.Connection) -> Iterator[None]:
        """Statements in one transaction: a write's parts committed at once (whatever of them ran, as autocommit
        would), or one snapshot for a read's several statements."""
        db.execute("BEGIN")
        try:
            yield
        finally:
            db.execute("COMMIT")

    def _get(self, db: sqlite3.Connection, job_id: int) -> Job | None:
        rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchall()
        return Job.from_row(rows[0]) if rows else None

    def _log(self, job_id: int, log: str | list[tuple[float, str]]) -> None:
        """Write a line, or ``(time, line)`` pairs logged earlier (``JobContext.log``)."""
        lines = [(time.time(), log)] if isinstance(log, str) else log
        self._db.executemany("INSERT INTO job_log(job_id, ts, line) VALUES (?, ?, ?)", [(int(job_id), t, line) for t, line in lines])

    def create(
        self, owner: str, kind: str, request: dict, *, face: str, state: str, scheduled: float | None, owner_uid: str | None = None,
        log: str | None = None,
    ) -> Job:
        """A new job of ``owner`` (a user name), belonging to the identity ``owner_uid`` (default: the name), with its
        first ``log`` line."""
        now = time.time()
        if scheduled is not None:
            scheduled = times.check(TIME_FIELDS["scheduled"], scheduled)
        with self._lock:
            with self._together(self._db):
                cur = self._db.execute(
                    "INSERT INTO jobs(owner, owner_uid, kind, face, request, state, submitted, scheduled) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (owner, owner_uid or owner, kind, face, json.dumps(request, default=str), state, now, scheduled),
                )
                if log is not None:
                    self._log(cur.lastrowid, log)
            return self._get(self._db, cur.lastrowid)

    def get(self, job_id: int | str) -> Job | None:
        """The job with this id; None for an id no job can have (not a 64-bit row id)."""
        jid = params.identifier(job_id)
        if jid is None:
            return None
        with self._reading() as db:
            return self._get(db, jid)

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
        with self._reading() as db, self._together(db):  # one snapshot for the count and the page
            total = db.execute(f"SELECT count(*) FROM jobs{clause}", args).fetchall()[0][0]
            rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs{clause} ORDER BY id {order}{page}", args).fetchall()
        return [Job.from_row(r) for r in rows], total

    def ids_of(self, owner: str) -> list[int]:
        """The ids of every job of ``owner`` (an identity)."""
        with self._reading() as db:
            return [r[0] for r in db.execute("SELECT id FROM jobs WHERE owner_uid = ?", (owner,)).fetchall()]

    def waiting(self) -> list[tuple[int, float | None]]:
        """(id, start time) of the jobs waiting for their start time (``scheduled``), oldest first."""
        with self._reading() as db:
            return db.execute("SELECT id, scheduled FROM jobs WHERE state = 'scheduled' ORDER BY id").fetchall()

    def waiting_of(self, owner: str, most: int) -> int:
        """How many of ``owner``'s jobs wait (pending, scheduled or queued), counted up to ``most`` at most."""
        with self._reading() as db:
            return db.execute(
                "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE state IN ('pending', 'scheduled', 'queued') AND owner = ? LIMIT ?)",
                (owner, most)).fetchall()[0][0]

    def startable(self, per_owner: int, full: Iterable[str] = ()) -> list[tuple[int, str]]:
        """(id, owner) of queued jobs in submission order, at most ``per_owner`` of each owner's and none of the
        ``full`` owners': what one dispatch may start, whatever the length of the queue (only ids are read)."""
        full = list(full)
        skip = f" WHERE owners.o NOT IN ({', '.join('?' * len(full))})" if full else ""
        # Owners by seeks on the (state, owner, id) index, then each one's first ids: a cost of the owners
        # waiting, not of the queue's length (a window over 12,000 queued jobs took 9 ms a dispatch).
        with self._reading() as db:
            return db.execute(
                "WITH RECURSIVE owners(o) AS (SELECT min(owner) FROM jobs WHERE state = 'queued' UNION ALL"
                " SELECT (SELECT min(owner) FROM jobs WHERE state = 'queued' AND owner > o) FROM owners WHERE o IS NOT NULL)"
                " SELECT j.id, j.owner FROM owners JOIN jobs j ON j.id IN"
                f" (SELECT id FROM jobs WHERE state = 'queued' AND owner = owners.o ORDER BY id LIMIT ?){skip} ORDER BY j.id",
                (per_owner, *full)).fetchall()

    def transition(self, job_id: int, new: str, *, log: str | list[tuple[float, str]] | None = None, **fields: Any) -> Job:
        """Move a job to state ``new`` (refusing an illegal move), set other fields with it and add ``log`` (``_log``)."""
        with self._lock:
            jid = params.identifier(job_id)
            job = None if jid is None else self._get(self._db, jid)
            if job is None:
                raise not_found(f"unknown job {job_id}", job=job_id)
            if new != job.state and new not in TRANSITIONS.get(job.state, ()):
                raise ArchiveError(
                    "conflict", f"job {job_id} is {job.state}; it cannot become {new}", 409, details={"state": job.state}
                )
            with self._together(self._db):
                self._update(jid, state=new, **fields)
                if log:
                    self._log(jid, log)
                if new in FINAL and new != job.state and self.on_final is not None:
                    # before the commit: whoever sees the job ended (reads take no lock) finds it in the history
                    self.on_final(self._get(self._db, jid))
            return self._get(self._db, jid)

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

    def add_log(self, job_id: int, log: str | list[tuple[float, str]]) -> None:
        with self._lock:
            self._log(job_id, log)

    def log_lines(self, job_id: int) -> list[tuple[float, str]]:
        with self._reading() as db:
            # by time: a job's lines logged before a cancel request may be written after it (``JobContext.log``)
            return db.execute("SELECT ts, line FROM job_log WHERE job_id = ? ORDER BY ts, rowid", (int(job_id),)).fetchall()

    def recover(self) -> list[int]:
        """After a restart: fail the jobs that were running; returns their ids."""
        now = time.time()
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM jobs WHERE state IN ('running', 'canceling')")]
            for job_id in ids:
                self._update(job_id, state="failed", ended=now, error_code="interrupted", error_message=RESTART_MESSAGE)
                self._log(job_id, RESTART_MESSAGE)
                if self.on_final is not None:
                    self.on_final(self.get(job_id))
        return ids

    def expired(self, now: float, retention: float | None) -> list[Job]:
        """The jobs past their destruction time (``model.destruction_time``): their own destruction
        time has passed, or they have none and ended over ``retention`` seconds ago."""
        with self._reading() as db:
            rows = db.execute(
                f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE destruction < ? "
                "OR (destruction IS NULL AND state IN ('completed', 'failed', 'canceled') AND coalesce(ended, submitted) < ?)",
                (now, now - retention if retention else float("-inf")),
            ).fetchall()
        return [Job.from_row(r) for r in rows]
