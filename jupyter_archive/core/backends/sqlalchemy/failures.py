"""A SQL server's failures as archive errors: the server's own message, the archive's code and status.

PostgreSQL is read by SQLSTATE (class or code), SQLite by its message (syntax errors and unknown
names share one error code there). A password in the mount's URI never reaches a message.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pyarrow as pa

from ...errors import ArchiveError

# How a server error reaches the user: kind -> (archive code, HTTP status, message).
_KINDS = {
    "read_only": ("permission", 403, "the mount {context} is read-only: {msg}"), "permission": ("permission", 403, "not allowed: {msg}"),
    "syntax_error": ("syntax_error", 400, "{msg}"), "invalid_query": ("invalid_query", 400, "{msg}"),
    "value": ("invalid_query", 400, "a value cannot be converted: {msg}"), "canceled": ("canceled", 409, "the query was canceled: {msg}"),
    "too_large": ("too_large", 400, "the query needs more than {where} allows: {msg}"), "conflict": ("conflict", 409, "{msg}"),
    "unreachable": ("engine_error", 503, "lost the connection to {where}: {msg}"), "engine_error": ("engine_error", 500, "{where}: {msg}"),
}  # fmt: skip
# SQLSTATE class or code -> kind; the longest match wins.
_PG_STATES = {"25006": "read_only", "42501": "permission", "42601": "syntax_error", "57014": "canceled", "42": "invalid_query",
              "22": "invalid_query", "23": "invalid_query", "0A": "invalid_query", "2B": "invalid_query", "44": "invalid_query",
              "53": "too_large", "54": "too_large", "40": "conflict", "08": "unreachable"}  # fmt: skip
# SQLite's messages -> kind (syntax errors and unknown names share SQLITE_ERROR: the message decides).
_SQLITE_MESSAGES = ((("readonly", "read-only"), "read_only"), (("syntax error", "incomplete input"), "syntax_error"),
                    (("interrupted",), "canceled"), (("locked", "busy"), "conflict"),
                    (("no such", "ambiguous", "misuse", "wrong number", "too many", "unrecognized"), "invalid_query"))  # fmt: skip
_VALUE_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError)


def server_error(exc: BaseException | None, dialect: str, *, context: str, where: str, scrub: Callable[[str], str]) -> ArchiveError:
    """A driver exception as an ArchiveError carrying the server's own message (``scrub`` hides the password)."""
    if isinstance(exc, ArchiveError):
        return exc
    exc = getattr(exc, "orig", None) or exc
    kind, name = "engine_error", type(exc).__name__
    if dialect == "postgres":
        state = getattr(exc, "sqlstate", None) or ""
        diag = getattr(exc, "diag", None)
        msg = diag.message_primary if diag is not None and diag.message_primary else str(exc).split("\nLINE ")[0]
        hint = diag.message_hint if diag is not None else None
        msg = msg.strip() + (f" ({hint})" if hint else "")
        match = max((s for s in _PG_STATES if state.startswith(s)), key=len, default=None)
        if match:
            kind = _PG_STATES[match]
        elif name in ("OperationalError", "InterfaceError"):
            kind = "unreachable"
        elif name == "DataError" or isinstance(exc, _VALUE_ERRORS):
            kind = "value"
    else:
        msg = str(exc).strip()
        if isinstance(exc, sqlite3.OperationalError):
            kind = next((k for words, k in _SQLITE_MESSAGES if any(w in msg.lower() for w in words)), kind)
        elif isinstance(exc, (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError)):
            kind = "invalid_query"
        elif isinstance(exc, _VALUE_ERRORS):
            kind = "value"
    code, status, text = _KINDS[kind]
    return ArchiveError(code, text.format(msg=scrub(msg) or name, context=context, where=where), status)


def connect_error(exc: BaseException, where: str, scrub: Callable[[str], str]) -> ArchiveError:
    """A failure to connect: 400 when the mount's settings are wrong, 503 when the server is out of reach."""
    text = scrub(str(getattr(exc, "orig", None) or exc))
    first = " ".join(line.strip() for line in text.splitlines() if line.strip())[:500]
    refused = ("password authentication", "does not exist", "no pg_hba.conf", "not a database", "unable to open")
    if any(k in text for k in refused):
        return ArchiveError("bad_request", f"cannot open {where}: {first}", 400)
    return ArchiveError("engine_error", f"cannot connect to {where}: {first}", 503)
