"""The values requests carry, checked once for every face and store: integers, numbers,
flags, text, JSON documents and the media ranges of an Accept header.

Each check takes a parameter's name and its value as it came (query-string text, form
bytes, or a decoded JSON value) and returns the value in its Python type, or raises a 400
``ArchiveError`` naming the parameter and what it must be. Bounds are what the archive
can store and compute with: integers fit SQLite's and DuckDB's 64 bits, numbers are
finite, text is valid Unicode (UTF-8 on the wire), and JSON is nested at most
``MAX_JSON_DEPTH`` levels. Times are :mod:`.times`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import bad_request

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
MAX_JSON_DEPTH = 64  # deeper than any request the faces take, far below the interpreter's limit
_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")  # ASCII digits only: int() would also take "١٢" and "1_0"
_ID = re.compile(r"[0-9]{1,19}")
_TRUE = {"1", "true", "yes", "on", "t", "y"}
_FALSE = {"0", "false", "no", "off", "f", "n", ""}
_SHOWN = 60  # characters of a bad value quoted back in an error message


def shown(value: Any) -> str:
    """A bad value as an error message quotes it: repr, cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 5] + "...'"


def _invalid(name: str, value: Any, what: str):
    return bad_request(f"invalid {name}: {shown(value)} ({what})", parameter=name)


def text(name: str, value: Any, *, default: str | None = None, max_length: int | None = None) -> str | None:
    """Text: a str, or bytes that are UTF-8. Missing (None) is ``default``.

    JSON gives strings with lone surrogates (``"\\ud800"``) that no file, database or socket
    can take; they are refused here, as undecodable bytes are.
    """
    if value is None:
        return default
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid(name, bytes(value), "not UTF-8 text") from None
    if not isinstance(value, str):
        raise _invalid(name, value, "must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(name, value, "not valid Unicode text: a lone surrogate") from None
    if max_length is not None and len(value) > max_length:
        raise _invalid(name, value, f"longer than {max_length} characters")
    return value


def _within(name: str, value, minimum, maximum):
    if minimum is not None and value < minimum:
        raise _invalid(name, value, f"must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise _invalid(name, value, f"must be <= {maximum}")
    return value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, (str, bytes)) and not value.strip())


def integer(
    name: str, value: Any, *, default: int | None = None, minimum: int | None = INT64_MIN, maximum: int | None = INT64_MAX
) -> int | None:
    """A whole number (text of ASCII digits, or a JSON integer) between ``minimum`` and ``maximum``
    (by default the 64 bits every store holds). Missing or empty text is ``default``."""
    if _missing(value):
        return default
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)  # JSON writers that know only doubles send 10.0
    if isinstance(value, (str, bytes)):
        value = text(name, value).strip()
        if _INTEGER.fullmatch(value):
            value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(name, value, "must be an integer")
    return _within(name, value, minimum, maximum)


def number(
    name: str, value: Any, *, default: float | None = None, minimum: float | None = None, maximum: float | None = None
) -> float | None:
    """A finite number (text or a JSON number) between ``minimum`` and ``maximum``."""
    if _missing(value):
        return default
    given = value
    if isinstance(value, (str, bytes)):
        try:
            value = float(text(name, value).strip())
        except ValueError:
            raise _invalid(name, given, "must be a number") from None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _invalid(name, given, "must be a number")
    try:
        value = float(value)
    except OverflowError:  # an integer beyond any double
        value = math.inf
    if not math.isfinite(value):
        raise _invalid(name, given, "must be a finite number")
    return _within(name, value, minimum, maximum)


