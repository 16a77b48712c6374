"""The engine pool: the connections it lends of the archive's DuckDB engines, and the results they stream.

An engine is one locked-down DuckDB instance for one *key*: a user's identity, the anonymous reader, or a writable
mount. Every connection handed out is a *lease*; a lease names the databases it needs and gets the newest engine that
has all of them as the key's spec says. Which engines live, and when they are replaced and closed, is
``lifecycle.EngineLifecycle``'s; the pool lends under its lock and reads its current engines directly (the fast path).
The keys are the archive's (``engines.Specs``); ``engine``, ``mount_engine`` and ``context_engine``
name them as ``EngineRef``s, which lease when asked for a cursor: a ``Lease`` of an ``Engine``.
"""

from __future__ import annotations

import functools
import heapq
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from ..catalog.model import MYDB_ALIAS, ContextRef, Mount, Principal
from ..errors import ArchiveError, held_elsewhere
from ..languages import DEFAULT_LANGUAGE
from .engines import Attachment, Specs, engine_error, open_instance
from .lifecycle import EngineLifecycle, Generation

# duckdb: imported where used, so a server at rest does not hold it (~12 MB) before its first query
if TYPE_CHECKING:
    import duckdb
    from ..catalog.namespace import Namespace

BUILT_IN = frozenset({"memory", "system", "temp"})  # catalogs every DuckDB instance has: a lease never needs them from a spec
_DEFAULT = object()


class Engine:
    """One locked-down DuckDB instance (``engines.open_instance``); ``cursor()`` hands out
    thread-safe connections to it.

    Every connection handed out is a lease: the engine counts them, and ``on_idle`` (set by
    the lifecycle when it replaces the engine) is called when the last one comes back, so an
    engine that was replaced is closed only once nothing uses it any more.
    """

    def __init__(self, attachments: list[Attachment], *, temp_dir: Path | None = None, spill_dir: Path | None = None, storage=None, **options):
        self.attachments = {a.alias: a for a in attachments}
        self.storage = storage  # ``storage.Storage``: what writes on it may take of the disk
        self.temp_dir = temp_dir  # the one directory this engine's own code may read files from
        # Where DuckDB spills: its own folder, as two engines of one user may be open at once
        # (one replaced but still in use) and must not share spill files.
        self.spill_dir = spill_dir or temp_dir
        self._db, self._pool = open_instance(attachments, temp_dir=temp_dir, spill_dir=self.spill_dir, **options)
        self._lock = threading.Lock()
        self.leases, self.closed = 0, False
        self.idle_since = time.monotonic()  # when the last lease came back (the lifecycle closes long-idle engines)
        self.on_idle = None  # once replaced: called (without locks held) when the last lease comes back
        self._leased: set[duckdb.DuckDBPyConnection] = set()

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
        import duckdb
        with self._lock:
            self._leased.discard(con)
            self.leases -= 1
            idle = self.leases == 0
            if idle:
                self.idle_since = time.monotonic()
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
        import duckdb
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
        import duckdb
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


class EngineRef:
    """An engine as a caller asks for it: whose, and which databases it must have.

    ``cursor()`` leases a connection from the engine pool at that moment, of an engine that has
    ``needs`` (aliases; None: every database of the key) attached as they are now.
    """

    def __init__(self, pool: EnginePool, key: Hashable, needs: Iterable[str] | None, pinned: Engine | None = None):
        self._pool = pool
        self.key = key
        self.needs = None if needs is None else frozenset(needs)
        self._pinned = pinned

    @property
    def temp_dir(self) -> Path:
        """The one directory the engine may read: uploads go here."""
        return self._pool.specs.temp_dir(self.key)

    def cursor(self, *, timeout: float | None | object = _DEFAULT, cancel: threading.Event | None = None) -> Lease:
        """A leased connection; ``timeout`` bounds a wait for a database still held by an engine
        being replaced (default: the quick-query time limit; None with ``cancel``: a job's wait)."""
        return self._pool._lease_for(self, timeout, cancel)


