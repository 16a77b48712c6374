"""A fanned-out ``SELECT ... INTO mydb.t`` (or a job's target table): the merged rows written into MyDB.

The coordinator's merged stream is written by the statement's own ``CREATE TABLE`` on the principal's
engine, the one the in-process INTO runs on, as one DuckDB statement: a failed or canceled job leaves no
table, as every INTO job. Each column is cast to the type the statement gives it in-process.
"""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from ..sql import quote_ident
from . import fanout
from .engines import engine_error
from .storage import writing

_ROWS = "__fanout_rows"  # the merged stream, as the table a CREATE TABLE ... AS reads


def select_of(shape: str) -> tuple[str, str]:
    """A ``CREATE TABLE t AS SELECT ...`` shape as its SELECT, and the CREATE reading ``_ROWS`` instead."""
    tree = sqlglot.parse_one(shape, read="duckdb")
    if not isinstance(tree, exp.Create) or not isinstance(tree.expression, exp.Select):
        raise fanout.refuse("a statement other than SELECT or SELECT ... INTO")
    select = tree.expression.sql("duckdb", identify=True)
    tree.set("expression", exp.select("*").from_(exp.to_identifier(_ROWS, quoted=True)))
    return select, tree.sql("duckdb", identify=True)


def written(engine, create: str, typed: str, params: dict | None, reader: pa.RecordBatchReader, cancel: threading.Event) -> int:
    """Write the merged stream with ``create`` (the statement's own CREATE TABLE) on ``engine``, each column
    cast to the type the statement gives it in-process (``typed``: the statement over no rows): one DuckDB
    statement, so a failed or canceled job leaves no table."""
    failure, count = [], [0]

    def rows():
        try:
            for b in reader:
                count[0] += b.num_rows
                yield b
        except BaseException as exc:
            failure.append(exc)
            raise

    cursor = engine.cursor(timeout=None, cancel=cancel)
    try:
        with writing(cursor):  # stopped past the disk's room or the user's MyDB quota (a 507)
            try:
                rel = cursor.sql(typed, params=params)
                cast = ", ".join(f"CAST({quote_ident(c)} AS {t}) AS {quote_ident(c)}" for c, t in zip(rel.columns, rel.types))
                cursor.register(_ROWS, pa.RecordBatchReader.from_batches(reader.schema, rows()))
                head, _, tail = create.rpartition("SELECT * FROM")  # the last one is select_of's own
                cursor.execute(f"{head}SELECT {cast} FROM{tail}")
            except duckdb.Error as exc:
                if failure:
                    raise failure[0] from None
                raise engine_error(exc) from None
    finally:
        reader.close()
        try:
            cursor.unregister(_ROWS)
        finally:
            cursor.close()
    return count[0]
