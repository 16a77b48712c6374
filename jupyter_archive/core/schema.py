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
    """Attach metadata to the fields of ``schema`` by column name (case-insensitive)."""
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


def per_schema_object(fn):
    """``fn(schema)`` remembered per schema *object* (the last 256).

    Arrow's schema equality ignores metadata, so equal schemas cannot share a value; but a
    quick query's schema is one remembered object (``annotate``), and what writers derive
    from it (its plain form, a JSON header) costs more to remake than the query's rows.
    Holding each schema keeps its ``id`` from being reused while it is remembered.
    """
    memo: OrderedDict[int, tuple[pa.Schema, object]] = OrderedDict()
    lock = threading.Lock()

    @functools.wraps(fn)
    def remembered(schema: pa.Schema):
        with lock:
            hit = memo.get(id(schema))
            if hit is not None and hit[0] is schema:
                memo.move_to_end(id(schema))
                return hit[1]
        value = fn(schema)
        with lock:
            memo[id(schema)] = (schema, value)
            while len(memo) > 256:
                memo.popitem(last=False)
        return value

    return remembered
