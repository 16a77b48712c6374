"""What every SAS resource shares: media types, HATEOAS links, ``vnd.sas.collection`` pages,
``vnd.sas.error`` documents, and directives and jobs as SAS shows them.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from ...core import formats, params, times
from ...core.jobs.directives import Directive
from ...core.errors import ArchiveError, not_found
from ...core.jobs import Job
from ..base import ArchiveHandler, log_message_id

API = "application/vnd.sas.api"
COLLECTION = "application/vnd.sas.collection"
ERROR = "application/vnd.sas.error"
DIRECTIVE = "application/vnd.sas.dataloader.directive"
JOB = "application/vnd.sas.dataloader.job"
JOB_RESULT = "application/vnd.sas.dataloader.job.result"
LOG_LINE = "application/vnd.sas.compute.log.line"
TEXT = "text/plain"
VERSIONED = {COLLECTION: 2, ERROR: 2}
# What GET /jobs/{id}/results answers with its collection; data media types answer rows.
RESULTS_RESOURCE = {COLLECTION, COLLECTION + "+json", "*/*", "application/*", "application/json"}
DATA_TYPES = {mt.split(";")[0].lower() for mt, (name, _) in formats.MEDIA_TYPES.items() if name in formats.DEFAULT_FORMATS}

DEFAULT_LIMIT = 10  # SAS's default page size
MAX_LIMIT = 1000
LOG_LIMIT = 1000  # a log is read whole unless the caller pages it

# Our eight job states in SAS words: everything not yet running is pending.
STATE = {
    "pending": "pending", "scheduled": "pending", "queued": "pending", "running": "running",
    "canceling": "canceling", "completed": "completed", "failed": "failed", "canceled": "canceled",
}  # fmt: skip

# vnd.sas.error's errorCode is an integer; one per archive error code, grouped by kind.
ERROR_CODES = {
    "bad_request": 1000, "syntax_error": 1001, "invalid_query": 1002, "unknown_table": 1003,
    "unknown_context": 1004, "unbound_variable": 1005, "malformed_variable": 1006, "unsupported": 1007,
    "engine_error": 1008, "unauthorized": 1100, "permission": 1101, "not_found": 1200, "conflict": 1300,
    "not_acceptable": 1400, "too_large": 1500, "time_limit": 1501, "canceled": 1600, "interrupted": 1601,
    "server_error": 1900,
}  # fmt: skip
REMEDIATION = {
    "unauthorized": "Send a valid X-Auth-Token header or log in to Jupyter.",
    "permission": "Use a resource you own; write query results into your MyDB.",
    "not_found": "Check the id or path; list the collection to see what you can reach.",
    "conflict": "Wait until the job has completed, or choose another name.",
    "not_acceptable": "Ask for a media type this resource offers (see the link's type).",
    "server_error": "Try again later; the server log has the details.",
    "interrupted": "Run the directive again.",
    "time_limit": "Run the directive again, or narrow its query.",
}
QUERY_CODES = {"syntax_error", "invalid_query", "unknown_table", "unknown_context", "unbound_variable",
               "malformed_variable", "unsupported", "engine_error"}  # fmt: skip
# Members a client may send back from a directive it read; they are ours to set.
READ_ONLY = {"version", "type", "links", "createdBy", "modifiedBy"}


def error_json(code: str, message: str, status: int, details: list[str]) -> dict:
    """A ``vnd.sas.error`` (``status`` 0 when it is a job's error, not an HTTP reply's)."""
    if code in QUERY_CODES:
        remedy = "Correct the directive's query, context or target table and try again."
    else:
        remedy = REMEDIATION.get(code, "Correct the request and try again.")
    return {
        "version": 2,
        "httpStatusCode": status,
        "errorCode": ERROR_CODES.get(code, 1999),
        "message": message,
        "details": details,
        "remediation": remedy,
    }


def content_type(media: str) -> str:
    """The Content-Type of a SAS resource type (``+json``, charset, the version of versioned ones)."""
    suffix = "" if media == TEXT else "+json"
    version = f";version={VERSIONED[media]}" if media in VERSIONED else ""
    return f"{media}{suffix};charset=utf-8{version}"


class SasHandler(ArchiveHandler):
    """Base of the SAS handlers: links, collections, media types, SAS errors."""

    face = "sas"
    error_media = content_type(ERROR)
    text_media = content_type(TEXT)

    # -- errors -------------------------------------------------------------------------------
    def error_body(self, err: ArchiveError) -> tuple[int, Any]:
        details = [f"code: {err.code}"]
        if err.position:
            details.append(f"position: line {err.position[0]}, column {err.position[1]}")
        details += [f"{k}: {v}" for k, v in err.details.items() if k != "phases"]
        details += [f"path: {self.request.path}", f"correlator: {log_message_id()}"]
        return err.status, error_json(err.code, err.message, err.status, details)

    # -- rendering -----------------------------------------------------------------------------
    def accepts(self, media: str) -> bool:
        """Does Accept name ``media`` itself (with or without ``+json``)?"""
        ranges = params.parse_accept(self.request.headers.get("Accept") or "")
        return any(mt in (media, media + "+json") for mt, _ in ranges)

    def answer_type(self, media: str) -> str:
        """The Content-Type a ``media`` resource goes out as: its vnd type, or plain JSON when that
        is all Accept allows; 406 when Accept allows neither. A request that changes something
        asks first, so that a 406 leaves everything as it was."""
        ranges = [mt for mt, _ in params.parse_accept(self.request.headers.get("Accept") or "")]
        ok = {media, media + "+json", "*/*", "application/*", "application/json"}
        if ranges and not any(mt in ok for mt in ranges):
            raise ArchiveError("not_acceptable", f"this resource is {media}+json (or application/json); Accept was {', '.join(ranges)}", 406)
        plain = "application/json" in ranges and not any(mt in (media, media + "+json") for mt in ranges)
        return "application/json" if plain else content_type(media)

    def send_sas(self, data: Any, media: str, status: int = 200) -> None:
        """Send a SAS resource: its vnd media type, or plain JSON when that is all Accept allows."""
        ctype = self.answer_type(media)
        self.set_status(status)
        self.finish(json.dumps(data, default=str), set_content_type=ctype)


    @property
    def root(self) -> str:
        return self.archive_url("sas")

    def link(self, rel: str, uri: str, media: str | None = None, *, method: str = "GET", item_type: str | None = None) -> dict:
        out = {"method": method, "rel": rel, "href": self.root + uri, "uri": uri}
        if media:
            out["type"] = media
        if item_type:
            out["itemType"] = item_type
        return out

    def collection(
        self, uri: str, items: list, total: int, start: int, limit: int, item_type: str, *,
        params: dict | None = None, up: dict | None = None, paged: bool = True,
    ) -> dict:  # fmt: skip
        """A ``vnd.sas.collection`` page with self/first/prev/next/last/up links (filters kept).

        An unpaged collection (``paged=False``) is all its items, with self and up links only.
        """

        def at(rel: str, s: int) -> dict:
            query = urlencode({**(params or {}), "start": s, "limit": limit})
            return self.link(rel, f"{uri}?{query}", COLLECTION, item_type=item_type)

        if not paged:
            links = [self.link("self", uri, COLLECTION, item_type=item_type)]
        else:
            links = [at("self", start), at("first", 0)]
            if start > 0:
                links.append(at("prev", max(0, start - limit)))
            if start + len(items) < total:
                links.append(at("next", start + limit))
            links.append(at("last", max(0, (total - 1) // limit * limit)))
        if up:
            links.append(up)
        return {
            "version": 2, "name": "items", "accept": item_type, "start": start, "limit": limit,
            "count": total, "items": items, "links": links,
        }  # fmt: skip

    # -- resources -----------------------------------------------------------------------------
    def directive_json(self, d: Directive) -> dict:
        out = {"version": 1, **d.to_json(), "type": "query", "createdBy": d.owner, "modifiedBy": d.owner}
        out.pop("owner")
        uri = f"/directives/{d.id}"
        out["links"] = [
            self.link("up", "/directives", COLLECTION, item_type=DIRECTIVE),
            self.link("self", uri, DIRECTIVE),
            self.link("execute", "/jobs?" + urlencode({"directive": d.id}), JOB, method="POST"),
        ]
        return out

    def job_json(self, job: Job) -> dict:
        req = job.request
        table = job.results.get("table")
        uri = f"/jobs/{job.id}"
        end = job.ended or (time.time() if job.started else None)
        out = {
            "version": 1,
            "id": str(job.id),
            "directiveId": req.get("directive"),
            "directiveName": req.get("directive_name"),
            "state": STATE[job.state],
            "createdBy": job.owner,
            "creationTimeStamp": times.iso(job.submitted),
            "startedTimeStamp": times.iso(job.started),
            "endedTimeStamp": times.iso(job.ended),
            "elapsedTime": int((end - job.started) * 1000) if job.started and end else 0,  # milliseconds
            "progress": int(round(job.progress * 100)),  # percent
            "rows": job.rows,
            "targetTable": f"{table['context']}.{table['name']}" if table else None,
        }
        if job.final:
            # The Data Loader document's sign that a job is complete: present once it has ended.
            out["stopTimeStamp"] = times.iso(job.ended or job.started or job.submitted)
        links = [
            self.link("self", uri, JOB),
            self.link("up", "/jobs", COLLECTION, item_type=JOB),
            self.link("state", uri + "/state", TEXT),
        ]
        if not job.final:
            links.append(self.link("cancel", uri + "/state?value=canceled", TEXT, method="PUT"))
        links += [
            self.link("log", uri + "/log", COLLECTION, item_type=LOG_LINE),
            self.link("error", uri + "/error", ERROR),
        ]
        if job.state == "completed":
            links.append(self.link("results", uri + "/results", COLLECTION, item_type=JOB_RESULT))
        links.append(self.link("delete", uri, method="DELETE"))
        if req.get("directive"):
            links.append(self.link("directive", f"/directives/{req['directive']}", DIRECTIVE))
        out["links"] = links
        return out

    async def sas_job(self, job_id: str) -> Job:
        """One of the caller's directive jobs (other jobs are not SAS's to show)."""
        job = await self.call(self.archive.jobs.get, self.principal, job_id)
        if job.kind != "directive":
            raise not_found(f"unknown job {job_id}", job=job_id)
        return job

    def send_job(self, job: Job, status: int = 200) -> None:
        stamps = [t for t in (job.submitted, job.started, job.ended) if t]
        self.set_header("Last-Modified", times.http_date(max(stamps)))
        if not job.final:
            # elapsedTime changes on every request until the job ends
            self.set_header("Cache-Control", "no-cache")
        self.send_sas(self.job_json(job), JOB, status)
