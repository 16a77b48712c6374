"""The engine part of the Archive facade: which DuckDB instance runs what."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .backends.duckdb import Attachment, Engine
from .catalog import MYDB_ALIAS, Mount, Principal
from .errors import ArchiveError

if TYPE_CHECKING:
    from .archive import ContextRef


class EnginesMixin:
    """One locked-down engine per principal, one per writable mount, chosen per query."""

    # -- engines --------------------------------------------------------------------------------
    def engine(self, principal: Principal) -> Engine:
        key = principal.key
        with self._engines_lock:
            eng = self._engines.get(key)
            if eng is None or eng.closed:
                attachments = self._read_only_attachments(principal)
                if not principal.anonymous:
                    attachments.append(Attachment(MYDB_ALIAS, self.catalog.mydb_path(principal.name), read_only=False))
                eng = Engine(
                    attachments,
                    threads=self.config.engine_threads,
                    memory_limit=self.config.engine_memory_limit,
                    temp_dir=self.data_dir / "tmp" / (key or "_anonymous"),
                    pool_size=self.config.quick_workers + self.config.job_workers + 2,
                )
                self._engines[key] = eng
            return eng

    def _read_only_attachments(self, principal: Principal) -> list[Attachment]:
        return [
            Attachment(m.alias, m.engine_file, read_only=True)
            for m in self.catalog.visible_mounts(principal)
            if m.engine_file is not None and m.read_only
        ]

    def mount_engine(self, mount: Mount) -> Engine:
        """The one engine that holds a writable mount's file read-write (DuckDB allows only one),
        with the read-only mounts beside it; every query touching that mount runs here."""
        if mount.engine_file is None:
            raise ArchiveError("bad_request", f"{mount.context} is a SQL server: change its data with SQL queries")
        key = "\x00mount:" + mount.alias
        with self._engines_lock:
            eng = self._engines.get(key)
            if eng is None or eng.closed:
                attachments = [Attachment(mount.alias, mount.engine_file, read_only=False)]
                attachments += self._read_only_attachments(Principal("archive", admin=True))
                eng = Engine(
                    attachments,
                    threads=self.config.engine_threads,
                    memory_limit=self.config.engine_memory_limit,
                    temp_dir=self.data_dir / "tmp" / ("_mount_" + mount.alias),
                    pool_size=self.config.quick_workers + self.config.job_workers + 2,
                )
                self._engines[key] = eng
            return eng

    def context_engine(self, principal: Principal, ref: ContextRef) -> Engine:
        """The engine holding a context's database for writing: the principal's for MyDB, a
        writable mount's own engine for that mount."""
        if ref.mount is not None and not ref.mount.read_only:
            return self.mount_engine(ref.mount)
        return self.engine(principal)

    def engine_for(self, principal: Principal, statements) -> Engine:
        """The engine a compiled query runs on: the principal's, or a writable mount's own."""
        catalogs = set()
        for st in statements:
            catalogs.update(t.catalog for t in (st.tables or []))
            if st.into is not None:
                catalogs.add(st.into.catalog)
        writable = {
            m.alias: m for m in self.catalog.mounts() if not m.read_only and m.alias in catalogs and m.alias not in self.backends
        }
        if not writable:
            return self.engine(principal)
        if len(writable) > 1:
            names = ", ".join(sorted(m.context for m in writable.values()))
            raise ArchiveError("bad_request", f"one query cannot combine the writable mounts {names}; copy the data into one of them first")
        mount = next(iter(writable.values()))
        if MYDB_ALIAS in catalogs:
            raise ArchiveError(
                "bad_request",
                f"one query cannot combine your MyDB with the writable mount {mount.context}; copy the data into one of them first",
            )
        return self.mount_engine(mount)

    def _drop_engines(self) -> None:
        with self._cache_lock:
            self._compile_cache.clear()
        with self._engines_lock:
            engines, self._engines = list(self._engines.values()), {}
        for e in engines:
            e.close()
