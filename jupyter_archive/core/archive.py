"""Archive: the facade every face and the Python client call.

It owns the catalog, the user store and one engine per principal, and answers in archive
words: contexts, tables, compile, query, read a table, list a folder. Everything here is
synchronous and thread-safe; faces call it from a thread pool (``executor``).
"""

from __future__ import annotations


import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from . import pushdown, temp_area
from . import sql as sqlmod
from .archive_engines import EnginesMixin
from .archive_jobs import JobsMixin
from .archive_mounts import MountsMixin
from .backends.duckdb import quote_ident
from .catalog import (
    MYDB,
    MYDB_ALIAS,
    Catalog,
    Mount,
    Principal,
    TableInfo,
    normalise_path,
)
from .datasets import reset_dataset
from .directives import DirectiveStore
from .engine_pool import EnginePool
from .errors import ArchiveError, not_found, permission
from .images.cutout import CUTOUT_JOB
from .images.service import Images
from .jobs import JobRunner, JobStore
from .languages import DEFAULT_LANGUAGE
from .mounts import MountStore
from .ownership import DataDirLock, describe_holder
from .query import QueryResult, engine_error, execute
from .query_jobs import run_query_job
from .resolver import Resolver, tables_in
from .results import ResultStore
from .tables.service import Tables
from .users.owned import Owned
from .users.service import Users
from .users.store import UserStore

log = logging.getLogger(__name__)

DEFAULT = object()  # "use the configured limit"
COMPILE_CACHE_SIZE = 512


def _dedupe(kids: list[dict]) -> list[dict]:
    seen, out = set(), []
    for k in kids:
        key = (k["name"].lower(), k["type"])
        if key not in seen:
            seen.add(key)
            out.append(k)
    return sorted(out, key=lambda k: k["name"].lower())


@dataclass
class ArchiveConfig:
    """Settings of one archive; the server extension fills it from traitlets."""

    data_dir: Path
    mounts: list[dict] = field(default_factory=list)
    demo: bool = True
    demo_rows: int = 100_000
    quick_row_limit: int = 100_000
    quick_time_limit: float = 60.0
    quick_workers: int = 4
    engine_threads: int | None = None
    engine_memory_limit: str | None = None
    allow_anonymous: bool = False
    job_workers: int = 2
    jobs_per_user: int = 2
    job_retention: float | None = 7 * 24 * 3600
    upload_limit: int = 1 << 30  # bytes one table upload may have
    mount_roots: list[str] = field(default_factory=list)  # directories run-time mounts may use


@dataclass
class ContextRef:
    """A context as one principal sees it."""

    name: str  # "DEMO" or "MyDB"
    path: str  # "/demo" or "/mydb"
    alias: str  # the engine's database alias
    writable: bool
    mount: Mount | None = None  # None for MyDB

    def to_json(self) -> dict:
        m = self.mount
        return {
            "name": self.name,
            "path": self.path,
            "kind": m.kind if m else "mydb",
            "readOnly": not self.writable,
            "public": bool(m and m.public),
            "description": (m.description if m else "your own database: write query results and uploads here"),
            "schema": m.schema_name if m else "mydb",
        }


