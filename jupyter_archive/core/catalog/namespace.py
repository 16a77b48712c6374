"""The namespace: mounts by context and path, each principal's contexts, their tables and columns.

``Namespace`` is ``archive.catalog``: the registry of mounts (the ``Mounts`` service adds and
drops them), the contexts a principal sees (``MyDB`` is the caller's own database), table
metadata (read once at mount time for read-only mounts, read live for MyDB and writable
mounts through the engine pool), the HEALPix indexes the ADQL planner asks about, and which
datasets are being reset (read-only until the reset ends).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any


from ..errors import ArchiveError, not_found, permission
from ..lanes import cheap_read
from ..sql import quote_ident
from .model import (
    MOUNT_KINDS,
    MYDB,
    MYDB_ALIAS,
    ColumnInfo,
    ContextRef,
    Mount,
    Principal,
    TableInfo,
    alias_for,
    normalise_path,
)
from .resolver import Resolver

# duckdb: imported where used, so a server at rest does not hold it (~12 MB) before its first query
if TYPE_CHECKING:
    import duckdb
    from ..execution.pool import EnginePool

MYDB_TABLE_MAPS = 256  # users whose MyDB table list is kept (the longest kept goes first)


def _dedupe(kids: list[dict]) -> list[dict]:
    seen, out = set(), []
    for k in kids:
        key = (k["name"].lower(), k["type"])
        if key not in seen:
            seen.add(key)
            out.append(k)
    return sorted(out, key=lambda k: k["name"].lower())


class Namespace:
    """Mounts by context name and path, where each user's MyDB lives, and what each principal sees."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.mydb_dir = self.data_dir / "mydb"
        self.mydb_dir.mkdir(parents=True, exist_ok=True)
        self._mounts: dict[str, Mount] = {}
        self.mount_tables: dict[str, dict[str, TableInfo]] = {}  # context lower -> tables of a read-only mount
        self.mount_info: dict[str, dict[str, str]] = {}  # context lower -> its database's archive_meta.info
        self.backends: dict[str, Any] = {}  # mount alias -> SqlBackend (PostgreSQL, SQLite)
        self.hats: dict[str, dict[str, Any]] = {}  # mount alias -> its HATS catalogs (backends.hats.HatsTable) by lower-case name
        # Datasets being reset, as (owner or "", context lower-case): read-only until the reset ends.
        self.resetting: set[tuple[str, str]] = set()
        # Bumped whenever mounts come or go: what was derived from the namespace (compiled queries) is stale.
        self.version = 0
        self.engines: EnginePool | None = None  # set once the pool exists (it needs the namespace first)
        self._mydb_tables: dict[str, tuple[tuple, dict[str, TableInfo]]] = {}  # principal key -> (file stamp, tables)
        self._mydb_lock = threading.Lock()

    # -- the mount registry ---------------------------------------------------------------------
    def add_mount(self, mount: Mount) -> Mount:
        mount.path = normalise_path(mount.path)
        if mount.path == "/" or mount.path.lower() == "/mydb":
            raise ArchiveError("conflict", f"cannot mount at {mount.path}: reserved path", 409)
        if mount.kind not in MOUNT_KINDS:
            raise ArchiveError("bad_request", f"unknown mount type {mount.kind!r}; known: {', '.join(MOUNT_KINDS)}")
        key = mount.context.lower()
        if key == MYDB.lower():
            raise ArchiveError("conflict", "the context name MyDB is reserved for users' own databases", 409)
        for other in self._mounts.values():
            if other.context.lower() == key:
                raise ArchiveError("conflict", f"context {mount.context} already exists", 409)
            if other.path.lower() == mount.path.lower():
                raise ArchiveError("conflict", f"path {mount.path} is already mounted", 409)
        mount.alias = alias_for(mount.context)
        self._mounts[key] = mount
        return mount

    def remove_mount(self, context: str) -> None:
        self._mounts.pop(context.lower(), None)
        self.mount_tables.pop(context.lower(), None)

    def mounts(self) -> list[Mount]:
        return list(self._mounts.values())

    def mount(self, context: str) -> Mount | None:
        return self._mounts.get(context.lower())

    def mount_at(self, path: str) -> tuple[Mount | None, str]:
        """The mount holding ``path`` and the rest of the path inside it ("" for the mount itself)."""
        path = normalise_path(path)
        low = path.lower()
        best = None
        for m in self._mounts.values():
            mp = m.path.lower()
            if low == mp or low.startswith(mp + "/"):
                if best is None or len(mp) > len(best.path):
                    best = m
        if best is None:
            return None, path
        return best, path[len(best.path) + 1 :]

    def visible_mounts(self, principal: Principal) -> list[Mount]:
        return [m for m in self._mounts.values() if m.visible_to(principal)]

    def mydb_path(self, principal: Principal) -> Path:
        """The MyDB file of one user's identity (a re-made user gets a new file)."""
        return self.mydb_dir / f"{principal.home}.duckdb"

    def require_mount(self, context: str, principal: Principal) -> Mount:
        m = self.mount(context)
        if m is None or not m.visible_to(principal):
            raise not_found(f"unknown context {context!r}", context=context)
        return m

    # -- contexts -------------------------------------------------------------------------------
    @cheap_read
    def contexts(self, principal: Principal) -> list[ContextRef]:
        refs = [self._mount_ref(m) for m in self.visible_mounts(principal)]
        if not principal.anonymous:
            refs.append(self._mydb_ref())
        return refs

    @cheap_read
    def context(self, principal: Principal, name: str) -> ContextRef:
        """A context by name (case-insensitive); ``MyDB`` is the caller's own database."""
        if (name or "").lower() == MYDB.lower():
            if principal.anonymous:
                raise permission("MyDB needs a signed-in user: log in to Jupyter or send an X-Auth-Token")
            return self._mydb_ref()
        return self._mount_ref(self.require_mount(name or "", principal))

    @staticmethod
    def _mount_ref(m: Mount) -> ContextRef:
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
        mount, rest = self.mount_at(path)
        if mount is None or not mount.visible_to(principal):
            return None, path
        return self._mount_ref(mount), rest

    def _ref(self, principal: Principal, context: str | ContextRef) -> ContextRef:
        return context if isinstance(context, ContextRef) else self.context(principal, context)

    def dataset_key(self, principal: Principal, ref: ContextRef) -> tuple[str, str]:
        """Which database a context is: a user's MyDB is theirs alone; a mount is shared."""
        return (principal.key if ref.mount is None else "", ref.name.lower())

    def is_resetting(self, principal: Principal, ref: ContextRef) -> bool:
        return bool(self.resetting) and self.dataset_key(principal, ref) in self.resetting

    # -- tables ---------------------------------------------------------------------------------
    @cheap_read
    def tables(self, principal: Principal, context: str | ContextRef) -> list[TableInfo]:
        return list(self.table_map(principal, self._ref(principal, context)).values())

    @cheap_read
    def table(self, principal: Principal, context: str | ContextRef, name: str) -> TableInfo:
        ref = self._ref(principal, context)
        info = self.table_map(principal, ref).get(name.lower())
        if info is None:
            raise not_found(f"unknown table {name!r} in context {ref.name}", table=name, context=ref.name)
        return info

    @cheap_read
    def table_ddl(self, principal: Principal, context: str | ContextRef, name: str) -> str:
        """The ``CREATE TABLE`` (or ``CREATE VIEW``) statement of a table, as the engine has it."""
        ref = self._ref(principal, context)
        info = self.table(principal, ref, name)
        cur = self.engines.context_engine(principal, ref).cursor()
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

    def table_map(self, principal: Principal, ref: ContextRef) -> dict[str, TableInfo]:
        """A context's tables by lower-case name."""
        from ..backends.metadata import read_metadata

        if ref.mount is not None and ref.mount.read_only:
            return self.mount_tables.get(ref.name.lower(), {})
        if ref.mount is not None and ref.mount.alias in self.backends:
            return self.backends[ref.mount.alias].tables(count_budget=0.5)
        if ref.mount is not None:
            cur = self.engines.mount_engine(ref.mount).cursor()
            try:
                return tables_in(cur, ref.mount.alias, ref.name, read_metadata(cur, ref.mount.alias), exact_rows=False)
            finally:
                cur.close()
        # Read live, but only when the MyDB file changed since: every query naming a MyDB table
        # resolves it here, and reading the catalog and metadata costs several engine queries.
        key, stamp = principal.key, self.mydb_stamp(principal)
        hit = self._mydb_tables.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        cur = self.engines.engine(principal, {MYDB_ALIAS}).cursor()
        try:
            tables = tables_in(cur, MYDB_ALIAS, MYDB, read_metadata(cur, MYDB_ALIAS), exact_rows=False)
        finally:
            cur.close()
        with self._mydb_lock:
            self._mydb_tables.pop(key, None)
            self._mydb_tables[key] = (stamp, tables)
            while len(self._mydb_tables) > MYDB_TABLE_MAPS:
                self._mydb_tables.pop(next(iter(self._mydb_tables)))
        return tables

    def mydb_stamp(self, principal: Principal) -> tuple:
        """The stamp (``file_stamp``) of the principal's MyDB: taken before a read, so a write during it is seen next time."""
        return file_stamp(self.mydb_path(principal))

    def lookup_file(self, principal: Principal, alias: str) -> Path | None:
        """The DuckDB file of the database a query names ``alias``, when the caller's engine reads it as it is on disk
        (MyDB, a read-only DuckDB mount): what a key index may hold (``execution.lookups``); else None."""
        if alias == MYDB_ALIAS:
            return None if principal.anonymous else self.mydb_path(principal)
        m = next((m for m in self._mounts.values() if m.alias == alias), None)
        return m.location if m is not None and m.kind == "duckdb" and m.read_only and m.visible_to(principal) else None

    def table_info_for(self, principal: Principal, target) -> TableInfo | None:
        """The metadata of a resolved table of a read-only mount (None for others: theirs change)."""
        if target.catalog == MYDB_ALIAS:
            return None
        for m in self._mounts.values():
            if m.alias == target.catalog:
                return self.mount_tables.get(m.context.lower(), {}).get(target.name.lower())
        return None

    def column_meta_for(self, principal: Principal, statement) -> dict[str, dict[str, str]]:
        """Units, UCDs and descriptions of the columns of the tables a statement reads, by name
        (not to be mutated: for one table it is that table's own, so results can remember it)."""
        infos = [i for t in reversed(statement.tables or []) if (i := self.table_info_for(principal, t)) is not None]
        if len(infos) == 1:
            return infos[0].column_meta()
        meta: dict[str, dict[str, str]] = {}
        for info in infos:
            meta.update(info.column_meta())
        return meta

    @cheap_read
    def folder(self, principal: Principal, path: str) -> list[dict]:
        """The children of a namespace folder: ``[{"name", "type"}]`` (type directory | file | mount)."""
        path = normalise_path(path)
        if path == "/":
            kids = [{"name": m.path.strip("/").split("/")[0], "type": "directory", "mount": m.kind} for m in self.visible_mounts(principal)]
            if not principal.anonymous:
                kids.append({"name": "mydb", "type": "directory", "mount": "mydb"})
            return _dedupe(kids)
        ref, rest = self.context_at(principal, path)
        if ref is None:
            # a folder above nested mounts, e.g. /surveys for /surveys/sdss
            low = path.lower() + "/"
            kids = [
                {"name": m.path[len(path) + 1 :].split("/")[0], "type": "directory"}
                for m in self.visible_mounts(principal)
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

    @cheap_read
    def resolve_table_path(self, principal: Principal, path: str) -> tuple[ContextRef, str] | None:
        """``/demo/PhotoObj`` -> (DEMO, "PhotoObj") when it names a table, else None."""
        ref, rest = self.context_at(principal, path)
        if ref is None or not rest:
            return None
        info = self.table_map(principal, ref).get(rest.lower())
        return (ref, info.name) if info else None

    # -- resolving a request's names -----------------------------------------------------------
    def resolver(
        self, principal: Principal, context: str | None = None, base_path: str | None = None, *, language: str | None = None, uploads=None
    ) -> Resolver:
        """The resolver of one request: its default context and base path, the ``TAP_UPLOAD``
        tables it brought, and (for ADQL, TAP's language) the ``TAP_SCHEMA`` tables."""
        default = self.context(principal, context) if context else None
        return Resolver(self, principal, default, base_path, uploads=uploads, tap_schema=language == "adql")

    # -- positions ------------------------------------------------------------------------------
    def positional_lookup(self, principal: Principal) -> PositionalLookup:
        """What the ADQL planner of one principal's query asks about positions."""
        return PositionalLookup(self, principal)

    def positional_index(self, target, principal: Principal | None = None):
        """The HEALPix index a table declares (``healpix:<table>`` in its database's
        archive_meta.info), for the ADQL planner's cone-search ranges; None when it has none.

        Read-only mounts were read at mount time; MyDB and writable mounts change with every
        upload, so theirs is read now (with ``principal``: whose MyDB)."""
        from ..backends.metadata import read_info
        from ..sql import healpix_index_from_info

        live = None
        if target.catalog == MYDB_ALIAS and principal is not None and not principal.anonymous:
            live = self.engines.engine(principal, {MYDB_ALIAS})
        for m in self._mounts.values():
            if m.alias == target.catalog:
                if m.read_only or m.engine_file is None:
                    return healpix_index_from_info(self.mount_info.get(m.context.lower(), {}), target.name)
                live = self.engines.mount_engine(m)
        if live is None:
            return None
        cur = live.cursor()
        try:
            return healpix_index_from_info(read_info(cur, target.catalog), target.name)
        finally:
            cur.close()


class PositionalLookup:
    """The ADQL planner's question about positions (``adql.rewrite``'s ``positional_index``): a
    table's HEALPix index, which cone searches and cross-matches on the table use."""

    def __init__(self, namespace: Namespace, principal: Principal):
        self.namespace = namespace
        self.principal = principal

    def __call__(self, target):
        return self.namespace.positional_index(target, self.principal)


def relations_in(con, alias: str, *, schema: str | None = None) -> list[tuple[str, str, str, int | None]]:
    """The tables and views of one attached database (of one of its schemas, if given) as
    ``(schema, name, "table" | "view", estimated rows)``, by schema and name."""
    where = "database_name = $db AND NOT internal" + (" AND schema_name = $schema" if schema else "")
    return con.sql(
        f"SELECT schema_name, table_name, 'table', estimated_size FROM duckdb_tables() WHERE {where} "
        f"UNION ALL SELECT schema_name, view_name, 'view', NULL FROM duckdb_views() WHERE {where} ORDER BY 1, 2",
        params={"db": alias, **({"schema": schema} if schema else {})},
    ).fetchall()


def tables_in(con, alias: str, context: str, meta: dict, *, exact_rows: bool) -> dict[str, TableInfo]:
    """TableInfo for every table and view in schema main of an attached database."""
    import duckdb
    rows = [(name, est, kind) for _, name, kind, est in relations_in(con, alias, schema="main")]
    cols = con.sql(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = $db AND schema_name = 'main' "
        "ORDER BY table_name, column_index",
        params={"db": alias},
    ).fetchall()
    by_table: dict[str, list[ColumnInfo]] = {}
    for t, c, dt in cols:
        cm = (meta.get(t) or {}).get("columns", {}).get(c, {})
        by_table.setdefault(t, []).append(
            ColumnInfo(c, dt, **{k: cm.get(k) for k in ("unit", "ucd", "description", "utype", "xtype")})
        )
    out: dict[str, TableInfo] = {}
    for name, est, kind in rows:
        count = est
        if exact_rows or est is None:
            try:
                count = con.sql(f"SELECT count(*) FROM {quote_ident(alias)}.main.{quote_ident(name)}").fetchall()[0][0]
            except duckdb.Error:
                count = None
        out[name.lower()] = TableInfo(
            name=name,
            context=context,
            rows=count,
            description=(meta.get(name) or {}).get("description"),
            columns=by_table.get(name, []),
        )
    return out


def file_stamp(path: Path) -> tuple:
    """What changes whenever a DuckDB database's tables may have: its file's and its write-ahead log's inode,
    size and modification time (every committed write appends to the log; a checkpoint empties it and writes
    the file)."""
    out = []
    for f in (path, path.with_name(path.name + ".wal")):
        try:
            st = f.stat()
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)
