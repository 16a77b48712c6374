"""One error path for every face: whatever was raised, the reply is the face's error shape.

A face declares only its shape: ``error_body`` (status and body), ``error_media`` (the body's
Content-Type) and ``error_headers`` (extra headers by status).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from tornado import web

from ...core.errors import ArchiveError

# What describes a successful answer (a gzip body, an attachment, a resource's date and place)
# never goes with an error reply.
SUCCESS_HEADERS = ("Content-Encoding", "Content-Disposition", "Last-Modified", "Location", "Cache-Control")
INTERNAL_ERROR = "internal error in the archive; the server log has the details"


class HttpError(ArchiveError):
    """A tornado or Jupyter ``HTTPError`` (a method not allowed, a failed XSRF or origin check)
    as an archive error; its ``log_message`` and ``reason`` stay, for a face that words a bare
    status its own way."""

    CODES = {401: "unauthorized", 403: "permission", 404: "not_found", 405: "bad_request"}

    def __init__(self, exc: web.HTTPError):
        status = exc.status_code
        code = self.CODES.get(status, "bad_request" if status < 500 else "server_error")
        super().__init__(code, exc.log_message or exc.reason or f"HTTP {status}", status)
        self.log_message, self.reason = exc.log_message, exc.reason


def archive_error(exc: BaseException | None) -> ArchiveError:
    """Every exception as an archive error: ours as it is, tornado's by its status, anything
    else a 500 that tells nothing of the inside (the server log has its traceback)."""
    if isinstance(exc, ArchiveError):
        return exc
    if isinstance(exc, web.HTTPError):
        return HttpError(exc)
    return ArchiveError("server_error", INTERNAL_ERROR, 500)


class ErrorReplies:
    """Part of ``ArchiveHandler``: error replies in the face's shape; the log of what failed."""

    #: The Content-Type of the face's error bodies (a body that is not text goes out as JSON).
    error_media = "application/json"
    #: Headers an error reply carries, by status (Kasabi's ``WWW-Authenticate`` on a 401).
    error_headers: dict[int, dict[str, str]] = {}

    def error_body(self, err: ArchiveError) -> tuple[int, Any]:
        """(status, body) of an error in this face's shape: JSON data, or text or bytes as they are."""
        body: dict = {"code": err.code, "message": err.message}
        if err.position:
            body["position"] = {"line": err.position[0], "column": err.position[1]}
        extra = {k: v for k, v in err.details.items() if k != "phases"}
        if extra:
            body["details"] = extra
        if "phases" in err.details:
            body["phases"] = err.details["phases"]
        return err.status, {"error": body}

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every failure, whatever raised it, as the face's error reply (tornado's ``send_error``
        calls this once it has logged the exception: ``log_exception``)."""
        err = archive_error(kwargs.get("exc_info", (None, None, None))[1])
        status, body = self.error_body(err)
        for name in SUCCESS_HEADERS:
            self.clear_header(name)
        for name, value in self.error_headers.get(status, {}).items():
            self.set_header(name, value)
        if status in (429, 503) and "retry_after" in err.details:
            self.set_header("Retry-After", str(err.details["retry_after"]))
        self.set_status(status)
        self.finish(body if isinstance(body, (str, bytes)) else json.dumps(body), set_content_type=self.error_media)

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, ArchiveError):
            self.log.info("archive %s %s: %s", self.face, value.code, value.message)
            return
        super().log_exception(typ, value, tb)


def log_message_id() -> str:
    """A fresh id that ties an error reply to the server's log (CasJobs' LogMessageID, SAS's correlator)."""
    return str(uuid.uuid4())
