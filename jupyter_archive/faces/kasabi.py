"""The Kasabi Jobs face (``{base}archive/kasabi/dataset/{short-code}/jobs``).

``POST`` a ``jobType`` (only ``reset``) and an optional ``startTime`` as form fields, query
parameters or a JSON object: 202, a ``Location`` to monitor and a plain-text message.
``GET`` on that location answers ``{"created", "startTime", "endTime", "status"}``;
``DELETE`` takes a job that is not running off the schedule (Talis Platform precedent).
Only a dataset's owner may use it: no credentials is 401, someone else is 403. Every
error is a plain-text message with its status code, as Kasabi's were.
"""

from __future__ import annotations

from http.client import responses
from typing import Any
from urllib.parse import quote

from jupyter_server.utils import url_path_join
from tornado import web

from ..core import datasets, times
from ..core.errors import ArchiveError
from ..core.jobs import Job
from .base import AUTH_HEADER, ArchiveHandler, endpoint

PLAIN = "text/plain; charset=UTF-8"

# Kasabi's jobType -> the core call that submits it.
JOB_TYPES = {"reset": datasets.submit_reset}

# One job state machine, Kasabi's four words (a canceled job did not do its work: failed).
STATUS = {
    "pending": "scheduled", "scheduled": "scheduled", "queued": "scheduled",
    "running": "running", "canceling": "running",
    "completed": "completed", "failed": "failed", "canceled": "failed",
}  # fmt: skip


def iso_time(ts: float | None) -> str | None:
    """Unix seconds as Kasabi writes times: ISO-8601 UTC to the second, ``Z``-suffixed."""
    return times.iso(ts, "seconds")


def job_json(job: Job) -> dict:
    """A job as Kasabi's status resource shows it."""
    return {
        "created": iso_time(job.submitted),
        # the requested start, or when it actually started if it was to run at once
        "startTime": iso_time(job.scheduled if job.scheduled is not None else job.started),
        "endTime": iso_time(job.ended),
        "status": STATUS[job.state],
    }


class KasabiHandler(ArchiveHandler):
    """Base of the Kasabi handlers: 401 without credentials, plain-text errors."""

    face = "kasabi"

    def _authenticate(self, anonymous_ok: bool):
        # Datasets have owners, so nobody is let in anonymously, and Kasabi answers a
        # missing key with 401 where the base class says 403.
        if not self.request.headers.get(AUTH_HEADER) and self.current_user is None:
            raise ArchiveError(
                "unauthorized",
                "not authorized: log in to Jupyter, pass its token, or send an X-Auth-Token header",
                401,
            )
        return super()._authenticate(False)

    def error_body(self, err: ArchiveError) -> tuple[int, str]:
        """(status, plain-text message): Kasabi's errors are a line of text."""
        return err.status, err.message.rstrip("\n") + "\n"

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error, ours or tornado's (405, XSRF), as text/plain; never a traceback."""
        # APIHandler.finish would relabel the body application/json unless told otherwise.
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ArchiveError):
            err = exc
        elif isinstance(exc, web.HTTPError):
            reason = exc.reason or responses.get(exc.status_code, "HTTP error")
            err = ArchiveError("http", exc.log_message or f"{exc.status_code} {reason}", exc.status_code)
        else:
            err = ArchiveError("server_error", "internal error in the archive; the server log has the details", 500)
        status, text = self.error_body(err)
        self.clear_header("Content-Encoding")
        if status == 401:
            self.set_header("WWW-Authenticate", 'token realm="jupyter_archive"')
        self.set_status(status)
        self.finish(text, set_content_type=PLAIN)

    def send_text(self, text: str, status: int = 200) -> None:
        self.set_status(status)
        self.finish(text.rstrip("\n") + "\n", set_content_type=PLAIN)

    def job_url(self, short_code: str, job_id: int) -> str:
        return url_path_join(self.base_url, "archive/kasabi/dataset", quote(short_code, safe=""), "jobs", str(job_id))


def _param(body: dict, name: str, handler: KasabiHandler) -> Any:
    """A parameter from the body (JSON or form, name matched case-insensitively) or the query string."""
    low = name.lower()
    for k, v in body.items():
        if k.lower() == low:
            return v
    return handler.arg(name)


class JobsHandler(KasabiHandler):
    """``POST /dataset/{short-code}/jobs``: schedule a job on the dataset."""

    @endpoint()
    async def post(self, short_code: str):
        body = self.json_body()
        job_type = _param(body, "jobType", self)
        if job_type is None or (isinstance(job_type, str) and not job_type.strip()):
            raise ArchiveError("bad_request", "missing parameter jobType (known job types: " + ", ".join(JOB_TYPES) + ")")
        submit = JOB_TYPES.get(job_type.strip().lower()) if isinstance(job_type, str) else None
        if submit is None:
            raise ArchiveError("bad_request", f"unknown jobType {job_type!r}; known job types: {', '.join(JOB_TYPES)}")
        start = times.parse("startTime", _param(body, "startTime", self))  # ISO 8601; naive means UTC
        job = await self.call(submit, self.archive, self.principal, short_code, start, face=self.face)
        url = self.job_url(short_code, job.id)
        self.set_header("Location", url)
        when = f"at {iso_time(start)}" if job.state == "scheduled" else "as soon as possible"
        self.send_text(f"{job.kind} job {job.id} on dataset {short_code} accepted; it runs {when}. Status: {url}", 202)


class JobHandler(KasabiHandler):
    """``GET /dataset/{short-code}/jobs/{id}``: the job's status; ``DELETE``: take it off the schedule."""

    @endpoint()
    async def get(self, short_code: str, job_id: str):
        job = await self.call(datasets.dataset_job, self.archive, self.principal, short_code, job_id)
        self.send_json(job_json(job))

    @endpoint()
    async def delete(self, short_code: str, job_id: str):
        job = await self.call(datasets.delete_dataset_job, self.archive, self.principal, short_code, job_id)
        what = "never ran" if STATUS[job.state] == "scheduled" else f"had {STATUS[job.state]}"
        self.send_text(f"job {job.id} deleted (it {what})")


def kasabi_handlers() -> list[tuple[str, type]]:
    return [
        (r"(?i:archive/kasabi/dataset)/(?P<short_code>[^/]+)/(?i:jobs)/?", JobsHandler),
        (r"(?i:archive/kasabi/dataset)/(?P<short_code>[^/]+)/(?i:jobs)/(?P<job_id>[^/]+)/?", JobHandler),
    ]
