"""Point lookups by key, answered from the table's rows held in memory and sorted by that key (issue 16).

DuckDB plans every query afresh: a lookup of one row by its id costs ~0.4 ms of planning and scanning where
SQLite's B-tree costs ~0.01 ms, and it is what a catalog is asked most (``WHERE objid = ...``, from every
face). ``Queries.lookup`` answers such a read here, on the event loop, without a worker or an engine.

- **Which reads:** one compiled read ``SELECT <columns or *> FROM "db"."schema"."table" WHERE "key" = <integer or
  string> [LIMIT n]`` (``POINT``: the SQL pipeline's own rendering, whatever the face's language), of a base table
  of MyDB or of a read-only DuckDB mount, with a key column of an integer type or of text without a collation,
  given a value of the same kind, matching at most ``most`` rows.
  Anything else runs on the engine as before.
- **When:** a (table, key) looked up ``DEMAND`` times gets its index, built on a thread of its own from the
  engine's Arrow export of the table (so the rows have the types the engine's results have), if the table
  fits ``budget`` bytes (all indexes together; the least recently used go first). Unused for ``idle``
  seconds, an index is dropped: it is memory held at rest.
- **Never stale:** an index serves while the stamp of its database file and write-ahead log (inode, size,
  modification time: every committed write changes one) is the one taken before the build read the table. As
  file times are coarse (a clock tick), a build starts only when both were last written over ``QUIET`` seconds
  before; a later write then always changes the stamp. MyDB's stamp is the one its compile-cache hit just took;
  a read-only mount's file (read as it was opened, and no query writes it) is compared once every ``RECHECK``.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from ..catalog.namespace import file_stamp
from .pool import WATCHDOG

log = logging.getLogger(__name__)
DEMAND = 8  # lookups of a (table, key) before its index is built: a one-off lookup never pays for one
QUIET = 0.5  # seconds since a file's last write before its table is read for an index
REST = 9  # after a build, no other for this many times as long as it took
RECHECK = 1.0  # seconds a read-only mount's index serves before its file's stamp is compared again
_INTEGERS = frozenset("BIGINT INTEGER SMALLINT TINYINT UBIGINT UINTEGER USMALLINT UTINYINT".split())
_WIDTH = {"BIGINT": 8, "INTEGER": 4, "SMALLINT": 2, "TINYINT": 1, "DOUBLE": 8, "FLOAT": 4, "BOOLEAN": 1, "DATE": 4}

_ID = r'"(?:[^"]|"")+"'
POINT = re.compile(
    rf"SELECT (\*|{_ID}(?: AS {_ID})?(?:, {_ID}(?: AS {_ID})?)*) FROM ({_ID})\.({_ID})\.({_ID}) WHERE ({_ID}) = (-?\d+|\$\w+|'(?:[^']|'')*')"
    r"(?: LIMIT (\d+))?"
)
_COLUMN = re.compile(rf"({_ID})(?: AS ({_ID}))?")


def _name(quoted: str) -> str:
    return quoted[1:-1].replace('""', '"')


class PointRead:
    """A parsed ``POINT`` read: where (catalog, schema, table), the key and its value's source, the columns
    (None: all, as ``*``) as (column, alias or None: the engine names a column as the table does, however
    the query spelt it), and the row limit of its ``LIMIT`` (or None)."""

    __slots__ = ("catalog", "schema", "table", "key", "value", "columns", "limit")

    def __init__(self, m: re.Match):
        cols, cat, schema, table, key, value, limit = m.groups()
        self.catalog, self.schema, self.table, self.key = _name(cat), _name(schema), _name(table), _name(key)
        self.value = value  # an integer or string literal, or ``$name`` of a bound parameter
        self.columns = None if cols == "*" else [
            (_name(c.group(1)), c.group(2) and _name(c.group(2))) for c in _COLUMN.finditer(cols)
        ]  # fmt: skip
        self.limit = int(limit) if limit is not None else None

    def key_value(self, params: dict) -> int | str | None:
        """The key's value: an integer or a string, else None (a parameter of another type: the engine casts it)."""
        if self.value[0] == "$":
            v = params.get(self.value[1:])
            return v if type(v) in (int, str) else None  # not a bool, nor a subclass the engine might read otherwise
        return self.value[1:-1].replace("''", "'") if self.value[0] == "'" else int(self.value)


