"""Our own JSON API (``{base}archive/api``): what the client, widgets, magic and sidebar use.

Errors are ``{"error": {"code", "message", ...}}``. Results default to the
``json-table`` shape (columns with metadata, data rows, truncation flag); any archive
format can be asked for with ``Accept`` or ``?format=``.
"""

from __future__ import annotations

from ..core import formats, params, times
from ..core.errors import ArchiveError
from ..core.languages import DEFAULT_LANGUAGE, LANGUAGES
from .base import ArchiveHandler, endpoint

DEFAULT_FORMAT = "json-table"
NATIVE_MEDIA = {"application/json": "json-table"}
PAGE_SIZE = 100  # rows, jobs or directives a listing gives unless asked for another number


class NativeHandler(ArchiveHandler):
    face = "native"

    def sample_asked(self, *page: str) -> bool:
        """``sample=N`` (and ``seed``): a uniform random sample of N rows of the whole table or result instead
        of a page (``core.execution.samples``). A sample has no pages and no order, so ``offset``, ``limit``,
        ``order`` and ``desc`` with it are refused, as is ``seed`` without it; the answer says
        ``X-Archive-Sample: <rows> of <total>; seed=<seed>`` (json-table: ``"sample"``, Arrow: ``archive.sample``)."""
        asked = "sample" in self.query_arguments
        if not asked and "seed" in self.query_arguments:
            raise ArchiveError("bad_request", "seed= goes with sample=: it picks which random sample is drawn", 400)
        if asked and (clash := [p for p in page if p in self.query_arguments]):
            raise ArchiveError("bad_request", f"sample= draws a random sample of all the rows; it has no pages and no order, "
                                              f"so it cannot be combined with {', '.join(clash)}", 400)  # fmt: skip
        return asked

    async def stream_sample(self, fn, *args, name: str) -> None:
        """Send the sample ``fn`` (``archive.samples``'s) draws of ``args``, saying what it is."""
        fmt = self.negotiate(DEFAULT_FORMAT, media_map=NATIVE_MEDIA)
        result = await self.call(fn, self.principal, *args, self.arg("sample"), self.arg("seed"))
        self.set_header("X-Archive-Sample", result.sample.said())
        await self.stream(result, fmt, formats.ResultInfo(table_name=name, sample=result.sample))


class ContextsHandler(NativeHandler):
    @endpoint(anonymous=True)
    async def get(self):
        refs = await self.call(self.archive.catalog.contexts, self.principal)
        docs = [r.to_json() for r in refs]
        for ref, doc in zip(refs, docs, strict=True):
            if ref.mount is None and not self.principal.anonymous:  # MyDB: what it takes of its quota
                doc["storage"] = self.archive.storage.usage(self.archive.catalog.mydb_path(self.principal))
            elif ref.mount is not None and ref.mount.kind == "hats" and ref.mount.owner:  # their imported catalogs'
                doc["storage"] = await self.call(self.archive.hats_imports.usage, self.principal)
        self.send_json({"contexts": docs})


class TablesHandler(NativeHandler):
    @endpoint(anonymous=True)
    async def get(self, context: str):
        ref = await self.call(self.archive.catalog.context, self.principal, context)
        tables = await self.call(self.archive.catalog.tables, self.principal, ref)
        self.send_json({"context": ref.name, "tables": [t.to_json() for t in tables]})


class TableHandler(NativeHandler):
    @endpoint(anonymous=True)
    async def get(self, context: str, table: str):
        info = await self.call(self.archive.catalog.table, self.principal, context, table)
        self.send_json(info.to_json())


