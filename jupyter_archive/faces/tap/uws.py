"""Async TAP (UWS 1.1) under ``{base}archive/tap/async``: TAP queries as jobs of the one job system.

A TAP async job is a query job (face ``tap``) whose request carries the TAP parameters; UWS
phases are names for the job system's states. Every POST to a job resource answers 303 to the
job (what STILTS and TOPCAT require); ``WAIT`` blocks without holding a thread.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from tornado import web

from ...core import formats, times
from ...core.execution import uploads as tap_uploads
from ...core.errors import ArchiveError, bad_request, not_found
from ...core.jobs import Job
from ...core.params import integer
from ..base import endpoint
from .dali import VOTABLE_MEDIA, XSI, TapParamsHandler, error_votable, tap_format

UWS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK = "http://www.w3.org/1999/xlink"
PHASES = {
    "pending": "PENDING", "scheduled": "QUEUED", "queued": "QUEUED", "running": "EXECUTING",
    "canceling": "EXECUTING", "completed": "COMPLETED", "failed": "ERROR", "canceled": "ABORTED",
}  # fmt: skip
ACTIVE_PHASES = {"PENDING", "QUEUED", "EXECUTING"}
MAX_WAIT = 60.0  # seconds a WAIT may block (below proxies' idle timeouts and pyvo's 600 s)


def phase(job: Job) -> str:
    return PHASES.get(job.state, "UNKNOWN")


def _nil(tag: str, value) -> str:
    if value is None or value == "":
        return f'<uws:{tag} xsi:nil="true"/>'
    return f"<uws:{tag}>{escape(str(value))}</uws:{tag}>"


class UwsHandler(TapParamsHandler):
    """Shared parts of the UWS resources: the job of the URL, its URLs and documents."""

    @property
    def jobs_url(self) -> str:
        return self.archive_url("tap", "async", absolute=True)

    async def tap_job(self, job_id: str) -> Job:
        job = await self.call(self.archive.jobs.get, self.principal, job_id)
        if job.face != "tap":
            raise not_found(f"unknown job {job_id}")
        return job

    async def change_phase(self, job: Job, value: str) -> None:
        value = (value or "").strip().upper()
        if value == "RUN":
            await self.call(self.archive.jobs.run, self.principal, job.id)
        elif value == "ABORT":
            await self.call(self.archive.jobs.cancel, self.principal, job.id)
        else:
            raise bad_request(f"unsupported PHASE {value!r}: RUN or ABORT")
        self.see(self.job_url(job))

    def see(self, url: str) -> None:
        """303 See Other: what UWS clients expect after every POST and DELETE."""
        self.set_status(303)
        self.set_header("Location", url)
        self.finish()

    @staticmethod
    def owner(job: Job) -> str | None:
        """The ownerId: nil for anonymous jobs."""
        return None if job.anonymous else job.owner

    def parameters_xml(self, job: Job) -> str:
        # the job's TAP parameters as sent (PHASE and ACTION steer the job; they are not parameters)
        params = {k: v for k, v in (job.request.get("tap") or {}).items() if k not in ("phase", "action")}
        params.setdefault("query", job.request.get("query") or "")
        out = ["<uws:parameters>"]
        for key, value in sorted(params.items()):
            out.append(f"<uws:parameter id={quoteattr(key)}>{escape(str(value))}</uws:parameter>")
        out.append("</uws:parameters>")
        return "".join(out)

    def results_xml(self, job: Job) -> str:
        if job.state != "completed":
            return "<uws:results/>"
        fmt = tap_format(job.request.get("format"))
        return (
            f'<uws:results><uws:result id="result" xlink:href={quoteattr(self.job_url(job) + "/results/result")} '
            f"mime-type={quoteattr(fmt.media_type.split(';')[0])}/></uws:results>"
        )

    def job_xml(self, job: Job) -> str:
        ph = phase(job)
        runid = (job.request.get("tap") or {}).get("runid")
        out = [
            f'<uws:job version="1.1" xmlns:uws="{UWS}" xmlns:xlink="{XLINK}" xmlns:xsi="{XSI}">',
            f"<uws:jobId>{job.id}</uws:jobId>",
            f"<uws:runId>{escape(runid)}</uws:runId>" if runid else "",
            _nil("ownerId", self.owner(job)),
            f"<uws:phase>{ph}</uws:phase>",
            '<uws:quote xsi:nil="true"/>',
            f"<uws:creationTime>{times.iso(job.submitted)}</uws:creationTime>",
            _nil("startTime", times.iso(job.started)),
            _nil("endTime", times.iso(job.ended)),
            f"<uws:executionDuration>{int(job.request.get('time_limit') or 0)}</uws:executionDuration>",
            _nil("destruction", times.iso(self.archive.jobs.destruction(job))),
            self.parameters_xml(job),
            self.results_xml(job),
        ]
        if ph == "ERROR":
            out.append(
                '<uws:errorSummary type="fatal" hasDetail="true">'
                f"<uws:message>{escape(job.error_message or 'the job failed')}</uws:message></uws:errorSummary>"
            )
        if job.rows is not None:
            out.append(f"<uws:jobInfo><rows>{job.rows}</rows></uws:jobInfo>")
        out.append("</uws:job>")
        return "".join(x for x in out if x)


@web.stream_request_body
class JobsHandler(UwsHandler):
    """``GET async``: the caller's TAP jobs; ``POST async``: a new job (303 to it)."""

    @endpoint(anonymous=True)
    async def get(self):
        phases = {p.strip().upper() for v in self.args("PHASE") for p in v.split(",")}
        _, last = self.page(None, "LAST", None, least=0)
        jobs, _ = await self.call(self.archive.jobs.list, self.principal, face="tap", submitted_from=self.time_arg("AFTER"))
        jobs = [j for j in jobs if (phase(j) in phases if phases else True)]
        if last is not None:
            # LAST: the most recently created, still newest first (UWS 1.1 section 2.2.2.1)
            jobs = jobs[:last]
        out = [f'<uws:jobs version="1.1" xmlns:uws="{UWS}" xmlns:xlink="{XLINK}" xmlns:xsi="{XSI}">']
        for j in jobs:
            runid = (j.request.get("tap") or {}).get("runid")
            out.append(
                f"<uws:jobref id={quoteattr(str(j.id))} xlink:href={quoteattr(self.job_url(j))}>"
                f"<uws:phase>{phase(j)}</uws:phase>"
                + (f"<uws:runId>{escape(runid)}</uws:runId>" if runid else "")
                + _nil("ownerId", self.owner(j))
                + f"<uws:creationTime>{times.iso(j.submitted)}</uws:creationTime></uws:jobref>"
            )
        out.append("</uws:jobs>")
        self.send_xml("".join(out))

    @endpoint(anonymous=True)
    async def post(self):
        params, files = self.tap_params()
        try:
            request = self.query_request(params, files, complete=False)
        except ArchiveError as exc:
            # UWS creates the job anyway; it fails with this message when run (what taplint expects)
            request = {"query": params.get("QUERY") or "", "uploads": [], "invalid": exc.message,
                       "tap": {k.lower(): v for k, v in params.items()}}
        run = (params.get("PHASE") or "").strip().upper() == "RUN"
        try:
            job = await self.call(
                self.archive.jobs.submit_query, self.principal, request.pop("query"), "adql", face="tap", run=run,
                validate=False, **request,
            )
        except BaseException:
            tap_uploads.discard(request["uploads"])
            raise
        self.see(self.job_url(job))