class EnginePool:
    """Owns every engine: hands out leases (``lease``), follows spec changes (``refresh``),
    ends a key (``discard``) and closes each engine once nothing uses it.

    ``users(name)`` is a user's principal now (None once deleted: see ``engines.Specs``);
    ``running_jobs(identity)`` the ids of a user's running jobs (named when one holds a database a query waits for);
    ``idle_seconds``: how long an engine nobody leases stays open (None: until replaced)."""

    def __init__(
        self,
        namespace: Namespace,
        data_dir: Path,
        *,
        users: Callable[[str], Principal | None],
        running_jobs: Callable[[str], list[int]],
        wait: float | None = 30.0, threads: int | None = None,
        limits: dict[str, str | None] | None = None,  # open_instance's memory_limit and spill_limit
        connections: int = 8,
        idle_seconds: float | None = None, most_open: int = 0, resting: float = 10.0,  # when engines close (``EngineLifecycle``)
        storage=None,  # storage.Storage: bounds the disk its engines' writes take
    ):
        self.specs = Specs(namespace, data_dir, users)  # what each key's engine attaches
        self._running_jobs = running_jobs
        self._wait = wait  # how long a lease waits by default: the quick-query time limit
        make = functools.partial(Engine, threads=threads, pool_size=connections, storage=storage, **(limits or {}))
        self._life = EngineLifecycle(self.specs, make, idle_seconds=idle_seconds, most_open=most_open, resting=resting)
        if storage is not None:
            storage.renew = self._life.renew  # a file a failed write left stale is shrunk by an engine of its own

    # -- which engine -----------------------------------------------------------------------------
    def engine(self, principal: Principal, needs: Iterable[str] | None = None) -> EngineRef:
        """The principal's engine: MyDB read-write (for a user) and the mounts they may read."""
        key = ("anonymous",) if principal.anonymous else ("user", principal.name, principal.uid or principal.name)
        return EngineRef(self, key, needs)

    def mount_engine(self, mount: Mount) -> EngineRef:
        """The one engine that holds a writable mount's file read-write (DuckDB allows only one),
        with the read-only mounts beside it; every query touching that mount runs here."""
        if mount.engine_file is None:
            raise ArchiveError("bad_request", f"{mount.context} is a SQL server: change its data with SQL queries")
        return EngineRef(self, ("mount", mount.alias), {mount.alias})

    def context_engine(self, principal: Principal, ref: ContextRef) -> EngineRef:
        """The engine holding a context's database for writing: the principal's for MyDB, a
        writable mount's own engine for that mount."""
        if ref.mount is not None and not ref.mount.read_only:
            return self.mount_engine(ref.mount)
        return self.engine(principal, {ref.alias})

    def _lease_for(self, ref: EngineRef, timeout, cancel: threading.Event | None) -> Lease:
        if timeout is _DEFAULT:
            timeout = self._wait
        try:
            return self.lease(ref.key, ref.needs, pinned=ref._pinned, timeout=timeout, cancel=cancel)
        except ArchiveError as exc:
            held = exc.details.get("held")
            if held and ref.key[0] == "user":
                raise self._held_error(ref.key, held) from None
            raise

    def _held_error(self, key, held: list[str]) -> ArchiveError:
        """Who holds a user's database that a query waited for in vain, in the user's words."""
        names = ", ".join("your MyDB" if a == MYDB_ALIAS else a for a in held)
        jobs = self._running_jobs(key[2])
        by = f"your running job {', '.join(str(j) for j in jobs)}" if jobs else "a result of yours still being read"
        return ArchiveError(
            "conflict",
            f"{names} is still held by {by}, which began before the mounts changed; "
            "a query joining it with the changed mounts can run once that ends",
            409,
            details={"held": held, "jobs": list(jobs)},
        )

    # -- leases ---------------------------------------------------------------------------------
    def lease(
        self,
        key: Hashable,
        needs: Iterable[str] | None = None,
        *,
        pinned: Engine | None = None,
        timeout: float | None = 30.0,
        cancel: threading.Event | None = None,
    ) -> Lease:
        """A connection of an engine of ``key`` that has the databases ``needs`` (aliases; None:
        all of the spec) attached as the spec says now. ``pinned``: of that engine only (one
        holding tables made for this request). Waits up to ``timeout`` seconds (None: until
        ``cancel`` is set) when a needed file is still held by an engine being replaced."""
        need = None if needs is None else frozenset(needs) - BUILT_IN
        deadline = None if timeout is None else time.monotonic() + timeout
        life = self._life
        with life.cond:
            while True:
                if life.closed:
                    raise ArchiveError("engine_error", "the archive is shutting down", 503)
                gen = self._fast(key, need) if pinned is None else None
                if gen is None:
                    gen, blocked = life.choose(key, need, pinned)
                if gen is not None:
                    return gen.engine.cursor()
                if cancel is not None and cancel.is_set():
                    raise ArchiveError("canceled", "canceled while waiting for the engine", 409)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise held_elsewhere(blocked)
                if cancel is not None:
                    left = 0.25 if left is None else min(left, 0.25)  # look at the cancel signal now and then
                life.cond.wait(left)  # woken when an engine closes or the mounts change

    def _fast(self, key: Hashable, need: frozenset[str] | None) -> Generation | None:
        # The common case without asking for the spec: a complete engine, checked since the last change.
        gen = self._life.current.get(key)
        if gen is None or gen.version != self._life.version or gen.missing:
            return None
        if need is not None and not need <= gen.engine.attachments.keys():
            return None
        return gen

    # -- the lifecycle's (off the hot path) ---------------------------------------------------------
    def refresh(self) -> None:
        """The specs may have changed (a mount came or went): replace the engines that differ."""
        self._life.refresh()

    def discard(self, key: Hashable, cleanup: Callable[[], None] | None = None) -> None:
        """End a key (a deleted user); ``cleanup`` runs once its last engine has closed."""
        self._life.discard(key, cleanup)

    def lease_holding(self, path: Path) -> tuple[Lease, str] | None:
        """A lease of a live engine that has the file ``path`` attached, and its alias there (or None)."""
        return self._life.holding(path)

    def engines(self, key: Hashable | None = None) -> list[Engine]:
        """The live engines (of one key), newest first."""
        return self._life.engines(key)

    def clear(self) -> None:
        """Close every engine now, in use or not (the archive is stopping)."""
        self._life.clear()


