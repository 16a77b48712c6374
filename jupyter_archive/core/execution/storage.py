"""What writes may take of the disk (``archive.storage``): each user's MyDB within its quota, and the disk never full.

A write to a database file (a ``CREATE TABLE ... AS``, an ``INSERT``, a ``SELECT ... INTO``, an upload, a job's
target table) is watched while it runs: one thread looks at the files it may grow every ``EVERY`` seconds, and
interrupts the write once the user's MyDB file passes ``quota`` or the free space of a file's disk falls below
``reserve``. The write then fails as a whole (DuckDB rolls it back) with a 507 saying which bound it met; a job's
result file stops the same way (``room``). A write that would add rows to a disk already below the reserve is
refused before it starts; a DROP never is.

A DuckDB file never shrinks by itself: a rolled-back write's blocks stay in it, free, and a dropped table's blocks
are free for the next write only after a checkpoint. With the disk full, not even the few bytes a commit needs can
be written, so one user's failed write once left the disk full for everyone, every later write of every user
failing. So the reserve keeps room, and each watched write ends with a checkpoint (``Storage.checkpoint``): after
a success, what it freed is free at once (a user over the quota can drop tables and write again); after a failure
(its room, its time limit, a cancel, a bad value) that grew a file, the file's free tail goes back to the disk.
A write that failed on the disk's own error leaves its engine counting blocks as used that are not; that engine is
replaced and the file, alone, gives them back (``_shrink_alone``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..catalog.model import MYDB_ALIAS
from ..errors import ArchiveError, no_room

log = logging.getLogger(__name__)

#: Seconds between two looks at the files being written: a write at disk speed overshoots by what it writes in that time.
EVERY = 0.02
#: Seconds between two tries of a checkpoint another transaction held off.
RETRY = 0.5


def file_size(path: Path) -> int:
    """A file's size in bytes; 0 if it is not there."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _free(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
    except OSError:
        return 1 << 62  # gone or unreadable: nothing to judge by, the write's own error will say
    return st.f_bavail * st.f_frsize


