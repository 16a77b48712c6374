"""The format registry: which writer answers a request, and under which Content-Type.

Each writer module declares its formats as :class:`Writer` records (names, media types,
options and the function that writes); the package registers them (``formats/__init__``).
Two families share the registry: result tables, streamed by :meth:`Format.encode`, and images
(cutouts as bytes), made by :meth:`Format.render`.

Tables: :func:`negotiate` picks a format from ``?format=`` (a name, or a media range with
parameters) or the Accept header; :func:`by_name` builds one directly. Accept parameters become
writer options (``text/csv;columnDelimiter=|``, ``serialization=``), each writer checking its
own. An ``opt_in`` format (HTML, DAX's dbserv JSON) answers only where a face offers it.
Images: :func:`image_format` picks FITS, PNG or JPEG from a ``format`` value or an Accept header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import pyarrow as pa

from ..errors import ArchiveError
from .common import plain_schema

TABLE = "table"
IMAGE = "image"
CHUNK = 64 * 1024  # smallest chunk handed to the socket (except the last)


@dataclass
class ResultInfo:
    """What a writer needs to know about a result besides its rows."""

    truncated: bool = False  # the row limit cut the result (known before encoding starts)
    table_name: str = "Table1"  # CasJobs TableName, VOTable TABLE name, XML row element
    query: str | None = None  # the query text, for VOTable INFO QUERY
    row_limit: int | None = None  # the limit that cut it, for messages


@dataclass(frozen=True)
class Writer:
    """A format as its writer module declares it: what asks for it and what writes it.

    ``write`` is ``(schema, batches, info, options) -> Iterator[bytes]`` for a table and
    ``(cuts, names) -> bytes`` for an image.
    """

    name: str
    write: Callable
    content_type: str  # sent when it was not asked for by one of its exact media types
    media_types: dict[str, dict] = field(default_factory=dict)  # exact media type -> default options
    names: dict[str, dict] | None = None  # ?format= values -> default options (None: its name)
    params: dict[str, str] = field(default_factory=dict)  # Accept parameter (lower case) -> option
    check: Callable[[dict], None] | None = None  # validates the options, normalising them in place
    alias_types: tuple[str, ...] = ()  # of media_types, those answered under content_type
    opt_in: bool = False  # offered only where a face says so
    family: str = TABLE
    extension: str = ""  # of a file holding it (its name when empty)


@dataclass(frozen=True)
class Format:
    """A negotiated format: its name, the Content-Type to send and writer options."""

    name: str
    media_type: str
    options: dict = field(default_factory=dict)
    family: str = TABLE

    def encode(self, schema: pa.Schema, batches: Iterable[pa.RecordBatch], info: ResultInfo | None = None) -> Iterator[bytes]:
        """Yield the encoded result as byte chunks; lazy: nothing runs before the first ``next``."""
        return _coalesce(_TABLES[self.name].write, schema, batches, info or ResultInfo(), dict(self.options))

    def render(self, cuts: list, names: list[str] | None = None) -> bytes:
        """An image format's bytes of cutouts (FITS holds them all; a picture shows the first)."""
        return _IMAGES[self.name].write(cuts, names)

    @property
    def extension(self) -> str:
        """The file name extension of this format (``jpg`` for JPEG)."""
        writer = _FAMILIES[self.family][self.name]
        return writer.extension or writer.name


def _coalesce(writer, schema, batches, info, options) -> Iterator[bytes]:
    # Writers yield pieces of any size; group the small ones so the socket sees ~64 KiB+ writes
    # and never an empty chunk.
    pending: list[bytes] = []
    size = 0
    for piece in writer(plain_schema(schema), iter(batches), info, options):
        if not piece:
            continue
        pending.append(piece)
        size += len(piece)
        if size >= CHUNK:
            yield pending[0] if len(pending) == 1 else b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


# ---------------------------------------------------------------------------------------------
# The registry: filled by register(), read by negotiation

_TABLES: dict[str, Writer] = {}
_IMAGES: dict[str, Writer] = {}
_FAMILIES = {TABLE: _TABLES, IMAGE: _IMAGES}
#: Table media types -> (format, default options), in the order 406 answers list them.
MEDIA_TYPES: dict[str, tuple[str, dict]] = {}
#: The table formats every face offers unless it narrows (or widens) them with ``allowed``.
DEFAULT_FORMATS: frozenset[str] = frozenset()
_CANONICAL: dict[str, str] = {}  # format -> its Content-Type, in the order wildcards try them
_SHORT: dict[str, tuple[str, dict]] = {}  # ?format= values -> (format, default options)
_OPTIONS: dict[str, frozenset[str]] = {}  # format -> the options it takes
_LOWER_TYPES: dict[str, str] = {}  # lower-case media type -> its MEDIA_TYPES key
_ALIAS_TYPES: set[str] = set()  # media types answered under their format's own Content-Type
_IMAGE_VALUES: dict[str, Format] = {}  # image format names and media types (lower case)


