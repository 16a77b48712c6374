"""DuckDB engines as the archive makes them: what each key's engine attaches (its spec), a
locked-down instance, the engines' lifecycle, TAP_SCHEMA's in-memory engine, and the one mapping
of DuckDB's errors.

Each principal (user, or the shared anonymous reader) gets its own in-memory DuckDB
instance with the public mounts attached read-only and, for a user, their own MyDB file
attached read-write as ``mydb``. Other users' MyDBs are never attached, so no SQL trick
(``duckdb_tables()``, ``query_table``) can reach them. External file access is switched off
and the configuration locked before any user SQL runs. ``EngineLifecycle`` opens, replaces
and closes them; the engine pool (``pool``) lends their connections.
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

import pyarrow as pa

from ..catalog.model import MYDB_ALIAS, Principal
from ..errors import ArchiveError, disk_full, held_elsewhere, not_found, short_of_memory, write_conflict
from ..memory import release_memory
from ..sql import quote_ident as _quote_ident
from ..sql import quote_literal as _quote_literal
from ..sql.bounds import MARK as BOUND_MARK  # a guard's error, a 400

# duckdb: imported where used, so a server at rest does not hold it (~12 MB) before its first query
if TYPE_CHECKING:
    import duckdb
    from ..catalog.namespace import Namespace
    from .pool import Engine, Lease

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attachment:
    """A database file attached to an engine under ``alias``."""

    alias: str
    path: Path
    read_only: bool = True


@dataclass(frozen=True)
class EngineSpec:
    """What one key's engine should be: its attachments, its temp dir (where it may write) and the
    directories it may read: the temp dir and the roots of the HATS mounts its key can see."""

    attachments: tuple[Attachment, ...]
    temp_dir: Path
    read_dirs: tuple[Path, ...] = ()

    def by_alias(self) -> dict[str, Attachment]:
        return {a.alias: a for a in self.attachments}


class Specs:
    """What each key's engine should have attached: ``("user", name, identity)`` their MyDB
    read-write and the mounts they may read, ``("anonymous",)`` the public mounts, ``("mount",
    alias)`` a writable mount's file read-write beside the read-only mounts.

    ``users(name)`` is a user's principal now (None once deleted)."""

    def __init__(self, namespace: Namespace, data_dir: Path, users: Callable[[str], Principal | None]):
        self._namespace = namespace
        self._data_dir = Path(data_dir)
        self._users = users

    def spec(self, key) -> EngineSpec | None:
        """What a key's engine should have attached now; None once the user or mount is gone."""
        ns = self._namespace
        temp = self.temp_dir(key)
        if key[0] == "anonymous":
            return EngineSpec(tuple(self._read_only_attachments(anonymous=True)), temp, self._hats_roots(anonymous=True))
        if key[0] == "user":
            principal = self._users(key[1])
            if principal is None or principal.ident != key[2]:
                return None
            mydb = Attachment(MYDB_ALIAS, ns.mydb_path(principal), read_only=False)
            return EngineSpec((*self._read_only_attachments(), mydb), temp, self._hats_roots(owner=principal.ident))
        mount = next((m for m in ns.mounts() if m.alias == key[1]), None)
        if mount is None or mount.read_only or mount.engine_file is None or mount.alias in ns.backends:
            return None
        own = Attachment(mount.alias, mount.engine_file, read_only=False)
        return EngineSpec((own, *self._read_only_attachments()), temp, self._hats_roots())

    def _hats_roots(self, *, anonymous: bool = False, owner: str = "") -> tuple[Path, ...]:
        """The HATS mounts' directories an engine may read: those its key can see (as ``visible_mounts``)."""
        return tuple(sorted(
            m.location.resolve() for m in self._namespace.mounts()
            if m.kind == "hats" and (m.public or not anonymous) and (not m.owner or m.owner == owner)
        ))  # fmt: skip

    def _read_only_attachments(self, *, anonymous: bool = False) -> list[Attachment]:
        return [
            Attachment(m.alias, m.engine_file, read_only=True)
            for m in self._namespace.mounts()
            if m.engine_file is not None and m.read_only and (m.public or not anonymous)
        ]

    def temp_dir(self, key) -> Path:
        """A key's temp dir: the one directory its engine may read (uploads are staged there)."""
        if key[0] == "anonymous":
            name = "_anonymous"
        elif key[0] == "user":
            name = Principal(key[1], uid=key[2]).home
        else:
            name = "_mount_" + key[1]
        return self._data_dir / "tmp" / name