class RowsHandler(NativeHandler):
    """A page of a table's rows, sorted on the server when asked (``order``, ``desc``), or a random sample."""

    @endpoint(anonymous=True)
    async def get(self, context: str, table: str):
        if self.sample_asked("offset", "limit", "order", "desc"):
            ref = await self.call(self.archive.catalog.context, self.principal, context)
            return await self.stream_sample(self.archive.samples.table, ref, table, name=table)
        offset, limit = self.page("offset", "limit", PAGE_SIZE)
        order = self.arg("order")
        desc = self.bool_arg("desc")
        fmt = self.negotiate(DEFAULT_FORMAT, media_map=NATIVE_MEDIA)
        ref = await self.call(self.archive.catalog.context, self.principal, context)
        result = await self.call(
            self.archive.queries.read_table, self.principal, ref, table, offset=offset, limit=limit, order_by=order, descending=desc
        )
        await self.stream(result, fmt, formats.ResultInfo(table_name=table))


def _query_args(body: dict) -> dict:
    text = params.text("query", body.get("query"))
    if not text or not text.strip():
        raise ArchiveError("bad_request", "the request needs a 'query' (SQL text)")
    language = (params.text("language", body.get("language")) or DEFAULT_LANGUAGE).lower()
    if language not in LANGUAGES:
        raise ArchiveError("bad_request", f"unknown language {language!r}; known: {', '.join(LANGUAGES)}")
    bound = params.mapping("params", body.get("params"))  # name -> value, bound as parameters
    variables = params.mapping("variables", body.get("variables"))  # name -> SQL literal text
    return {
        "text": text,
        "language": language,
        "context": params.text("context", body.get("context")) or None,
        "base_path": params.text("path", body.get("path")) or None,
        "params": bound,
        "variables": {k: str(v) for k, v in variables.items()} if variables else None,
        "offset": params.integer("offset", body.get("offset"), minimum=0),
        "limit": params.integer("limit", body.get("limit"), minimum=0),
    }


class QueryHandler(NativeHandler):
    """``POST /query``: ``{"query", "context", "language", "params", "offset", "limit", "format", "continueAsJob", "history"}``.

    ``"history": false`` keeps the run out of the caller's query history: another page of a query already listed
    there (the sidebar's preview of a query run again), not a query the user ran anew.

    A query still running when the quick time limit passes goes on as a job of the caller's (unless
    ``"continueAsJob": false``: then it is interrupted, a ``time_limit`` error): the answer is 202 with the job's
    JSON and ``Location``, and the same run's rows become the job's result (``quick_query``, ``core/jobs/continued.py``)."""

    @endpoint(anonymous=True)
    async def post(self):
        body = self.json_body()
        args = _query_args(body)
        if body.get("format"):
            fmt = formats.negotiate(None, params.text("format", body["format"]))
        else:
            fmt = self.negotiate(DEFAULT_FORMAT, media_map=NATIVE_MEDIA)
        text, language = args.pop("text"), args.pop("language")
        if not params.boolean("history", body.get("history"), default=True):
            args["history"] = None  # ``Queries.query``: listed nowhere
        job = {} if params.boolean("continueAsJob", body.get("continueAsJob"), default=True) else None
        await self.quick_query(fmt, formats.ResultInfo(query=text), self.principal, text, language, job=job, **args)

    async def went_on(self, job) -> None:
        out = job_json(self, job)
        self.set_header("Location", out["links"]["self"])
        self.send_json(out, status=202)


class CompileHandler(NativeHandler):
    """``POST /compile``: the phases of the SQL pipeline and the engine's plan, without running."""

    @endpoint(anonymous=True)
    async def post(self):
        args = _query_args(self.json_body())
        text, language = args.pop("text"), args.pop("language")
        compiled = await self.call(self.archive.queries.compile, self.principal, text, language, **args)
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
    base = handler.archive_url("api", "jobs", job.id)
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


