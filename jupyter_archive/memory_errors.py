"""Any request handler of the server, Jupyter's own too, that fails to allocate answers 503 with Retry-After.

Under the process's memory cap (``process_memory_limit``, ``core/memory.py``) a query may hold the memory for a moment
(until DuckDB fails it and frees what it made); whatever else allocates then fails. The archive's handlers answer
that with their face's 503 ``busy`` (``core/errors.py`` ``short_of_memory``); Jupyter's (a kernel start, a notebook
read) answered 500, as for a bug. Tornado turns any exception a handler lets through into a 500 unless it is an
``HTTPError``: ``answer_busy`` makes a ``MemoryError`` one with status 503, in every handler of the process.
"""

from __future__ import annotations

from tornado.web import HTTPError, RequestHandler

#: Seconds a client is told to wait: about what the query holding the memory takes to fail and free it.
RETRY_AFTER = 5


def answer_busy() -> None:
    """Answer a ``MemoryError`` any handler lets through with 503 and ``Retry-After`` (once per process)."""
    original = RequestHandler._handle_request_exception
    if getattr(original, "answers_busy", False):
        return

    def handle(self: RequestHandler, e: BaseException) -> None:
        if not isinstance(e, MemoryError):
            return original(self, e)
        clear = self.clear

        def clear_but_retry_after() -> None:  # send_error clears the headers before it writes the error
            clear()
            self.set_header("Retry-After", str(RETRY_AFTER))

        self.clear = clear_but_retry_after  # type: ignore[method-assign]
        try:
            raise HTTPError(503, reason="Short of memory: retry shortly") from e
        except HTTPError as busy:
            return original(self, busy)  # with it as the exception being handled: what the error page shows

    handle.answers_busy = True  # type: ignore[attr-defined]
    RequestHandler._handle_request_exception = handle  # type: ignore[method-assign]
