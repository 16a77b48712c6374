"""Resolving the table references of one request for the SQL pipeline.

Besides the contexts a principal sees, a request may know two more schemas: ``TAP_UPLOAD``
(the tables it brought, loaded into its engine) and ``TAP_SCHEMA`` (the description of the
tables, which the planner loads into an in-memory engine for the query).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import sql as sqlmod
from ..errors import ArchiveError, permission
from .model import TAP_SCHEMA, TAP_SCHEMA_ALIAS
from .tap_schema import TABLES

if TYPE_CHECKING:
    from .model import ContextRef, Principal
    from .namespace import Namespace


class Resolver:
    """Resolves table references of one request for the SQL pipeline (``sql.Resolver``)."""

    def __init__(
        self,
        namespace: Namespace,
        principal: Principal,
        default: ContextRef | None,
        base_path: str | None,
        *,
        uploads: dict[str, sqlmod.TableTarget] | None = None,
        tap_schema: bool = False,
    ):
        self.namespace = namespace
        self.principal = principal
        self.default = default
        self.base_path = base_path
        self.uploads = uploads  # TAP_UPLOAD.<name> tables of this request (execution.uploads.UploadSet)
        self.tap_schema = tap_schema  # TAP_SCHEMA.<name> names the description's tables (a TAP query)

    def _ctx(self, name: str) -> ContextRef:
        try:
            return self.namespace.context(self.principal, name)
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
        if write and self.namespace.is_resetting(self.principal, ref):
            raise ArchiveError(
                "conflict", f"{ref.name} is being reset and is read-only until the reset ends", 409, details={"context": ref.name}
            )
        if write and not ref.writable:
            raise permission(
                f"context {ref.name} is read-only; write into your MyDB instead (e.g. mydb.{name})", context=ref.name
            )
        tables = self.namespace.table_map(self.principal, ref)
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
        if self.tap_schema and len(parts) == 2 and parts[0].lower() == "tap_schema":
            return self._tap_schema(parts, write)
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

    def _tap_schema(self, parts: tuple[str, ...], write: bool) -> sqlmod.TableTarget:
        if write:
            raise permission("TAP_SCHEMA is read-only")
        if parts[1].lower() in TABLES:
            return sqlmod.TableTarget(TAP_SCHEMA_ALIAS, "main", parts[1].lower(), TAP_SCHEMA, False)
        raise ArchiveError("unknown_table", f"unknown table {'.'.join(parts)!r} (TAP_SCHEMA has: {', '.join(TABLES)})", 400)

    def column_meta(self, target: sqlmod.TableTarget) -> dict[str, dict[str, str]]:
        """Unit, UCD, xtype... of a resolved table's columns by name (ADQL finds geometry columns by xtype)."""
        info = self.namespace.table_info_for(self.principal, target)
        return info.column_meta() if info is not None else {}

    def resolve_path(self, path: str, *, write: bool = False):
        ref, rest = self.namespace.context_at(self.principal, path)
        if ref is None or not rest:
            raise ArchiveError("unknown_table", f"path not found: {path}", 400, details={"path": path})
        return self._target(ref, rest, write)

    def new_table(self, parts_or_path, *, language: str | None = None):
        if isinstance(parts_or_path, str):
            ref, rest = self.namespace.context_at(self.principal, parts_or_path)
            if ref is None or not rest:
                raise ArchiveError("bad_request", f"cannot create a table at {parts_or_path}")
            name = rest
        else:
            ref, name = self._split(tuple(parts_or_path))
        return self._target(ref, name, write=True, must_exist=False)
