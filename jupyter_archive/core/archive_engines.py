"""The engine part of the Archive facade: which engine runs what, as leases from the engine pool."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .backends.duckdb import Attachment, Engine, Lease
from .catalog import MYDB_ALIAS, Mount, Principal
from .engine_pool import EngineSpec
from .errors import ArchiveError

if TYPE_CHECKING:
    from .archive import ContextRef

_DEFAULT = object()


class EngineRef:
    """An engine as a caller asks for it: whose, and which databases it must have.

    ``cursor()`` leases a connection from the engine pool at that moment, of an engine that has
    ``needs`` (aliases; None: every database of the key) attached as they are now.
    """

    def __init__(self, archive, key: Hashable, needs: Iterable[str] | None, pinned: Engine | None = None):
        self._archive = archive
        self.key = key
        self.needs = None if needs is None else frozenset(needs)
        self._pinned = pinned

    @property
    def temp_dir(self) -> Path:
        """The one directory the engine may read: uploads go here."""
        return self._archive._temp_dir(self.key)

    def cursor(self, *, timeout: float | None | object = _DEFAULT, cancel: threading.Event | None = None) -> Lease:
        """A leased connection; ``timeout`` bounds a wait for a database still held by an engine
        being replaced (default: the quick-query time limit; None with ``cancel``: a job's wait)."""
        return self._archive._lease(self, timeout, cancel)


class EnginesMixin:
    """One locked-down engine per user identity (and the anonymous reader), one per writable
    mount; every connection is a lease of the engine pool (``engine_pool``)."""

    # -- which engine -----------------------------------------------------------------------------
    def engine(self, principal: Principal, needs: Iterable[str] | None = None) -> EngineRef:
        """The principal's engine: MyDB read-write (for a user) and the mounts they may read."""
        key = ("anonymous",) if principal.anonymous else ("user", principal.name, principal.ident)
        return EngineRef(self, key, needs)

    def mount_engine(self, mount: Mount) -> EngineRef:
        """The one engine that holds a writable mount's file read-write (DuckDB allows only one),
        with the read-only mounts beside it; every query touching that mount runs here."""
        if mount.engine_file is None:
            raise ArchiveError("bad_request", f"{mount.context} is a SQL server: change its data with SQL queries")
        key = ("mount", mount.alias)
        return EngineRef(self, key, {mount.alias})

    def context_engine(self, principal: Principal, ref: ContextRef) -> EngineRef:
        """The engine holding a context's database for writing: the principal's for MyDB, a
        writable mount's own engine for that mount."""
        if ref.mount is not None and not ref.mount.read_only:
            return self.mount_engine(ref.mount)
        return self.engine(principal, {ref.alias})

    def engine_for(self, principal: Principal, statements, pinned: Lease | None = None) -> EngineRef:
        """The engine a compiled query runs on: the principal's, or a writable mount's own.
        ``pinned``: the engine holding tables made for this query (TAP uploads), which it must use."""
        catalogs = set()
        for st in statements:
            catalogs.update(t.catalog for t in (st.tables or []))
            if st.into is not None:
                catalogs.add(st.into.catalog)
        writable = {
            m.alias: m for m in self.catalog.mounts() if not m.read_only and m.alias in catalogs and m.alias not in self.backends
        }
        if not writable:
            ref = self.engine(principal, catalogs - set(self.backends))
            if pinned is not None:
                ref._pinned = pinned.engine
            return ref
        if len(writable) > 1:
            names = ", ".join(sorted(m.context for m in writable.values()))
            raise ArchiveError("bad_request", f"one query cannot combine the writable mounts {names}; copy the data into one of them first")
        mount = next(iter(writable.values()))
        if MYDB_ALIAS in catalogs:
            raise ArchiveError(
                "bad_request",
                f"one query cannot combine your MyDB with the writable mount {mount.context}; copy the data into one of them first",
            )
        if pinned is not None:
            raise ArchiveError("bad_request", f"uploaded tables cannot be combined with the writable mount {mount.context}")
        ref = self.mount_engine(mount)
        ref.needs = frozenset(catalogs)
        return ref

    # -- leases -------------------------------------------------------------------------------------
    def _lease(self, ref: EngineRef, timeout, cancel: threading.Event | None) -> Lease:
        if timeout is _DEFAULT:
            timeout = self.config.quick_time_limit
        try:
            return self.engine_pool.lease(ref.key, ref.needs, pinned=ref._pinned, timeout=timeout, cancel=cancel)
        except ArchiveError as exc:
            held = exc.details.get("held")
            if held and ref.key[0] == "user":
                raise self._held_error(ref.key, held) from None
            raise

    def _held_error(self, key, held: list[str]) -> ArchiveError:
        """Who holds a user's database that a query waited for in vain, in the user's words."""
        names = ", ".join("your MyDB" if a == MYDB_ALIAS else a for a in held)
        jobs, _ = self.jobs.store.list(key[2], states=["running", "canceling"])
        by = f"your running job {', '.join(str(j.id) for j in jobs)}" if jobs else "a result of yours still being read"
        return ArchiveError(
            "conflict",
            f"{names} is still held by {by}, which began before the mounts changed; "
            "a query joining it with the changed mounts can run once that ends",
            409,
            details={"held": held, "jobs": [j.id for j in jobs]},
        )

    # -- what each engine is ------------------------------------------------------------------------
    def _engine_spec(self, key) -> EngineSpec | None:
        """What a key's engine should have attached now; None once the user or mount is gone."""
        temp = self._temp_dir(key)
        if key[0] == "anonymous":
            return EngineSpec(tuple(self._read_only_attachments(anonymous=True)), temp)
        if key[0] == "user":
            principal = self.users.find(key[1])
            if principal is None or principal.ident != key[2]:
                return None
            mydb = Attachment(MYDB_ALIAS, self.catalog.mydb_path(principal), read_only=False)
            return EngineSpec((*self._read_only_attachments(), mydb), temp)
        mount = next((m for m in self.catalog.mounts() if m.alias == key[1]), None)
        if mount is None or mount.read_only or mount.engine_file is None or mount.alias in self.backends:
            return None
        return EngineSpec((Attachment(mount.alias, mount.engine_file, read_only=False), *self._read_only_attachments()), temp)

    def _read_only_attachments(self, *, anonymous: bool = False) -> list[Attachment]:
        return [
            Attachment(m.alias, m.engine_file, read_only=True)
            for m in self.catalog.mounts()
            if m.engine_file is not None and m.read_only and (m.public or not anonymous)
        ]

    def _temp_dir(self, key) -> Path:
        if key[0] == "anonymous":
            name = "_anonymous"
        elif key[0] == "user":
            name = Principal(key[1], uid=key[2]).home
        else:
            name = "_mount_" + key[1]
        return self.data_dir / "tmp" / name

    @staticmethod
    def _describe_engine(key) -> str:
        if key[0] == "user":
            return f"user {key[1]!r}"
        return f"the writable mount {key[1]}" if key[0] == "mount" else "the anonymous reader"

    def _mounts_changed(self) -> None:
        """Mounts came or went: compiled queries and engines follow (engines in use finish first)."""
        with self._cache_lock:
            self._compile_cache.clear()
        self.engine_pool.refresh()