def default_reserve(folder: Path) -> int:
    """The room kept free on ``folder``'s disk when no ``disk_reserve`` is set: 1 GiB, or 5% of a smaller disk."""
    return min(1 << 30, shutil.disk_usage(folder).total // 20)


def size_text(size: int) -> str:
    """A number of bytes as a person reads it: 25.2 MB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def over_quota(quota: int, held: int) -> ArchiveError:
    """What a write gets that would grow its user's MyDB past the quota."""
    return ArchiveError(
        "quota_exceeded",
        f"this would grow your MyDB past its quota of {size_text(quota)} (it held {size_text(held)} before): "
        "drop tables you no longer need, or ask the archive's administrator for more",
        507,
        details={"quota_bytes": quota, "mydb_bytes": held},
    )


class Watch:
    """One write being watched: the writable files of its engine, their sizes when it began, and why it was stopped."""

    def __init__(self, storage: Storage, cursor, files: dict[str, Path]):
        self._storage = storage
        self._cursor = cursor
        self.files = files  # alias -> path of each writable database the write may grow
        self.start = {alias: file_size(path) for alias, path in files.items()}
        self.stopped: ArchiveError | None = None  # set (once) by the watching thread
        self.failed = False
        self._lock = threading.Lock()  # no interrupt once the write has ended: the connection may be lent again
        self._ended = False

    def _stop(self, error: ArchiveError) -> None:
        with self._lock:
            if self._ended or self.stopped is not None:
                return
            self.stopped = error
            try:
                self._cursor.interrupt()
            except Exception:  # noqa: BLE001 - closed as the write ended: nothing left to stop
                pass

    def error(self, exc: BaseException) -> ArchiveError | None:
        """The write failed with ``exc``: the 507 this watch stopped it with, else None (another failure)."""
        self.failed = True
        return self.stopped

    def end(self) -> None:
        """The write is over: stop watching, and checkpoint what it changed, so space it freed (a DROP, a DELETE, a
        table replaced) is free for the next write at once, and a failed write's blocks go back to the disk."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        self._storage._forget(self)
        grown = [alias for alias, path in self.files.items() if file_size(path) > self.start[alias]]
        # A failed write that grew no file changed nothing; nor did a write into the file's free blocks that failed.
        aliases = grown if self.failed else list(self.files)
        if not aliases:
            return
        engine = self._cursor.engine
        if self._storage.checkpoint(engine, aliases, change=self.failed) and self.failed:
            stale = [self.files[a] for a in aliases if file_size(self.files[a]) > self.start[a]]
            if stale and self._storage.renew is not None:
                # A write that failed on the disk's own error (no room, a file size limit) leaves the engine counting
                # blocks in use that are not: no checkpoint of it truncates them. The file, alone, gives them back.
                self._storage.renew(engine, functools.partial(_shrink_alone, stale))


@contextlib.contextmanager
def writing(cursor, *, adds: bool = True) -> Iterator[Watch | None]:
    """Watch the block's write on ``cursor`` (``Storage.watch``); a failure then is the 507 of the bound it met,
    whatever the write raised. ``adds``: it adds rows (an upload), not only frees them (a DROP)."""
    watch = watch_writes(cursor, adds=adds)
    try:
        yield watch
    except BaseException as exc:
        if watch is not None:
            watch.failed = True  # what it wrote goes back to the disk
            if watch.stopped is not None and isinstance(exc, Exception):
                raise watch.stopped from None
        raise
    finally:
        if watch is not None:
            watch.end()


def watch_writes(cursor, statements=None, *, adds: bool = True) -> Watch | None:
    """``Storage.watch`` of ``cursor``'s engine (a lease's engine has the archive's storage; another cursor, an
    in-memory engine's, writes no file the archive bounds: None); with ``statements``, it adds rows if one is a write."""
    storage = getattr(getattr(cursor, "engine", None), "storage", None)
    if storage is None:
        return None
    return storage.watch(cursor, adds=adds if statements is None else any(st.kind == "write" for st in statements))


class Storage:
    """The bounds of what writes take of the disk: ``quota`` bytes of each user's MyDB (None: none) and ``reserve``
    bytes kept free on every disk written to (0: none); one thread watches every running write."""

    def __init__(self, *, quota: int | None = None, reserve: int = 0, every: float = EVERY):
        self.quota = quota
        self.reserve = reserve
        self._every = every
        self._watches: set[Watch] = set()
        self._pending: dict = {}  # engine -> {alias: with a change} of checkpoints other transactions held off: tried again
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        # Replace an engine and run a clean-up once no engine holds its files (``EngineLifecycle.renew``; the pool's).
        self.renew = None

    def watch(self, cursor, *, adds: bool = True) -> Watch | None:
        """Watch a write on ``cursor`` (a lease of an engine) until its ``end()``: None if its engine has no writable
        file. One that ``adds`` rows is refused at once (507) when a disk it would grow already has less free than
        the reserve; one that only frees them (a DROP) is not: it makes room."""
        engine = getattr(cursor, "engine", None)
        files = {a.alias: a.path for a in getattr(engine, "attachments", {}).values() if not a.read_only}
        if not files:
            return None
        if adds:
            for path in files.values():
                self.room(path)
        watch = Watch(self, cursor, files)
        with self._cond:
            self._watches.add(watch)
            self._wake()
        return watch

    def _wake(self) -> None:  # with self._cond held
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="archive-storage", daemon=True)
            self._thread.start()
        self._cond.notify()

    def checkpoint(self, engine, aliases: list[str], *, change: bool = False) -> bool:
        """Checkpoint databases ``aliases`` of ``engine``: the space writes freed becomes free for the next write, and
        the file's free tail goes back to the disk. A checkpoint with nothing to write does nothing, so after a failed
        write (``change``) a table is made and dropped first. DuckDB refuses a checkpoint while another transaction is
        open (a query still reading): then it is tried again every ``RETRY`` s until it passes or the engine closes
        (whose close checkpoints), and this says False."""
        left = _checkpointed(engine, aliases, change=change)
        if not left:
            return True
        with self._cond:
            pending = self._pending.setdefault(engine, {})
            for alias, changed in left.items():
                pending[alias] = pending.get(alias, False) or changed
            self._wake()
        return False

    def usage(self, mydb: Path) -> dict:
        """What a user's MyDB file takes of the disk and of its quota (None: no quota), in bytes."""
        return {"bytes": file_size(mydb), "quota": self.quota}

    def room(self, path: Path) -> None:
        """Raise the 507 of a full disk if writing at ``path`` would take its disk below the reserve."""
        if self.reserve and _free(Path(path).parent) < self.reserve:
            raise no_room()

    def _forget(self, watch: Watch) -> None:
        with self._cond:
            self._watches.discard(watch)

    def _run(self) -> None:
        retried = time.monotonic()
        while True:
            with self._cond:
                while not self._watches and not self._pending:
                    self._cond.wait()
                if not self._watches:
                    self._cond.wait(RETRY)
                watches = list(self._watches)
            free: dict[Path, int] = {}
            for watch in watches:
                try:
                    self._look(watch, free)
                except Exception:  # noqa: BLE001 - the thread watches every write: it must not end
                    log.exception("watching a write failed")
            if self._pending and time.monotonic() - retried >= RETRY:
                retried = time.monotonic()
                with self._cond:
                    pending, self._pending = self._pending, {}
                for engine, aliases in pending.items():
                    for alias, change in aliases.items():
                        if not engine.closed:
                            try:
                                self.checkpoint(engine, [alias], change=change)
                            except Exception:  # noqa: BLE001 - the thread watches every write: it must not end
                                log.exception("checkpoint of %s failed", alias)
            if watches:
                time.sleep(self._every)

    def _look(self, watch: Watch, free: dict[Path, int]) -> None:
        for alias, path in watch.files.items():
            size = file_size(path)
            if size <= watch.start[alias]:
                continue  # reusing the file's free blocks takes nothing of the disk
            if alias == MYDB_ALIAS and self.quota is not None and size > self.quota:
                watch._stop(over_quota(self.quota, watch.start[alias]))
                return
            folder = path.parent
            if folder not in free:
                free[folder] = _free(folder)
            if self.reserve and free[folder] < self.reserve:
                watch._stop(no_room())
                return


