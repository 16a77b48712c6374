"""The embedded DuckDB engine: one locked-down DuckDB instance per key, and its leased connections.

Each principal (user, or the shared anonymous reader) gets its own in-memory DuckDB
instance with the public mounts attached read-only and, for a user, their own MyDB file
attached read-write as ``mydb``. Other users' MyDBs are never attached, so no SQL trick
(``duckdb_tables()``, ``query_table``) can reach them. External file access is switched off
and the configuration locked before any user SQL runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from ..errors import ArchiveError
from ..sql import quote_ident as _quote_ident
from ..sql import quote_literal as _quote_literal


@dataclass(frozen=True)
class Attachment:
    """A database file attached to an engine under ``alias``."""

    alias: str
    path: Path
    read_only: bool = True


class Engine:
    """One DuckDB instance; ``cursor()`` hands out thread-safe connections to it.

    Every connection handed out is a lease: the engine counts them, and ``on_idle`` (set by
    the engine pool) is called when the last one comes back, so an engine that was replaced
    is closed only once nothing uses it any more.
    """

    def __init__(
        self,
        attachments: list[Attachment],
        *,
        threads: int | None = None,
        memory_limit: str | None = None,
        temp_dir: Path | None = None,
        spill_dir: Path | None = None,
        pool_size: int = 8,
    ):
        config = {}
        if threads:
            config["threads"] = int(threads)
        if memory_limit:
            config["memory_limit"] = str(memory_limit)
        self._db = duckdb.connect(":memory:", config=config)
        self._lock = threading.Lock()
        self.attachments = {a.alias: a for a in attachments}
        self.temp_dir = temp_dir  # the one directory this engine's own code may read files from
        # Where DuckDB spills: its own folder, as two engines of one user may be open at once
        # (one replaced but still in use) and must not share spill files.
        self.spill_dir = spill_dir or temp_dir
        self.leases = 0
        self.on_idle = None  # called (without locks held) when the last lease comes back
        self._leased: set[duckdb.DuckDBPyConnection] = set()
        if temp_dir is not None:
            temp_dir.mkdir(parents=True, exist_ok=True)
            self._db.execute(f"SET temp_directory = {_quote_literal(str(self.spill_dir))}")
        for a in attachments:
            mode = " (READ_ONLY)" if a.read_only else ""
            try:
                self._db.execute(f"ATTACH {_quote_literal(str(a.path))} AS {_quote_ident(a.alias)}{mode}")
            except duckdb.Error as exc:
                self._db.close()
                raise ArchiveError(
                    "engine_error", f"cannot open database for {a.alias}: {exc}", 500
                ) from exc
        if temp_dir is not None:
            # Spilling to disk stays possible for big sorts while every other file access is off.
            self._db.execute(f"SET allowed_directories = [{_quote_literal(str(temp_dir))}]")
        self._db.execute("SET enable_external_access = false")
        self._db.execute("SET autoinstall_known_extensions = false")
        self._db.execute("SET autoload_known_extensions = false")
        # Progress (what job progress bars show) is a per-connection setting that the lock
        # below freezes, so a pool of connections is configured before locking.
        self._pool: list[duckdb.DuckDBPyConnection] = []
        for _ in range(max(1, pool_size)):
            con = self._db.cursor()
            con.execute("SET enable_progress_bar = true")
            con.execute("SET enable_progress_bar_print = false")
            self._pool.append(con)
        self._db.execute("SET lock_configuration = true")
        self.closed = False

    def cursor(self) -> Lease:
        """A connection to this instance for one query in one thread; ``close()`` gives it back."""
        with self._lock:
            if self.closed:
                raise ArchiveError("engine_error", "engine closed", 503)
            self.leases += 1
            pooled = bool(self._pool)
            # Pool exhausted: a plain connection works, only without progress reports.
            con = self._pool.pop() if pooled else self._db.cursor()
            self._leased.add(con)
            return Lease(self, con, pooled=pooled)

    def _give_back(self, con: duckdb.DuckDBPyConnection, pooled: bool) -> None:
        with self._lock:
            self._leased.discard(con)
            self.leases -= 1
            idle = self.leases == 0
            keep = pooled and not self.closed
            if keep:
                self._pool.append(con)
        if not keep:
            try:
                con.close()
            except duckdb.Error:
                pass
        if idle and self.on_idle is not None:
            self.on_idle(self)

    def interrupt(self) -> None:
        """Interrupt whatever runs on the connections lent out now (their holders see an error)."""
        with self._lock:
            leased = list(self._leased)
        for con in leased:
            try:
                con.interrupt()
            except duckdb.Error:
                pass

    def close(self) -> None:
        """Close the instance. DuckDB keeps it (and its files) alive while any of its connections
        is open, so its files are free once this returns only if nothing is lent out; a lent
        connection is closed when it comes back."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            cons, self._pool = self._pool, []
        for con in cons:
            try:
                con.close()
            except duckdb.Error:
                pass
        try:
            self._db.close()
        except duckdb.Error:
            pass


class Lease:
    """A pooled engine connection lent for one query; every DuckDB method passes through."""

    def __init__(self, engine: Engine, con: duckdb.DuckDBPyConnection, *, pooled: bool):
        self._engine = engine
        self._con = con
        self.con = con  # the connection itself, for hot paths that skip ``__getattr__``
        self._pooled = pooled
        self._done = False

    @property
    def engine(self) -> Engine:
        return self._engine

    def __getattr__(self, name):
        return getattr(self._con, name)

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        self._engine._give_back(self._con, self._pooled)


def memory_engine(alias: str, tables: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB holding ``tables`` in the database ``alias`` (TAP_SCHEMA's
    engine, made for one query; closing the connection ends it)."""
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH ':memory:' AS {_quote_ident(alias)}")
        for name, table in tables.items():
            con.register("_src", table)
            con.execute(f"CREATE TABLE {_quote_ident(alias)}.main.{_quote_ident(name)} AS SELECT * FROM _src")
            con.unregister("_src")
    except BaseException:
        con.close()
        raise
    return con
