"""SAS jobs: run a directive, list and read jobs, their state (cancel), log, error and results."""

from __future__ import annotations

from ...core import formats, params
from ...core.errors import ArchiveError, bad_request
from ...core.jobs import Job
from ..base import endpoint
from .resources import (
    API, COLLECTION, DATA_TYPES, DEFAULT_LIMIT, ERROR, JOB, JOB_RESULT, LOG_LIMIT, LOG_LINE, MAX_LIMIT, RESULTS_RESOURCE,
    STATE, TEXT, SasHandler, error_json,
)  # fmt: skip


class JobsHandler(SasHandler):
    """``POST /jobs?directive=ID|directivePath=PATH`` runs a directive; ``GET /jobs`` lists SAS jobs."""

    @endpoint()
    async def post(self):
        self.answer_type(JOB)
        directive = self.arg("directive")
        path = self.arg("directivePath")
        if not directive and not path:
            raise bad_request("name the directive to run: ?directive=ID or ?directivePath=/folder/name")
        job = await self.call(
            self.archive.directives.run, self.principal, directive or path, by_path=not directive, face="sas"
        )
        self.set_header("Location", self.root + f"/jobs/{job.id}")
        self.send_job(job)

    @endpoint()
    async def get(self):
        start, limit = self.page("start", "limit", DEFAULT_LIMIT, MAX_LIMIT)
        jobs, total = await self.call(self.archive.jobs.list, self.principal, face="sas", offset=start, limit=limit)
        body = self.collection("/jobs", [self.job_json(j) for j in jobs], total, start, limit, JOB, up=self.link("up", "/", API))
        self.send_sas(body, COLLECTION)

    head = get


class JobHandler(SasHandler):
    """``GET /jobs/{id}`` (also HEAD) and ``DELETE /jobs/{id}`` (204)."""

    @endpoint()
    async def get(self, job_id: str):
        self.send_job(await self.sas_job(job_id))

    head = get

    @endpoint()
    async def delete(self, job_id: str):
        job = await self.sas_job(job_id)
        await self.call(self.archive.jobs.delete, self.principal, job.id)
        self.set_status(204)
        self.finish()


class JobStateHandler(SasHandler):
    """``GET /jobs/{id}/state`` (text); ``PUT …/state?value=canceled`` cancels and answers the state."""

    @endpoint()
    async def get(self, job_id: str):
        job = await self.sas_job(job_id)
        self.send_text(STATE[job.state])

    head = get

    @endpoint()
    async def put(self, job_id: str):
        value = self.arg("value")
        if value != "canceled":
            raise bad_request(f"invalid value {value!r}: the only state a job can be set to is 'canceled'", value=value)
        job = await self.sas_job(job_id)
        job = await self.call(self.archive.jobs.cancel, self.principal, job.id)
        self.send_text(STATE[job.state])


class JobLogHandler(SasHandler):
    """``GET /jobs/{id}/log``: a collection of ``{type, line}`` (``text/plain`` when asked)."""

    @endpoint()
    async def get(self, job_id: str):
        job = await self.sas_job(job_id)
        lines = await self.call(self.archive.jobs.log, self.principal, job.id)
        entries = []
        for _ts, line in lines:
            kind = "error" if line.startswith("failed") else "note"
            entries.append({"version": 1, "type": kind, "line": f"{kind.upper()}: {line}"})
        if self.accepts(TEXT):
            self.send_text("".join(e["line"] + "\n" for e in entries))
            return
        start, limit = self.page("start", "limit", LOG_LIMIT, MAX_LIMIT)
        up = self.link("up", f"/jobs/{job.id}", JOB)
        page = entries[start : start + limit]
        self.send_sas(self.collection(f"/jobs/{job.id}/log", page, len(entries), start, limit, LOG_LINE, up=up), COLLECTION)

    head = get


class JobErrorHandler(SasHandler):
    """``GET /jobs/{id}/error``: 204 when the job has no error, else its ``vnd.sas.error``."""

    @endpoint()
    async def get(self, job_id: str):
        job = await self.sas_job(job_id)
        if not job.error_message:
            self.set_status(204)
            self.finish()
            return
        details = [f"code: {job.error_code}", f"job: {job.id}"]
        if job.request.get("directive"):
            details.append(f"directive: {job.request['directive']}")
        body = error_json(job.error_code or "server_error", job.error_message, 0, details)
        body["links"] = [self.link("up", f"/jobs/{job.id}", JOB)]
        self.send_sas(body, ERROR)

    head = get


class JobResultsHandler(SasHandler):
    """``GET /jobs/{id}/results``: the (unpaged) ``vnd.sas.collection`` of the job's results.

    As the Data Loader document has it, the answer is the collection of the job's one
    ``vnd.sas.dataloader.job.result``, whose ``view`` link gives its rows. The rows also come
    straight from this URL when asked for by ``?format=`` or by an Accept naming a data format
    (``text/csv``, VOTable, Parquet, ...; ``start``/``limit`` page them).
    """

    @endpoint()
    async def get(self, job_id: str):
        job = await self.sas_job(job_id)
        if job.state != "completed":
            raise ArchiveError("conflict", f"job {job.id} is {STATE[job.state]}; results exist once it has completed", 409)
        if self.wants_collection():
            self.send_sas(self.results_collection(job), COLLECTION)
            return
        fmt = self.negotiate("json")
        start, limit = self.page("start", "limit", None)
        result = await self.call(self.archive.jobs.result, self.principal, job.id, offset=start, limit=limit)
        await self.stream(result, fmt, formats.ResultInfo(table_name=f"job{job.id}"))

    def wants_collection(self) -> bool:
        """Whether to answer the collection: no ``format``, and Accept prefers the collection (or
        any JSON, or anything) to every data format."""
        if self.arg("format"):
            return False
        ranges = []
        for mt, options in params.parse_accept(self.request.headers.get("Accept") or ""):
            try:
                q = float(options.get("q") or 1)
            except ValueError:
                q = 1.0
            if q > 0:
                ranges.append((q, mt))
        ranges.sort(key=lambda r: -r[0])  # stable: equal q keeps the client's order
        for _, mt in ranges:
            if mt in RESULTS_RESOURCE:
                return True
            if mt in DATA_TYPES:
                return False
        return not ranges

    def results_collection(self, job: Job) -> dict:
        table = job.results.get("table")
        uri = f"/jobs/{job.id}/results"
        up = self.link("up", f"/jobs/{job.id}", JOB)
        item = {
            "version": 1, "id": "0", "jobId": str(job.id), "type": "table" if table else "resultSet",
            "name": f"{table['context']}.{table['name']}" if table else f"job{job.id}", "rows": job.rows,
            "links": [self.link("view", uri + "?format=json", "application/json"), up],
        }  # fmt: skip
        return self.collection(uri, [item], 1, 0, 1, JOB_RESULT, up=up, paged=False)
