"""The query history (``archive.history``): every user's queries, from every face, newest first.

Two places hand queries over, and nothing else records them: ``Queries.query`` (every face's
quick query: native, CasJobs, Quasar, DAX, TAP sync) and the job store's move of a job to a
final state (every query job: native, TAP async, CasJobs submit, SAS and Kasabi runs). Both
only append to ``pending`` (a deque: one C call, no lock, nothing of this module on a quick
query's path); a writer thread turns what is pending into rows every ``interval`` seconds, in
one transaction per batch, and a listing first writes what is pending (a user sees a query as
soon as its answer has been sent). Rows live in SQLite (WAL) beside the jobs, so they survive
a restart; only the data dir's owner writes them (``ownership``). They go with the jobs: the
job runner's sweep calls ``expire`` with the jobs' retention.

A quick query's duration runs from the call until its rows are ready (with a row limit, as quick
queries have, every row has been read by then), its rows are those sent; a job's runs from its
start to its end.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ArchiveError
from .lanes import cheap_read

if TYPE_CHECKING:
    from .catalog.model import Principal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_uid TEXT NOT NULL,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    job INTEGER,
    face TEXT,
    query TEXT NOT NULL,
    language TEXT,
    context TEXT,
    time REAL NOT NULL,
    duration REAL,
    rows INTEGER,
    outcome TEXT NOT NULL,
    error_code TEXT,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS history_owner ON history(owner_uid, time);
CREATE INDEX IF NOT EXISTS history_time ON history(time);
"""
COLUMNS = ("id", "owner", "kind", "job", "face", "query", "language", "context", "time", "duration", "rows", "outcome", "error_code",
           "error_message")  # fmt: skip
#: A job's final state -> the outcome the history shows.
JOB_OUTCOMES = {"completed": "ok", "failed": "error", "canceled": "canceled"}
MAX_FILTER = 1000  # characters of a ``q`` filter
#: Characters of query text one user's history keeps at most (its newest entries): texts may be up to 1,000,000 each.
TEXT_PER_USER = 64 << 20
#: Seconds between two trims of one user's history to its bounds (a trim reads all of the user's entries).
TRIM_EVERY = 5.0


def outcome_of(code: str | None) -> str:
    """The outcome of a query that ended with the error ``code``."""
    return {"canceled": "canceled", "time_limit": "timed_out"}.get(code or "", "error")


class History:
    """The history's store and its writer; ``pending`` takes what ``Queries.query`` and the job store hand over."""

    def __init__(self, path: Path, *, interval: float = 0.5, per_user: int | None = 10_000, text_per_user: int = TEXT_PER_USER,
                 trim_every: float = TRIM_EVERY):  # fmt: skip
        self.pending: deque = deque()
        # Each user's newest ``per_user`` entries, of ``text_per_user`` characters of text in all (the newest always):
        # one busy user's lookups (~800 a second) would otherwise grow the shared file by gigabytes a day.
        self._bounds = (per_user or -1, text_per_user)
        self._trim_every = trim_every
        self._trimmed: dict[str, float] = {}  # owner identity -> when last trimmed (monotonic)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(Path(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._write_loop, name="archive-history", daemon=True)
        self._thread.start()

    # -- writing ------------------------------------------------------------------------------
    def _write_loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the writer must outlive a bad entry
                import logging

                logging.getLogger(__name__).exception("could not write the query history")

    def flush(self) -> None:
        """Write every pending entry (one transaction)."""
        rows = []
        while self.pending:
            row = _row(self.pending.popleft())
            if row is not None:
                rows.append(row)
        if not rows:
            return
        names = [c for c in COLUMNS if c != "id"] + ["owner_uid"]
        now = time.monotonic()
        due = [o for o in {r[-1] for r in rows} if now - self._trimmed.get(o, -self._trim_every) >= self._trim_every]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(f"INSERT INTO history({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", rows)
            for owner in due:
                self._db.execute(_TRIM, {"owner": owner, "most": self._bounds[0], "text": self._bounds[1]})
                self._trimmed[owner] = now
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.flush()
        with self._lock:
            self._db.close()

    # -- reading ------------------------------------------------------------------------------
    @cheap_read
    def list(
        self, principal: Principal, *, text: str | None = None, all_users: bool = False, offset: int = 0, limit: int | None = None
    ) -> tuple[list[dict], int]:  # fmt: skip
        """The principal's queries (every user's for an admin asking ``all_users``, as with
        jobs), newest first, those whose text holds ``text`` (case-insensitive); a page of them
        and how many match in all."""
        if principal.anonymous:
            return [], 0
        if text is not None and len(text) > MAX_FILTER:
            raise ArchiveError("bad_request", f"the filter 'q' is too long ({len(text)} characters; at most {MAX_FILTER})")
        self.flush()
        where, args = [], []
        if not (all_users and principal.admin):
            where.append("owner_uid = ?")
            args.append(principal.ident)
        if text:
            where.append("instr(lower(query), lower(?)) > 0")
            args.append(text)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        page = f" LIMIT {-1 if limit is None else int(limit)} OFFSET {int(offset or 0)}"
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM history{clause}", args).fetchone()[0]
            rows = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM history{clause} ORDER BY time DESC, id DESC{page}", args).fetchall()
        return [_entry(r) for r in rows], total

    def count(self, principal: Principal) -> int:
        """How many queries an identity has in the history."""
        self.flush()
        with self._lock:
            return self._db.execute("SELECT count(*) FROM history WHERE owner_uid = ?", (principal.ident,)).fetchone()[0]

    def clear(self, principal: Principal) -> int:
        """Forget the principal's own history; how many queries went."""
        if principal.anonymous:
            return 0
        self.flush()
        with self._lock:
            return self._db.execute("DELETE FROM history WHERE owner_uid = ?", (principal.ident,)).rowcount

    def expire(self, now: float, retention: float | None) -> None:
        """Forget the queries that ended over ``retention`` seconds ago, as jobs are (the job runner's sweep)."""
        if retention:
            with self._lock:
                self._db.execute("DELETE FROM history WHERE time + coalesce(duration, 0) < ?", (now - retention,))