def _checkpointed(engine, aliases: list[str], *, change: bool) -> dict[str, bool]:
    """``Storage.checkpoint`` once on a lease of ``engine``: the aliases another transaction held off, each with
    whether its retry still needs the change (none if it committed before the checkpoint was refused)."""
    import duckdb
    try:
        lease = engine.cursor()
    except ArchiveError:
        return {}  # the engine closed meanwhile: its close checkpointed
    left = {}
    try:
        for alias in aliases:
            name = '"' + alias.replace('"', '""') + '"'
            needs = change
            try:
                if needs:
                    lease.execute(f"BEGIN; CREATE TABLE {name}.__archive_shrink(i INTEGER); DROP TABLE {name}.__archive_shrink; COMMIT")
                    needs = False
                lease.execute(f"CHECKPOINT {name}")
            except duckdb.Error:
                with contextlib.suppress(duckdb.Error):
                    lease.execute("ROLLBACK")
                left[alias] = needs
    finally:
        lease.close()
    return left


def _shrink_alone(paths: list[Path]) -> None:
    """Give the free tail of database files no engine holds back to the disk: each opened alone, changed and
    checkpointed. Best effort: the file is whole either way."""
    import duckdb
    for path in paths:
        try:
            con = duckdb.connect(str(path))
        except duckdb.Error:
            continue
        try:
            con.execute("BEGIN; CREATE TABLE __archive_shrink(i INTEGER); DROP TABLE __archive_shrink; COMMIT")
            con.execute("CHECKPOINT")
        except duckdb.Error:
            pass
        finally:
            con.close()
