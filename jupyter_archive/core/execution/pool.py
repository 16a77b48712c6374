"""The engine pool: every DuckDB engine of the archive, the connections it lends, and its lifecycle.

An engine is one locked-down DuckDB instance for one *key*: a user's identity, the anonymous
reader, or a writable mount. What a key should have attached, its *spec* (a user's MyDB
read-write, the mounts they may read), changes when mounts change or the user is deleted.
A locked instance cannot attach more files, and DuckDB lets only one instance of a process
hold a file read-write, so a changed spec means a new engine, made safely:

- every connection handed out is a *lease*, and an engine is closed only once it has been
  replaced (or its user deleted) *and* its last lease has come back: nothing closes an engine
  under a running job, a streamed result or an upload;
- a new engine attaches only files that no live engine holds in a conflicting mode. A file
  still held by a replaced engine (a user's MyDB under a long job) is left out, and the new
  engine, *incomplete*, is itself replaced by a complete one as soon as the file is free;
- a lease names the databases it needs and gets the newest engine that has all of them as
  the spec says; a replaced engine goes on serving what it has unchanged (the user's MyDB
  while their job runs). Only a lease needing a file that is still held elsewhere waits,
  bounded. Engines are handed out whole: no caller ever sees one being swapped.

The keys are the archive's (``engines.Specs``); ``engine``, ``mount_engine`` and ``context_engine``
name them as ``EngineRef``s, which lease when asked for a cursor: a ``Lease`` of an ``Engine``.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from ..catalog.model import MYDB_ALIAS, ContextRef, Mount, Principal
from ..errors import ArchiveError, not_found
from .engines import Attachment, EngineSpec, Specs, describe, open_instance

if TYPE_CHECKING:
    from ..catalog.namespace import Namespace

log = logging.getLogger(__name__)

# Catalogs every DuckDB instance has; a lease never needs them from a spec.
BUILT_IN = frozenset({"memory", "system", "temp"})
_DEFAULT = object()


class Engine:
    """One locked-down DuckDB instance (``engines.open_instance``); ``cursor()`` hands out
    thread-safe connections to it.

    Every connection handed out is a lease: the engine counts them, and ``on_idle`` (set by
    the engine pool) is called when the last one comes back, so an engine that was replaced
    is closed only once nothing uses it any more.
    """

    def __init__(self, attachments: list[Attachment], *, temp_dir: Path | None = None, spill_dir: Path | None = None, **options):
        self.attachments = {a.alias: a for a in attachments}
        self.temp_dir = temp_dir  # the one directory this engine's own code may read files from
        # Where DuckDB spills: its own folder, as two engines of one user may be open at once
        # (one replaced but still in use) and must not share spill files.
        self.spill_dir = spill_dir or temp_dir
        self._db, self._pool = open_instance(attachments, temp_dir=temp_dir, spill_dir=self.spill_dir, **options)
        self._lock = threading.Lock()
        self.leases = 0
        self.on_idle = None  # called (without locks held) when the last lease comes back
        self._leased: set[duckdb.DuckDBPyConnection] = set()
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


@dataclass(eq=False)
class _Generation:
    """One engine of a key, as the pool tracks it."""

    key: Hashable
    engine: Engine
    spec: EngineSpec
    version: int  # the pool's mount version the spec was checked against
    missing: frozenset[str] = frozenset()  # aliases left out: their files were held elsewhere
    retired: bool = False
    files: dict[Path, bool] = field(default_factory=dict)  # resolved path -> attached read-only

    def serves(self, need: Iterable[str], want: dict[str, Attachment]) -> bool:
        have = self.engine.attachments
        return all(have.get(a) == want[a] for a in need)


class EnginePool:
    """Owns every engine: hands out leases (``lease``), follows spec changes (``refresh``),
    ends a key (``discard``) and closes each engine once nothing uses it.

    ``users(name)`` is a user's principal now (None once deleted: see ``engines.Specs``);
    ``running_jobs(identity)`` the ids of a user's running jobs (named when one holds a database a query waits for)."""

    def __init__(
        self,
        namespace: Namespace,
        data_dir: Path,
        *,
        users: Callable[[str], Principal | None],
        running_jobs: Callable[[str], list[int]],
        wait: float | None = 30.0,
        threads: int | None = None,
        memory_limit: str | None = None,
        connections: int = 8,
    ):
        self.specs = Specs(namespace, data_dir, users)  # what each key's engine attaches
        self._running_jobs = running_jobs
        self._wait = wait  # how long a lease waits by default: the quick-query time limit
        self._options = {"threads": threads, "memory_limit": memory_limit, "pool_size": connections}
        self._cond = threading.Condition()
        self._current: dict[Hashable, _Generation] = {}
        self._retired: list[_Generation] = []
        self._cleanups: dict[Hashable, list[Callable[[], None]]] = {}
        self._version = 0
        self._serial = 0
        self._closed = False

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
        with self._cond:
            while True:
                if self._closed:
                    raise ArchiveError("engine_error", "the archive is shutting down", 503)
                gen = self._fast(key, need) if pinned is None else None
                if gen is None:
                    gen, blocked = self._choose(key, need, pinned)
                if gen is not None:
                    return gen.engine.cursor()
                if cancel is not None and cancel.is_set():
                    raise ArchiveError("canceled", "canceled while waiting for the engine", 409)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise _busy(blocked)
                if cancel is not None:
                    left = 0.25 if left is None else min(left, 0.25)  # look at the cancel signal now and then
                self._cond.wait(left)  # woken when an engine closes or the mounts change

    def _fast(self, key: Hashable, need: frozenset[str] | None) -> _Generation | None:
        # The common case without asking for the spec: a complete engine, checked since the last change.
        gen = self._current.get(key)
        if gen is None or gen.version != self._version or gen.missing:
            return None
        if need is not None and not need <= gen.engine.attachments.keys():
            return None
        return gen

    def _choose(self, key, need, pinned) -> tuple[_Generation | None, frozenset[str]]:
        spec = self.specs.spec(key)
        if spec is None:
            self._end(key)
            raise not_found(f"{describe(key)} no longer exists")
        want = spec.by_alias()
        need = frozenset(want) if need is None else need
        unknown = need - want.keys()
        if unknown:
            raise ArchiveError(
                "conflict",
                f"the mounts changed while the query was prepared ({', '.join(sorted(unknown))} is gone); run it again",
                409,
            )
        if pinned is not None:
            gens = [g for g in self._live(key) if g.engine is pinned]
            if gens and gens[0].serves(need, want):
                return gens[0], frozenset()
            if gens and not gens[0].retired and need & gens[0].missing:
                raise _busy(need & gens[0].missing)
            raise ArchiveError("conflict", "the mounts changed while the request was prepared; send it again", 409)
        current = self._current_for(key, spec)
        for gen in [current, *reversed([g for g in self._retired if g.key == key])]:
            if gen.serves(need, want):
                return gen, frozenset()
        blocked = need & current.missing
        if not blocked:
            raise ArchiveError("conflict", "the mounts changed while the query was prepared; run it again", 409)
        return None, blocked

    def _current_for(self, key: Hashable, spec: EngineSpec) -> _Generation:
        """The key's newest engine, replaced first if its spec changed or if it is incomplete and
        the files it lacks are free now."""
        gen = self._current.get(key)
        if gen is not None and gen.spec != spec:
            self._retire(gen)
            gen = None
        if gen is not None and gen.missing and not self._conflicts(spec, [a for a in spec.attachments if a.alias in gen.missing]):
            self._retire(gen)
            gen = None
        if gen is None:
            gen = self._open(key, spec)
        gen.version = self._version
        return gen

    def _open(self, key: Hashable, spec: EngineSpec) -> _Generation:
        held = self._conflicts(spec, spec.attachments)
        attach = [a for a in spec.attachments if a.alias not in held]
        self._serial += 1
        engine = Engine(
            attach,
            temp_dir=spec.temp_dir,
            spill_dir=spec.temp_dir / f".spill-{self._serial}",
            **self._options,
        )
        gen = _Generation(key, engine, spec, self._version, frozenset(held),
                          files={_real(a.path): a.read_only for a in attach})  # fmt: skip
        # Only a replaced engine has anything to do when idle: the others skip the pool's lock.
        engine.on_idle = lambda _engine, gen=gen: gen.retired and self._idle(gen)
        self._current[key] = gen
        if held:
            log.info("engine %s opened without %s: still held by an engine being replaced", key, ", ".join(sorted(held)))
        return gen

    def _conflicts(self, spec: EngineSpec, attachments: Iterable[Attachment]) -> set[str]:
        """Aliases whose files a live engine holds so that attaching them here would fail:
        a file held read-write anywhere, or wanted read-write here and held at all."""
        holders: dict[Path, bool] = {}  # path -> held read-only only
        for gen in self._live():
            for path, read_only in gen.files.items():
                holders[path] = holders.get(path, True) and read_only
        return {
            a.alias
            for a in attachments
            if (ro := holders.get(_real(a.path))) is not None and not (ro and a.read_only)
        }

    def _live(self, key: Hashable | None = None) -> list[_Generation]:
        gens = [*self._current.values(), *self._retired]
        return gens if key is None else [g for g in gens if g.key == key]

    # -- changes ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """The specs may have changed (a mount came or went): replace the engines that differ.
        Those still in use go on serving their holders and close when the last one is done."""
        with self._cond:
            self._version += 1
            for key, gen in list(self._current.items()):
                spec = self.specs.spec(key)
                if spec is None:
                    self._end(key)
                elif spec != gen.spec:
                    self._retire(gen)
                else:
                    gen.version = self._version
            self._cond.notify_all()

    def discard(self, key: Hashable, cleanup: Callable[[], None] | None = None) -> None:
        """End a key (a deleted user): its engines get no new leases, what runs on them is
        interrupted, and ``cleanup`` runs once the last of them has closed (at once if none is open)."""
        with self._cond:
            gens = self._end(key)
            if cleanup is not None:
                if any(not g.engine.closed for g in gens):
                    self._cleanups.setdefault(key, []).append(cleanup)
                else:
                    cleanup()
        for gen in gens:
            gen.engine.interrupt()

    def _end(self, key: Hashable) -> list[_Generation]:
        gen = self._current.get(key)
        if gen is not None:
            self._retire(gen)
        return [g for g in self._retired if g.key == key]

    def _retire(self, gen: _Generation) -> None:
        if self._current.get(gen.key) is gen:
            del self._current[gen.key]
        if not gen.retired:
            gen.retired = True
            self._retired.append(gen)
        if gen.engine.leases == 0:
            self._close(gen)

    def _idle(self, gen: _Generation) -> None:
        with self._cond:
            # Re-checked here: a lease may have been given out again since the count hit zero.
            if gen.retired and gen.engine.leases == 0:
                self._close(gen)

    def _close(self, gen: _Generation) -> None:
        gen.engine.close()
        if gen in self._retired:
            self._retired.remove(gen)
        shutil.rmtree(gen.engine.spill_dir, ignore_errors=True)
        if not self._live(gen.key):
            for cleanup in self._cleanups.pop(gen.key, []):
                try:
                    cleanup()
                except Exception:  # noqa: BLE001 - a failed clean-up must not stop the others
                    log.exception("clean-up after engine %s failed", gen.key)
        self._cond.notify_all()

    def lease_holding(self, path: Path) -> tuple[Lease, str] | None:
        """A lease of a live engine that has the file ``path`` attached, and its alias there;
        None if no engine holds it (then another instance may open it read-only)."""
        real = _real(path)
        with self._cond:
            for gen in self._live():
                for alias, a in gen.engine.attachments.items():
                    if _real(a.path) == real and not gen.engine.closed:
                        return gen.engine.cursor(), alias
        return None

    # -- inspection and shutdown ---------------------------------------------------------------------
    def engines(self, key: Hashable | None = None) -> list[Engine]:
        """The live engines (of one key), newest first."""
        with self._cond:
            return [g.engine for g in reversed(self._live(key))]

    def clear(self) -> None:
        """Close every engine now, in use or not (the archive is stopping)."""
        with self._cond:
            self._closed = True
            gens = self._live()
            self._current, self._retired = {}, []
            self._cond.notify_all()
        for gen in gens:
            gen.engine.interrupt()
            gen.engine.close()


def _busy(aliases: Iterable[str]) -> ArchiveError:
    names = ", ".join(sorted(aliases))
    return ArchiveError(
        "conflict",
        f"{names} is still held by work that began before the mounts changed (a running job or a result "
        "being read); the query can run once that ends",
        409,
        details={"held": sorted(aliases)},
    )


def _real(path: Path) -> Path:
    return Path(path).resolve()