class JobsHandler(NativeHandler):
    """``GET /jobs`` (``state``, ``kind``, ``offset``, ``limit``, ``all``); ``POST /jobs`` submits a query job, or with
    ``"kind": "hats_import"`` turns a MyDB table (``table``, ``name``, ``ra``, ``dec``, ``margin_arcsec``) into a HATS catalog."""

    @endpoint()
    async def get(self):
        states = [x for x in self.args("state") for x in x.split(",") if x]
        kinds = [x for x in self.args("kind") for x in x.split(",") if x]
        offset, limit = self.page("offset", "limit", PAGE_SIZE)
        everyone = self.bool_arg("all")
        jobs, total = await self.call(
            self.archive.jobs.list, self.principal, all_users=everyone, states=states or None, kinds=kinds or None,
            offset=offset, limit=limit,
        )
        storage = await self.call(self.archive.results.usage, self.principal.ident)  # their stored results, of their quota
        self.send_json({"jobs": [job_json(self, j) for j in jobs], "total": total, "offset": offset, "limit": limit, "storage": storage})

    @endpoint()
    async def post(self):
        body = self.json_body()
        if body.get("kind") == "hats_import":  # a MyDB table made a HATS catalog of the user's own
            job = await self.call(
                self.archive.hats_imports.submit, self.principal, body.get("table"), name=body.get("name"), ra=body.get("ra", "ra"),
                dec=body.get("dec", "dec"), margin_arcsec=body.get("margin_arcsec", 10.0),
            )  # fmt: skip
            self.set_header("Location", job_json(self, job)["links"]["self"])
            return self.send_json(job_json(self, job), status=201)
        if body.get("kind") not in (None, "query"):
            raise ArchiveError("bad_request", f"unknown job kind {body.get('kind')!r}: 'query' (the default) or 'hats_import'")
        args = _query_args(body)
        text, language = args.pop("text"), args.pop("language")
        args.pop("offset", None), args.pop("limit", None)
        job = await self.call(
            self.archive.jobs.submit_query, self.principal, text, language, face="native",
            target=_target(body.get("into")), replace=params.boolean("replace", body.get("replace")),
            start_time=times.parse("startTime", body.get("startTime"), seconds=True), run=params.boolean("run", body.get("run"), default=True),
            **args,
        )
        self.set_header("Location", job_json(self, job)["links"]["self"])
        self.send_json(job_json(self, job), status=201)


class JobHandler(NativeHandler):
    @endpoint()
    async def get(self, job_id: str):
        wait = self.number_arg("wait")  # seconds
        if wait is not None and wait > 0:
            job = await self.wait_job(job_id, min(wait, 60.0))
        else:
            job = await self.call(self.archive.jobs.get, self.principal, job_id)
        self.send_json(job_json(self, job))

    @endpoint()
    async def delete(self, job_id: str):
        await self.call(self.archive.jobs.delete, self.principal, job_id)
        self.set_status(204)
        self.finish()


class JobActionHandler(NativeHandler):
    """``POST /jobs/{id}/cancel`` and ``POST /jobs/{id}/run``."""

    @endpoint()
    async def post(self, job_id: str, action: str):
        fn = {"cancel": self.archive.jobs.cancel, "run": self.archive.jobs.run}[action]
        job = await self.call(fn, self.principal, job_id)
        self.send_json(job_json(self, job))


class JobLogHandler(NativeHandler):
    @endpoint()
    async def get(self, job_id: str):
        lines = await self.call(self.archive.jobs.log, self.principal, job_id)
        self.send_json({"log": [{"time": ts, "line": line} for ts, line in lines]})


class JobResultsHandler(NativeHandler):
    """``GET /jobs/{id}/results``: the rows a completed job produced, paged (or a random sample), in any format."""

    @endpoint()
    async def get(self, job_id: str):
        if self.sample_asked("offset", "limit"):
            return await self.stream_sample(self.archive.samples.job_result, job_id, name=f"job{job_id}")
        offset, limit = self.page("offset", "limit", None)
        fmt = self.negotiate(DEFAULT_FORMAT, media_map=NATIVE_MEDIA)
        result = await self.call(self.archive.jobs.result, self.principal, job_id, offset=offset, limit=limit)
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
