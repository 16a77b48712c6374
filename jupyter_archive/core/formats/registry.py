"""Media types, format names and content negotiation: which writer answers a request.

Kept apart from the writers (``formats``); ``formats`` re-exports ``negotiate``,
``by_name``, ``MEDIA_TYPES`` and ``parse_accept``, which is how the rest of the archive
reaches them.
"""

from __future__ import annotations

import re

from ..errors import ArchiveError
from .common import _WRITERS, Format
# ---------------------------------------------------------------------------------------------
# Names, media types and negotiation

_VOTABLE = ("votable", {"serialization": "binary2"})

MEDIA_TYPES: dict[str, tuple[str, dict]] = {
    "text/csv": ("csv", {}),
    "text/plain": ("csv", {}),
    "text/tab-separated-values": ("tsv", {}),
    "text/tsv": ("tsv", {}),  # LSST DAX's name
    "application/json": ("json", {}),
    "application/json+array": ("json-array-casjobs", {}),
    "application/ldjson": ("ldjson", {}),
    "application/x-ldjson": ("ldjson", {}),
    "application/json;boundary=NL": ("ldjson", {}),
    "application/x-votable+xml": _VOTABLE,
    "application/votable+xml": _VOTABLE,
    "text/xml;content=x-votable": _VOTABLE,
    "application/VOTable": _VOTABLE,  # LSST DAX's name
    "application/fits": ("fits", {}),
    "application/fitsTable": ("fits", {}),  # LSST DAX's name
    "application/vnd.apache.parquet": ("parquet", {}),
    "application/x-parquet": ("parquet", {}),
    "application/parquet": ("parquet", {}),
    "application/vnd.apache.arrow.stream": ("arrow", {}),
    "text/xml": ("xml", {}),
    "application/xml": ("xml", {}),
    "application/vnd.archive.table+json": ("json-table", {}),
    "application/x-dataset": ("dataset", {}),  # CasJobs' serialized .NET DataSet
    "text/html": ("html", {}),
}

# Formats a face offers only when it says so (``allowed``): browsers ask for text/html first,
# and a face that never promised HTML keeps answering them with data.
OPT_IN = frozenset({"html"})
#: The formats every face offers unless it narrows (or widens) them with ``allowed``.
DEFAULT_FORMATS = frozenset(_WRITERS) - OPT_IN

# The Content-Type a format carries when it was not asked for by one of its exact media types.
_CANONICAL = {
    "csv": "text/csv; charset=utf-8", "tsv": "text/tab-separated-values; charset=utf-8",
    "json": "application/json", "json-table": "application/json",
    "json-array-casjobs": "application/json", "ldjson": "application/ldjson; charset=UTF-8",
    "votable": "application/x-votable+xml", "fits": "application/fits",
    "parquet": "application/vnd.apache.parquet", "arrow": "application/vnd.apache.arrow.stream",
    "xml": "text/xml; charset=utf-8", "dataset": "application/x-dataset",
    "html": "text/html; charset=utf-8",
}

# ?format= short values (TAP RESPONSEFORMAT style) -> (name, options)
_SHORT = {
    **{n: (n, {}) for n in _WRITERS},
    "votable": _VOTABLE, "ndjson": ("ldjson", {}), "jsonl": ("ldjson", {}),
    "casjobs": ("json-array-casjobs", {}), "json-array": ("json-array-casjobs", {}),
    **{f"votable/{k}": ("votable", {"serialization": v}) for k, v in (
        ("td", "tabledata"), ("tabledata", "tabledata"), ("b", "binary"), ("binary", "binary"),
        ("b2", "binary2"), ("binary2", "binary2"))},
}

# Accept-header parameters that become writer options, per format (names compared lower-case).
_PARAMS = {
    "csv": {"columndelimiter": "delimiter", "rowdelimiter": "row_delimiter",
            "quotechar": "quote_char", "escapechar": "escape_char"},
    "votable": {"serialization": "serialization"},
    "ldjson": {"mode": "mode"},
}
_OPTIONS = {"csv": {"delimiter", "row_delimiter", "quote_char", "escape_char"},
            "votable": {"serialization"}, "ldjson": {"mode"}}
_SERIALIZATIONS = {"tabledata": "tabledata", "td": "tabledata", "binary": "binary", "b": "binary",
                   "binary2": "binary2", "b2": "binary2"}
_UNESCAPE = {"\\n": "\n", "\\r": "\r", "\\t": "\t", "\\r\\n": "\r\n", "\\\\": "\\", '\\"': '"', "\\'": "'"}


def _not_acceptable(message: str, allowed=None, *, listing: bool = True) -> ArchiveError:
    names = set(DEFAULT_FORMATS if allowed is None else allowed)
    types = [mt.replace(";", "; ") for mt, (n, _) in MEDIA_TYPES.items() if n in names]
    if listing:
        message = f"{message}. Supported media types: {', '.join(types)}"
    return ArchiveError("not_acceptable", message, 406, details={"supported": types})


def _one_char(label: str, value, *, crlf: bool = False) -> str:
    v = _UNESCAPE.get(value, value) if isinstance(value, str) else value
    if not isinstance(v, str) or not (len(v) == 1 or (crlf and v == "\r\n")):
        raise _not_acceptable(f"CSV {label} must be exactly one character, got {value!r}", listing=False)
    return v