def describe(key) -> str:
    """A key in words: whose engine it is."""
    if key[0] == "user":
        return f"user {key[1]!r}"
    return f"the writable mount {key[1]}" if key[0] == "mount" else "the anonymous reader"


def open_instance(
    attachments: list[Attachment],
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    spill_limit: str | None = None,
    temp_dir: Path | None = None,
    spill_dir: Path | None = None,
    read_dirs: Iterable[Path] = (),
    pool_size: int = 8,
) -> tuple[duckdb.DuckDBPyConnection, list[duckdb.DuckDBPyConnection]]:
    """A new DuckDB instance with ``attachments`` attached, every file access but ``temp_dir``
    (where it spills, in ``spill_dir``, at most ``spill_limit``) and ``read_dirs`` switched off and its configuration locked; and
    ``pool_size`` connections to it, configured before the lock."""
    import duckdb
    config = {"threads": int(threads)} if threads else {}
    if memory_limit:
        config["memory_limit"] = str(memory_limit)
    db = duckdb.connect(":memory:", config=config)
    try:  # each instance (one per user) starts 8 I/O threads for remote files, which engines never read
        db.execute("SET async_threads = 1")
    except duckdb.Error:  # a DuckDB without the setting
        pass
    if temp_dir is not None:
        temp_dir.mkdir(parents=True, exist_ok=True)
        db.execute(f"SET temp_directory = {_quote_literal(str(spill_dir))}")
        if spill_limit:  # DuckDB's default is 90% of the free disk, for every user's engine
            db.execute(f"SET max_temp_directory_size = {_quote_literal(str(spill_limit))}")
    for a in attachments:
        mode = " (READ_ONLY)" if a.read_only else ""
        try:
            db.execute(f"ATTACH {_quote_literal(str(a.path))} AS {_quote_ident(a.alias)}{mode}")
        except duckdb.Error as exc:
            db.close()
            raise ArchiveError(
                "engine_error", f"cannot open database for {a.alias}: {exc}", 500
            ) from exc
    if temp_dir is not None:
        # Spilling to disk stays possible for big sorts, and the HATS files the key may see readable,
        # while every other file access is off.
        dirs = [str(temp_dir), *(str(d).rstrip("/") + "/" for d in read_dirs)]
        db.execute(f"SET allowed_directories = [{', '.join(_quote_literal(d) for d in dirs)}]")
        if len(dirs) > 1:  # HATS files, read by query after query: their footers are kept (checked against the file's time)
            db.execute("SET parquet_metadata_cache = true")
    db.execute("SET enable_external_access = false")
    db.execute("SET autoinstall_known_extensions = false")
    db.execute("SET autoload_known_extensions = false")
    # Progress (what job progress bars show) is a per-connection setting that the lock
    # below freezes, so a pool of connections is configured before locking.
    connections: list[duckdb.DuckDBPyConnection] = []
    for _ in range(max(1, pool_size)):
        con = db.cursor()
        con.execute("SET enable_progress_bar = true")
        con.execute("SET enable_progress_bar_print = false")
        connections.append(con)
    db.execute("SET lock_configuration = true")
    return db, connections


