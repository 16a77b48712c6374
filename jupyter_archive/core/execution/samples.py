"""Uniform random samples of a table's rows or of a job's result (``archive.samples``): what the plots
of the sidebar and the TableBrowser draw from a table too big to draw whole.

A sample of N rows is drawn in one pass that keeps at most N of them (reservoir sampling), so memory
stays bounded however big the table, and the same seed over the same rows gives the same rows
(``DEFAULT_SEED`` when none is asked: one request always answers the same). A table of N rows or
fewer gives them all. Where the sample is drawn:

* a table DuckDB reads (the demo, MyDB, files and DuckDB mounts, HATS catalogs over their partition
  files): by the engine, the table's read with ``USING SAMPLE reservoir(N ROWS) REPEATABLE (seed)``
  (DuckDB's seeded reservoir gives the same rows however many threads read: tests/faces/native/
  test_samples.py compares it with DuckDB's own); the total is ``COUNT(*)``, a HATS catalog's from its metadata;
* a table on a SQL server (PostgreSQL, SQLite mounts) and a job's stored result: their rows stream
  through ``reservoir`` here (Algorithm R over Arrow batches), counted as they pass. No server
  samples N rows repeatably (PostgreSQL's TABLESAMPLE takes a share of pages or rows, not N), so
  the whole table crosses the network once; it is never held.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from .. import params
from .. import sql as sqlmod
from ..errors import bad_request
from .compiling import table_read
from .planner import SERVER
from .pool import QueryResult

if TYPE_CHECKING:
    from ..catalog.model import ContextRef, Principal
    from ..catalog.namespace import Namespace
    from .run import Queries

MAX_SAMPLE = 100_000  # the most rows one sample holds
DEFAULT_SEED = 0  # fixed, so that the same request gives the same rows (and caches stay honest)
MAX_SEED = 2**63 - 1  # DuckDB's REPEATABLE takes at most this


@dataclass(frozen=True)
class Sample:
    """What a sampled read holds: ``rows`` drawn at random from ``total``, with ``seed``."""

    rows: int
    total: int
    seed: int

    def said(self) -> str:
        """How an answer says it (the ``X-Archive-Sample`` header, Arrow's ``archive.sample``)."""
        return f"{self.rows} of {self.total}; seed={self.seed}"

    def to_json(self) -> dict:
        return {"rows": self.rows, "total": self.total, "seed": self.seed}


def checked(size, seed) -> tuple[int, int]:
    """A sample's size (1 to ``MAX_SAMPLE`` rows) and seed (0 to ``MAX_SEED``, ``DEFAULT_SEED`` when
    absent), as text or integers; a 400 naming the parameter otherwise."""
    size = params.integer("sample", size, minimum=1, maximum=MAX_SAMPLE)
    if size is None:
        raise bad_request(f"invalid sample: empty (the number of rows to draw, 1 to {MAX_SAMPLE})", parameter="sample")
    return size, params.integer("seed", seed, default=DEFAULT_SEED, minimum=0, maximum=MAX_SEED)


class Samples:
    """Draws samples of tables (``table``) and of jobs' results (``job_result``) for principals."""

    def __init__(self, namespace: Namespace, queries: Queries, jobs):
        self._namespace = namespace
        self._queries = queries
        self._jobs = jobs

    def table(self, principal: Principal, context: str | ContextRef, table: str, size, seed=None) -> QueryResult:
        """A uniform random sample of ``size`` rows of a whole table (all of them when it has no more), in
        no particular order; ``result.sample`` says how many of how many."""
        size, seed = checked(size, seed)
        compiled, meta = table_read(self._namespace, principal, context, table, offset=None, limit=None, order_by=None, descending=False)
        read = compiled.statements[0]
        where = self._queries.plan(principal, compiled.statements)
        if where.where == SERVER:
            return reservoir(self._queries.run(principal, compiled, column_meta=meta, plan=where), size, seed)
        with self._queries.run(principal, _one(read, read.sql.replace("SELECT *", "SELECT count(*)", 1))) as counted:
            total = int(counted.to_table().column(0)[0].as_py())
        drawn = _one(read, f"{read.sql} USING SAMPLE reservoir({size} ROWS) REPEATABLE ({seed})")
        result = self._queries.run(principal, drawn, column_meta=meta)
        result.sample = Sample(min(size, total), total, seed)
        return result

    def job_result(self, principal: Principal, job_id, size, seed=None) -> QueryResult:
        """A uniform random sample of ``size`` rows of what a completed job produced: of its MyDB table
        as ``table`` draws it, or of its stored result through ``reservoir``."""
        size, seed = checked(size, seed)
        job = self._jobs.get(principal, job_id)
        table = job.results.get("table") if job.state == "completed" and "store" not in job.results else None
        if table:
            return self.table(self._jobs.principal_of(job), table["context"], table["name"], size, seed)
        return reservoir(self._jobs.result(principal, job_id), size, seed)  # its errors: not completed, no rows


def _one(read: sqlmod.Statement, sql: str) -> sqlmod.Compiled:
    """A table's read as another statement on the same table."""
    return sqlmod.Compiled("sql", [dataclasses.replace(read, sql=sql, source=sql)], [], sql, {})


def reservoir(result: QueryResult, size: int, seed: int) -> QueryResult:
    """``result``'s rows cut to a uniform random sample of ``size`` (all of them when fewer), in the
    order they came, with ``result.sample`` set: the rows are read to the end now, holding at most
    about twice ``size`` of them and one batch.

    Algorithm R: the row at position t (from 0) past the first ``size`` replaces slot j, drawn
    uniformly from 0..t, when j < ``size``. The draws are numpy's seeded generator's doubles, one a
    row, so the sample does not depend on how the rows were cut into batches.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    kept: list[pa.RecordBatch] = []  # rows that entered the reservoir, some replaced since
    held = 0  # rows in ``kept``
    slot_row = np.zeros(size, dtype=np.int64)  # slot -> its row in ``kept``
    slot_at = np.zeros(size, dtype=np.int64)  # slot -> its row's position in the stream
    seen = 0
    with result:
        for batch in result.batches():
            m = batch.num_rows
            free = min(m, max(0, size - seen))  # rows filling empty slots
            rows, slots = np.arange(free), np.arange(seen, seen + free)
            if free < m:
                at = np.arange(seen + free, seen + m)
                j = (rng.random(m - free) * (at + 1)).astype(np.int64)
                hit = j < size
                rows, slots = np.concatenate([rows, np.arange(free, m)[hit]]), np.concatenate([slots, j[hit]])
            if len(rows):
                last = len(slots) - 1 - np.unique(slots[::-1], return_index=True)[1]  # a slot hit twice keeps the later row
                rows, slots = rows[last], slots[last]
                kept.append(batch.take(pa.array(rows)))
                slot_row[slots] = held + np.arange(len(rows))
                slot_at[slots] = seen + rows
                held += len(rows)
            seen += m
            if held > 2 * size:  # most of what was kept is replaced by now: keep only the reservoir
                n = min(size, seen)
                kept = pa.Table.from_batches(kept, schema=result.schema).take(pa.array(slot_row[:n])).to_batches()
                slot_row[:n], held = np.arange(n), n
    n = min(size, seen)
    order = np.argsort(slot_at[:n], kind="stable")
    rows = pa.Table.from_batches(kept, schema=result.schema).take(pa.array(slot_row[:n][order]))
    out = QueryResult(result.schema, rows.combine_chunks().to_batches(), None)
    out.sample = Sample(n, seen, seed)
    return out