@web.stream_request_body
class JobHandler(UwsHandler):
    """``GET async/{id}`` (``WAIT``, ``PHASE``), ``DELETE``, and ``POST ACTION=DELETE``."""

    @endpoint(anonymous=True)
    async def get(self, job_id: str):
        job = await self.tap_job(job_id)
        seconds = self.number_arg("WAIT")  # seconds, or -1 for as long as the server allows
        if seconds is not None:
            seconds = MAX_WAIT if seconds < 0 else min(seconds, MAX_WAIT)
            only = (self.arg("PHASE") or "").strip().upper()
            start = phase(job)
            if start in ACTIVE_PHASES and (not only or only == start):
                job = await self.wait_job(job.id, seconds, until=lambda j: phase(j) != start)
        self.send_xml(self.job_xml(job))

    @endpoint(anonymous=True)
    async def delete(self, job_id: str):
        job = await self.tap_job(job_id)
        await self.call(self.archive.jobs.delete, self.principal, job.id)
        self.see(self.jobs_url)

    @endpoint(anonymous=True)
    async def post(self, job_id: str):
        params, _ = self.tap_params()
        job = await self.tap_job(job_id)
        action = (params.get("ACTION") or "").strip().upper()
        if action == "DELETE":
            await self.call(self.archive.jobs.delete, self.principal, job.id)
            self.see(self.jobs_url)
            return
        if "PHASE" in params:
            await self.change_phase(job, params["PHASE"])
            return
        raise bad_request(f"unsupported ACTION {params.get('ACTION')!r}: POST ACTION=DELETE to delete the job")