class Archive(MountsMixin, EnginesMixin, JobsMixin):
    """The archive: catalog + engines + users. One per server process."""

    def __init__(self, config: ArchiveConfig, *, lock: DataDirLock | None = None):
        self.config = config
        self.data_dir = Path(config.data_dir)
        # The data dir's one owner: nothing is written in it before its lock is held.
        self.lock = lock or DataDirLock(self.data_dir)
        if not self.lock.acquire():
            raise ArchiveError("conflict", f"the data dir {self.data_dir} is in use by another process ({describe_holder(self.lock.holder())})", 409)
        temp_area.clear(self.data_dir)  # what a killed process left; the lock says no live one uses it
        self.catalog = Catalog(self.data_dir)
        user_store = UserStore(self.data_dir / "state.sqlite")
        self.executor = ThreadPoolExecutor(max(1, config.quick_workers), thread_name_prefix="archive-quick")
        self.engine_pool = EnginePool(
            self._engine_spec,
            describe=self._describe_engine,
            threads=config.engine_threads,
            memory_limit=config.engine_memory_limit,
            connections=config.quick_workers + config.job_workers + 2,
        )
        self._compile_cache: OrderedDict = OrderedDict()
        self._cache_lock = threading.Lock()
        self._mount_tables: dict[str, dict[str, TableInfo]] = {}
        self._mount_specs: dict[str, dict] = {}
        self._mount_info: dict[str, dict[str, str]] = {}  # context -> its database's archive_meta.info
        self.backends: dict[str, Any] = {}  # mount alias -> SqlBackend (PostgreSQL, SQLite)
        self.mount_store = MountStore(self.data_dir / "mounts.sqlite")
        self._setup_mounts()
        self.results = ResultStore(self.data_dir / "results")
        self.jobs = JobRunner(
            JobStore(self.data_dir / "jobs.sqlite"),
            workers=config.job_workers,
            per_user=config.jobs_per_user,
            retention=config.job_retention,
            # stage-2 wiring: the cutout kind's forget goes with its register_kind
            on_expire=lambda job: (self.images.cutouts.forget(job), self._forget_job_results(job)),
        )
        self.jobs.register("query", lambda job, ctx: run_query_job(self, job, ctx))
        # A directive is a saved query: its jobs do the same work.
        self.jobs.register("directive", lambda job, ctx: run_query_job(self, job, ctx))
        self.jobs.register("reset", lambda job, ctx: reset_dataset(self, job, ctx))
        self.images = Images(self.catalog, mounts=self, jobs=self, data_dir=self.data_dir)  # stage-2 wiring
        self.jobs.register(CUTOUT_JOB, self.images.cutouts.run)  # stage-2 wiring: jobs.register_kind
        self.directives = DirectiveStore(self)
        owned = Owned(user_store, jobs=self, directives=self.directives, engines=self, pool=self.engine_pool, catalog=self.catalog)  # stage-2 wiring
        self.users = Users(user_store, engines=self, owned=owned)  # stage-2 wiring
        # stage-2 wiring: archive.tables once Archive.tables moves to archive.catalog.tables (and catalog=self.catalog)
        self.tables_service = Tables(catalog=self, engines=self, mydb_path=self.catalog.mydb_path)
        # Datasets being reset, as (owner or "", context lower-case): read-only until the reset ends.
        self.resetting: set[tuple[str, str]] = set()

    def start(self) -> None:
        """Start background work (the job runner); call once the archive is set up."""
        self.jobs.start()

    def close(self) -> None:
        self.jobs.stop()
        self.directives.close()
        self.mount_store.close()
        for backend in self.backends.values():
            backend.close()
        self.jobs.store.close()
        self.engine_pool.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.users.store.close()
        self.lock.release()

    # -- contexts and tables --------------------------------------------------------------------
    def contexts(self, principal: Principal) -> list[ContextRef]:
        refs = [self._mount_ref(m) for m in self.catalog.visible_mounts(principal)]
        if not principal.anonymous:
            refs.append(self._mydb_ref())
        return refs

    def context(self, principal: Principal, name: str) -> ContextRef:
        """A context by name (case-insensitive); ``MyDB`` is the caller's own database."""
        if (name or "").lower() == MYDB.lower():
            if principal.anonymous:
                raise permission("MyDB needs a signed-in user: log in to Jupyter or send an X-Auth-Token")
            return self._mydb_ref()
        return self._mount_ref(self.catalog.require_mount(name or "", principal))

    def _mount_ref(self, m: Mount) -> ContextRef:
        return ContextRef(m.context, m.path, m.alias, writable=not m.read_only, mount=m)

    @staticmethod
    def _mydb_ref() -> ContextRef:
        return ContextRef(MYDB, "/mydb", MYDB_ALIAS, writable=True, mount=None)

    def context_at(self, principal: Principal, path: str) -> tuple[ContextRef | None, str]:
        """The context holding a namespace path, and the rest of the path inside it."""
        path = normalise_path(path)
        low = path.lower()
        if low == "/mydb" or low.startswith("/mydb/"):
            return self.context(principal, MYDB), path[len("/mydb") + 1 :]
        mount, rest = self.catalog.mount_at(path)
        if mount is None or (principal.anonymous and not mount.public):
            return None, path
        return self._mount_ref(mount), rest

    def tables(self, principal: Principal, context: str | ContextRef) -> list[TableInfo]:
        ref = context if isinstance(context, ContextRef) else self.context(principal, context)
        return list(self._table_map(principal, ref).values())

    def table(self, principal: Principal, context: str | ContextRef, name: str) -> TableInfo:
        ref = context if isinstance(context, ContextRef) else self.context(principal, context)
        info = self._table_map(principal, ref).get(name.lower())
        if info is None:
            raise not_found(f"unknown table {name!r} in context {ref.name}", table=name, context=ref.name)
        return info

    def table_ddl(self, principal: Principal, context: str | ContextRef, name: str) -> str:
        """The ``CREATE TABLE`` (or ``CREATE VIEW``) statement of a table, as the engine has it."""
        ref = context if isinstance(context, ContextRef) else self.context(principal, context)
        info = self.table(principal, ref, name)
        cur = self.context_engine(principal, ref).cursor()
        try:
            rows = cur.sql(
                "SELECT sql FROM duckdb_tables() WHERE database_name = $db AND schema_name = 'main' AND table_name = $t "
                "UNION ALL SELECT sql FROM duckdb_views() WHERE database_name = $db AND schema_name = 'main' AND view_name = $t",
                params={"db": ref.alias, "t": info.name},
            ).fetchall()
        finally:
            cur.close()
        if not rows or not rows[0][0]:
            raise not_found(f"unknown table {name!r} in context {ref.name}", table=name, context=ref.name)
        return rows[0][0]

    def _table_map(self, principal: Principal, ref: ContextRef) -> dict[str, TableInfo]:
        if ref.mount is not None and ref.mount.read_only:
            return self._mount_tables.get(ref.name.lower(), {})
        if ref.mount is not None and ref.mount.alias in self.backends:
            return self.backends[ref.mount.alias].tables(count_budget=0.5)
        if ref.mount is not None:
            from .backends.metadata import read_metadata

            cur = self.mount_engine(ref.mount).cursor()
            try:
                return tables_in(cur, ref.mount.alias, ref.name, read_metadata(cur, ref.mount.alias), exact_rows=False)
            finally:
                cur.close()
        cur = self.engine(principal, {MYDB_ALIAS}).cursor()
        try:
            from .backends.metadata import read_metadata

            return tables_in(cur, MYDB_ALIAS, MYDB, read_metadata(cur, MYDB_ALIAS), exact_rows=False)
        finally:
            cur.close()

    # -- SQL --------------------------------------------------------------------------------------
    def resolver(self, principal: Principal, context: str | None = None, base_path: str | None = None, uploads=None) -> Resolver:
        default = self.context(principal, context) if context else None
        return Resolver(self, principal, default, base_path, uploads)

    def compile(
        self,
        principal: Principal,
        text: str,
        language: str = DEFAULT_LANGUAGE,
        *,
        context: str | None = None,
        base_path: str | None = None,
        variables: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        offset: int | None = None,
        limit: int | None = None,
        row_limit: int | None = None,
        explain: bool = True,
    ) -> sqlmod.Compiled:
        """Compile without running; with ``explain`` the engine's plan is the last phase."""
        compiled = self._compile(principal, text, language, context, base_path, variables, params, offset, limit, row_limit)
        backend = pushdown.backend_of(self, compiled.statements)
        if backend is not None:
            compiled.phases.append(sqlmod.Phase("Pushed SQL", detail=pushdown.pushed_sql(backend, compiled)))
        elif explain:
            plans = []
            cur = self.engine_for(principal, compiled.statements).cursor()
            try:
                for st in compiled.statements:
                    rows = cur.sql("EXPLAIN " + st.sql, params=st.params or None).fetchall()
                    plans.append("\n".join(str(r[-1]) for r in rows))
            except duckdb.Error as exc:
                err = engine_error(exc)
                phases = [p.to_json() for p in compiled.phases] + [{"name": "Engine Plan", "error": err.message}]
                err.details["phases"] = phases
                raise err from None
            finally:
                cur.close()
            compiled.phases.append(sqlmod.Phase("Engine Plan", detail="\n\n".join(plans)))
        return compiled

    def query(
        self,
        principal: Principal,
        text: str,
        language: str = DEFAULT_LANGUAGE,
        *,
        context: str | None = None,
        base_path: str | None = None,
        variables: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        offset: int | None = None,
        limit: int | None = None,
        row_limit: int | None | object = DEFAULT,
        time_limit: float | None | object = DEFAULT,
        uploads=None,
    ) -> QueryResult:
        """Run a quick query and return its streamed result (``Rows Affected`` for writes).

        ``uploads`` (a ``tap_uploads.UploadSet``) makes its tables readable as ``TAP_UPLOAD.x``.
        """
        if row_limit is DEFAULT:
            row_limit = self.config.quick_row_limit
        if time_limit is DEFAULT:
            time_limit = self.config.quick_time_limit
        if uploads is not None:
            compiled = self._compile(
                principal, text, language, context, base_path, variables, params, offset, limit, row_limit, uploads.targets
            )
            return self.run(
                principal, compiled, row_limit=row_limit, time_limit=time_limit, column_meta=uploads.column_meta, pinned=uploads.pin
            )
        compiled = self._compile_cached(
            principal, text, language, context, base_path, variables, params, offset, limit, row_limit
        )
        return self.run(principal, compiled, row_limit=row_limit, time_limit=time_limit)

    def _compile(self, principal, text, language, context, base_path, variables, params, offset, limit, row_limit, uploads=None):
        return sqlmod.compile_query(
            text,
            language,
            self.resolver(principal, context, base_path, uploads),
            variables=variables,
            params=params,
            base_path=base_path,
            offset=offset,
            limit=limit,
            row_limit=row_limit,
            positional_index=self.positional_lookup(principal),
        )

    def _compile_cached(self, principal, text, language, context, base_path, variables, params, offset, limit, row_limit):
        """Compile, reusing an earlier compile of the same text with new values when possible.

        Only reads of mounted (read-only) tables are cached: their resolution cannot change
        until the mounts do, which clears the cache. MyDB tables come and go, so queries
        touching them are always compiled afresh.
        """
        key = (
            principal.key, principal.anonymous, language, (context or "").lower(), base_path, text,
            tuple(sorted(variables or ())), tuple(sorted(params or ())), offset, limit, row_limit,
        )  # fmt: skip
        with self._cache_lock:
            hit = self._compile_cache.get(key)
            if hit is not None:
                self._compile_cache.move_to_end(key)
        if hit is not None:
            return sqlmod.rebind(hit, variables=variables, params=params)
        compiled = self._compile(principal, text, language, context, base_path, variables, params, offset, limit, row_limit)
        read_only = {m.alias for m in self.catalog.mounts() if m.read_only}
        cacheable = all(st.kind == "read" and all(t.catalog in read_only for t in st.tables) for st in compiled.statements)
        if cacheable:
            with self._cache_lock:
                self._compile_cache[key] = compiled
                while len(self._compile_cache) > COMPILE_CACHE_SIZE:
                    self._compile_cache.popitem(last=False)
        return compiled

    def run(
        self, principal: Principal, compiled: sqlmod.Compiled, *, row_limit=None, time_limit=None, column_meta=None, pinned=None
    ) -> QueryResult:
        """Execute an already compiled query: on the principal's engine, or pushed to a SQL server.

        ``column_meta`` adds units/UCDs for tables the catalog does not know (uploads), held in
        the engine of the lease ``pinned``."""
        meta = self.column_meta_for(principal, compiled.statements[-1])
        if column_meta:
            meta = {**column_meta, **meta}
        backend = pushdown.backend_of(self, compiled.statements)
        if backend is not None:
            result = pushdown.run(
                self, principal, backend, compiled, row_limit=row_limit, time_limit=time_limit, column_meta=meta
            )
            result.compiled = compiled
            return result
        result = execute(
            self.engine_for(principal, compiled.statements, pinned).cursor(),
            compiled.statements,
            row_limit=row_limit,
            time_limit=time_limit,
            column_meta=meta,
        )
        result.compiled = compiled
        return result

    def column_meta_for(self, principal: Principal, statement: sqlmod.Statement) -> dict[str, dict[str, str]]:
        """Units, UCDs and descriptions of the columns of the tables a statement reads, by name
        (not to be mutated: for one table it is that table's own, so results can remember it)."""
        infos = [i for t in reversed(statement.tables or []) if (i := self._table_info_for(principal, t)) is not None]
        if len(infos) == 1:
            return infos[0].column_meta()
        meta: dict[str, dict[str, str]] = {}
        for info in infos:
            meta.update(info.column_meta())
        return meta

    def _table_info_for(self, principal: Principal, target) -> TableInfo | None:
        if target.catalog == MYDB_ALIAS:
            return None
        for m in self.catalog.mounts():
            if m.alias == target.catalog:
                return self._mount_tables.get(m.context.lower(), {}).get(target.name.lower())
        return None

    def read_table(
        self,
        principal: Principal,
        context: str | ContextRef,
        table: str,
        *,
        offset: int | None = None,
        limit: int | None = None,
        order_by: str | None = None,
        descending: bool = False,
    ) -> QueryResult:
        """Stream a whole table (or a page of it): no quick-query row limit applies."""
        ref = context if isinstance(context, ContextRef) else self.context(principal, context)
        info = self.table(principal, ref, table)
        if offset is not None and offset < 0:
            raise ArchiveError("bad_request", f"invalid offset: {offset} (must be >= 0)")
        if limit is not None and limit < 1:
            raise ArchiveError("bad_request", f"invalid limit: {limit} (must be >= 1)")
        text = f"SELECT * FROM {quote_ident(ref.alias)}.main.{quote_ident(info.name)}"
        if order_by:
            names = {c.name.lower(): c.name for c in info.columns}
            if order_by.lower() not in names:
                raise ArchiveError("bad_request", f"unknown column {order_by!r} in table {info.name}")
            text += f" ORDER BY {quote_ident(names[order_by.lower()])} {'DESC' if descending else 'ASC'}"
        if limit is not None:
            text += f" LIMIT {int(limit)}"
        if offset:
            text += f" OFFSET {int(offset)}"
        target = sqlmod.TableTarget(ref.alias, "main", info.name, ref.name, ref.writable)
        st = sqlmod.Statement(kind="read", sql=text, params={}, source=text, into=None, tables=[target])
        if ref.mount is not None and ref.mount.alias in self.backends:
            return self.backends[ref.mount.alias].run(text, {}, {(ref.alias, "main", info.name): info.name}, column_meta=info.column_meta())
        return execute(self.engine_for(principal, [st]).cursor(), [st], column_meta=info.column_meta())

    def folder(self, principal: Principal, path: str) -> list[dict]:
        """The children of a namespace folder: ``[{"name", "type"}]`` (type directory | file | mount)."""
        path = normalise_path(path)
        if path == "/":
            kids = [{"name": m.path.strip("/").split("/")[0], "type": "directory", "mount": m.kind} for m in self.catalog.visible_mounts(principal)]
            if not principal.anonymous:
                kids.append({"name": "mydb", "type": "directory", "mount": "mydb"})
            return _dedupe(kids)
        ref, rest = self.context_at(principal, path)
        if ref is None:
            # a folder above nested mounts, e.g. /surveys for /surveys/sdss
            low = path.lower() + "/"
            kids = [
                {"name": m.path[len(path) + 1 :].split("/")[0], "type": "directory"}
                for m in self.catalog.visible_mounts(principal)
                if m.path.lower().startswith(low)
            ]
            if not kids:
                raise not_found(f"path not found: {path}", path=path)
            return _dedupe(kids)
        prefix = (rest + "/").lower() if rest else ""
        kids = []
        for t in self.tables(principal, ref):
            low = t.name.lower()
            if prefix and not low.startswith(prefix):
                continue
            tail = t.name[len(prefix) :]
            if "/" in tail:
                kids.append({"name": tail.split("/")[0], "type": "directory"})
            else:
                kids.append({"name": tail, "type": "file"})
        if rest and not kids:
            raise not_found(f"path not found: {path}", path=path)
        return _dedupe(kids)

    def resolve_table_path(self, principal: Principal, path: str) -> tuple[ContextRef, str] | None:
        """``/demo/PhotoObj`` -> (DEMO, "PhotoObj") when it names a table, else None."""
        ref, rest = self.context_at(principal, path)
        if ref is None or not rest:
            return None
        info = self._table_map(principal, ref).get(rest.lower())
        return (ref, info.name) if info else None


    def dataset_key(self, principal: Principal, ref: ContextRef) -> tuple[str, str]:
        """Which database a context is: a user's MyDB is theirs alone; a mount is shared."""
        return (principal.key if ref.mount is None else "", ref.name.lower())

    def is_resetting(self, principal: Principal, ref: ContextRef) -> bool:
        return bool(self.resetting) and self.dataset_key(principal, ref) in self.resetting
