"""What an archive handler answers besides a quick query's rows sent in one piece: JSON, plain text, and a result that
is not small, chunk by chunk (``ArchiveHandler.stream``'s other path): each chunk is encoded (and gzipped) on the pool
and out of the socket before the next is made, so memory stays bounded whatever the result's size and however slowly
the client reads. Mixed into ``ArchiveHandler``; apart from handler.py as a quick query answered in one piece runs
none of it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from tornado.iostream import StreamClosedError

from ...core.errors import ArchiveError
from ...core.memory import release_memory

if TYPE_CHECKING:
    from ...core import formats
    from ...core.execution.pool import QueryResult


class Answers:
    """The answers of an ``ArchiveHandler`` besides ``stream``'s one piece (``text_media``: its plain text's type)."""

    def send_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(data, default=str))

    def send_text(self, text: str | bytes, status: int = 200) -> None:
        self.set_status(status)
        self.finish(text, set_content_type=self.text_media)

    async def send_chunks(self, result: QueryResult, fmt, info: formats.ResultInfo, gzip) -> None:
        """Send ``result`` in ``fmt`` through ``gzip`` (a zlib compressor, or None), then finish the answer; the
        result and its encoder are closed whatever happens (the client may go away)."""
        loop = asyncio.get_running_loop()
        pool = self.archive.executor
        chunks = fmt.encode(result.schema, result.batches(), info)
        if gzip is not None:
            chunks = _compressed(chunks, gzip)
        sentinel = object()
        try:
            while True:
                chunk = await loop.run_in_executor(pool, next, chunks, sentinel)
                if chunk is sentinel:
                    break
                self.write(chunk)
                await self.flush()  # resolves once the socket took it: at most one chunk waits in tornado
                del chunk
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


def _compressed(chunks, gzip):
    """``chunks`` through ``gzip`` (a zlib compressor), on the thread that encodes them."""
    try:
        for chunk in chunks:
            if out := gzip.compress(chunk):
                yield out
        yield gzip.flush()
    finally:
        chunks.close()


def _close_quietly(chunks, result: QueryResult) -> None:
    with contextlib.suppress(Exception):  # best effort
        chunks.close()
    result.close()
    release_memory()