def by_name(name: str, **options) -> Format:
    """The format called ``name`` (or a ?format= short value) with validated writer options."""
    key = str(name).strip().lower()
    if key not in _SHORT:
        raise _not_acceptable(f"Unknown format {name!r}")
    name, defaults = _SHORT[key]
    opts = {**defaults, **{k: v for k, v in options.items() if v is not None}}
    unknown = set(opts) - _OPTIONS.get(name, set()) - {"disposition"}
    if unknown:
        raise _not_acceptable(f"Unknown option(s) for {name}: {', '.join(sorted(unknown))}", listing=False)
    if name == "csv":
        d = opts["delimiter"] = _one_char("column delimiter", opts.get("delimiter", ","))
        rd = opts["row_delimiter"] = _one_char("row delimiter", opts.get("row_delimiter", "\n"), crlf=True)
        q = opts["quote_char"] = _one_char("quote character", opts.get("quote_char", '"'))
        e = opts["escape_char"] = _one_char("escape character", opts.get("escape_char", q))
        if d in "\r\n" or q in "\r\n" or e in "\r\n" or len({d, q, rd}) < 3 or e in (d, *rd):
            raise _not_acceptable(f"CSV delimiter {d!r}, row delimiter {rd!r}, quote {q!r} and "
                                  f"escape {e!r} must differ and not be CR/LF", listing=False)
    elif name == "votable":
        ser = _SERIALIZATIONS.get(str(opts.get("serialization", "binary2")).lower())
        if ser is None:
            raise _not_acceptable(f"Unknown VOTable serialization {opts['serialization']!r} "
                                  "(use tabledata, binary or binary2)", listing=False)
        opts["serialization"] = ser
    elif name == "ldjson" and str(opts.setdefault("mode", "precise")).lower() not in ("precise", "readable"):
        raise _not_acceptable(f"Unknown ldjson mode {opts['mode']!r} (use precise or readable)", listing=False)
    return Format(name, _CANONICAL[name], opts)


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


_LOWER_TYPES = {k.lower(): k for k in MEDIA_TYPES}


def _lookup(mt: str, params: dict[str, str]) -> str | None:
    """The MEDIA_TYPES key for an exact media range (parameterised keys first)."""
    for k, v in params.items():
        key = _LOWER_TYPES.get(f"{mt};{k}={v}".lower())
        if key:
            return key
    return _LOWER_TYPES.get(mt)


def _from_key(key: str, params: dict[str, str]) -> Format:
    name, defaults = MEDIA_TYPES[key]
    opts = dict(defaults)
    for p, opt in {**_PARAMS.get(name, {}), "disposition": "disposition"}.items():
        if p in params:
            opts[opt] = params[p]
    fmt = by_name(name, **opts)
    if key == "application/json+array":
        return fmt  # not a registered type; answer as plain JSON
    media = key.replace(";", "; ") + ("; charset=utf-8" if key.startswith("text/") or key == "application/xml" else "")
    return Format(fmt.name, media, fmt.options)


def _resolve(ranges, default: str, names: set[str], what: str) -> Format:
    entries = []
    for pos, (mt, params) in enumerate(ranges):
        params = dict(params)
        try:
            q = float(params.pop("q", "1") or 1)
        except ValueError:
            continue
        spec = 0 if mt == "*/*" else 1 if mt.endswith("/*") else 2
        entries.append((q, spec, pos, mt, params))
    refused = {_lookup(mt, p) for q, spec, _, mt, p in entries if q <= 0 and spec == 2}
    entries.sort(key=lambda e: (-e[0], -e[1], e[2]))
    for q, spec, _, mt, params in entries:
        if q <= 0:
            continue
        if spec == 2:
            key = _lookup(mt, params)
            if key and MEDIA_TYPES[key][0] in names and key not in refused:
                return _from_key(key, params)
            continue
        # a wildcard: the default first, then the others, each with its own Content-Type
        for name in sorted((n for n in _CANONICAL if n in names), key=lambda n: n != default):
            canonical = _CANONICAL[name].split(";")[0]
            if (spec == 0 or canonical.startswith(mt[:-1])) and canonical not in refused:
                return by_name(name)
    raise _not_acceptable(f"No supported format matches {what}", names)


def negotiate(accept: str | None, format_param: str | None = None, *, default: str = "csv",
              allowed: set[str] | None = None) -> Format:
    """Choose the response format from ``?format=`` (wins) or the Accept header.

    A missing, empty or ``*/*`` Accept gives ``default``; ``allowed`` names the formats a face
    supports (``DEFAULT_FORMATS`` when None). Raises ArchiveError('not_acceptable', status 406)
    when nothing fits.
    """
    names = set(DEFAULT_FORMATS if allowed is None else allowed)
    if default not in names:
        default = next((n for n in _CANONICAL if n in names), default)
    if format_param is not None and format_param.strip():
        value = format_param.strip()
        if value.lower() in _SHORT:
            fmt = by_name(value)
            if fmt.name not in names:
                raise _not_acceptable(f"Format {value!r} is not available here", names)
            return fmt
        return _resolve(parse_accept(value), default, names, f"format {value!r}")
    ranges = parse_accept(accept or "")
    if not ranges:
        if default not in names:
            raise _not_acceptable("No format is available", names)
        return by_name(default)
    return _resolve(ranges, default, names, f"Accept {accept!r}")