# -- what a lease streams: the result, and the watchdog of its time limit -------------------------

ROWS_AFFECTED = "Rows Affected"


class Watchdog:
    """One thread that fires callbacks at deadlines: the quick-query time limits.

    A thread per query (``threading.Timer``) costs milliseconds to start under load;
    this costs a heap push.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._canceled: set[int] = set()
        self._seq = 0
        self._thread: threading.Thread | None = None

    def schedule(self, delay: float, callback: Callable[[], None]) -> int:
        with self._cond:
            self._seq += 1
            entry = (time.monotonic() + delay, self._seq, callback)
            earliest = not self._heap or entry < self._heap[0]
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="archive-watchdog", daemon=True)
                self._thread.start()
            if earliest:
                # Only a new earliest deadline changes when the thread must wake; waking it for
                # every query would make it fight the query's thread for the GIL.
                self._cond.notify()
            return self._seq

    def cancel(self, handle: int) -> None:
        with self._cond:
            self._canceled.add(handle)
            if len(self._canceled) > 1024 and 2 * len(self._canceled) > len(self._heap):
                # Canceled entries wait in the heap until their deadline; drop them in bulk.
                self._heap = [e for e in self._heap if e[1] not in self._canceled]
                heapq.heapify(self._heap)
                self._canceled.clear()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                when, handle, callback = self._heap[0]
                now = time.monotonic()
                if handle in self._canceled:
                    heapq.heappop(self._heap)
                    self._canceled.discard(handle)
                    continue
                if when > now:
                    self._cond.wait(when - now)
                    continue
                heapq.heappop(self._heap)
            try:
                callback()
            except Exception:  # noqa: BLE001 - a failed interrupt must not stop the watchdog
                pass


WATCHDOG = Watchdog()
SMALL_BYTES = 256 * 1024


class QueryResult:
    """A running query's rows: schema known, batches pulled on demand, closed at the end. ``truncated`` is known
    before the first byte is sent: with a row limit the rows (at most ``row_limit + 1``) are read up front, in
    bounded memory (``spool.hold``)."""

    def __init__(
        self,
        schema: pa.Schema,
        prefetched: list[pa.RecordBatch],
        reader: pa.RecordBatchReader | None,
        *,
        truncated: bool = False,
        rows_affected: int | None = None,
        on_close: Callable[[], None] | None = None,
        check_interrupt: Callable[[BaseException], ArchiveError] | None = None,
    ):
        self.schema = schema
        self.truncated = truncated
        self.rows_affected = rows_affected
        self._prefetched = prefetched
        self._reader = reader
        self._on_close = on_close
        self._check = check_interrupt or engine_error
        self.rows_sent = 0
        self.closed = False

    def batches(self) -> Iterator[pa.RecordBatch]:
        import duckdb
        try:
            while self._prefetched:
                b = self._prefetched.pop(0)
                self.rows_sent += b.num_rows
                yield b.cast(self.schema) if b.schema != self.schema else b
            if self._reader is not None:
                while True:
                    try:
                        b = self._reader.read_next_batch()
                    except StopIteration:
                        break
                    except duckdb.Error as exc:
                        raise self._check(exc) from None
                    except pa.ArrowException as exc:
                        raise self._check(exc) from None
                    self.rows_sent += b.num_rows
                    yield b.replace_schema_metadata(None).cast(self.schema) if b.schema != self.schema else b
        finally:
            self.close()

    @property
    def complete(self) -> bool:
        """All rows are already fetched: nothing more to pull from the engine."""
        return self._reader is None

    @property
    def small(self) -> bool:
        """All rows are fetched and few (at most ``SMALL_BYTES`` of Arrow): encoded in one go, cheaper than streamed. Buffer
        sizes are summed first: exact for batches owning their buffers, ~50x cheaper than ``nbytes`` (~30 µs at 18 columns)."""
        return self._reader is None and (sum(b.get_total_buffer_size() for b in self._prefetched) <= SMALL_BYTES
                                         or sum(b.nbytes for b in self._prefetched) <= SMALL_BYTES)  # fmt: skip

    def to_table(self) -> pa.Table:
        """All rows at once; for small results (tests, widgets), never for exports."""
        return pa.Table.from_batches(list(self.batches()), schema=self.schema)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._prefetched = []
        if self._reader is not None:
            try:
                self._reader.close()
            except Exception:  # noqa: BLE001 - closing after an engine error may fail again
                pass
        on_close, self._on_close = self._on_close, None  # once; and no cycle stays (the history's entry holds the result)
        if on_close:
            on_close()

    def also_on_close(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the result closes, after what already runs then (e.g. drop uploads)."""
        before = self._on_close

        def both():
            try:
                if before:
                    before()
            finally:
                fn()
        self._on_close = both

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def recorded(query: Callable[..., QueryResult]) -> Callable[..., QueryResult]:
    """Hand each quick query to ``self.history`` (a deque, ``core.history``) when its result closes or it fails, or to
    the caller's ``history=`` (a callable; None: a query the archive runs for itself, not a user's: listed nowhere); no
    result (``Queries.lookup`` declining: the query runs next) is not. Here, so a quick query's walk crosses no module more."""
    @functools.wraps(query)
    def run(self, principal: Principal, text: str, language: str = DEFAULT_LANGUAGE, *, history=_DEFAULT, **options) -> QueryResult:
        if (record := self.history.append if history is _DEFAULT else history) is None:
            return query(self, principal, text, language, **options)
        began = time.time()
        try:
            result = query(self, principal, text, language, **options)
        except Exception as exc:
            record((principal, text, language, options, began, time.time(), exc))
            raise
        if result is not None:
            result.also_on_close(functools.partial(record, (principal, text, language, options, began, time.time(), result)))
        return result

    return run


def rows_affected_result(count: int) -> QueryResult:
    batch = pa.record_batch([pa.array([count], pa.int64())], names=[ROWS_AFFECTED])
    return QueryResult(batch.schema, [batch], None, rows_affected=count)
