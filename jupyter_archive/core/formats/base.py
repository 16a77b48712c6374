"""What every format writer is built on: the registry, negotiation, column metadata, plain types and slices.

Each writer module declares its formats as :class:`Writer` records (names, media types, options and the function that
writes); the package registers them (``formats/__init__``). Two families share the registry: result tables, streamed by
:meth:`Format.encode`, and images (cutouts as bytes), made by :meth:`Format.render`.

Tables: :func:`negotiate` picks a format from ``?format=`` (a name, or a media range with parameters) or the Accept
header (parsed by ``params.parse_accept``); :func:`by_name` builds one directly. Accept parameters become writer options
(``text/csv;columnDelimiter=|``, ``serialization=``), each writer checking its own. An ``opt_in`` format (HTML, DAX's
dbserv JSON) answers only where a face offers it. Images: ``images.image_format`` picks one.

Column metadata (unit, UCD, description, utype, xtype) travels on the Arrow fields of every result: backends put it there
(:func:`annotate`), writers read it (:func:`field_meta`). Writers see plain types (:func:`plain_type`) and hold one batch,
cut into slices of a few MiB of output (:func:`slices`), at a time, never the whole result.
"""
from __future__ import annotations

import functools
import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa

from ..errors import ArchiveError
from ..params import parse_accept

# ---------------------------------------------------------------------------------------------
# Column metadata, carried on Arrow fields so it travels with every streamed result

META_KEYS = ("unit", "ucd", "description", "utype", "xtype")
#: What result writers also read: ``datatype`` = "char" says a text column is declared ASCII (TAP_SCHEMA's own columns,
#: uploaded ``char`` fields), so VOTable writes ``char`` for it.
RESULT_KEYS = (*META_KEYS, "datatype")


def per_object(fn):
    """``fn(*args)`` remembered per tuple of argument *objects* (the last 256).

    Arrow's schema equality ignores metadata, so equal schemas cannot share a value; but a quick query's schema is one
    remembered object (``query._small_shape``, ``annotate``), and what is derived from it (its annotated and plain forms, a
    JSON header) costs more to remake than the query's rows. The memo holds its arguments, so their ``id``s are not reused
    while remembered; it is for immutable arguments.
    """
    memo: OrderedDict[tuple[int, ...], tuple[tuple, object]] = OrderedDict()
    lock = threading.Lock()

    @functools.wraps(fn)
    def remembered(*args):
        key = tuple(map(id, args))
        with lock:
            hit = memo.get(key)
            if hit is not None:
                memo.move_to_end(key)
                return hit[1]
        value = fn(*args)
        with lock:
            memo[key] = (args, value)
            while len(memo) > 256:
                memo.popitem(last=False)
        return value

    return remembered


def field_meta(field: pa.Field) -> dict[str, str]:
    """The archive metadata of a field as a plain ``{key: value}`` dict (only keys present)."""
    md = field.metadata or {}
    out = {}
    for key in RESULT_KEYS:
        value = md.get(key.encode())
        if value:
            out[key] = value.decode()
    return out


def with_meta(field: pa.Field, **meta: str | None) -> pa.Field:
    """A copy of ``field`` with the given archive metadata set (``None`` values are dropped)."""
    md = dict(field.metadata or {})
    for key, value in meta.items():
        if key not in RESULT_KEYS:
            raise ValueError(f"unknown column metadata key {key!r}")
        if value:
            md[key.encode()] = str(value).encode()
    return field.with_metadata(md)


def annotate(schema: pa.Schema, columns: dict[str, dict[str, str]]) -> pa.Schema:
    """Attach metadata to the fields of ``schema`` by column name (case-insensitive).

    ``columns`` is not mutated afterwards (the result is remembered per pair of objects)."""
    return _annotate_objects(schema, columns)


@per_object
def _annotate_objects(schema: pa.Schema, columns: dict[str, dict[str, str]]) -> pa.Schema:
    if schema.metadata is None and not any(f.metadata for f in schema):
        # Every quick query annotates its engine schema again; remembering the few distinct
        # (schema, metadata) pairs saves ~0.1 ms a query. Arrow's schema equality ignores
        # metadata, so only metadata-free schemas are looked up.
        return _annotate_plain(schema, tuple((k, tuple(v.items())) for k, v in columns.items()))
    return _annotate(schema, columns)


@functools.lru_cache(maxsize=256)
def _annotate_plain(schema: pa.Schema, columns: tuple) -> pa.Schema:
    return _annotate(schema, {k: dict(v) for k, v in columns})


def _annotate(schema: pa.Schema, columns: dict[str, dict[str, str]]) -> pa.Schema:
    lower = {k.lower(): v for k, v in columns.items()}
    fields = []
    for f in schema:
        meta = lower.get(f.name.lower())
        fields.append(with_meta(f, **{k: v for k, v in meta.items() if k in RESULT_KEYS}) if meta else f)
    return pa.schema(fields, metadata=schema.metadata)


SLICE_BYTES = 4 * 1024 * 1024  # batches are cut so that one slice encodes to about this much


# ---------------------------------------------------------------------------------------------
# Type normalisation and slicing


@functools.lru_cache(maxsize=256)  # asked per column of every slice: types are few, the checks many
def plain_type(t: pa.DataType) -> pa.DataType:
    """The type writers see: dictionaries decoded, large/view/fixed variants made plain."""
    if pa.types.is_dictionary(t):
        return plain_type(t.value_type)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t):
        return pa.binary()
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_date64(t):
        return pa.date32()
    return t


