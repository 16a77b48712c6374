"""Our own JSON API (``{base}archive/api``): what the client, widgets, magic and sidebar use.

Errors are ``{"error": {"code", "message", ...}}``. Results default to the
``json-table`` shape (columns with metadata, data rows, truncation flag); any archive
format can be asked for with ``Accept`` or ``?format=``.
"""

from __future__ import annotations


import datetime as dt

from ..core import formats
from ..core.errors import ArchiveError
from ..core.languages import DEFAULT_LANGUAGE, LANGUAGES
from .base import ArchiveHandler, endpoint

DEFAULT_FORMAT = "json-table"
NATIVE_MEDIA = {"application/json": "json-table"}


class NativeHandler(ArchiveHandler):
    face = "native"


class ContextsHandler(NativeHandler):
    @endpoint(anonymous=True)
    async def get(self):
        refs = await self.call(self.archive.contexts, self.principal)
        self.send_json({"contexts": [r.to_json() for r in refs]})


class TablesHandler(NativeHandler):
    @endpoint(anonymous=True)
    async def get(self, context: str):
        ref = await self.call(self.archive.context, self.principal, context)
        tables = await self.call(self.archive.tables, self.principal, ref)
        self.send_json({"context": ref.name, "tables": [t.to_json() for t in tables]})


class TableHandler(NativeHandler):
    @endpoint(anonymous=True)
    async def get(self, context: str, table: str):
        info = await self.call(self.archive.table, self.principal, context, table)
        self.send_json(info.to_json())


class RowsHandler(NativeHandler):
    """A page of a table's rows, sorted on the server when asked (``order``, ``desc``)."""

    @endpoint(anonymous=True)
    async def get(self, context: str, table: str):
        offset = self.int_arg("offset", 0, minimum=0)
        limit = self.int_arg("limit", 100, minimum=1)
        order = self.get_query_argument("order", None)
        desc = self.get_query_argument("desc", "false").lower() in ("1", "true", "yes")
        fmt = self.negotiate(DEFAULT_FORMAT, media_map=NATIVE_MEDIA)
        ref = await self.call(self.archive.context, self.principal, context)
        result = await self.call(
            self.archive.read_table, self.principal, ref, table, offset=offset, limit=limit, order_by=order, descending=desc
        )
        await self.stream(result, fmt, formats.ResultInfo(table_name=table))


def _query_args(body: dict) -> dict:
    text = body.get("query")
    if not isinstance(text, str) or not text.strip():
        raise ArchiveError("bad_request", "the request needs a 'query' (SQL text)")
    language = (body.get("language") or DEFAULT_LANGUAGE).lower()
    if language not in LANGUAGES:
        raise ArchiveError("bad_request", f"unknown language {language!r}; known: {', '.join(LANGUAGES)}")
    params = body.get("params") or None
    if params is not None and not isinstance(params, dict):
        raise ArchiveError("bad_request", "'params' must be an object of name -> value")
    variables = body.get("variables") or None
    if variables is not None and not isinstance(variables, dict):
        raise ArchiveError("bad_request", "'variables' must be an object of name -> SQL literal text")
    out = {
        "context": body.get("context") or None,
        "base_path": body.get("path") or None,
        "params": params,
        "variables": {k: str(v) for k, v in variables.items()} if variables else None,
    }
    for key in ("offset", "limit"):
        value = body.get(key)
        if value is not None and not isinstance(value, int):
            raise ArchiveError("bad_request", f"'{key}' must be an integer")
        out[key] = value
    return {"text": text, "language": language, **out}


class QueryHandler(NativeHandler):
    """``POST /query``: ``{"query", "context", "language", "params", "offset", "limit", "format"}``."""

    @endpoint(anonymous=True)
    async def post(self):
        body = self.json_body()
        args = _query_args(body)
        if body.get("format"):
            fmt = formats.negotiate(None, str(body["format"]))
        else:
            fmt = self.negotiate(DEFAULT_FORMAT, media_map=NATIVE_MEDIA)
        text, language = args.pop("text"), args.pop("language")
        await self.query_and_stream(fmt, formats.ResultInfo(query=text), self.archive.query, self.principal, text, language, **args)


class CompileHandler(NativeHandler):
    """``POST /compile``: the phases of the SQL pipeline and the engine's plan, without running."""

    @endpoint(anonymous=True)
    async def post(self):
        args = _query_args(self.json_body())
        text, language = args.pop("text"), args.pop("language")
        compiled = await self.call(self.archive.compile, self.principal, text, language, **args)
        self.send_json(
            {
                "language": compiled.language,
                "statements": [{"kind": st.kind, "sql": st.sql, "params": sorted(st.params)} for st in compiled.statements],
                "modifiedQuery": compiled.modified_query,
                "phases": [p.to_json() for p in compiled.phases],
            }
        )


def job_json(handler: NativeHandler, job) -> dict:
    """A job in the native API, with links to its parts."""
    out = job.to_json()
    base = handler.base_url.rstrip("/") + f"/archive/api/jobs/{job.id}"
    out["links"] = {"self": base, "log": base + "/log", "results": base + "/results", "cancel": base + "/cancel"}
    return out


