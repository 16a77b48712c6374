"""Typed values of what a request carries beyond one parameter: every value of a parameter, form
fields, numbers, booleans, times and the window of a listing, each checked by ``core.params`` and
``core.times``; and the archive's URLs as the caller reaches it, waiting for a job, and the answer
to a quick query that went on as a job (``went_on``). Part of every archive handler
(``ArchiveHandler``), which reads the raw values (``arg``, ``query_arguments``); kept apart as a
quick query answered in time runs none of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ...core import params, times
from ...core.errors import ArchiveError


class RequestValues:
    """The request readers an ``ArchiveHandler`` has besides ``arg``: a 400 in the face's shape
    for a value that does not parse; and what else only some answers need (the archive's URLs as
    the caller reaches it, waiting for a job)."""

    def archive_url(self, *parts: Any, absolute: bool = False) -> str:
        """``{base}archive/<parts>`` as the caller reaches it (a forwarded request: through the
        forwarding server), with its scheme and host when ``absolute``. Parts are joined as
        given: a face quotes those that need it."""
        path = self.base_url.rstrip("/") + "/archive/" + "/".join(str(p) for p in parts)
        return f"{self.request.protocol}://{self.request.host}{path}" if absolute else path

    def args(self, name: str) -> list[str]:
        """Every value of a query-string parameter, in order, as UTF-8 text."""
        return [params.text(name, v) for v in self.query_arguments.get(name, [])]

    def arguments(self, *, form: bool = True) -> dict[str, list[str]]:
        """Every query-string parameter (then, with ``form``, every field of a form body) by
        name, values in order, as UTF-8 text."""
        out: dict[str, list[str]] = {}
        sources = [self.query_arguments] + ([self.form_fields()] if form else [])
        for source in sources:
            for name, values in source.items():
                out.setdefault(name, []).extend(params.text(name, v) for v in values)
        return out

    def form_fields(self) -> dict[str, list[bytes]]:
        """The fields of a url-encoded or multipart form body (tornado parsed them), as bytes."""
        return self.request.body_arguments if self.request.method in ("POST", "PUT", "PATCH") else {}

    def number_arg(self, name: str, default: float | None = None, **bounds) -> float | None:
        return params.number(name, self.arg(name), default=default, **bounds)

    def bool_arg(self, name: str, default: bool = False) -> bool:
        return params.boolean(name, self.arg(name), default=default)

    def time_arg(self, name: str) -> float | None:
        return times.parse(name, self.arg(name))

    def page(
        self, start: str | None, limit: str, default: int | None, maximum: int | None = None, *,
        first: int | None = 0, least: int = 1, values: dict[str, str] | None = None,
    ) -> tuple[int | None, int | None]:  # fmt: skip
        """The window of a listing, under the face's names for its two ends: ``start`` (none when
        the face has no such parameter; at least 0, ``first`` when absent) and ``limit`` (at least
        ``least``, ``default`` when absent, at most ``maximum``). Read from the query string, or
        from ``values`` when the face gathered its parameters itself."""
        read = self.arg if values is None else values.get
        offset = None if start is None else params.integer(start, read(start), default=first, minimum=0)
        count = params.integer(limit, read(limit), default=default, minimum=least)
        return offset, (min(count, maximum) if maximum is not None and count is not None else count)

    async def wait_job(self, job_id, timeout: float, until: Callable | None = None):
        """Wait for a job to end (or ``until(job)``) without holding a thread or a turn: poll, 5 ms growing to 100 ms."""
        self.leave()
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

    def follow_url(self, job) -> str:
        """Where a caller of this face follows a job (named when a quick query goes on as one): the native API's."""
        return self.archive_url("api", "jobs", job.id, absolute=True)

    async def went_on(self, job) -> None:
        """Answer a quick query that went on as ``job`` past the quick time limit (``quick_query``): the face's
        time-limit error, as when no job is made, naming the job and where to follow it. The native API answers 202."""
        limit = self.archive.queries.time_limit
        message = f"the query ran past the quick-query time limit of {limit:g} s; it goes on as job {job.id}: {self.follow_url(job)}"
        raise ArchiveError("time_limit", message, 400, details={"job": job.id})
