"""The namespace: mounts, contexts, tables and their metadata, and resolving a request's names.

- ``model``: the words (Principal, Mount, ContextRef, TableInfo, ColumnInfo, MYDB, paths).
- ``namespace``: ``Namespace`` (``archive.catalog``): the mount registry, contexts, tables, positions.
- ``mounts``: ``Mounts`` (``archive.mounts``): mounting at start and at run time, their checks and store.
- ``resolver``: ``Resolver``: table names of one request, TAP_SCHEMA and TAP_UPLOAD included.
- ``tap_schema``: the IVOA description of the tables (VOSI ``/tables`` and TAP_SCHEMA).
"""

from .model import (
    ANONYMOUS,
    MYDB,
    MYDB_ALIAS,
    ColumnInfo,
    ContextRef,
    Mount,
    Principal,
    TableInfo,
    normalise_path,
)

__all__ = ["ANONYMOUS", "MYDB", "MYDB_ALIAS", "ColumnInfo", "ContextRef", "Mount", "Principal", "TableInfo", "normalise_path"]
