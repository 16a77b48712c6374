"""The SDSS CasJobs REST face (``{base}archive/casjobs``), as SciServer's client speaks it.

Routes are case-insensitive, unknown query parameters (``TaskName``) are ignored and every
success is exactly 200, because the real clients test ``status_code != 200``.
"""

from __future__ import annotations

import hashlib

from ..core import formats, params, times
from ..core.errors import ArchiveError
from ..core.jobs import Job
from .base import ArchiveHandler, endpoint, log_message_id

ERROR_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    406: "NotAcceptable",
    409: "Conflict",
    413: "RequestEntityTooLarge",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}

# CasJobs' Accept values; anything else falls back to the formats table.
MEDIA = {
    "application/json+array": "json-array-casjobs",
    "application/json": "json-array-casjobs",
    "text/plain": "csv",
    "text/xml": "xml",
    "application/xml": "xml",
}


class CasJobsHandler(ArchiveHandler):
    face = "casjobs"

    def error_body(self, err: ArchiveError):
        return err.status, {
            "Error Code": err.status,
            "Error Type": ERROR_TYPES.get(err.status, "Error"),
            "Error Message": err.message,
            "LogMessageID": log_message_id(),
        }

    def output_url(self, job: Job) -> str:
        """Where a completed job's stored rows are read (``OutputLoc``; the native API's results, in any format)."""
        done = job.state == "completed" and "store" in job.results
        return self.archive_url("api", "jobs", job.id, "results", absolute=True) if done else ""

    def follow_url(self, job: Job) -> str:
        """A job as CasJobs shows it (``GET jobs/{JobID}``): where a quick query that went on as a job is followed."""
        return self.archive_url("casjobs", "jobs", job.id, absolute=True)


class QuickQueryHandler(CasJobsHandler):
    """``POST /contexts/{context}/query``: run a quick query, answer its rows in the Accept format. One still running
    when the quick time limit passes goes on as a CasJobs job of the principal's (CasJobs' time-limit error names its
    JobID; its status and rows as any CasJobs job's: ``GET jobs/{JobID}``, ``OutputLoc``)."""

    @endpoint(anonymous=True)
    async def post(self, context: str):
        query = params.text("Query", self.body_field("Query"))
        if not query:
            raise ArchiveError("bad_request", "the request body needs a Query")
        principal = self.principal
        owner = self.request.headers.get("X-Owner")
        if owner:
            if not principal.admin:
                raise ArchiveError("permission", "X-Owner needs the admin role", 403)
            principal = await self.call(self.archive.users.user, owner)  # 404 for a user who does not exist
        fmt = self.negotiate("csv", media_map=MEDIA)
        info = formats.ResultInfo(table_name="Table1", query=query)
        job = {"task_name": params.text("TaskName", self.body_field("TaskName")) or self.arg("TaskName") or "REST Quick Job Task"}
        await self.quick_query(fmt, info, principal, query, "tsql", job=job, context=context)


# CasJobs status codes (SOAP GetJobStatus): 0 ready, 1 started, 2 canceling, 3 cancelled, 4 failed, 5 finished.
STATUS = {
    "pending": 0, "scheduled": 0, "queued": 0, "running": 1, "canceling": 2,
    "canceled": 3, "failed": 4, "completed": 5,
}  # fmt: skip


def web_services_id(user: str) -> int:
    """A stable CasJobs-style WebServicesID for a user name (a large positive integer)."""
    return 1_000_000_000 + int.from_bytes(hashlib.sha256(user.encode()).digest()[:4], "big") % 1_000_000_000


QUERY_KINDS = ("query", "directive")  # jobs that run SQL; CasJobs shows the others by what they do


