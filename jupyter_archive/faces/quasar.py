"""The SlamData Quasar face (``{base}archive/quasar``): SQL² over a filesystem-like namespace.

Paths in queries are relative to the request path; ``var.name=`` values are SQL literals
bound as parameters. Errors are ``{"error": "<message>"}`` as the API document shows,
with ``phases`` added where the document has them.
"""

from __future__ import annotations

from tornado import web

from ..core import formats, params
from ..core.catalog import normalise_path
from ..core.errors import ArchiveError
from ..core.catalog.mounts import quasar_view
from ..core.tables.write import check_table_name
from .base import ArchiveHandler, endpoint
from .tables import UploadBody

DEFAULT_FORMAT = "ldjson"
ALLOWED = None  # every format the archive writes


class QuasarHandler(ArchiveHandler):
    face = "quasar"

    def error_body(self, err: ArchiveError):
        body: dict = {"error": err.message}
        for k, v in err.details.items():
            body[k] = v
        if err.position:
            body["position"] = {"line": err.position[0], "column": err.position[1]}
        return err.status, body

    def fs_path(self, path: str | None) -> str:
        return normalise_path(path or "")

    def variables(self) -> dict[str, str]:
        """``var.name=value`` parameters: SQL literals, bound as parameters."""
        return {key[4:]: values[-1] for key, values in self.arguments(form=False).items() if key.startswith("var.") and values}

    def query_text(self) -> str:
        qs = self.args("q")
        if len(qs) > 1:
            raise ArchiveError("bad_request", "Multiple SQL^2 queries submitted.", details={"queryCount": len(qs)})
        if not qs or not qs[0].strip():
            raise ArchiveError("bad_request", "No SQL^2 query found in URL.")
        return qs[0]

    def body_text(self) -> str:
        """A query sent as the request body (UTF-8 text)."""
        text = params.text("the request body", self.request.body or b"")
        if not text.strip():
            raise ArchiveError("bad_request", "No SQL^2 query found in message body.")
        return text

    def paging(self) -> tuple[int | None, int | None]:
        """``offset`` and ``limit`` of rows; the engine's own when absent."""
        return self.page("offset", "limit", None, first=None)


class QueryHandler(QuasarHandler):
    """``GET /query/fs/{path}?q=...``: a small query, rows in the Accept format (ldjson by default)."""

    @endpoint(anonymous=True)
    async def get(self, path: str | None = None):
        base = self.fs_path(path)
        text = self.query_text()
        offset, limit = self.paging()
        fmt = self.negotiate(DEFAULT_FORMAT)
        await self.quick_query(
            fmt, formats.ResultInfo(query=text), self.principal, text, "sql2", base_path=base, variables=self.variables(), offset=offset,
            limit=limit,
        )


class LargeQueryHandler(QueryHandler):
    """``POST /query/fs/{path}`` with a ``Destination``: run the query as a job writing that path."""

    @endpoint()
    async def post(self, path: str | None = None):
        base = self.fs_path(path)
        text = self.body_text()
        dest = self.request.headers.get("Destination")
        if not dest:
            raise ArchiveError("bad_request", "'Destination' header missing.", details={"headerName": "Destination"})
        if dest.endswith("/"):
            raise ArchiveError("bad_request", "Destination must be a file.", details={"destination": dest})
        out = normalise_path(dest if dest.startswith("/") else base.rstrip("/") + "/" + dest)
        variables = self.variables()
        compiled = await self.call(self.archive.queries.compile, self.principal, text, "sql2", base_path=base, variables=variables)
        phases = [p.to_json() for p in compiled.phases]
        try:
            job = await self.call(
                self.archive.jobs.submit_query, self.principal, text, "sql2", face="quasar", base_path=base, variables=variables,
                target=out, replace=True,
            )
            job = await self.wait_job(job.id, timeout=float("inf"))
        except ArchiveError as exc:
            exc.details["phases"] = phases + [{"name": "Execution", "error": exc.message}]
            raise
        if job.state != "completed":
            raise ArchiveError(
                job.error_code or "engine_error", job.error_message or f"the query job ended {job.state}",
                400 if job.state == "failed" else 409,
                details={"phases": phases + [{"name": "Execution", "error": job.error_message or job.state}]},
            )
        self.send_json({"out": out, "phases": phases})