@per_object
def plain_schema(schema: pa.Schema) -> pa.Schema:
    """The schema with every type made plain (what writers are given)."""
    return pa.schema([f.with_type(plain_type(f.type)) for f in schema], metadata=schema.metadata)


def plain(arr) -> pa.Array:
    """A column (chunks combined) cast to its :func:`plain_type`."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = plain_type(arr.type)
    return arr if t == arr.type else arr.cast(t)


def slices(
    batches: Iterable, row_bytes: int, render, *, multiple: int = 1, rows: int | None = None, parallel: bool = False
) -> Iterator:
    """Yield ``render(slice)`` for the incoming batches cut into slices of about SLICE_BYTES of
    output (``row_bytes``: an estimate per row), or of ``rows`` rows; slice lengths are multiples
    of ``multiple`` where the batch allows. Empty slices are skipped.

    ``parallel``: ``render`` releases the GIL for most of its work (pyarrow's CSV writer), so
    the next slice is rendered on another core while this one is sent; output stays in order."""
    rows = rows or max(1024, SLICE_BYTES // max(row_bytes, 1)) // multiple * multiple

    def cut() -> Iterator[pa.RecordBatch]:
        it = iter(batches)
        # Explicit dels: no reference to a finished batch may survive into the next fetch, so the
        # producer (DuckDB) can build the next batch without two being alive at once.
        while (b := next(it, None)) is not None:
            parts = b.to_batches() if isinstance(b, pa.Table) else [b]
            del b
            while parts:
                part = parts.pop(0)
                for off in range(0, part.num_rows, rows):
                    yield part.slice(off, rows)
                del part

    pieces = cut()
    head = list(itertools.islice(pieces, 2)) if parallel else []
    if not parallel or len(head) < 2:
        # One slice (any quick result): handing it to another thread costs more than it saves.
        for i, piece in enumerate(itertools.chain(_popping(head), pieces)):
            # From the second slice on this is an export: give the Arrow heap of this thread
            # back after each (the pool's threads take turns, each would keep its own).
            out = render(piece) if i == 0 else _render_releasing(render, piece)
            del piece
            yield out
            del out
        return
    yield from pipelined(itertools.chain(_popping(head), pieces), render, depth=2)


def pipelined(pieces: Iterable, render, *, depth: int = 1) -> Iterator:
    """Yield ``render(piece)`` for each piece, in order, rendered on the render pool while the
    next piece is fetched here (from the engine); at most ``depth`` renders in flight, so memory
    stays bounded. ``depth=1`` renders one piece after another: a stateful writer (Parquet's)."""
    pending: list = []
    try:
        for piece in pieces:
            if len(pending) == depth:
                yield pending.pop(0).result()
            pending.append(_render_pool().submit(_render_releasing, render, piece))
            del piece
        while pending:
            yield pending.pop(0).result()
    finally:
        for f in pending:
            if not f.cancel():
                f.exception()  # running: wait, so the writer is not closed under it


def _popping(items: list) -> Iterator:
    """The items of a list, each dropped from it as it is given (no reference stays behind)."""
    while items:
        yield items.pop(0)


def _render_releasing(render, piece):
    try:
        return render(piece)
    finally:
        # Arrow's allocator keeps a heap per thread; without this the render threads' heaps hold
        # tens of MB after an export (~3 us a call).
        pa.default_memory_pool().release_unused()


_RENDER_POOL = None


def _render_pool():
    global _RENDER_POOL
    if _RENDER_POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _RENDER_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="archive-render")
    return _RENDER_POOL


def float_text(v: float, single: bool = False) -> str:
    """A finite float as Arrow's cast to text writes it (so a small result's Python path writes the same): the shortest
    digits that read back the same (``single``: float32), fixed from 1e-6 up to 1e10 with no ``.0``, else ``1.5e+16``."""
    r = str(np.float32(v)) if single else repr(v)
    if "e" not in r and 1e-6 <= abs(v) < 1e10:
        return r[:-2] if r.endswith(".0") else r
    sign, (mantissa, _, exp) = "-" * r.startswith("-"), r.lstrip("-").partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) + int(exp or 0) - len(whole + frac) + len(digits)  # digits[:point] is the integer part
    if not (digits := digits.rstrip("0")):
        return sign + "0"
    if not -6 <= point - 1 <= 9:
        return f"{sign}{digits[0]}{'.' * (len(digits) > 1)}{digits[1:]}e{'+' if point > 1 else '-'}{abs(point - 1)}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    return sign + (digits + "0" * (point - len(digits)) if point >= len(digits) else f"{digits[:point]}.{digits[point:]}")


@per_object
def text_row_bytes(schema: pa.Schema) -> int:
    """A rough size of a row as text, to size slices."""
    return sum(24 if is_stringish(f.type) else 12 for f in schema) + 8


def is_stringish(t: pa.DataType) -> bool:
    """Types rendered as quoted strings in JSON/CSV (text, times, base64 binary, JSON text)."""
    return not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
                or pa.types.is_decimal(t) or pa.types.is_null(t))


# ---------------------------------------------------------------------------------------------
# Formats and writers

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
    sample: Any = None  # a random sample's ``execution.samples.Sample`` (its rows, of how many, the seed): said with the rows


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
#: Image format names and media types (lower case) -> the format (``images.image_format`` reads it).
IMAGE_VALUES: dict[str, Format] = {}


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
                IMAGE_VALUES[value.lower()] = fmt
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
