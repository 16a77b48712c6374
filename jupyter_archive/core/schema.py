"""Column metadata carried on Arrow fields, so it travels with every streamed result.

Unit, UCD, description, utype and xtype live in the Arrow field metadata under the keys
below. Every writer in ``formats`` reads them from there; every backend puts them there.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict

import pyarrow as pa

META_KEYS = ("unit", "ucd", "description", "utype", "xtype")
#: What result writers also read: ``datatype`` = "char" says a text column is declared ASCII
#: (TAP_SCHEMA's own columns, uploaded ``char`` fields), so VOTable writes ``char`` for it.
RESULT_KEYS = (*META_KEYS, "datatype")


def per_object(fn):
    """``fn(*args)`` remembered per tuple of argument *objects* (the last 256).

    Arrow's schema equality ignores metadata, so equal schemas cannot share a value; but a
    quick query's schema is one remembered object (``query._small_shape``, ``annotate``), and
    what is derived from it (its annotated and plain forms, a JSON header) costs more to
    remake than the query's rows. The memo holds its arguments, so their ``id``s are not
    reused while remembered; it is for immutable arguments.
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
