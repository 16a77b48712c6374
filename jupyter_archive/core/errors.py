"""The one error type the core raises; faces render it in their own shape."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
from collections.abc import Iterable, Iterator


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


#: What a write that found no room says: the disk is full, the user's disk quota is spent, or the file is at the process's size limit.
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NO_ROOM_TEXT = ("no space left on device", "disk quota exceeded", "file too large", "database or disk is full")


def disk_full(exc: BaseException) -> ArchiveError | None:
    """The error for a write that failed for want of room (a 507, which nothing the user sends can fix at once), or
    None if ``exc`` is another failure. The write was abandoned whole: DuckDB and SQLite roll back, a job's result
    file goes, so nothing stored before is lost."""
    by_errno = getattr(exc, "errno", None) in _NO_ROOM
    # DuckDB's IOException and SQLite's OperationalError say it in their text alone
    by_text = isinstance(exc, OSError) or type(exc).__name__ in ("IOException", "OperationalError")
    if not (by_errno or (by_text and any(t in str(exc).lower() for t in _NO_ROOM_TEXT))):
        return None
    return no_room()


def no_room() -> ArchiveError:
    """The 507 of a write the disk has no room for: found full, or below the room the archive keeps (``storage``)."""
    return ArchiveError("disk_full", "the archive's disk has no room for this: drop tables or delete jobs you no longer "
                        "need, or ask the archive's administrator", 507)


def held_elsewhere(aliases: Iterable[str]) -> ArchiveError:
    """The 409 of a query that waited in vain for databases an engine being replaced still holds."""
    names = ", ".join(sorted(aliases))
    return ArchiveError(
        "conflict",
        f"{names} is still held by work that began before the mounts changed (a running job or a result "
        "being read); the query can run once that ends",
        409,
        details={"held": sorted(aliases)},
    )


def write_conflict(engine_text: str) -> ArchiveError:
    """The 409 of a write that met another one's on the same table (DuckDB's writes are optimistic: the later one
    fails), in words; DuckDB names the table as ``"Schema\\0main\\0Table\\0main\\0t"``."""
    found = re.search(r'write-write conflict on (\w+) with "([^"]*)"', engine_text)
    if found is None:
        return ArchiveError("conflict", engine_text, 409)
    # "Schema<0>main<0>Table<0>main<0>t" or "Table<0>main<0>t<0>Schema<0>main": parts joined by NUL, shown as \0
    parts = re.split(r"\\0|\x00", found.group(2))
    table = parts[parts.index("Table") + 2] if parts.count("Table") == 1 and parts.index("Table") + 2 < len(parts) else parts[-1]
    return ArchiveError("conflict", f"another request changed {table!r} at the same moment (a conflict on {found.group(1)}); "
                        "run it again", 409, details={"table": table})


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
    or a failed allocation (``MemoryError``, Arrow's too): then ``short_of_memory()``; or a write with no room on
    the disk: then ``disk_full()``.

    pyo3's ``PanicException`` (cdshealpix's, for one) derives from ``BaseException``, so ``except Exception`` let it
    through: a request then never got its answer, and a job never ended. As an error, it is a 500 and a failed job."""
    if isinstance(exc, MemoryError):
        error = short_of_memory()
    elif (full := disk_full(exc)) is not None:
        error = full
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