def register(*writers: Writer) -> None:
    """Add formats to the registry, in order: the order 406 answers list media types in and,
    after the default, the order a wildcard Accept tries formats in."""
    global DEFAULT_FORMATS
    for w in writers:
        _FAMILIES[w.family][w.name] = w
        names = {w.name: {}} if w.names is None else w.names
        if w.family == IMAGE:
            fmt = Format(w.name, w.content_type, family=IMAGE)
            for value in (*names, *w.media_types):
                _IMAGE_VALUES[value.lower()] = fmt
            continue
        _CANONICAL[w.name] = w.content_type
        _SHORT.update((value, (w.name, options)) for value, options in names.items())
        _OPTIONS[w.name] = frozenset({*w.params.values(), "disposition"})
        for media_type, options in w.media_types.items():
            MEDIA_TYPES[media_type] = (w.name, options)
            _LOWER_TYPES[media_type.lower()] = media_type
        _ALIAS_TYPES.update(w.alias_types)
    DEFAULT_FORMATS = frozenset(name for name, w in _TABLES.items() if not w.opt_in)


# ---------------------------------------------------------------------------------------------
# Tables: names, media types and negotiation


def not_acceptable(message: str, allowed=None, *, listing: bool = True) -> ArchiveError:
    """The 406 for a table format nobody offers; ``listing`` adds the media types of ``allowed``."""
    names = set(DEFAULT_FORMATS if allowed is None else allowed)
    types = [mt.replace(";", "; ") for mt, (n, _) in MEDIA_TYPES.items() if n in names]
    if listing:
        message = f"{message}. Supported media types: {', '.join(types)}"
    return ArchiveError("not_acceptable", message, 406, details={"supported": types})


def by_name(name: str, **options) -> Format:
    """The format called ``name`` (or a ?format= short value) with validated writer options."""
    key = str(name).strip().lower()
    if key not in _SHORT:
        raise not_acceptable(f"Unknown format {name!r}")
    name, defaults = _SHORT[key]
    writer = _TABLES[name]
    opts = {**defaults, **{k: v for k, v in options.items() if v is not None}}
    unknown = set(opts) - _OPTIONS[name]
    if unknown:
        raise not_acceptable(f"Unknown option(s) for {name}: {', '.join(sorted(unknown))}", listing=False)
    if writer.check is not None:
        writer.check(opts)
    return Format(name, writer.content_type, opts)


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
    for p, opt in {**_TABLES[name].params, "disposition": "disposition"}.items():
        if p in params:
            opts[opt] = params[p]
    fmt = by_name(name, **opts)
    if key in _ALIAS_TYPES:
        return fmt
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
    raise not_acceptable(f"No supported format matches {what}", names)


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
                raise not_acceptable(f"Format {value!r} is not available here", names)
            return fmt
        return _resolve(parse_accept(value), default, names, f"format {value!r}")
    ranges = parse_accept(accept or "")
    if not ranges:
        if default not in names:
            raise not_acceptable("No format is available", names)
        return by_name(default)
    return _resolve(ranges, default, names, f"Accept {accept!r}")


# ---------------------------------------------------------------------------------------------
# Images

_IMAGE_DEFAULT = "fits"
_IMAGE_WILDCARDS = ("*/*", "image/*", "application/*")  # each means the default


def image_format(value: str | None = None, accept: str | None = None) -> Format:
    """The image format a ``format`` value (a name or media type) or else an Accept header asks
    for; FITS when neither says. Accept ranges are tried by q, then in the order given."""
    if value:
        fmt = _IMAGE_VALUES.get(value.strip().lower())
        if fmt is None:
            raise _no_image(f"unknown image format {value!r}")
        return fmt
    if not accept:
        return _IMAGE_VALUES[_IMAGE_DEFAULT]
    ranked = []
    for pos, (mt, params) in enumerate(parse_accept(accept)):
        try:
            q = float(params.get("q", 1))
        except ValueError:
            q = 0.0
        ranked.append((-q, pos, mt))
    for _, _, mt in sorted(ranked):
        if mt in _IMAGE_VALUES:
            return _IMAGE_VALUES[mt]
        if mt in _IMAGE_WILDCARDS:
            return _IMAGE_VALUES[_IMAGE_DEFAULT]
    raise _no_image(f"cannot answer Accept: {accept}")


def _no_image(message: str) -> ArchiveError:
    types = [w.content_type for w in _IMAGES.values()]
    return ArchiveError("not_acceptable", f"{message}; images come as {', '.join(types)}", 406, details={"supported": types})
