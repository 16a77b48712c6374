"""Times: one parser (ISO 8601, a naive time is UTC) and the formatters every face uses.

A time is kept as unix seconds (a float). Every time the archive stores is one every face
can show, in UTC or in the server's local time (CasJobs): finite, and between
``EARLIEST`` and ``LATEST`` (years 1 and 9999 less a day at each end, which no time zone's
offset can push out of range). :func:`check` enforces that where times are stored (the job
store), so no path can keep a time that breaks a later read; :func:`parse` applies it to
what callers send, so they hear about it at once.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
from typing import Any

from .errors import bad_request
from .params import shown, text

UTC = dt.timezone.utc
EARLIEST = dt.datetime(1, 1, 2, tzinfo=UTC).timestamp()
LATEST = dt.datetime(9999, 12, 30, 23, 59, 59, tzinfo=UTC).timestamp()
_RANGE = "0001-01-02T00:00:00Z to 9999-12-30T23:59:59Z"
_EXAMPLE = "2030-01-01T12:00:00Z"


def check(name: str, ts: Any, sent: Any = None) -> float:
    """``ts`` (unix seconds) if it is a time every face can show; else a 400 naming ``name``
    and quoting ``sent`` (what the caller wrote, when it was not ``ts`` itself)."""
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        raise bad_request(f"invalid {name}: {shown(ts)} (must be a time)", parameter=name)
    try:
        value = float(ts)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value) or not EARLIEST <= value <= LATEST:
        raise _outside(name, ts if sent is None else sent)
    return value


def _outside(name: str, sent: Any):
    return bad_request(f"invalid {name}: {shown(sent)} is outside the times the archive keeps ({_RANGE})", parameter=name)


def parse(name: str, value: Any, *, default: float | None = None, seconds: bool = False) -> float | None:
    """A time a caller sent: ISO 8601 text (``Z`` or an offset; naive means UTC; a date alone is
    its midnight), or with ``seconds`` also a JSON number of unix seconds. Missing or empty
    is ``default``."""
    if value is None or (isinstance(value, (str, bytes)) and not value.strip()):
        return default
    if seconds and isinstance(value, (int, float)) and not isinstance(value, bool):
        return check(name, value)
    raw = text(name, value).strip()
    iso = raw[:-1] + "+00:00" if raw[-1:] in "zZ" else raw
    try:
        when = dt.datetime.fromisoformat(iso)
    except ValueError:
        raise bad_request(f"invalid {name}: {shown(raw)} (use ISO 8601, e.g. {_EXAMPLE})", parameter=name) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        ts = when.timestamp()
    except (OverflowError, ValueError):  # the offset moves it out of datetime's years
        raise _outside(name, raw) from None
    return check(name, ts, raw)


def utc(ts: float) -> dt.datetime:
    """A stored time as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(ts, UTC)


def local(ts: float) -> dt.datetime:
    """A stored time as a naive datetime in the server's time zone."""
    return dt.datetime.fromtimestamp(ts)


def iso(ts: float | None, timespec: str = "milliseconds") -> str | None:
    """ISO 8601 in UTC with ``Z`` (``timespec`` as ``datetime.isoformat``); None stays None."""
    if ts is None:
        return None
    return utc(ts).isoformat(timespec=timespec).replace("+00:00", "Z")


def dotnet_local(ts: float | None) -> str | None:
    """.NET's local ISO time (CasJobs): the server's zone unnamed, the fraction without trailing
    zeros, none at all on a whole second; None stays None."""
    if ts is None:
        return None
    whole, frac = local(ts).isoformat(timespec="milliseconds").split(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac}" if frac else whole


#: .NET ``DateTime`` ticks (100 ns since 0001-01-01) at the unix epoch.
TICKS_AT_UNIX_EPOCH = 621_355_968_000_000_000


def dotnet_ticks(ts: float) -> int:
    """A stored time as .NET ``DateTime`` ticks (CasJobs' table dates)."""
    return round(ts * 10**7) + TICKS_AT_UNIX_EPOCH


def utc_pattern(ts: float | None, pattern: str) -> str | None:
    """A stored time in UTC written by a ``strftime`` pattern (a face's own shape); None stays None."""
    return None if ts is None else utc(ts).strftime(pattern)


def http_date(ts: float) -> str:
    """An HTTP date (RFC 9110: ``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return email.utils.formatdate(ts, usegmt=True)


def parse_http_date(value: str | None) -> float | None:
    """Unix seconds of an HTTP date a caller sent (``If-Modified-Since``); None when it is
    missing or not an HTTP date (RFC 9110: such a header is ignored). A date without a zone is UTC."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
        return when.replace(tzinfo=when.tzinfo or UTC).timestamp()
    except (TypeError, ValueError, OverflowError):
        return None
