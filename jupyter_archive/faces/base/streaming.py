"""Answers: JSON documents, plain text, and query results streamed in a format, chunk by chunk."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable
from typing import Any

from tornado.iostream import StreamClosedError

from ...core import formats
from ...core.errors import ArchiveError
from ...core.execution.result import QueryResult


PLAIN_TEXT = "text/plain; charset=UTF-8"


class Streaming:
    """Part of ``ArchiveHandler``: JSON and text answers, and streamed results."""

    #: The Content-Type of the face's plain-text answers.
    text_media = PLAIN_TEXT

    def send_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(data, default=str))

    def send_text(self, text: str | bytes, status: int = 200) -> None:
        self.set_status(status)
        self.finish(text, set_content_type=self.text_media)

    async def query_and_stream(self, fmt, info: formats.ResultInfo, fn: Callable, *args, **kwargs) -> None:
        """Run a query (``fn`` returns a QueryResult) and send it: a small result is run and
        encoded in the same trip to the pool, a large one is streamed."""

        def work():
            result = fn(*args, **kwargs)
            if not result.complete:
                return result, None
            info.truncated = info.truncated or result.truncated
            return result, b"".join(fmt.encode(result.schema, result.batches(), info))

        result, body = await self.call(work)
        await self.stream(result, fmt, info, body=body)

    async def stream(self, result: QueryResult, fmt, info: formats.ResultInfo | None = None, *, body: bytes | None = None) -> None:
        """Send a result in a format, chunk by chunk, encoded off the loop; gzip when asked.

        ``body`` is the whole encoded result when the caller already made it.
        """
        info = info or formats.ResultInfo()
        info.truncated = info.truncated or result.truncated
        self.set_header("Content-Type", fmt.media_type)
        if result.truncated:
            self.set_header("X-Archive-Truncated", "true")
        disposition = fmt.options.get("disposition") if fmt.options else None
        if disposition:
            self.set_header("Content-Disposition", disposition)
        gzip = None
        if "gzip" in (self.request.headers.get("Accept-Encoding") or "").lower():
            gzip = zlib.compressobj(1, zlib.DEFLATED, 31)  # level 1: exports stay fast
            self.set_header("Content-Encoding", "gzip")
            self.set_header("Vary", "Accept-Encoding")
        loop = asyncio.get_running_loop()
        pool = self.archive.executor
        if body is None and result.complete:
            # A small result is already in memory: encode it in one go, one trip to the pool.
            body = await loop.run_in_executor(pool, b"".join, fmt.encode(result.schema, result.batches(), info))
        if body is not None:
            if gzip is not None:
                body = gzip.compress(body) + gzip.flush()
            self.finish(body, set_content_type=fmt.media_type)
            return
        chunks = fmt.encode(result.schema, result.batches(), info)
        sentinel = object()
        try:
            while True:
                chunk = await loop.run_in_executor(pool, next, chunks, sentinel)
                if chunk is sentinel:
                    break
                if gzip is not None:
                    chunk = gzip.compress(chunk)
                if chunk:
                    self.write(chunk)
                    await self.flush()
            if gzip is not None:
                self.write(gzip.flush())
            self.finish(set_content_type=fmt.media_type)
        except StreamClosedError:
            pass  # the client went away
        except ArchiveError as exc:
            if not self._headers_written:
                raise
            # Once a 200 has gone out a failure can only cut the stream short.
            self.log.warning("archive stream cut short: %s", exc.message)
            self.request.connection.close()
        finally:
            await loop.run_in_executor(pool, _close_quietly, chunks, result)


def _close_quietly(chunks, result: QueryResult) -> None:
    try:
        chunks.close()
    except Exception:  # noqa: BLE001 - best effort
        pass
    result.close()
    _give_memory_back()


def _give_memory_back() -> None:
    """After a large export, hand freed heap back to the OS (glibc keeps it in per-thread
    arenas otherwise, so the server's resident size creeps up export after export)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None