def job_json(job: Job, output: str = "") -> dict:
    """A job exactly as CasJobs' GET /jobs/{id} shows it (any kind of job, of any face); ``output``: where its rows
    are read (``OutputLoc``)."""
    req = job.request
    into = req.get("into") if isinstance(req.get("into"), dict) else {}
    created = (job.results.get("table") or {}).get("name") or ""
    query = job.summary
    modified = req.get("modified_query") or query
    word = "Query" if job.kind in QUERY_KINDS else "Job"
    if job.state == "completed":
        message = f"{word} Complete"
    elif job.state == "failed":
        message = job.error_message or f"{word} failed"
    elif job.state == "canceled":
        message = f"{word} Canceled"
    else:
        message = ""
    estimate = req.get("estimate")  # minutes, as the caller said (a cutout job's estimate is its own)
    return {
        "JobID": job.id,
        "Rows": job.rows if job.state == "completed" else None,
        "WebServicesID": web_services_id(job.owner),
        "TimeSubmit": times.dotnet_local(job.submitted),
        "TimeStart": times.dotnet_local(job.started),
        "TimeEnd": times.dotnet_local(job.ended),
        "SendEmail": 0,
        "Status": STATUS[job.state],
        "AutoComplete": 0,
        "Estimate": estimate if isinstance(estimate, int) and not isinstance(estimate, bool) and estimate else 500,
        "TaskName": req.get("task_name") or "REST Job Task",
        "OutputLoc": output,
        "HostIP": ("jupyter_archive " if job.started else " " * 16),
        "Message": message,
        "Query": query,
        "ModifiedQuery": modified,
        "Target": req.get("context") or "",
        "OutputType": "QUERY" if job.kind in QUERY_KINDS else job.kind.upper(),
        "Params": "",
        "Created_Table": created or ("" if job.state != "completed" else into.get("name", "")),
    }


class JobsHandler(CasJobsHandler):
    """``PUT /contexts/{context}/jobs``: submit a long query; answers the bare integer id."""

    @endpoint()
    async def put(self, context: str):
        query = params.text("Query", self.body_field("Query"))
        if not query:
            raise ArchiveError("bad_request", "the request body needs a Query")
        target = None
        table = params.text("TableName", self.body_field("TableName"))
        if params.boolean("CreateTable", self.body_field("CreateTable")):
            if not table:
                raise ArchiveError("bad_request", "CreateTable needs a TableName")
            target = ("MyDB", table)
        job = await self.call(
            self.archive.jobs.submit_query,
            self.principal,
            query,
            "tsql",
            face="casjobs",
            context=context,
            target=target,
            task_name=params.text("TaskName", self.body_field("TaskName")) or self.arg("TaskName") or "REST Job Task",
            estimate=params.integer("Estimate", self.body_field("Estimate"), minimum=0),
        )
        self.send_text(str(job.id))


class JobListHandler(CasJobsHandler):
    """``GET /jobs``: the caller's jobs, optionally between ``submittedFrom`` and ``submittedTo``."""

    @endpoint()
    async def get(self):
        await self.send_job_list()

    async def send_job_list(self):
        bounds = {}
        for arg, key in (("submittedFrom", "submitted_from"), ("submittedTo", "submitted_to")):
            raw = self.arg(arg)
            if raw and raw.lower() != "null":  # SciScript sends "null" for no bound
                bounds[key] = times.parse(arg, raw)
        jobs, _ = await self.call(self.archive.jobs.list, self.principal, **bounds)
        self.send_json([job_json(j, self.output_url(j)) for j in jobs])


class JobHandler(JobListHandler):
    """``GET /jobs/{id}``: the job's status (JSON whatever Accept says); ``DELETE``: cancel it."""

    @endpoint()
    async def get(self, job_id: str):
        if not job_id:
            return await self.send_job_list()
        job = await self.call(self.archive.jobs.get, self.principal, job_id)
        self.send_json(job_json(job, self.output_url(job)))

    @endpoint()
    async def delete(self, job_id: str):
        await self.call(self.archive.jobs.cancel, self.principal, job_id)
        self.send_json(True)


def casjobs_handlers() -> list[tuple[str, type]]:
    return [
        (r"(?i:archive/casjobs/contexts/(?P<context>[^/]+)/query)/?", QuickQueryHandler),
        (r"(?i:archive/casjobs/contexts/(?P<context>[^/]+)/jobs)/?", JobsHandler),
        (r"(?i:archive/casjobs/jobs)", JobListHandler),
        (r"(?i:archive/casjobs/jobs)/(?P<job_id>[^/]*)", JobHandler),
    ]