def memory_engine(alias: str, tables: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB holding ``tables`` in the database ``alias`` (TAP_SCHEMA's
    engine, made for one query; closing the connection ends it)."""
    import duckdb
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


def engine_error(exc: Exception) -> ArchiveError:
    """Turn a DuckDB exception into an ArchiveError whose message names the problem."""
    import duckdb
    text = str(exc).strip()
    # DuckDB appends "LINE n: <engine SQL>" with a caret; that SQL is ours, not the user's.
    first = text.split("\nLINE ", 1)[0].strip()
    kind = type(exc).__name__
    if isinstance(exc, (duckdb.IOException, duckdb.InvalidInputException)) and "/dataset/Norder=" in first:
        from ..backends.hats import changed_on_disk  # only when a HATS partition file failed: not on the quick path

        if (changed := changed_on_disk(first)) is not None:
            return changed
    if isinstance(exc, duckdb.InvalidInputException) and f"Error: {BOUND_MARK}" in first:
        return ArchiveError("too_large", first.split(f"Error: {BOUND_MARK}", 1)[1], 400)
    if isinstance(exc, duckdb.PermissionException):
        return ArchiveError("permission", f"not allowed: {first}", 403)
    if isinstance(exc, duckdb.ParserException):
        return ArchiveError("syntax_error", first, 400)
    if isinstance(exc, (duckdb.BinderException, duckdb.CatalogException)):
        return ArchiveError("invalid_query", first, 400)
    if isinstance(exc, duckdb.OutOfMemoryException) or "std::bad_alloc" in first:  # at the memory cap, also an INTERNAL Error
        what = "disk to spill to" if "max_temp_directory_size" in first else "memory"  # DuckDB's advice is settings users cannot set
        return ArchiveError("too_large", f"the query needs more {what} than the archive allows: {'an allocation failed' if 'bad_alloc' in first else first.splitlines()[0]}", 400)
    if (trouble := short_of_memory() if isinstance(exc, MemoryError) else disk_full(exc)) is not None:
        return trouble  # Arrow's MemoryError: another query holds the memory, most likely; or a write found no room
    if isinstance(exc, duckdb.TransactionException):  # e.g. two writes of one table at once: the later one fails
        return write_conflict(first)
    if isinstance(exc, (
        duckdb.ConversionException, duckdb.InvalidInputException, duckdb.OutOfRangeException, duckdb.ConstraintException,
        duckdb.NotImplementedException, duckdb.TypeMismatchException, duckdb.DependencyException, duckdb.ProgrammingError,
    )):  # fmt: skip
        return ArchiveError("invalid_query", first, 400)
    return ArchiveError("engine_error", f"{kind}: {first}", 500)


# -- the lifecycle: which engine of each key lives ------------------------------------------------


@dataclass(eq=False)
class Generation:
    """One engine of a key, as the lifecycle tracks it."""

    key: Hashable
    engine: Engine
    spec: EngineSpec
    version: int  # the lifecycle's version the spec was checked against
    missing: frozenset[str] = frozenset()  # aliases left out: their files were held elsewhere
    retired: bool = False
    files: dict[Path, bool] = field(default_factory=dict)  # resolved path -> attached read-only

    def serves(self, need: Iterable[str], want: dict[str, Attachment]) -> bool:
        have = self.engine.attachments
        return all(have.get(a) == want[a] for a in need)


class EngineLifecycle:
    """Every engine of the archive, by key: opened for its spec when first leased, replaced when the spec changes (or
    ``renew`` asks), closed once replaced (or its key ended) and idle, and closed when nobody has leased it for
    ``idle_seconds`` (the next lease opens it again). The engine pool holds one and lends from it.

    A locked instance cannot attach more files, and DuckDB lets only one instance of a process hold a file
    read-write, so a changed spec means a new engine, made safely:

    - an engine is closed only once it has been replaced (or its user deleted) *and* its last lease has come back:
      nothing closes an engine under a running job, a streamed result or an upload;
    - a new engine attaches only files that no live engine holds in a conflicting mode. A file still held by a
      replaced engine (a user's MyDB under a long job) is left out, and the new engine, *incomplete*, is itself
      replaced by a complete one as soon as the file is free;
    - a replaced engine goes on serving what it has unchanged (the user's MyDB while their job runs); only a lease
      needing a file still held elsewhere waits, bounded.

    ``cond`` guards it all (the pool leases and waits under it); ``current`` (each key's newest generation) and
    ``version`` (up by one at each ``refresh``) are what the pool's fast path reads. ``make(attachments, temp_dir=,
    spill_dir=)`` opens an engine (the pool's ``Engine``).
    """

    def __init__(self, specs: Specs, make: Callable[..., Engine], *, idle_seconds: float | None = None):
        self.specs = specs
        self._make = make
        self.idle_seconds = idle_seconds or None  # None: an engine in no one's use stays open
        self._idle_watch: threading.Thread | None = None
        self.cond = threading.Condition()
        self.current: dict[Hashable, Generation] = {}
        self.version = 0
        self.closed = False
        self._retired: list[Generation] = []
        self._cleanups: dict[Hashable, list[Callable[[], None]]] = {}
        self._serial = 0

    def choose(self, key, need, pinned) -> tuple[Generation | None, frozenset[str]]:
        """The generation whose engine serves ``need`` (see ``EnginePool.lease``), or None and the
        aliases it waits for; opens or replaces the key's engine when its spec asks for it."""
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
                raise held_elsewhere(need & gens[0].missing)
            raise ArchiveError("conflict", "the mounts changed while the request was prepared; send it again", 409)
        current = self._current_for(key, spec)
        for gen in [current, *reversed([g for g in self._retired if g.key == key])]:
            if gen.serves(need, want):
                return gen, frozenset()
        blocked = need & current.missing
        if not blocked:
            raise ArchiveError("conflict", "the mounts changed while the query was prepared; run it again", 409)
        return None, blocked

    def _current_for(self, key: Hashable, spec: EngineSpec) -> Generation:
        """The key's newest engine, replaced first if its spec changed or if it is incomplete and
        the files it lacks are free now."""
        gen = self.current.get(key)
        if gen is not None and gen.spec != spec:
            self._retire(gen)
            gen = None
        if gen is not None and gen.missing and not self._conflicts(spec, [a for a in spec.attachments if a.alias in gen.missing]):
            self._retire(gen)
            gen = None
        if gen is None:
            gen = self._open(key, spec)
        gen.version = self.version
        return gen

    def _open(self, key: Hashable, spec: EngineSpec) -> Generation:
        held = self._conflicts(spec, spec.attachments)
        attach = [a for a in spec.attachments if a.alias not in held]
        self._serial += 1
        engine = self._make(attach, temp_dir=spec.temp_dir, spill_dir=spec.temp_dir / f".spill-{self._serial}", read_dirs=spec.read_dirs)
        gen = Generation(key, engine, spec, self.version, frozenset(held),
                         files={_real(a.path): a.read_only for a in attach})  # fmt: skip
        self.current[key] = gen
        if self.idle_seconds:
            if self._idle_watch is None:
                self._idle_watch = threading.Thread(target=self._close_idle, name="archive-engines-idle", daemon=True)
                self._idle_watch.start()
            self.cond.notify_all()  # the idle watch sleeps without a deadline while no engine is open
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

    def _live(self, key: Hashable | None = None) -> list[Generation]:
        gens = [*self.current.values(), *self._retired]
        return gens if key is None else [g for g in gens if g.key == key]

    # -- changes ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """The specs may have changed (a mount came or went): replace the engines that differ.
        Those still in use go on serving their holders and close when the last one is done."""
        with self.cond:
            self.version += 1
            for key, gen in list(self.current.items()):
                spec = self.specs.spec(key)
                if spec is None:
                    self._end(key)
                elif spec != gen.spec:
                    self._retire(gen)
                else:
                    gen.version = self.version
            self.cond.notify_all()

    def discard(self, key: Hashable, cleanup: Callable[[], None] | None = None) -> None:
        """End a key (a deleted user): its engines get no new leases, what runs on them is
        interrupted, and ``cleanup`` runs once the last of them has closed (at once if none is open)."""
        with self.cond:
            gens = self._end(key)
            if cleanup is not None:
                if any(not g.engine.closed for g in gens):
                    self._cleanups.setdefault(key, []).append(cleanup)
                else:
                    cleanup()
        for gen in gens:
            gen.engine.interrupt()

    def renew(self, engine: Engine, cleanup: Callable[[], None]) -> None:
        """Replace ``engine`` as a changed spec would, and run ``cleanup`` (under ``cond``: no engine opens meanwhile)
        once every engine of its key has closed, so it may open the key's files alone."""
        with self.cond:
            for gen in self._live():
                if gen.engine is engine:
                    self._cleanups.setdefault(gen.key, []).append(cleanup)
                    self._retire(gen)
                    return

    def _end(self, key: Hashable) -> list[Generation]:
        gen = self.current.get(key)
        if gen is not None:
            self._retire(gen)
        return [g for g in self._retired if g.key == key]

    def _retire(self, gen: Generation) -> None:
        if self.current.get(gen.key) is gen:
            del self.current[gen.key]
        if not gen.retired:
            gen.retired = True
            self._retired.append(gen)
            # Only a replaced engine has anything to do when idle: the others skip the lock.
            gen.engine.on_idle = lambda _engine: self._idle(gen)
        if gen.engine.leases == 0:
            self._close(gen)

    def _idle(self, gen: Generation) -> None:
        with self.cond:
            # Re-checked here: a lease may have been given out again since the count hit zero.
            if gen.retired and gen.engine.leases == 0:
                self._close(gen)

    def _close(self, gen: Generation) -> None:
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
        self.cond.notify_all()

    def _close_idle(self) -> None:
        """The idle watch (a thread): close each current engine that no lease has used for
        ``idle_seconds``; its buffers and caches go with it. An engine with a lease out (a streamed
        result, a running job, a TAP upload) is never closed: the pool leases under ``cond``, held here."""
        with self.cond:
            while not self.closed:
                now = time.monotonic()
                wake = None
                closed = False
                for gen in list(self.current.values()):
                    # An engine with a lease out comes back idle no sooner than an idle time from now.
                    due = now + self.idle_seconds if gen.engine.leases else gen.engine.idle_since + self.idle_seconds
                    if due <= now:
                        log.debug("engine of %s closed: idle for %.0f s", describe(gen.key), now - gen.engine.idle_since)
                        self._retire(gen)  # no lease is out: closed at once
                        closed = True
                    else:
                        wake = due if wake is None else min(wake, due)
                if closed and not self.current:
                    release_memory()
                self.cond.wait(None if wake is None else wake - now)

    def holding(self, path: Path) -> tuple[Lease, str] | None:
        """A lease of a live engine that has the file ``path`` attached, and its alias there;
        None if no engine holds it (then another instance may open it read-only)."""
        real = _real(path)
        with self.cond:
            for gen in self._live():
                for alias, a in gen.engine.attachments.items():
                    if _real(a.path) == real and not gen.engine.closed:
                        return gen.engine.cursor(), alias
        return None

    # -- inspection and shutdown ---------------------------------------------------------------------
    def engines(self, key: Hashable | None = None) -> list[Engine]:
        """The live engines (of one key), newest first."""
        with self.cond:
            return [g.engine for g in reversed(self._live(key))]

    def clear(self) -> None:
        """Close every engine now, in use or not (the archive is stopping)."""
        with self.cond:
            self.closed = True
            gens = self._live()
            self.current, self._retired = {}, []
            self.cond.notify_all()
        for gen in gens:
            gen.engine.interrupt()
            gen.engine.close()


def _real(path: Path) -> Path:
    return Path(path).resolve()
