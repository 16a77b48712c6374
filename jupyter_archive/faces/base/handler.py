"""The base class of every archive handler: the archive, the caller, one error path, one
parameter layer, streamed answers (each part in its module of this package)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin

from ...core.archive import Archive
from .callers import Callers
from .errors import ErrorReplies
from .parameters import Parameters
from .streaming import Streaming


class ArchiveHandler(Callers, ErrorReplies, Parameters, Streaming, ExtensionHandlerMixin, APIHandler):
    """Base of every archive handler; a face subclasses it and says how errors look."""

    face = "native"

    @property
    def archive(self) -> Archive:
        return self.settings["archive"]

    @property
    def archive_app(self):
        return self.settings["archive_app"]

    async def call(self, fn: Callable, *args, **kwargs):
        """Run a blocking archive call in the archive's pool, off the tornado loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.archive.executor, functools.partial(fn, *args, **kwargs))

    async def wait_job(self, job_id, timeout: float, until: Callable | None = None):
        """Wait for a job to end (or ``until(job)``) without holding a thread: poll, 5 ms growing to 100 ms."""
        until = until or (lambda j: j.final)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.005
        job = await self.call(self.archive.jobs.get, self.principal, job_id)
        while not until(job) and loop.time() < deadline:
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 1.5, 0.1)
            job = await self.call(self.archive.jobs.get, self.principal, job_id)
        return job