def boolean(name: str, value: Any, *, default: bool = False) -> bool:
    """A flag: JSON true/false, or text 1/0, true/false, yes/no, on/off (any case)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, (str, bytes)):
        raw = text(name, value).strip().lower()
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
    raise _invalid(name, value, "must be true or false")


def mapping(name: str, value: Any) -> dict | None:
    """A JSON object (None when missing or empty)."""
    if value in (None, {}):
        return None
    if not isinstance(value, dict):
        raise _invalid(name, value, "must be a JSON object")
    return value


def identifier(value: Any) -> int | None:
    """A row id named in a URL (a job's): the int when it is one a store can hold, else None,
    which the caller answers as "unknown" (404) like any id that does not exist."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= INT64_MAX else None
    if isinstance(value, str) and _ID.fullmatch(value.strip()):
        n = int(value)
        return n if 0 < n <= INT64_MAX else None
    return None


# -- JSON -------------------------------------------------------------------------------------------

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(data: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings do not count)."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for b in brackets:
        if b in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _no_constant(word: str):
    raise ValueError(f"{word} is not a JSON number")


def parse_json(data: bytes | str, *, what: str = "the request body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A JSON document: UTF-8, nested at most ``max_depth`` levels, no NaN or Infinity, no lone
    surrogates, integers of at most 4,300 digits (Python's own limit)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"{what} is not UTF-8: byte {exc.start} is {raw[exc.start:exc.start + 1]!r}") from None
    depth = json_depth(raw)
    if depth > max_depth:
        raise bad_request(f"{what} nests arrays and objects {depth} levels deep; at most {max_depth} are allowed")
    try:
        value = json.loads(body, parse_constant=_no_constant)
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise bad_request(f"{what} nests too deep") from None
    except ValueError as exc:  # JSONDecodeError, NaN, an integer of too many digits
        raise bad_request(f"{what} is not valid JSON: {exc}") from None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(f"{what} holds a string that is not valid Unicode (a lone surrogate escape such as \\ud800)") from None
    return value


# ---------------------------------------------------------------------------------------------
# Accept headers (which format they choose is ``formats``' business)


def _quoted(s: str, i: int) -> tuple[str, int]:
    """A parameter value starting at s[i]: quoted ("x", 'x', Quasar's "\\") or a bare token."""
    n = len(s)
    if i < n and s[i] in "\"'":
        q = s[i]
        # Quasar writes one-char values as qXq without escaping: "\"" is a backslash, """ a quote
        if i + 2 < n and s[i + 2] == q and (i + 3 == n or s[i + 3] in ";&, \t"):
            return s[i + 1], i + 3
        out, j = [], i + 1
        while j < n and s[j] != q:
            if s[j] == "\\" and j + 1 < n and s[j + 1] in (q, "\\"):
                j += 1
            out.append(s[j])
            j += 1
        return "".join(out), j + 1
    m = re.compile(r"[^\s,;&]*").match(s, i)
    if not m.group() and i < n and s[i] in ",;&" and (i + 1 == n or s[i + 1] in ",;& \t"):
        return s[i], i + 1  # a bare separator as the value: columnDelimiter=;
    return m.group(), m.end()


_TOKEN = re.compile(r"\s*([^\s,;&]*)\s*")
_PNAME = re.compile(r"\s*([^\s=,;&]+)\s*(=\s*)?")


def parse_accept(header: str) -> list[tuple[str, dict[str, str]]]:
    """Media ranges of an Accept header in order: ``[(type/subtype, {param: value})]``.

    Parameters may be separated by ``;`` or ``&`` (Quasar) and values may be quoted.
    """
    ranges, i, n = [], 0, len(header)
    while i < n:
        m = _TOKEN.match(header, i)
        mt, i = m.group(1).lower(), m.end()
        params: dict[str, str] = {}
        while i < n and header[i] in ";&":
            m = _PNAME.match(header, i + 1)
            if not m:
                i += 1
                continue
            i = m.end()
            value = ""
            if m.group(2) is not None:
                value, i = _quoted(header, i)
            params[m.group(1).lower()] = value
            while i < n and header[i] in " \t":
                i += 1
        while i < n and header[i] != ",":  # skip junk up to the next range
            i += 1
        i += 1
        if mt:
            ranges.append((mt, params))
    return ranges
