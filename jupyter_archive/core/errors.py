"""The one error type the core raises; faces render it in their own shape."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class ArchiveError(Exception):
    """A failure the user caused or can act on.

    ``code`` is a stable machine name (``syntax_error``, ``unknown_table``, ``permission``,
    ``not_found``, ``bad_request``, ``time_limit``, ``too_large``, ``unbound_variable``,
    ``malformed_variable``, ``not_acceptable``, ``conflict``, ``engine_error``).
    ``status`` is the HTTP status a face should use unless its API dictates another.
    ``position`` is ``(line, column)`` (1-based) for errors located in SQL text.
    ``details`` carries extra fields a face may show (e.g. ``varName``).
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        position: tuple[int, int] | None = None,
        details: dict | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.position = position
        self.details = dict(details or {})

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


def not_found(message: str, **details) -> ArchiveError:
    return ArchiveError("not_found", message, 404, details=details)


def permission(message: str, **details) -> ArchiveError:
    return ArchiveError("permission", message, 403, details=details)


def bad_request(message: str, **details) -> ArchiveError:
    return ArchiveError("bad_request", message, 400, details=details)


def short_of_memory() -> ArchiveError:
    """What a request gets when an allocation failed: the process is at its memory cap (``memory.cap_memory``),
    most likely for a moment, by another query that fails as well and frees what it held."""
    return ArchiveError("busy", "the archive is short of memory right now; retry shortly", 503, details={"retry_after": 5})


def one_line(exc: BaseException, *, kind: bool = False) -> str:
    """The first line of an exception's message, for an error a person reads (a reader's or a
    library's message can run to pages). ``kind`` puts the exception's class name first."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if kind:
        return f"{type(exc).__name__}: {first}".strip()
    return first or type(exc).__name__


# What ends a thread or a task on purpose: never taken for a failure.
_CONTROL = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError)


def native_fault(exc: BaseException) -> BaseException:
    """``exc``, unless it is what a native library raises that is no ``Exception``: then a ``RuntimeError`` (caused by it);
    or a failed allocation (``MemoryError``, Arrow's too): then ``short_of_memory()``.

    pyo3's ``PanicException`` (cdshealpix's, for one) derives from ``BaseException``, so ``except Exception`` let it
    through: a request then never got its answer, and a job never ended. As an error, it is a 500 and a failed job."""
    if isinstance(exc, MemoryError):
        error = short_of_memory()
    elif isinstance(exc, (Exception, *_CONTROL)):
        return exc
    else:
        error = RuntimeError(one_line(exc, kind=True))
    error.__cause__ = exc
    return error


@contextlib.contextmanager
def native_faults() -> Iterator[None]:
    """What the block raises, with a native library's faults as errors (``native_fault``)."""
    try:
        yield
    except BaseException as exc:
        raise native_fault(exc)  # noqa: B904 - the same exception, or a new one caused by it
