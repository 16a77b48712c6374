"""TAP_SCHEMA: the IVOA description of the archive's tables, for one principal.

One model (``describe``) feeds both the VOSI ``/tables`` document and the five TAP_SCHEMA
tables (``schemas``, ``tables``, ``columns``, ``keys``, ``key_columns``), so the two always
agree. Each visible context is one TAP schema (its mount's ``schema_name``; ``mydb`` for the
caller's MyDB); TAP_SCHEMA describes itself too, with its five standard foreign keys.

A TAP query naming ``TAP_SCHEMA.<table>`` is an ordinary query: the resolver knows the
schema, and the planner runs it on a fresh in-memory engine holding ``arrow_tables`` of the
principal's description.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from typing import TYPE_CHECKING

import pyarrow as pa

from ..formats import engine_votable_type
from ..lanes import cheap_read
from .model import MYDB, TAP_SCHEMA, ColumnInfo, Principal

if TYPE_CHECKING:
    from .namespace import Namespace

_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class ColumnDesc:
    """One column as TAP describes it (VOTable datatype, arraysize, xtype; flags as 0/1)."""

    name: str
    datatype: str
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    description: str | None = None
    principal: int = 0
    std: int = 0
    indexed: int = 0


@dataclass
class ForeignKey:
    """A foreign key from one table to another: (from_column, target_column) pairs."""

    key_id: str
    from_table: str
    target_table: str
    columns: list[tuple[str, str]]
    description: str | None = None


@dataclass
class TableDesc:
    """One table: ``name`` is schema-qualified, exactly as ADQL and TAP_SCHEMA spell it."""

    schema: str
    name: str
    type: str = "table"
    description: str | None = None
    columns: list[ColumnDesc] = field(default_factory=list)
    keys: list[ForeignKey] = field(default_factory=list)


@dataclass
class SchemaDesc:
    """One TAP schema (a context, or TAP_SCHEMA itself)."""

    name: str
    description: str | None = None
    tables: list[TableDesc] = field(default_factory=list)


def qualified(schema: str, table: str) -> str:
    """``demo.PhotoObj``; a name that is not a plain identifier is delimited (``demo."a/b"``)."""
    if not _PLAIN_NAME.match(table):
        table = '"' + table.replace('"', '""') + '"'
    return f"{schema}.{table}"


def _column(c: ColumnInfo) -> ColumnDesc:
    datatype, arraysize, xtype = engine_votable_type(c.datatype)
    return ColumnDesc(
        c.name, datatype, arraysize, c.xtype or xtype, c.unit, c.ucd, c.utype, c.description, principal=1
    )


# -- TAP_SCHEMA describing itself -------------------------------------------------------------
_V, _I = "VARCHAR", "INTEGER"
_SELF: dict[str, list[tuple[str, str, str]]] = {
    "schemas": [
        ("schema_name", _V, "schema name, for reference to TAP_SCHEMA.schemas"),
        ("utype", _V, "lists the utypes of schemas in the tableset"),
        ("description", _V, "describes schemas in the tableset"),
        ("schema_index", _I, "recommended sort order when listing schemas"),
    ],
    "tables": [
        ("schema_name", _V, "the schema name from TAP_SCHEMA.schemas"),
        ("table_name", _V, "the fully qualified table name"),
        ("table_type", _V, "one of: table, view"),
        ("utype", _V, "lists the utype of tables in the tableset"),
        ("description", _V, "describes tables in the tableset"),
        ("table_index", _I, "recommended sort order when listing tables"),
    ],
    "columns": [
        ("table_name", _V, "the table this column belongs to"),
        ("column_name", _V, "the column name"),
        ("datatype", _V, "the VOTable datatype of the column"),
        ("arraysize", _V, "the VOTable arraysize, where one is needed"),
        ("xtype", _V, "a DALI or custom extended type annotation"),
        ("size", _I, "deprecated: use arraysize"),
        ("description", _V, "describes the column"),
        ("utype", _V, "lists the utype of the column"),
        ("unit", _V, "the unit in VO standard format"),
        ("ucd", _V, "the UCD of the column"),
        ("indexed", _I, "an indexed column; 1 means true, 0 false"),
        ("principal", _I, "a principal column; 1 means true, 0 false"),
        ("std", _I, "a standard column; 1 means true, 0 false"),
        ("column_index", _I, "recommended sort order when listing columns"),
    ],
    "keys": [
        ("key_id", _V, "unique key identifier"),
        ("from_table", _V, "the fully qualified table name"),
        ("target_table", _V, "the fully qualified table name"),
        ("description", _V, "describes the key"),
        ("utype", _V, "lists the utype of the key"),
    ],
    "key_columns": [
        ("key_id", _V, "key identifier from TAP_SCHEMA.keys"),
        ("from_column", _V, "key column name in the from_table"),
        ("target_column", _V, "key column name in the target_table"),
    ],
}
_SELF_KEYS = [  # (from table, from column, target table, target column)
    ("tables", "schema_name", "schemas", "schema_name"),
    ("columns", "table_name", "tables", "table_name"),
    ("keys", "from_table", "tables", "table_name"),
    ("keys", "target_table", "tables", "table_name"),
    ("key_columns", "key_id", "keys", "key_id"),
]


TABLES = tuple(_SELF)  # TAP_SCHEMA's tables, as TAP_SCHEMA.<name> names them
# What results read from TAP_SCHEMA say of their columns: the description, and that text is char.
COLUMN_META = {c: {"description": d, **({"datatype": "char"} if t == _V else {})} for cols in _SELF.values() for c, t, d in cols}


def _self_schema() -> SchemaDesc:
    tables = []
    for name, cols in _SELF.items():
        descs = []
        for cname, ctype, text in cols:
            datatype, arraysize, xtype = engine_votable_type(ctype)
            if datatype == "unicodeChar":
                datatype = "char"  # the standard declares TAP_SCHEMA's text columns char
            # "size" is an ADQL reserved word: TAP_SCHEMA stores it delimited (taplint CRSV)
            shown = '"size"' if cname == "size" else cname
            descs.append(ColumnDesc(shown, datatype, arraysize, xtype, description=text, principal=1, std=1))
        keys = [
            ForeignKey(f"tap_schema.{ft}.{fc}", f"TAP_SCHEMA.{ft}", f"TAP_SCHEMA.{tt}", [(fc, tc)])
            for ft, fc, tt, tc in _SELF_KEYS
            if ft == name
        ]
        tables.append(TableDesc(TAP_SCHEMA, f"TAP_SCHEMA.{name}", "table", f"TAP_SCHEMA: {name}", descs, keys))
    return SchemaDesc(TAP_SCHEMA, "the TAP service's description of its own tables", tables)


@cheap_read
def describe(namespace: Namespace, principal: Principal) -> list[SchemaDesc]:
    """The schemas, tables and columns ``principal`` may query, TAP_SCHEMA last."""
    out = []
    for ref in namespace.contexts(principal):
        schema = ref.mount.schema_name if ref.mount is not None else MYDB.lower()
        about = (ref.mount.description if ref.mount is not None else None) or f"context {ref.name}"
        desc = SchemaDesc(schema, about)
        for info in sorted(namespace.tables(principal, ref), key=lambda t: t.name.lower()):
            desc.tables.append(
                TableDesc(schema, qualified(schema, info.name), "table", info.description, [_column(c) for c in info.columns])
            )
        out.append(desc)
    out.append(_self_schema())
    return out


def find_table(schemas: list[SchemaDesc], name: str) -> TableDesc | None:
    """A table by its qualified name, compared case-insensitively."""
    low = name.lower()
    for s in schemas:
        for t in s.tables:
            if t.name.lower() == low:
                return t
    return None


def arrow_tables(schemas: list[SchemaDesc]) -> dict[str, pa.Table]:
    """The five TAP_SCHEMA tables as Arrow, named as in ``TAP_SCHEMA.<name>``."""
    rows: dict[str, list[dict]] = {name: [] for name in _SELF}
    for si, s in enumerate(schemas):
        rows["schemas"].append({"schema_name": s.name, "utype": None, "description": s.description, "schema_index": si})
        for ti, t in enumerate(s.tables):
            rows["tables"].append({
                "schema_name": s.name, "table_name": t.name, "table_type": t.type, "utype": None,
                "description": t.description, "table_index": ti,
            })  # fmt: skip
            for ci, c in enumerate(t.columns):
                rows["columns"].append({
                    "table_name": t.name, "column_name": c.name, "datatype": c.datatype, "arraysize": c.arraysize,
                    "xtype": c.xtype, "size": None, "description": c.description, "utype": c.utype, "unit": c.unit,
                    "ucd": c.ucd, "indexed": c.indexed, "principal": c.principal, "std": c.std, "column_index": ci,
                })  # fmt: skip
            for k in t.keys:
                rows["keys"].append({"key_id": k.key_id, "from_table": k.from_table, "target_table": k.target_table,
                                     "description": k.description, "utype": None})
                for fc, tc in k.columns:
                    rows["key_columns"].append({"key_id": k.key_id, "from_column": fc, "target_column": tc})
    out = {}
    for name, cols in _SELF.items():
        schema = pa.schema([(c, pa.string() if t == _V else pa.int32()) for c, t, _ in cols])
        out[name] = pa.Table.from_pylist(rows[name], schema=schema)
    return out
