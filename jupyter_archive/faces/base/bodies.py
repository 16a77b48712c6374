"""Request bodies refused from their headers when they can be, and never read past the upload limit."""

from __future__ import annotations

from ...core.errors import ArchiveError

# Chunked bodies are counted as they arrive; tornado cuts the connection a little past the
# limit, so that our 413 (sent at the first byte over) goes out first.
BODY_SLACK = 1 << 20


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


class LimitedBody:
    """Mixin for ``@web.stream_request_body`` handlers: a POST or PUT body is refused from its
    headers when it can be, and never read past ``ArchiveApp.upload_limit``.

    ``prepare()`` authenticates the caller (``body_anonymous``: as the endpoint would, letting
    anonymous callers in when the archive allows them) and runs ``body_target()`` before any
    byte of the body is read, and answers a declared Content-Length over the limit with 413;
    ``data_received`` counts the chunks, answers 413 at the first byte over and ignores the
    rest. Subclasses keep the chunks (``body_started``, ``body_chunk``, ``body_refused``).
    """

    body_anonymous = False
    _receiving = False
    _received = 0

    def body_target(self) -> None:
        """Checks that can refuse the request before its body is read (its target, its name)."""

    def body_started(self) -> None:
        """The body is accepted: get ready for its chunks."""

    def body_chunk(self, chunk: bytes) -> None:
        """Keep one chunk of the body."""

    def body_refused(self) -> None:
        """The body went over the limit: drop what was kept of it."""

    async def prepare(self):
        await super().prepare()
        if self._finished or self.request.method not in ("POST", "PUT"):
            return
        self.principal = self.authenticate(self.body_anonymous)
        self.body_target()
        limit = self.archive.config.upload_limit
        declared = (self.request.headers.get("Content-Length") or "").strip()
        if declared.isdigit() and int(declared) > limit:
            raise self.too_large(int(declared))
        connection = self.request.connection
        if hasattr(connection, "set_max_body_size"):
            connection.set_max_body_size(limit + BODY_SLACK)
        self._received = 0
        self._receiving = True
        self.body_started()

    def too_large(self, size: int | None = None) -> ArchiveError:
        limit = self.archive.config.upload_limit
        what = f"the request body ({size} bytes)" if size is not None else "the request body"
        return ArchiveError(
            "too_large",
            f"{what} is over the upload limit of {limit} bytes{f' ({human_bytes(limit)})' if limit >= 1024 else ''}; "
            "send less (a table can be uploaded in several appends), or ask the archive's admin to raise "
            "ArchiveApp.upload_limit",
            413,
            details={"limit": limit},
        )

    def data_received(self, chunk: bytes) -> None:
        if not self._receiving:
            return  # refused already, or a method that takes no body
        self._received += len(chunk)
        if self._received > self.archive.config.upload_limit:
            self._receiving = False
            self.body_refused()
            err = self.too_large()
            # Answer now: the rest of the body is not worth reading.
            self.send_error(err.status, exc_info=(type(err), err, None))
            return
        self.body_chunk(chunk)