class CompileHandler(QuasarHandler):
    """``GET|POST /compile/fs/{path}``: the plan, as the phases of the SQL pipeline."""

    async def _compile(self, path: str | None, text: str):
        base = self.fs_path(path)
        offset, limit = self.paging()
        compiled = await self.call(
            self.archive.queries.compile, self.principal, text, "sql2", base_path=base, variables=self.variables(), offset=offset, limit=limit
        )
        inputs = sorted({f"/{t.context.lower()}/{t.name}" if t.context != "MyDB" else f"/mydb/{t.name}" for st in compiled.statements for t in st.tables})
        engine_sql = ";\n".join(st.sql for st in compiled.statements)
        accept = (self.request.headers.get("Accept") or "").lower()
        if accept.startswith("text/plain"):
            self.send_text(engine_sql + "\n")
            return
        self.send_json(
            {
                "inputs": inputs,
                "physicalPlan": engine_sql,
                "params": {k: repr(v) for st in compiled.statements for k, v in st.params.items()},
                "phases": [p.to_json() for p in compiled.phases],
            }
        )

    @endpoint(anonymous=True)
    async def get(self, path: str | None = None):
        await self._compile(path, self.query_text())

    @endpoint(anonymous=True)
    async def post(self, path: str | None = None):
        await self._compile(path, self.body_text())


QUASAR_UPLOAD_TYPES = {"application/ldjson": "ldjson", "application/x-ldjson": "ldjson", "application/json": "ldjson", "text/csv": "csv"}


