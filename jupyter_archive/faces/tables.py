"""Table endpoints that write: uploads into MyDB (CasJobs and native faces), drop and rename.

CasJobs (``{base}archive/casjobs``, case-insensitive):

* ``GET  contexts/{c}/tables``: ``[{"Name", "Rows", "Size" (KB), "Date" (.NET ticks)}]``
* ``POST contexts/{c}/tables/{t}``: a CSV body (any or no Content-Type) creates table ``t``
  in MyDB, or appends to it when it exists with the same columns; exactly 200 on success.

Native (``{base}archive/api``):

* ``GET    contexts/{c}/tables/{t}``: the table's info (as ``native.TableHandler``)
* ``PUT    contexts/{c}/tables/{t}``: create or replace the table with the body, atomically
* ``POST   contexts/{c}/tables/{t}?mode=auto|create|append|replace``: auto = create or append
* ``DELETE contexts/{c}/tables/{t}``: drop (204)
* ``POST   contexts/{c}/tables/{t}/rename`` with ``{"name": new}`` (409 if new exists)

Upload formats: CSV, Parquet, line-delimited JSON, VOTable, FITS, from ``?format=``, else the
Content-Type, else the body's first bytes. Bodies stream to a file (never whole in memory)
up to ``ArchiveApp.upload_limit`` bytes; the caller is authenticated before the body is read.
"""

from __future__ import annotations

from tornado import web

from ..core import times
from ..core.tables.sources import upload_format
from ..core.tables.write import MODES, check_table_name
from ..core.errors import ArchiveError
from .base import LimitedBody, endpoint
from .casjobs import CasJobsHandler
from .native import NativeHandler
from .native import TableHandler as NativeTableHandler

class UploadBody(LimitedBody):
    """Mixin for handlers whose PUT/POST body is a table upload, streamed to a temp file.

    The caller, the target and the declared size are checked before any byte of the body is
    read (``LimitedBody``); each chunk is written to disk, and the file goes at the limit.
    """

    _upload = None
    _upload_path = None

    def body_started(self) -> None:
        # The file goes where the engine that loads it may read: the user's, or a writable mount's.
        context = getattr(self, "upload_context", None) or self.path_kwargs.get("context")
        self._upload_path = self.archive.tables.upload_path(self.principal, context)
        self._upload = open(self._upload_path, "wb")  # noqa: SIM115 - a local temp file; closed in body_file() or discard_upload()

    def body_chunk(self, chunk: bytes) -> None:
        self._upload.write(chunk)

    def body_refused(self) -> None:
        self.discard_upload()

    def body_file(self):
        """The uploaded body's file, complete and closed."""
        if self._upload is None:
            raise ArchiveError("bad_request", "the request has no upload body")
        self._upload.close()
        self._upload = None
        return self._upload_path

    def body_head(self, n: int = 512) -> bytes:
        with open(self._upload_path, "rb") as fh:
            return fh.read(n)

    def discard_upload(self) -> None:
        if self._upload is not None:
            self._upload.close()
            self._upload = None
        if self._upload_path is not None:
            self._upload_path.unlink(missing_ok=True)
            self._upload_path = None

    def on_finish(self) -> None:
        self.discard_upload()
        super().on_finish()

    def on_connection_close(self) -> None:
        self.discard_upload()
        super().on_connection_close()


# -- CasJobs ----------------------------------------------------------------------------------------------
class CasJobsTablesHandler(CasJobsHandler):
    """``GET /contexts/{context}/tables``: the tables of any context the caller can see."""

    @endpoint(anonymous=True)
    async def get(self, context: str):
        tables = await self.call(self.archive.tables.summaries, self.principal, context)
        self.send_json(
            [{"Name": t["name"], "Rows": t["rows"], "Size": t["size_kb"], "Date": times.dotnet_ticks(t["modified"])} for t in tables]
        )


@web.stream_request_body
class CasJobsUploadHandler(UploadBody, CasJobsHandler):
    """``POST /contexts/{context}/tables/{table}``: a CSV body into MyDB (create, or append)."""

    def body_target(self) -> None:
        self.archive.tables.writable_context(self.principal, self.path_kwargs["context"])
        check_table_name(self.path_kwargs["table"])

    @endpoint()
    async def post(self, context: str, table: str):
        if self._finished:
            return
        try:
            path = self.body_file()
            # CasJobs uploads are CSV whatever the Content-Type says (clients send none, JSON, text).
            result = await self.call(self.archive.tables.upload, self.principal, context, table, path, "csv", "auto")
        finally:
            self.discard_upload()
        self.send_json({"Name": result.table.name, "Rows": result.rows, "Created": result.created})


# -- native -----------------------------------------------------------------------------------------------
@web.stream_request_body
class TableHandler(UploadBody, NativeTableHandler):
    """A MyDB table: ``GET`` its info, ``PUT`` (replace), ``POST`` (``?mode=``) an upload, ``DELETE`` it."""

    def body_target(self) -> None:
        self.archive.tables.writable_context(self.principal, self.path_kwargs["context"])
        check_table_name(self.path_kwargs["table"])
        mode = self.arg("mode", "auto")
        if mode not in MODES:
            raise ArchiveError("bad_request", f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        fmt = self.arg("format")
        if fmt or self.request.headers.get("Content-Type"):
            upload_format(self.request.headers.get("Content-Type"), fmt)  # refuse unknown formats early

    @endpoint()
    async def put(self, context: str, table: str):
        await self.upload(context, table, "replace")

    @endpoint()
    async def post(self, context: str, table: str):
        await self.upload(context, table, self.arg("mode", "auto"))

    async def upload(self, context: str, table: str, mode: str) -> None:
        if self._finished:
            return
        try:
            path = self.body_file()
            fmt = upload_format(
                self.request.headers.get("Content-Type"), self.arg("format"), self.body_head()
            )
            result = await self.call(self.archive.tables.upload, self.principal, context, table, path, fmt, mode)
        finally:
            self.discard_upload()
        info = result.table.to_json()
        info.update({"created": result.created, "mode": result.mode, "rowsWritten": result.rows, "format": fmt})
        if result.created:
            self.set_header("Location", self.request.path)
        self.send_json(info, status=201 if result.created else 200)

    @endpoint()
    async def delete(self, context: str, table: str):
        await self.call(self.archive.tables.drop, self.principal, context, table)
        self.set_status(204)
        self.finish()


class RenameHandler(NativeHandler):
    """``POST /contexts/{context}/tables/{table}/rename`` with ``{"name": new}``."""

    @endpoint()
    async def post(self, context: str, table: str):
        new = self.json_body().get("name")
        if not isinstance(new, str):
            raise ArchiveError("bad_request", "the request needs {\"name\": <the new table name>}")
        info = await self.call(self.archive.tables.rename, self.principal, context, table, new)
        self.send_json(info.to_json())


def table_handlers() -> list[tuple[str, type]]:
    """Routes; they go before ``native_handlers()``, whose GET-only table route matches the same URLs."""
    return [
        (r"(?i:archive/casjobs/contexts/(?P<context>[^/]+)/tables)/?", CasJobsTablesHandler),
        (r"(?i:archive/casjobs/contexts/(?P<context>[^/]+)/tables/(?P<table>[^/]+?))/?", CasJobsUploadHandler),
        (r"archive/api/contexts/(?P<context>[^/]+)/tables/(?P<table>[^/]+)/rename/?", RenameHandler),
        (r"archive/api/contexts/(?P<context>[^/]+)/tables/(?P<table>[^/]+?)/?", TableHandler),
    ]
