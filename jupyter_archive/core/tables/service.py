"""Tables as the archive hands them out (``archive.tables``): uploads into MyDB or a writable
mount, drop, rename, and the facts table listings show.

Every write runs in one transaction together with its metadata (:mod:`.write`), so a failed
upload leaves the old table exactly as it was; the upload itself is read by :mod:`.sources`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import ArchiveError, bad_request, one_line, permission
from ..execution.engines import engine_error
from ..execution.storage import writing
from . import write
from .sources import FORMATS, NOT_WHOLE, open_source, read_error
from .write import MODES, UploadResult, check_table_name

# duckdb: imported where used, so a server at rest does not hold it (~12 MB) before its first query
if TYPE_CHECKING:
    import duckdb
    from ..catalog import ContextRef
    from ..catalog import Principal, TableInfo


class Tables:
    """Writing tables: where an upload goes, loading it all or nothing, drop, rename, summaries.

    ``catalog`` finds contexts and their tables (``context``, ``table``, ``tables``,
    ``is_resetting``); ``engines`` gives the engine that holds a context (``engine``,
    ``context_engine``); ``mydb_path`` is where a principal's MyDB file is.
    """

    def __init__(self, *, catalog: Any, engines: Any, mydb_path: Callable[[Principal], Path], hats: Any = None):
        self._catalog = catalog
        self._engines = engines
        self._mydb_path = mydb_path
        self._hats = hats  # the HATS imports (``jobs.hats_import.HatsImports``): a user's own catalogs are dropped there

    def upload_path(self, principal: Principal, context: str | ContextRef | None = None) -> Path:
        """A fresh file name in the temp dir of the engine that will load it: the one place it may read."""
        ref = self._catalog.context(principal, context) if isinstance(context, str) else context
        engine = self._engines.engine(principal, ()) if ref is None else self._engines.context_engine(principal, ref)
        folder = engine.temp_dir
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"upload-{uuid.uuid4().hex}.dat"

    def writable_context(self, principal: Principal, context: str | ContextRef) -> ContextRef:
        """The context a write goes to, if the principal may write there: their MyDB or a writable mount."""
        ref = self._catalog.context(principal, context) if isinstance(context, str) else context
        if principal.anonymous:
            raise permission("writing needs a signed-in user", context=ref.name)
        if ref.mount is not None and ref.mount.read_only:
            raise permission(f"context {ref.name} is read-only: upload into MyDB instead", context=ref.name)
        if self._catalog.is_resetting(principal, ref):
            raise ArchiveError("conflict", f"{ref.name} is being reset and is read-only until the reset ends", 409)
        return ref

    def upload(
        self, principal: Principal, context: str | ContextRef, name: str, path: Path, fmt: str, mode: str = "auto"
    ) -> UploadResult:
        """Load the file at ``path`` (in format ``fmt``) into table ``name`` of MyDB, all or nothing.

        ``mode``: ``create`` (409 if the table exists), ``append`` (404 if it does not; the columns
        must match by name, case-insensitively, in any order), ``replace``, or ``auto`` (create,
        else append). Appended values must fit the table's column types exactly (no rounding).
        """
        import duckdb
        ref = self.writable_context(principal, context)
        check_table_name(name)
        if mode not in MODES:
            raise bad_request(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        if fmt not in FORMATS:
            raise ArchiveError("unsupported_format", f"unknown upload format {fmt!r}; known: {', '.join(FORMATS)}", 415)
        path = Path(path)
        if path.stat().st_size == 0:
            raise bad_request("the upload is empty: send the table's data as the request body")
        cur = self._engines.context_engine(principal, ref).cursor()
        source = None
        try:
            with writing(cur):  # stopped past the disk's room or the user's MyDB quota (a 507)
                for full in (False, True):
                    source = open_source(cur, path, fmt, full=full)
                    if not source.columns:
                        raise bad_request("the upload has no columns")
                    try:
                        done, final, rows = write.write(cur, source, name, mode, ref.alias)
                        break
                    except duckdb.Error as exc:
                        # A late value the sampled types do not hold (a "1.5" or "abc" in an integer
                        # column): sniff the whole file and load again.
                        if fmt != "csv" or full or not (NOT_WHOLE in str(exc) or isinstance(exc, duckdb.ConversionException)):
                            raise
                        source.close()
                        source = None
        except ArchiveError:
            raise
        except (duckdb.Error, pa.ArrowException) as exc:
            raise read_error(exc, path, fmt) from None
        except Exception as exc:  # noqa: BLE001 - astropy and numpy fail in many ways on a bad file
            raise bad_request(f"cannot load the {fmt.upper()} upload: {one_line(exc)}") from None
        finally:
            if source is not None:
                source.close()
            cur.close()
        return UploadResult(self._catalog.table(principal, ref, final), done == "create", rows, done)

    def drop(self, principal: Principal, context: str | ContextRef, name: str) -> None:
        """Drop a MyDB table or view and its metadata, or a HATS catalog the user imported (and its margin caches)."""
        import duckdb
        ref = self._catalog.context(principal, context) if isinstance(context, str) else context
        if ref.mount is not None and ref.mount.kind == "hats" and ref.mount.owner and ref.mount.owner == principal.ident and self._hats:
            return self._hats.drop(principal, name)  # only its owner sees such a mount
        ref = self.writable_context(principal, ref)
        cur = self._engines.context_engine(principal, ref).cursor()
        try:
            with writing(cur, adds=False):  # checkpointed after: the room it frees is free at once
                write.drop(cur, name, ref.alias, ref.name)
        except duckdb.Error as exc:
            raise engine_error(exc) from None
        finally:
            cur.close()

    def rename(self, principal: Principal, context: str | ContextRef, name: str, new_name: str) -> TableInfo:
        """Rename a MyDB table (409 if another table has the new name); metadata follows it."""
        import duckdb
        ref = self.writable_context(principal, context)
        check_table_name(new_name)
        cur = self._engines.context_engine(principal, ref).cursor()
        try:
            write.rename(cur, name, new_name, ref.alias, ref.name)
        except duckdb.Error as exc:
            raise engine_error(exc) from None
        finally:
            cur.close()
        return self._catalog.table(principal, ref, new_name)

    def summaries(self, principal: Principal, context: str) -> list[dict]:
        """Each table of a context as ``{name, rows, size_kb, modified}`` (modified: unix seconds).

        DuckDB keeps neither sizes nor write times per table: the size is estimated from the row
        count and column types; the time is the last upload/rename recorded in MyDB, else the
        database file's modification time.
        """
        ref = self._catalog.context(principal, context)
        infos = self._catalog.tables(principal, ref)
        recorded: dict[str, float] = {}
        if ref.mount is not None:
            files = [ref.mount.engine_file or ref.mount.location]
        else:
            mydb = self._mydb_path(principal)
            files = [mydb, Path(str(mydb) + ".wal")]
            cur = self._engines.context_engine(principal, ref).cursor()
            try:
                recorded = write.modified_times(cur, ref.alias)
            finally:
                cur.close()
        stamp = max((f.stat().st_mtime for f in files if f.exists()), default=time.time())
        return [
            {"name": t.name, "rows": int(t.rows or 0), "size_kb": write.size_kb(t), "modified": recorded.get(t.name.lower(), stamp)}
            for t in infos
        ]