# A user's entries past the newest ``most`` (-1: any number) or past ``text`` characters of text, newest first; the
# newest one stays whatever its length.
_TRIM = """
DELETE FROM history WHERE owner_uid = :owner AND id IN (
    SELECT id FROM (
        SELECT id, row_number() OVER newest AS n, sum(length(query)) OVER newest AS text
        FROM history WHERE owner_uid = :owner
        WINDOW newest AS (ORDER BY time DESC, id DESC ROWS UNBOUNDED PRECEDING)
    ) WHERE n > 1 AND ((:most >= 0 AND n > :most) OR text > :text)
)
"""


def _entry(row: tuple) -> dict:
    out = dict(zip(COLUMNS, row, strict=True))
    code, message = out.pop("error_code"), out.pop("error_message")
    out["error"] = {"code": code, "message": message} if out["outcome"] != "ok" and (code or message) else None
    return out


def _row(item: Any) -> tuple | None:
    """A history row of a pending entry: a job that ended, or ``(principal, text, language,
    options, began, ready, result or error)`` from ``Queries.query``; None for what no user owns."""
    if isinstance(item, tuple):
        principal, text, language, options, began, ready, outcome = item
        if principal.anonymous:
            return None
        context = options.get("context") or options.get("base_path")
        if isinstance(outcome, BaseException):
            code = outcome.code if isinstance(outcome, ArchiveError) else "server_error"
            message = outcome.message if isinstance(outcome, ArchiveError) else str(outcome)
            what = (outcome_of(code), None, code, message)
        else:
            rows = outcome.rows_affected if outcome.rows_affected is not None else outcome.rows_sent
            what = ("ok", rows, None, None)
        return (principal.name, "quick", None, None, text, language, context and str(context), began, ready - began,
                what[1], what[0], what[2], what[3], principal.ident)  # fmt: skip
    job = item
    query = job.request.get("query")
    if not isinstance(query, str) or job.anonymous:
        return None
    outcome = JOB_OUTCOMES.get(job.state, job.state)
    if outcome == "error":
        outcome = outcome_of(job.error_code)
    began = job.started or job.submitted
    duration = (job.ended or time.time()) - began
    context = job.request.get("context") or job.request.get("base_path")
    return (job.owner, "job", job.id, job.face, query, job.request.get("language"), context and str(context), began, duration,
            job.rows, outcome, job.error_code, job.error_message, job.owner_uid or job.owner)  # fmt: skip