@web.stream_request_body
class JobPartHandler(UwsHandler):
    """The resources of one job: phase, parameters, executionduration, destruction, quote,
    owner, error, results (``results/result`` is ``ResultHandler``)."""

    @endpoint(anonymous=True)
    async def get(self, job_id: str, part: str):
        job = await self.tap_job(job_id)
        if part == "phase":
            self.send_text(phase(job))
        elif part == "parameters":
            self.send_xml(f'<uws:parameters xmlns:uws="{UWS}"' + self.parameters_xml(job)[len("<uws:parameters"):])
        elif part == "executionduration":
            self.send_text(str(int(job.request.get("time_limit") or 0)))
        elif part == "destruction":
            self.send_text(times.iso(self.archive.jobs.destruction(job)) or "")
        elif part == "quote":
            self.send_text("")
        elif part == "owner":
            self.send_text(self.owner(job) or "")
        elif part == "error":
            if phase(job) != "ERROR":
                raise not_found(f"job {job.id} has no error: it is {phase(job)}")
            self.finish(error_votable(job.error_message or "the job failed"), set_content_type=VOTABLE_MEDIA)
        elif part == "results":
            self.send_xml(f'<uws:results xmlns:uws="{UWS}" xmlns:xlink="{XLINK}"' + self.results_xml(job)[len("<uws:results"):])
        else:
            raise not_found(f"no such job resource {part!r}")

    @endpoint(anonymous=True)
    async def post(self, job_id: str, part: str):
        params, files = self.tap_params()
        job = await self.tap_job(job_id)
        if part == "phase":
            await self.change_phase(job, params.get("PHASE", ""))
            return
        if part == "parameters":
            await self.set_parameters(job, params, files)
        elif part == "executionduration":
            seconds = integer("EXECUTIONDURATION", params.get("EXECUTIONDURATION"), minimum=0)
            if seconds is None:
                raise bad_request("EXECUTIONDURATION is required: whole seconds, 0 for no limit")
            request = dict(job.request, time_limit=seconds or None)
            await self.call(self.archive.jobs.update, self.principal, job.id, request=request)
        elif part == "destruction":
            when = times.parse("DESTRUCTION", params.get("DESTRUCTION"))
            if when is None:
                raise bad_request("DESTRUCTION is required: an ISO 8601 time such as 2030-01-01T00:00:00Z")
            await self.call(self.archive.jobs.update, self.principal, job.id, destruction=when)
        else:
            raise bad_request(f"job resource {part!r} cannot be changed")
        self.see(self.job_url(job))

    async def set_parameters(self, job: Job, params: dict[str, str], files: dict[str, bytes]) -> None:
        """New TAP parameters of a pending job, merged into those it has."""
        merged = {k.upper(): v for k, v in (job.request.get("tap") or {}).items()}
        merged.update(params)
        request = self.query_request(merged, files, complete=False)
        if not request["uploads"] and "UPLOAD" not in params:
            request["uploads"] = job.request.get("uploads") or []  # staged before: keep them
        old = job.request.get("uploads") or []
        try:
            await self.call(self.archive.jobs.update, self.principal, job.id, request=dict(job.request, **request))
        except BaseException:
            if request["uploads"] is not old:
                tap_uploads.discard(request["uploads"])
            raise
        if request["uploads"] is not old:
            tap_uploads.discard(old)


class ResultHandler(UwsHandler):
    """``GET async/{id}/results/result``: the rows, in the job's RESPONSEFORMAT."""

    @endpoint(anonymous=True)
    async def get(self, job_id: str):
        job = await self.tap_job(job_id)
        if job.state != "completed":
            raise not_found(f"job {job.id} has no result: it is {phase(job)}")
        fmt = tap_format(job.request.get("format"))
        info = formats.ResultInfo(
            table_name="result", query=job.request.get("query"), row_limit=job.request.get("row_limit"),
            truncated=bool(job.results.get("overflow")),
        )
        result = await self.call(self.archive.jobs.result, self.principal, job.id)
        await self.stream(result, fmt, info)


def uws_handlers() -> list[tuple[str, type]]:
    return [
        (r"archive/tap/async/?", JobsHandler),
        (r"archive/tap/async/(?P<job_id>[^/]+)/?", JobHandler),
        (r"archive/tap/async/(?P<job_id>[^/]+)/results/result/?", ResultHandler),
        (r"archive/tap/async/(?P<job_id>[^/]+)/(?P<part>[a-z]+)/?", JobPartHandler),
    ]