class KeyIndex:
    """A table's rows (Arrow, in chunks of ``per`` rows) and the positions of its non-null keys in key order."""

    def __init__(self, table: pa.Table, key: str, stamp: tuple):
        import numpy as np
        import pyarrow.compute as pc

        batches = table.combine_chunks().to_batches()
        whole = batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
        # The rows in compact chunks of ~64 KB: a lookup's row is a slice of one, whose size ``QueryResult.small``
        # reads from its chunk's buffers at once (``nbytes`` of a slice of the whole costs ~30 µs).
        self.per = max(1, min(4096, (64 << 10) * whole.num_rows // max(1, whole.nbytes)))
        self.chunks = [pa.concat_batches([whole.slice(i, self.per)]) for i in range(0, whole.num_rows, self.per)] or [whole]
        self.table = pa.Table.from_batches(self.chunks, schema=whole.schema)
        self.schema = whole.schema
        self.stamp = stamp
        self.used = self.checked = time.monotonic()  # last asked for; its file's stamp last compared
        self.names = {n.lower(): i for i, n in enumerate(table.column_names)}
        self._shapes: dict = {}
        column = whole.column(self.names[key.lower()])
        positions = pc.indices_nonzero(pc.is_valid(column)).to_numpy() if column.null_count else np.arange(len(column))
        self.text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        # Text keys as Python strings: compared by code point, so equal exactly when DuckDB's bytes are (no collation).
        keys = np.array(column.drop_null().to_pylist(), dtype=object) if self.text else column.drop_null().to_numpy()
        order = np.argsort(keys, kind="stable")  # stable: rows of one key stay in table order, as a scan gives them
        self.keys, self.rows = keys[order], positions[order]
        self.info = None if self.text else np.iinfo(self.keys.dtype)
        self.nbytes = self.table.nbytes + self.keys.nbytes + self.rows.nbytes + (56 * len(keys) + column.nbytes if self.text else 0)

    def shape(self, columns: list | None) -> tuple[list[int] | None, pa.Schema] | None:
        """(column positions, or None for all; the output schema) of a read's columns (``PointRead.columns``),
        remembered; None for an unknown column."""
        key = tuple(columns) if columns is not None else None
        if (known := self._shapes.get(key)) is None:
            if columns is None:
                known = (None, self.schema)
            else:
                cols = [self.names.get(c.lower()) for c, _ in columns]
                if None in cols:
                    return None
                fields = [self.schema.field(i) for i in cols]
                known = (cols, pa.schema([f.with_name(a) if a else f for f, (_, a) in zip(fields, columns, strict=True)]))
            self._shapes[key] = known
        return known

    def take(self, positions) -> pa.RecordBatch:
        """The rows at ``positions``: one (a unique key's) is a slice of its chunk, no copy (~30x cheaper than a take)."""
        if len(positions) == 1:
            p = int(positions[0])
            return self.chunks[p // self.per].slice(p % self.per, 1)
        if not len(positions):
            return self.chunks[0].slice(0, 0)
        return self.table.take(positions).combine_chunks().to_batches()[0]

    def find(self, value: int | str, most: int):
        """Positions of the rows whose key is ``value``, in table order; None past ``most`` of them, or for a value
        the engine would cast (a number for a text key, text or a number out of range for an integer one)."""
        if self.text or isinstance(value, str):
            if self.text != isinstance(value, str):
                return None
        elif not self.info.min <= value <= self.info.max:
            return None
        else:
            value = self.keys.dtype.type(value)
        lo, hi = self.keys.searchsorted(value, "left"), self.keys.searchsorted(value, "right")
        return self.rows[lo:hi] if hi - lo <= most else None


class Lookups:
    """The archive's key indexes (``Archive.queries.lookups``): ``rows`` answers a ``PointRead`` from one, or
    counts the demand and has one built (``build``: the table as Arrow, read on an engine) in the background."""

    def __init__(self, budget: int, *, idle: float | None = 60.0):
        self.budget, self.idle = budget, idle
        self._lock = threading.Lock()
        self._indexes: OrderedDict[tuple, KeyIndex] = OrderedDict()  # least recently used first
        self._demand: dict[tuple, int] = {}
        self._refused: dict[tuple, tuple] = {}  # key -> the stamp at which its table could not be indexed
        self._building: set[tuple] = set()
        self._files: dict[tuple, Path | None] = {}  # (principal, database alias, mounts' version) -> its file
        self.served = 0  # lookups answered
        # Building rests REST times as long as the last build took: writes and lookups in turn (each write makes
        # the index stale, DEMAND lookups build it again) cannot keep a core reading tables for more than ~1/REST of it.
        self._rest_until = 0.0
        self.build_seconds = 0.0  # spent building, all told

    def answer(self, namespace, principal, statement, cursor: Callable, most: int, stamp: tuple | None = None) -> tuple | None:
        """The rows of a compiled ``POINT`` read from the key index of its table (at most ``most``); None when
        it has none (yet: ``cursor`` gives one of the principal's engine to build it with) or cannot say.
        ``stamp``: its database file's, when the caller has just taken it (a MyDB read's compile-cache hit).
        An index is an optimisation: whatever fails here, the engine answers instead (never a 500 from this path)."""
        try:
            return self._answer(namespace, principal, statement, cursor, most, stamp)
        except Exception:  # noqa: BLE001
            log.warning("a key index could not answer %r; the engine does", statement.sql[:200], exc_info=True)
            return None

    def _answer(self, namespace, principal, statement, cursor: Callable, most: int, stamp: tuple | None) -> tuple | None:
        read = PointRead(POINT.fullmatch(statement.sql))
        if statement.kind != "read" or statement.late is not None or (value := read.key_value(statement.params)) is None:
            return None
        where = (principal, read.catalog, namespace.version)
        if (path := self._files.get(where, False)) is False:  # asked once per caller and database while the mounts stay
            if len(self._files) > 4096:
                self._files.clear()
            path = self._files[where] = namespace.lookup_file(principal, read.catalog)
        return None if path is None else self.rows(path, read, value, most, cursor, stamp)

    def rows(self, path: Path, read: PointRead, value: int, most: int, build: Callable, stamp: tuple | None = None) -> tuple | None:
        """The rows ``read`` selects with key ``value`` (at most ``most``) as (batch, schema: one object per shape,
        so what formats derive from it is remembered), from the index of its table in the database file ``path``;
        None when there is none yet (``build``: the engine's cursor to read it with)."""
        key = (str(path), read.schema.lower(), read.table.lower(), read.key.lower())
        now = time.monotonic()
        if stamp is None and (index := self._indexes.get(key)) is not None and now - index.checked < RECHECK:
            stamp = index.stamp  # a read-only mount's file: the engine reads it as it was opened; checked once a second
        stamp = stamp or file_stamp(path)
        with self._lock:
            index = self._indexes.get(key)
            if index is not None and index.stamp == stamp:
                self._indexes.move_to_end(key)
                index.used = index.checked = now
            else:
                if index is not None:  # its table changed: it can never serve again
                    del self._indexes[key]
                index = None
                self._want(key, stamp, path, read, build)
        if index is None:
            return None
        positions = index.find(value, most)
        if positions is None:
            return None
        if read.limit is not None:
            positions = positions[: read.limit]
        if (shape := index.shape(read.columns)) is None:
            return None  # a column the compiler knew and the index does not: let the engine say
        cols, schema = shape
        rows = index.take(positions)
        if cols is not None:
            rows = rows.select(cols).rename_columns(schema.names)
        self.served += 1
        return rows, schema

    def _want(self, key, stamp, path, read, build) -> None:
        if self._building or self._refused.get(key) == stamp or time.monotonic() < self._rest_until:
            return  # one build at a time (each holds a whole table while it is read), and a rest after each
        if len(self._demand) > 1024 or len(self._refused) > 1024:  # bounded: tables come and go
            self._demand.clear()
            self._refused.clear()
        self._demand[key] = count = self._demand.get(key, 0) + 1
        if count < DEMAND:
            return
        self._demand.pop(key)
        self._building.add(key)
        try:
            threading.Thread(target=self._build, args=(key, path, read, build), name="archive-key-index", daemon=True).start()
        except RuntimeError:  # no thread to be had now: wanted again later
            self._building.discard(key)

    def _build(self, key, path: Path, read: PointRead, cursor: Callable) -> None:
        stamp, index, began = file_stamp(path), None, time.monotonic()
        try:
            if any(s is not None and s[2] > (time.time() - QUIET) * 1e9 for s in stamp):
                return  # written just now: a write in the same clock tick would not change the stamp
            cur = cursor()
            try:
                table = _read_table(cur, read, self.budget)
            finally:
                cur.close()
            if table is None:
                with self._lock:
                    self._refused[key] = stamp
                return
            index = KeyIndex(table, read.key, stamp)
        except Exception:  # noqa: BLE001 - an index is an optimisation: the engine answers as before
            # Not refused for good: the engine may have been busy or replaced; wanted again, it is tried again (after a rest).
            log.debug("no key index for %s", key, exc_info=True)
            return
        finally:
            with self._lock:
                self._building.discard(key)
                self.build_seconds += (took := time.monotonic() - began)
                self._rest_until = time.monotonic() + REST * took
                if index is not None and file_stamp(path) == stamp:
                    self._indexes[key] = index
                    while sum(i.nbytes for i in self._indexes.values()) > self.budget:
                        self._indexes.popitem(last=False)
                    if self.idle:
                        WATCHDOG.schedule(self.idle, functools.partial(self._expire, key, index))

    def _expire(self, key: tuple, index: KeyIndex) -> None:
        """An index's idle watch (on the watchdog's thread): dropped once unused for ``idle`` seconds."""
        with self._lock:
            if self._indexes.get(key) is not index:
                return
            if (left := index.used + self.idle - time.monotonic()) <= 0:
                del self._indexes[key]
                return
        WATCHDOG.schedule(left, functools.partial(self._expire, key, index))


def _read_table(cur, read: PointRead, budget: int) -> pa.Table | None:
    """The whole table as Arrow; None when it is not a base table with an integer or text key column (text
    compared byte by byte: no collation), or does not fit ``budget`` (estimated before reading)."""
    where = [read.catalog, read.schema, read.table]
    found = cur.execute(
        "SELECT estimated_size, sql, current_setting('default_collation') FROM duckdb_tables() "
        "WHERE database_name = ? AND schema_name = ? AND table_name = ?", where
    ).fetchall()
    columns = cur.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? AND table_name = ?", where
    ).fetchall()
    types = {n.lower(): t for n, t in columns}
    key = types.get(read.key.lower())
    if len(found) != 1 or not (key in _INTEGERS or key == "VARCHAR" and "COLLATE" not in found[0][1].upper() and not found[0][2]):
        return None
    if (found[0][0] or 0) * sum(_WIDTH.get(t, 24) for t in types.values()) > budget:
        return None
    q = lambda s: '"' + s.replace('"', '""') + '"'  # noqa: E731
    # Streamed: DuckDB holds a batch at a time (its memory limit would refuse a whole table it collected).
    reader = cur.sql(f"SELECT * FROM {q(read.catalog)}.{q(read.schema)}.{q(read.table)}").to_arrow_reader(65_536)
    batches, size = [], 0
    for batch in reader:
        batches.append(batch)
        if (size := size + batch.nbytes + 16 * batch.num_rows) > budget:  # with its sorted keys and positions
            return None
    return pa.Table.from_batches(batches, schema=reader.schema)
