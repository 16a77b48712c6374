"""One statement on one pooled connection of a SQL server: its cursor, its time limit, its
interruption (a cancel, or the watchdog), and the reading of its rows as record batches."""

from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ...errors import ArchiveError
from ...execution.pool import WATCHDOG
from .types import to_batch

if TYPE_CHECKING:
    from .backend import SqlBackend


def release(fairy, *, discard: bool = False) -> None:
    """Give a pooled connection back (the pool rolls it back), or close it for good."""
    try:
        fairy.invalidate() if discard else fairy.close()
    except Exception:  # noqa: BLE001 - a broken connection is dropped by the pool either way
        pass


class Statement:
    """One statement on one pooled connection: its cursor, time limit and interruption.

    It is also the result's reader (``read_next_batch``/``close``, what QueryResult uses).
    """

    def __init__(self, backend: SqlBackend, time_limit: float | None, batch_rows: int):
        self.backend, self.time_limit, self.batch_rows = backend, time_limit, max(1, int(batch_rows))
        self.fairy: Any = None  # SQLAlchemy's pooled connection
        self.con: Any = None  # the driver's connection
        self.cursor: Any = None
        self.schema: pa.Schema | None = None
        self.floats: set[int] = set()  # numeric columns read as Decimal, sent as float64
        self.reason: str | None = None  # "time_limit" or "canceled" once interrupted
        self.interrupted = self.closed = False
        self.timer: int | None = None
        self.lock = threading.Lock()  # held while a cancel is sent: the connection is never given back mid-cancel

    def checkout(self) -> None:
        self.fairy = self.backend.checkout()
        self.con = self.fairy.driver_connection
        self.backend.started(self)
        if self.time_limit:
            self.timer = WATCHDOG.schedule(self.time_limit, self._expire)

    def _expire(self) -> None:
        if self.backend.dialect == "sqlite":
            self.interrupt("time_limit")
        else:  # a cancel request is a network round trip: keep it off the shared watchdog thread
            threading.Thread(target=self.interrupt, args=("time_limit",), daemon=True).start()

    def interrupt(self, reason: str) -> None:
        with self.lock:
            if self.closed:
                return
            self.reason = self.reason or reason
            self.interrupted = True
            try:
                if self.backend.dialect == "sqlite":
                    self.con.interrupt()
                elif hasattr(self.con, "cancel_safe"):
                    self.con.cancel_safe(timeout=10)
                else:
                    self.con.cancel()
            except Exception:  # noqa: BLE001 - the flag still stops the next fetch
                pass

    def check_live(self) -> None:
        if self.reason:
            raise self.error(None)

    def read_next_batch(self) -> pa.RecordBatch:
        self.check_live()
        try:
            rows = self.cursor.fetchmany(self.batch_rows)
        except Exception as exc:  # noqa: BLE001 - any driver error becomes an ArchiveError
            raise self.error(exc) from None
        if not rows:
            raise StopIteration
        return to_batch(rows, self.schema, self.floats)

    def error(self, exc: BaseException | None) -> ArchiveError:
        if isinstance(exc, ArchiveError):
            return exc
        # PostgreSQL's statement_timeout (57014) or SQLite's interrupt may beat the watchdog's flag.
        server_timeout = getattr(exc, "sqlstate", None) == "57014" or (isinstance(exc, sqlite3.OperationalError) and "interrupted" in str(exc))
        if self.reason == "time_limit" or (self.time_limit and server_timeout):
            limit = f"the quick-query time limit of {self.time_limit:g} s"
            return ArchiveError("time_limit", f"the query ran longer than {limit}; submit it as a job instead", 400)
        if self.reason == "canceled":
            return ArchiveError("canceled", "the query was canceled", 409)
        return self.backend.error(exc)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        if self.timer is not None:
            WATCHDOG.cancel(self.timer)
        self.backend.ended(self)
        if self.cursor is not None:
            try:
                self.cursor.close()
            except Exception:  # noqa: BLE001 - a canceled or broken transaction may refuse CLOSE
                pass
        if self.fairy is not None:  # a late cancel request must not hit the connection's next query
            release(self.fairy, discard=self.interrupted)