def _target(value) -> tuple[str, ...] | str | None:
    """``"mydb.T"``, ``{"context": "MyDB", "table": "T"}`` or a path ``"/mydb/T"`` -> a job target."""
    if value in (None, ""):
        return None
    if isinstance(value, dict):
        if not value.get("table"):
            raise ArchiveError("bad_request", "'into' needs a table")
        return (str(value.get("context") or "MyDB"), str(value["table"]))
    if isinstance(value, str):
        if value.startswith("/"):
            return value
        parts = value.split(".")
        return tuple(parts) if len(parts) > 1 else ("MyDB", value)
    raise ArchiveError("bad_request", "'into' must be 'mydb.T', a path or {context, table}")


def _start_time(value) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ArchiveError("bad_request", f"invalid startTime {value!r}: use ISO 8601, e.g. 2030-01-01T12:00:00Z") from None


class JobsHandler(NativeHandler):
    """``GET /jobs`` (``state``, ``kind``, ``offset``, ``limit``, ``all``); ``POST /jobs`` submits a query job."""

    @endpoint()
    async def get(self):
        states = [x for x in self.get_query_arguments("state") for x in x.split(",") if x]
        kinds = [x for x in self.get_query_arguments("kind") for x in x.split(",") if x]
        offset = self.int_arg("offset", 0, minimum=0)
        limit = self.int_arg("limit", 100, minimum=1)
        everyone = self.get_query_argument("all", "false").lower() in ("1", "true", "yes")
        jobs, total = await self.call(
            self.archive.list_jobs, self.principal, all_users=everyone, states=states or None, kinds=kinds or None,
            offset=offset, limit=limit,
        )
        self.send_json({"jobs": [job_json(self, j) for j in jobs], "total": total, "offset": offset, "limit": limit})

    @endpoint()
    async def post(self):
        body = self.json_body()
        args = _query_args(body)
        text, language = args.pop("text"), args.pop("language")
        args.pop("offset", None), args.pop("limit", None)
        job = await self.call(
            self.archive.submit_query, self.principal, text, language, face="native",
            target=_target(body.get("into")), replace=bool(body.get("replace")),
            start_time=_start_time(body.get("startTime")), run=body.get("run", True) is not False, **args,
        )
        self.set_header("Location", job_json(self, job)["links"]["self"])
        self.send_json(job_json(self, job), status=201)


class JobHandler(NativeHandler):
    @endpoint()
    async def get(self, job_id: str):
        wait = self.get_query_argument("wait", None)
        if wait:
            try:
                timeout = min(float(wait), 60.0)
            except ValueError:
                raise ArchiveError("bad_request", f"invalid wait: {wait!r} (seconds)") from None
            job = await self.wait_job(job_id, timeout)
        else:
            job = await self.call(self.archive.job, self.principal, job_id)
        self.send_json(job_json(self, job))

    @endpoint()
    async def delete(self, job_id: str):
        await self.call(self.archive.delete_job, self.principal, job_id)
        self.set_status(204)
        self.finish()


class JobActionHandler(NativeHandler):
    """``POST /jobs/{id}/cancel`` and ``POST /jobs/{id}/run``."""

    @endpoint()
    async def post(self, job_id: str, action: str):
        fn = {"cancel": self.archive.cancel_job, "run": self.archive.run_job}[action]
        job = await self.call(fn, self.principal, job_id)
        self.send_json(job_json(self, job))


class JobLogHandler(NativeHandler):
    @endpoint()
    async def get(self, job_id: str):
        lines = await self.call(self.archive.job_log, self.principal, job_id)
        self.send_json({"log": [{"time": ts, "line": line} for ts, line in lines]})


class JobResultsHandler(NativeHandler):
    """``GET /jobs/{id}/results``: the rows a completed job produced, paged, in any format."""

    @endpoint()
    async def get(self, job_id: str):
        offset = self.int_arg("offset", 0, minimum=0)
        limit = self.int_arg("limit", None, minimum=1)
        fmt = self.negotiate(DEFAULT_FORMAT, media_map=NATIVE_MEDIA)
        result = await self.call(self.archive.job_result, self.principal, job_id, offset=offset, limit=limit)
        await self.stream(result, fmt, formats.ResultInfo(table_name=f"job{job_id}"))


def native_handlers() -> list[tuple[str, type]]:
    return [
        (r"archive/api/contexts/?", ContextsHandler),
        (r"archive/api/contexts/(?P<context>[^/]+)/tables/?", TablesHandler),
        (r"archive/api/contexts/(?P<context>[^/]+)/tables/(?P<table>.+)/rows/?", RowsHandler),
        (r"archive/api/contexts/(?P<context>[^/]+)/tables/(?P<table>.+?)/?", TableHandler),
        (r"archive/api/query/?", QueryHandler),
        (r"archive/api/compile/?", CompileHandler),
        (r"archive/api/jobs/?", JobsHandler),
        (r"archive/api/jobs/(?P<job_id>[^/]+)/?", JobHandler),
        (r"archive/api/jobs/(?P<job_id>[^/]+)/(?P<action>cancel|run)/?", JobActionHandler),
        (r"archive/api/jobs/(?P<job_id>[^/]+)/log/?", JobLogHandler),
        (r"archive/api/jobs/(?P<job_id>[^/]+)/results/?", JobResultsHandler),
    ]
