"""DuckDB engines as the archive makes them: what each key's engine attaches (its spec), a
locked-down instance, TAP_SCHEMA's in-memory engine, and the one mapping of DuckDB's errors.

Each principal (user, or the shared anonymous reader) gets its own in-memory DuckDB
instance with the public mounts attached read-only and, for a user, their own MyDB file
attached read-write as ``mydb``. Other users' MyDBs are never attached, so no SQL trick
(``duckdb_tables()``, ``query_table``) can reach them. External file access is switched off
and the configuration locked before any user SQL runs. ``EngineLifecycle`` opens, replaces
and closes them (``lifecycle``); the engine pool (``pool``) lends their connections.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from ..catalog.model import MYDB_ALIAS, Principal
from ..errors import ArchiveError, disk_full, short_of_memory, write_conflict
from ..sql import quote_ident as _quote_ident
from ..sql import quote_literal as _quote_literal
from ..sql.bounds import MARK as BOUND_MARK  # a guard's error, a 400

# duckdb: imported where used, so a server at rest does not hold it (~12 MB) before its first query
if TYPE_CHECKING:
    import duckdb
    from ..catalog.namespace import Namespace
    from .pool import Engine

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
