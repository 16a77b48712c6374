"""The Kasabi Jobs face (``{base}archive/kasabi/dataset/{short-code}/jobs``).

``POST`` a ``jobType`` (only ``reset``) and an optional ``startTime`` as form fields, query
parameters or a JSON object: 202, a ``Location`` to monitor and a plain-text message.
``GET`` on that location answers ``{"created", "startTime", "endTime", "status"}``;
``DELETE`` takes a job that is not running off the schedule (Talis Platform precedent).
Only a dataset's owner may use it: without credentials, with a key that is not valid, or as
anyone but the owner the answer is 401 ("API key is not authorized to access the data"), with
``WWW-Authenticate``. The key is an archive token, sent as Kasabi's clients send their API
key (``X_KASABI_APIKEY`` header or ``apikey`` parameter) or as ``X-Auth-Token``; Jupyter's
own login works too. Every error is a plain-text message with its status code, as Kasabi's
were.
"""

from __future__ import annotations

from http.client import responses
from urllib.parse import quote

from ..core import times
from ..core.errors import ArchiveError
from ..core.jobs import Job
from ..core.jobs.reset import DATASET_JOB_KINDS
from .base import AUTH_HEADER, FORWARDED_USER, PLAIN_TEXT, ArchiveHandler, HttpError, endpoint

# Kasabi's jobType -> the core call that submits it.

# One job state machine, Kasabi's four words (a canceled job did not do its work: failed).
STATUS = {
    "pending": "scheduled", "scheduled": "scheduled", "queued": "scheduled",
    "running": "running", "canceling": "running",
    "completed": "completed", "failed": "failed", "canceled": "failed",
}  # fmt: skip


def job_json(job: Job) -> dict:
    """A job as Kasabi's status resource shows it (times in ISO 8601 UTC to the second)."""
    return {
        "created": times.iso(job.submitted, "seconds"),
        # the requested start, or when it actually started if it was to run at once
        "startTime": times.iso(job.scheduled if job.scheduled is not None else job.started, "seconds"),
        "endTime": times.iso(job.ended, "seconds"),
        "status": STATUS[job.state],
    }


# Where Kasabi's clients put their API key (header names as tornado normalises them).
KEY_HEADERS = ("X_KASABI_APIKEY", "X-Kasabi-Apikey")
KEY_PARAM = "apikey"


class KasabiHandler(ArchiveHandler):
    """Base of the Kasabi handlers: API keys, 401 for anyone but the owner, plain-text errors."""

    face = "kasabi"
    error_media = PLAIN_TEXT
    error_headers = {401: {"WWW-Authenticate": 'token realm="jupyter_archive"'}}

    def api_key(self) -> str | None:
        for name in KEY_HEADERS:
            if self.request.headers.get(name):
                return self.request.headers[name]
        return self.arg(KEY_PARAM) or None

    def authenticate(self, anonymous_ok: bool):
        # Datasets have owners, so nobody is let in anonymously, and Kasabi answers a
        # missing key with 401 where the base class says 403.
        key = self.api_key()
        if key and not self.request.headers.get(AUTH_HEADER):
            principal = self.archive.users.principal_for_token(key)
            if principal is None:
                raise ArchiveError("unauthorized", "not authorized: the API key is not valid (or has expired)", 401)
            return principal
        if not (self.request.headers.get(AUTH_HEADER) or self.request.headers.get(FORWARDED_USER)) and self.current_user is None:
            raise ArchiveError(
                "unauthorized",
                "not authorized: send your API key (X_KASABI_APIKEY header or apikey parameter, an archive "
                "token), an X-Auth-Token header, or log in to Jupyter",
                401,
            )
        return super().authenticate(False)

    def error_body(self, err: ArchiveError) -> tuple[int, str]:
        """(status, a line of text): Kasabi's errors; tornado's own (405, XSRF) say their status line."""
        status, message = err.status, err.message
        if isinstance(err, HttpError):
            message = err.log_message or f"{status} {err.reason or responses.get(status, 'HTTP error')}"
        elif err.code == "permission":
            # Kasabi's word for "this key may not touch this dataset" is 401 Not Authorized.
            status, message = 401, f"not authorized: {message}"
        return status, message.rstrip("\n") + "\n"

    def send_text(self, text: str, status: int = 200) -> None:
        super().send_text(text.rstrip("\n") + "\n", status)  # Kasabi's messages are a line each

    def job_url(self, short_code: str, job_id: int) -> str:
        return self.archive_url("kasabi", "dataset", quote(short_code, safe=""), "jobs", job_id)


class JobsHandler(KasabiHandler):
    """``POST /dataset/{short-code}/jobs``: schedule a job on the dataset."""

    @endpoint()
    async def post(self, short_code: str):
        # Parameters come in the body (JSON or form, names matched case-insensitively) or the query string.
        job_type = self.body_field("jobType", query=True)
        if job_type is None or (isinstance(job_type, str) and not job_type.strip()):
            raise ArchiveError("bad_request", "missing parameter jobType (known job types: " + ", ".join(DATASET_JOB_KINDS) + ")")
        if not isinstance(job_type, str) or job_type.strip().lower() not in DATASET_JOB_KINDS:
            raise ArchiveError("bad_request", f"unknown jobType {job_type!r}; known job types: {', '.join(DATASET_JOB_KINDS)}")
        start = times.parse("startTime", self.body_field("startTime", query=True))  # ISO 8601; naive means UTC
        job = await self.call(self.archive.datasets.submit_reset, self.principal, short_code, start, face=self.face)
        url = self.job_url(short_code, job.id)
        self.set_header("Location", url)
        when = f"at {times.iso(start, 'seconds')}" if job.state == "scheduled" else "as soon as possible"
        self.send_text(f"{job.kind} job {job.id} on dataset {short_code} accepted; it runs {when}. Status: {url}", 202)


class JobHandler(KasabiHandler):
    """``GET /dataset/{short-code}/jobs/{id}``: the job's status; ``DELETE``: take it off the schedule."""

    @endpoint()
    async def get(self, short_code: str, job_id: str):
        job = await self.call(self.archive.datasets.job, self.principal, short_code, job_id)
        self.send_json(job_json(job))

    @endpoint()
    async def delete(self, short_code: str, job_id: str):
        job = await self.call(self.archive.datasets.delete_job, self.principal, short_code, job_id)
        what = "never ran" if STATUS[job.state] == "scheduled" else f"had {STATUS[job.state]}"
        self.send_text(f"job {job.id} deleted (it {what})")


def kasabi_handlers() -> list[tuple[str, type]]:
    return [
        (r"(?i:archive/kasabi/dataset)/(?P<short_code>[^/]+)/(?i:jobs)/?", JobsHandler),
        (r"(?i:archive/kasabi/dataset)/(?P<short_code>[^/]+)/(?i:jobs)/(?P<job_id>[^/]+)/?", JobHandler),
    ]