@web.stream_request_body
class DataHandler(UploadBody, QuasarHandler):
    """``/data/fs/{path}``: ``GET`` reads a table (paged) or lists a folder; ``PUT`` replaces and
    ``POST`` appends from line-delimited JSON or CSV (all or nothing); ``DELETE`` removes;
    ``MOVE`` renames to the ``Destination`` path."""

    SUPPORTED_METHODS = (*QuasarHandler.SUPPORTED_METHODS, "MOVE")

    def _table_at(self, path: str | None):
        fs = self.fs_path(path)
        ref, rest = self.archive.catalog.context_at(self.principal, fs)
        if ref is None or not rest:
            raise ArchiveError("not_found", f"{fs}: doesn't exist", 404, details={"path": fs})
        if "/" in rest:
            raise ArchiveError("bad_request", f"Invalid path: {fs} (tables of a writable context sit directly in it)")
        return fs, ref, rest

    def body_target(self) -> None:
        _, ref, rest = self._table_at(self.path_kwargs.get("path"))
        self.archive.tables.writable_context(self.principal, ref)
        check_table_name(rest)
        self._upload_format()
        self.upload_context = ref

    def _upload_format(self) -> str:
        ctype = (self.request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not ctype:
            raise ArchiveError(
                "bad_request", "Media type missing.", details={"supportedMediaTypes": sorted(QUASAR_UPLOAD_TYPES)}
            )
        if ctype not in QUASAR_UPLOAD_TYPES:
            raise ArchiveError(
                "unsupported_format", "Unsupported Media Type", 415,
                details={"requestedMediaType": ctype, "supportedMediaTypes": sorted(QUASAR_UPLOAD_TYPES)},
            )
        return QUASAR_UPLOAD_TYPES[ctype]

    @endpoint(anonymous=True)
    async def get(self, path: str | None = None):
        fs = self.fs_path(path)
        offset, limit = self.paging()
        found = await self.call(self.archive.catalog.resolve_table_path, self.principal, fs)
        if found is None:
            children = await self.call(self.archive.catalog.folder, self.principal, fs)
            self.send_json({"children": children})
            return
        ref, table = found
        fmt = self.negotiate(DEFAULT_FORMAT)
        result = await self.call(self.archive.queries.read_table, self.principal, ref, table, offset=offset, limit=limit)
        await self.stream(result, fmt, formats.ResultInfo(table_name=table.split("/")[-1]))

    async def _write(self, path: str | None, mode: str):
        if self._finished:
            return
        _, ref, table = self._table_at(path)
        try:
            body = self.body_file()
            if body.stat().st_size == 0:
                raise ArchiveError("bad_request", "Request has no body.")
            try:
                await self.call(self.archive.tables.upload, self.principal, ref, table, body, self._upload_format(), mode)
            except ArchiveError as exc:
                if exc.status == 400:  # Quasar's shape for bad upload data: a summary, the reason in details
                    raise ArchiveError(
                        exc.code, "some uploaded value(s) could not be processed", exc.status, details={"details": [{"detail": exc.message}]}
                    ) from None
                raise
        finally:
            self.discard_upload()
        self.send_text(b"")

    @endpoint()
    async def put(self, path: str | None = None):
        await self._write(path, "replace")

    @endpoint()
    async def post(self, path: str | None = None):
        await self._write(path, "auto")

    async def _existing_table_at(self, path: str | None):
        fs, ref, table = self._table_at(path)
        if await self.call(self.archive.catalog.resolve_table_path, self.principal, fs) is None:
            raise ArchiveError("not_found", f"{fs}: doesn't exist", 404, details={"path": fs})
        return fs, ref, table

    @endpoint()
    async def delete(self, path: str | None = None):
        _, ref, table = await self._existing_table_at(path)
        await self.call(self.archive.tables.drop, self.principal, ref, table)
        self.send_text(b"")

    @endpoint()
    async def move(self, path: str | None = None):
        fs, ref, table = await self._existing_table_at(path)
        dest = self.request.headers.get("Destination")
        if not dest:
            raise ArchiveError("bad_request", "'Destination' header missing.", details={"headerName": "Destination"})
        target = normalise_path(dest if dest.startswith("/") else fs.rsplit("/", 1)[0] + "/" + dest)
        dref, new_name = self.archive.catalog.context_at(self.principal, target)
        if dref is None or dref.name != ref.name or not new_name or "/" in new_name:
            raise ArchiveError("bad_request", f"Illegal move: {fs} can only be renamed within {ref.path}", details={"destination": dest})
        await self.call(self.archive.tables.rename, self.principal, ref, table, new_name)
        self.send_text(b"")


class MountHandler(QuasarHandler):
    """``GET|PUT|DELETE /mount/fs/{path}/``: mount configurations (changing them is for admins)."""

    @endpoint()
    async def get(self, path: str):
        fs = self.fs_path(path)
        spec = self.archive.mounts.spec(fs)
        mount, rest = self.archive.catalog.mount_at(fs)
        # Another user's private mount does not exist for this caller; where a mount's files are is for admins.
        if spec is None or (not self.principal.admin and (mount is None or rest or not mount.visible_to(self.principal))):
            raise ArchiveError("not_found", "Mount point not found.", 404, details={"path": fs + "/"})
        self.send_json(quasar_view(spec, location=self.principal.admin))

    @endpoint()
    async def put(self, path: str):
        fs = self.fs_path(path)
        try:
            body = params.parse_json(self.request.body or b"{}")
        except ArchiveError as exc:
            raise ArchiveError("bad_request", f"Malformed input: {exc.message}") from None
        verb = await self.call(self.archive.mounts.put, self.principal, fs, body)
        self.send_text(f"{verb} {fs}/")

    @endpoint()
    async def delete(self, path: str):
        fs = self.fs_path(path)
        if await self.call(self.archive.mounts.delete, self.principal, fs):
            self.send_text(f"deleted {fs}/")
        else:
            self.set_status(204)  # no mount there: success, no content (Quasar's idempotent DELETE)
            self.finish()


class ServerPortHandler(QuasarHandler):
    """``/server/port``: the port belongs to the Jupyter server, so it can be read but not changed here."""

    def _refuse(self):
        port = self.request.host.rsplit(":", 1)[-1] if ":" in self.request.host else None
        raise ArchiveError(
            "not_allowed",
            f"the port ({port or 'this server'}) belongs to the Jupyter server hosting the archive; "
            "change it with --ServerApp.port and restart Jupyter",
            405,
        )

    @endpoint()
    async def get(self):
        port = self.settings.get("serverapp").port if self.settings.get("serverapp") else None
        if not port and ":" in self.request.host:
            port = int(self.request.host.rsplit(":", 1)[-1])
        self.send_text(str(port))

    @endpoint()
    async def put(self):
        self.set_header("Allow", "GET")
        self._refuse()

    @endpoint()
    async def delete(self):
        self.set_header("Allow", "GET")
        self._refuse()


def quasar_handlers() -> list[tuple[str, type]]:
    return [
        (r"archive/quasar/query/fs/?(?P<path>.*)", LargeQueryHandler),
        (r"archive/quasar/compile/fs/?(?P<path>.*)", CompileHandler),
        (r"archive/quasar/data/fs/?(?P<path>.*)", DataHandler),
        (r"archive/quasar/mount/fs/?(?P<path>.*)", MountHandler),
        (r"archive/quasar/server/port/?", ServerPortHandler),
    ]
