"""Archive: the facade every face and the Python client call.

It owns the catalog, the user store and one engine per principal, and answers in archive
words: contexts, tables, compile, query, read a table, list a folder. Everything here is
synchronous and thread-safe; faces call it from a thread pool (``executor``).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from . import pushdown
from . import sql as sqlmod
from .backends.duckdb import Attachment, Engine, quote_ident
from .catalog import MYDB, MYDB_ALIAS, SQL_SERVER_KINDS, Catalog, Mount, Principal, TableInfo, normalise_path
from .errors import ArchiveError, not_found, permission
from .query import QueryResult, engine_error, execute
from .resolver import Resolver, tables_in
from .datasets import reset_dataset
from .directives import DirectiveStore
from .jobs import Job, JobRunner, JobStore
from .mounts import MountStore
from .query_jobs import compile_job, query_request, run_query_job
from .results import ResultStore
from .users import UserStore, valid_password

log = logging.getLogger(__name__)

DEFAULT = object()  # "use the configured limit"
COMPILE_CACHE_SIZE = 512


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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


class Archive:
    """The archive: catalog + engines + users. One per server process."""

    def __init__(self, config: ArchiveConfig):
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(self.data_dir)
        self.users = UserStore(self.data_dir / "state.sqlite")
        self.executor = ThreadPoolExecutor(max(1, config.quick_workers), thread_name_prefix="archive-quick")
        self._engines: dict[str, Engine] = {}
        self._engines_lock = threading.Lock()
        self._compile_cache: OrderedDict = OrderedDict()
        self._cache_lock = threading.Lock()
        self._mount_tables: dict[str, dict[str, TableInfo]] = {}
        self._mount_specs: dict[str, dict] = {}
        self.backends: dict[str, Any] = {}  # mount alias -> SqlBackend (PostgreSQL, SQLite)
        self.mount_store = MountStore(self.data_dir / "mounts.sqlite")
        self._setup_mounts()
        self.results = ResultStore(self.data_dir / "results")
        self.jobs = JobRunner(
            JobStore(self.data_dir / "jobs.sqlite"),
            workers=config.job_workers,
            per_user=config.jobs_per_user,
            retention=config.job_retention,
            on_expire=self._forget_job_results,
        )
        self.jobs.register("query", lambda job, ctx: run_query_job(self, job, ctx))
        # A directive is a saved query: its jobs do the same work.
        self.jobs.register("directive", lambda job, ctx: run_query_job(self, job, ctx))
        self.jobs.register("reset", lambda job, ctx: reset_dataset(self, job, ctx))
        self.directives = DirectiveStore(self)
        # Datasets being reset, as (owner or "", context lower-case): read-only until the reset ends.
        self.resetting: set[tuple[str, str]] = set()

    def start(self) -> None:
        """Start background work (the job runner); call once the archive is set up."""
        self.jobs.start()

    # -- set-up -------------------------------------------------------------------------------
    def _setup_mounts(self) -> None:
        for spec in self.config.mounts:
            self.add_mount({**spec, "configured": True})
        for spec in self.mount_store.all():
            try:
                self.add_mount(spec)
            except ArchiveError as exc:  # a stored mount whose file went away must not stop the archive
                log.warning("mount %s not restored: %s", spec.get("path"), exc.message)
        if not self.config.mounts and self.config.demo:
            from .demo import ensure_demo

            path = ensure_demo(self.data_dir, rows=self.config.demo_rows)
            self.add_mount(
                {
                    "path": "/demo",
                    "type": "duckdb",
                    "location": str(path),
                    "context": "DEMO",
                    "readOnly": True,
                    "public": True,
                    "description": "The demo archive: SDSS-like photometry (PhotoObj) and spectra (SpecObj)",
                    "configured": True,
                }
            )

    def add_mount(self, spec: dict) -> Mount:
        """Mount a data source from a config dict: path, type, location, context, readOnly, public."""
        try:
            kind = spec.get("type") or spec["kind"]
            location = Path(spec["location"]).expanduser()
            path = spec["path"]
        except KeyError as exc:
            raise ArchiveError("bad_request", f"mount configuration lacks {exc.args[0]!r}") from None
        context = spec.get("context") or normalise_path(path).strip("/").split("/")[-1].upper()
        mount = Mount(
            path=path,
            kind=kind,
            location=location,
            context=context,
            read_only=bool(spec.get("readOnly", True)),
            public=bool(spec.get("public", True)),
            description=spec.get("description", ""),
            schema_name=spec.get("schema", ""),
        )
        if kind in SQL_SERVER_KINDS:
            return self._add_sql_mount(mount, spec)
        if not location.exists():
            raise ArchiveError("bad_request", f"mount location {location} does not exist")
        mount = self.catalog.add_mount(mount)
        self._mount_specs[mount.path.lower()] = dict(spec)
        if kind == "duckdb":
            mount.engine_file = location
        else:
            from .backends.files import sync_cache

            mount.engine_file = self.data_dir / "cache" / f"{mount.alias}.duckdb"
            mount.engine_file.parent.mkdir(parents=True, exist_ok=True)
            sync_cache(location, mount.engine_file)
        if mount.read_only:
            self._mount_tables[mount.context.lower()] = self._scan_database(mount.engine_file, mount.context)
        self._drop_engines()
        return mount

    def _add_sql_mount(self, mount: Mount, spec: dict) -> Mount:
        """A PostgreSQL server or SQLite file, reached through SQLAlchemy; queries are pushed down."""
        from .backends.sqlalchemy import SqlBackend

        uri = str(spec["location"])
        if mount.kind == "sqlite" and not uri.startswith("sqlite:"):
            uri = "sqlite:///" + str(Path(uri).expanduser().resolve())
        backend = SqlBackend(uri, context=mount.context, read_only=mount.read_only, pool_size=self.config.quick_workers)
        try:
            mount = self.catalog.add_mount(mount)
        except ArchiveError:
            backend.close()
            raise
        self._mount_specs[mount.path.lower()] = dict(spec)
        self.backends[mount.alias] = backend
        self._mount_tables[mount.context.lower()] = backend.tables()
        return mount

    def drop_mount(self, path: str) -> Mount | None:
        """Unmount the mount at ``path`` (engines are rebuilt without it)."""
        mount, rest = self.catalog.mount_at(path)
        if mount is None or rest:
            return None
        self.catalog.remove_mount(mount.context)
        backend = self.backends.pop(mount.alias, None)
        if backend is not None:
            backend.close()
        self._mount_specs.pop(mount.path.lower(), None)
        self._mount_tables.pop(mount.context.lower(), None)
        self._drop_engines()
        return mount

    def mount_spec(self, path: str) -> dict | None:
        return self._mount_specs.get(normalise_path(path).lower())

    def _scan_database(self, path: Path, context: str) -> dict[str, TableInfo]:
        """Tables, columns and metadata of a read-only database file, read once at mount time."""
        from .backends.metadata import read_metadata

        con = duckdb.connect(":memory:")
        try:
            con.execute(f"ATTACH {_lit(str(path))} AS src (READ_ONLY)")
            return tables_in(con, "src", context, read_metadata(con, "src"), exact_rows=True)
        finally:
            con.close()

    def close(self) -> None:
        self.jobs.stop()
        self.directives.close()
        self.mount_store.close()
        for backend in self.backends.values():
            backend.close()
        self.jobs.store.close()
        self._drop_engines()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.users.close()

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

    # -- principals -----------------------------------------------------------------------------
    def principal_for_token(self, token: str) -> Principal | None:
        return self.users.principal_for_token(token)

    def principal(self, name: str, *, admin: bool = False) -> Principal:
        """The principal of a user known by name (creating the user on first sight)."""
        return self.users.ensure_user(name, admin=admin)

    def create_user(
        self, name: str, *, full_name: str | None = None, email: str | None = None, password: str | None = None
    ) -> Principal:
        """Make a user (or update one) and their MyDB file: what an admin's CasJobs ``PUT /users`` does."""
        if password is not None:
            valid_password(password)  # refuse a bad password before anything is made
        principal = self.users.ensure_user(name)
        self.users.update_user(principal.name, full_name=full_name, email=email)
        if password is not None:
            self.users.set_password(principal.name, password)
        self.engine(principal)  # attaching MyDB read-write creates its file now, not at first use
        return principal

    def delete_user(self, name: str) -> None:
        """Remove a user: their tokens, jobs (canceled first), engine and MyDB file."""
        if not self.users.delete_user(name):  # tokens go with the user, so no new request gets in
            raise not_found(f"unknown user {name!r}", user=name)
        jobs, _ = self.jobs.store.list(name)
        for job in jobs:
            self.jobs.delete(job.id)  # cancels a running job first: it might still write to MyDB
        with self._engines_lock:
            engine = self._engines.pop(name, None)
        if engine is not None:
            engine.close()  # DuckDB holds the file open until then
        mydb = self.catalog.mydb_path(name)
        for path in (mydb, mydb.with_name(mydb.name + ".wal")):
            path.unlink(missing_ok=True)
        tmp = self.data_dir / "tmp"
        if (tmp / name).resolve().parent == tmp.resolve():  # never anything outside tmp/
            shutil.rmtree(tmp / name, ignore_errors=True)

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
        cur = self.engine(principal).cursor()
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
        cur = self.engine(principal).cursor()
        try:
            from .backends.metadata import read_metadata

            return tables_in(cur, MYDB_ALIAS, MYDB, read_metadata(cur, MYDB_ALIAS), exact_rows=False)
        finally:
            cur.close()

    # -- SQL --------------------------------------------------------------------------------------
    def resolver(self, principal: Principal, context: str | None = None, base_path: str | None = None) -> Resolver:
        default = self.context(principal, context) if context else None
        return Resolver(self, principal, default, base_path)

    def compile(
        self,
        principal: Principal,
        text: str,
        language: str = "sql",
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
        language: str = "sql",
        *,
        context: str | None = None,
        base_path: str | None = None,
        variables: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        offset: int | None = None,
        limit: int | None = None,
        row_limit: int | None | object = DEFAULT,
        time_limit: float | None | object = DEFAULT,
    ) -> QueryResult:
        """Run a quick query and return its streamed result (``Rows Affected`` for writes)."""
        if row_limit is DEFAULT:
            row_limit = self.config.quick_row_limit
        if time_limit is DEFAULT:
            time_limit = self.config.quick_time_limit
        compiled = self._compile_cached(
            principal, text, language, context, base_path, variables, params, offset, limit, row_limit
        )
        return self.run(principal, compiled, row_limit=row_limit, time_limit=time_limit)

    def _compile(self, principal, text, language, context, base_path, variables, params, offset, limit, row_limit):
        return sqlmod.compile_query(
            text,
            language,
            self.resolver(principal, context, base_path),
            variables=variables,
            params=params,
            base_path=base_path,
            offset=offset,
            limit=limit,
            row_limit=row_limit,
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

    def run(self, principal: Principal, compiled: sqlmod.Compiled, *, row_limit=None, time_limit=None) -> QueryResult:
        """Execute an already compiled query: on the principal's engine, or pushed to a SQL server."""
        backend = pushdown.backend_of(self, compiled.statements)
        if backend is not None:
            result = pushdown.run(
                self, principal, backend, compiled, row_limit=row_limit, time_limit=time_limit,
                column_meta=self.column_meta_for(principal, compiled.statements[-1]),
            )
            result.compiled = compiled
            return result
        result = execute(
            self.engine_for(principal, compiled.statements).cursor(),
            compiled.statements,
            row_limit=row_limit,
            time_limit=time_limit,
            column_meta=self.column_meta_for(principal, compiled.statements[-1]),
        )
        result.compiled = compiled
        return result

    def column_meta_for(self, principal: Principal, statement: sqlmod.Statement) -> dict[str, dict[str, str]]:
        """Units, UCDs and descriptions of the columns of the tables a statement reads, by name."""
        meta: dict[str, dict[str, str]] = {}
        for target in reversed(statement.tables or []):
            info = self._table_info_for(principal, target)
            if info is not None:
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
        return (principal.name if ref.mount is None else "", ref.name.lower())

    def is_resetting(self, principal: Principal, ref: ContextRef) -> bool:
        return bool(self.resetting) and self.dataset_key(principal, ref) in self.resetting

    # -- jobs -------------------------------------------------------------------------------------
    def submit_query(
        self,
        principal: Principal,
        text: str,
        language: str = "sql",
        *,
        face: str = "native",
        start_time: float | None = None,
        run: bool = True,
        validate: bool = True,
        **request: Any,
    ) -> Job:
        """Submit a query as a job (see ``query_jobs.query_request`` for the request fields).

        With ``validate`` the query is compiled first, so bad SQL is refused at once; the
        rewritten query is kept with the job (CasJobs shows it as ``ModifiedQuery``).
        """
        if principal.anonymous:
            raise permission("jobs need a signed-in user: log in to Jupyter or send an X-Auth-Token")
        req = query_request(text, language, **request)
        if validate:
            compiled, into = compile_job(self, principal, req)
            req["modified_query"] = compiled.modified_query
            if into is not None:
                req["into"] = {"context": into.context, "name": into.name}
        return self.jobs.submit(principal.name, "query", req, face=face, start_time=start_time, run=run)

    def job(self, principal: Principal, job_id: int | str) -> Job:
        """A job the principal may see (their own, or any for an admin)."""
        try:
            jid = int(job_id)
        except (TypeError, ValueError):
            raise not_found(f"unknown job {job_id!r}", job=job_id) from None
        job = self.jobs.store.get(jid)
        if job is None or (job.owner != principal.name and not principal.admin) or principal.anonymous:
            raise not_found(f"unknown job {job_id}", job=job_id)
        return job

    def list_jobs(self, principal: Principal, *, all_users: bool = False, **filters: Any) -> tuple[list[Job], int]:
        """The principal's jobs (every user's for an admin asking ``all_users``), newest first."""
        if principal.anonymous:
            return [], 0
        owner = None if (all_users and principal.admin) else principal.name
        return self.jobs.store.list(owner, **filters)

    def cancel_job(self, principal: Principal, job_id: int | str) -> Job:
        return self.jobs.cancel(self.job(principal, job_id).id)

    def run_job(self, principal: Principal, job_id: int | str) -> Job:
        return self.jobs.run_job(self.job(principal, job_id).id)

    def delete_job(self, principal: Principal, job_id: int | str) -> None:
        self.jobs.delete(self.job(principal, job_id).id)

    def job_log(self, principal: Principal, job_id: int | str) -> list[tuple[float, str]]:
        return self.jobs.store.log_lines(self.job(principal, job_id).id)

    def wait_job(self, principal: Principal, job_id: int | str, timeout: float | None = None, until=None) -> Job:
        return self.jobs.wait(self.job(principal, job_id).id, timeout, until=until)

    def job_result(self, principal: Principal, job_id: int | str, *, offset: int | None = None, limit: int | None = None) -> QueryResult:
        """The rows a completed job produced, paged: its MyDB table or its stored result."""
        job = self.job(principal, job_id)
        if job.state != "completed":
            raise ArchiveError("conflict", f"job {job.id} is {job.state}; results exist once it has completed", 409)
        if "store" in job.results:
            return self.results.read(job.id, offset=offset or 0, limit=limit)
        table = job.results.get("table")
        if table:
            owner = self.principal(job.owner)
            return self.read_table(owner, table["context"], table["name"], offset=offset, limit=limit)
        raise not_found(f"job {job.id} produced no rows to read", job=job.id)

    def _forget_job_results(self, job: Job) -> None:
        self.results.remove(job.id)

