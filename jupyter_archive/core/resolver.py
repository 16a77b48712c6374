"""Resolving table references of one request, and listing the tables of an attached database."""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from . import sql as sqlmod
from .backends.duckdb import quote_ident
from .catalog import ColumnInfo, TableInfo
from .errors import ArchiveError, permission

if TYPE_CHECKING:
    from .archive import Archive, ContextRef
    from .catalog import Principal


class Resolver:
    """Resolves table references of one request for the SQL pipeline (``sql.Resolver``)."""

    def __init__(
        self,
        archive: Archive,
        principal: Principal,
        default: ContextRef | None,
        base_path: str | None,
        uploads: dict[str, sqlmod.TableTarget] | None = None,
    ):
        self.archive = archive
        self.principal = principal
        self.default = default
        self.base_path = base_path
        self.uploads = uploads  # TAP_UPLOAD.<name> tables of this request (tap_uploads.UploadSet)

    def _ctx(self, name: str) -> ContextRef:
        try:
            return self.archive.context(self.principal, name)
        except ArchiveError as exc:
            if exc.code == "not_found":
                raise ArchiveError("unknown_context", f"unknown context {name!r}", 400, details={"context": name}) from None
            raise

    def _split(self, parts: tuple[str, ...]) -> tuple[ContextRef, str]:
        parts = tuple(parts)
        if len(parts) == 1:
            if self.default is None:
                raise ArchiveError("unknown_table", f"table {parts[0]!r} needs a context (e.g. DEMO.{parts[0]})", 400)
            return self.default, parts[0]
        if len(parts) == 2:
            first, name = parts
            if first.lower() in ("dbo", "main", "") and self.default is not None:
                return self.default, name
            return self._ctx(first), name
        if len(parts) == 3:
            ctx, schema, name = parts
            if schema.lower() not in ("", "dbo", "main"):
                raise ArchiveError("unknown_table", f"unknown schema {schema!r} in context {ctx}", 400)
            return self._ctx(ctx), name
        raise ArchiveError("unknown_table", f"cannot resolve table name {'.'.join(parts)!r}", 400)

    def _target(self, ref: ContextRef, name: str, write: bool, must_exist: bool = True) -> sqlmod.TableTarget:
        if write and self.archive.is_resetting(self.principal, ref):
            raise ArchiveError(
                "conflict", f"{ref.name} is being reset and is read-only until the reset ends", 409, details={"context": ref.name}
            )
        if write and not ref.writable:
            raise permission(
                f"context {ref.name} is read-only; write into your MyDB instead (e.g. mydb.{name})", context=ref.name
            )
        tables = self.archive._table_map(self.principal, ref)
        info = tables.get(name.lower())
        if info is None and must_exist:
            names = sorted(t.name for t in tables.values())
            hint = f" (tables: {', '.join(names[:20])}{', ...' if len(names) > 20 else ''})" if names else " (it has no tables)"
            raise ArchiveError(
                "unknown_table", f"unknown table {name!r} in context {ref.name}{hint}", 400, details={"table": name, "context": ref.name}
            )
        return sqlmod.TableTarget(ref.alias, "main", info.name if info else name, ref.name, ref.writable)

    def resolve_name(self, parts, *, write: bool = False):
        parts = tuple(parts)
        if len(parts) == 2 and parts[0].lower() == "tap_upload":
            return self._upload(parts[1], write)
        ref, name = self._split(parts)
        return self._target(ref, name, write)

    def _upload(self, name: str, write: bool) -> sqlmod.TableTarget:
        if write:
            raise permission(f"TAP_UPLOAD.{name} is read-only: it lives only for this query")
        target = (self.uploads or {}).get(name.lower())
        if target is None:
            have = ", ".join(t.name for t in (self.uploads or {}).values())
            hint = f"uploaded: {have}" if have else "send it with UPLOAD=name,param:part"
            raise ArchiveError("unknown_table", f"unknown table TAP_UPLOAD.{name}: no upload of that name ({hint})", 400)
        return target

    def column_meta(self, target: sqlmod.TableTarget) -> dict[str, dict[str, str]]:
        """Unit, UCD, xtype... of a resolved table's columns by name (ADQL finds geometry columns by xtype)."""
        info = self.archive._table_info_for(self.principal, target)
        return info.column_meta() if info is not None else {}

    def resolve_path(self, path: str, *, write: bool = False):
        ref, rest = self.archive.context_at(self.principal, path)
        if ref is None or not rest:
            raise ArchiveError("unknown_table", f"path not found: {path}", 400, details={"path": path})
        return self._target(ref, rest, write)

    def new_table(self, parts_or_path, *, language: str | None = None):
        if isinstance(parts_or_path, str):
            ref, rest = self.archive.context_at(self.principal, parts_or_path)
            if ref is None or not rest:
                raise ArchiveError("bad_request", f"cannot create a table at {parts_or_path}")
            name = rest
        else:
            ref, name = self._split(tuple(parts_or_path))
        return self._target(ref, name, write=True, must_exist=False)


def tables_in(con, alias: str, context: str, meta: dict, *, exact_rows: bool) -> dict[str, TableInfo]:
    """TableInfo for every table and view in schema main of an attached database."""
    rows = con.sql(
        "SELECT table_name, estimated_size, 'table' FROM duckdb_tables() WHERE database_name = $db AND schema_name = 'main' "
        "UNION ALL SELECT view_name, NULL, 'view' FROM duckdb_views() WHERE database_name = $db AND schema_name = 'main' AND NOT internal "
        "ORDER BY 1",
        params={"db": alias},
    ).fetchall()
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
