"""The quick-query engine's own pieces: the time-limit watchdog, small-result batches, metadata."""

from __future__ import annotations

import threading
import time

import duckdb
import pyarrow as pa
import pytest

from jupyter_archive.core.execution.pool import Watchdog
from jupyter_archive.core.execution.run import _small_batch, execute
from jupyter_archive.core.formats.base import annotate, field_meta, per_object
from jupyter_archive.core.sql import Statement


def _read(sql: str) -> Statement:
    return Statement("read", sql, {}, sql, None, [])


def test_watchdog_fires_an_earlier_deadline_scheduled_after_later_ones():
    dog = Watchdog()
    fired = threading.Event()
    dog.schedule(3600, lambda: None)  # the thread now waits an hour for this one
    t = time.monotonic()
    dog.schedule(0.05, fired.set)
    assert fired.wait(5), "a new earliest deadline must wake the watchdog"
    assert time.monotonic() - t < 2


def test_watchdog_compacts_canceled_entries_and_still_fires():
    dog = Watchdog()
    handles = [dog.schedule(3600, lambda: None) for _ in range(3000)]
    for h in handles:
        dog.cancel(h)
    assert len(dog._heap) < 3000, "canceled entries are dropped in bulk"
    fired = threading.Event()
    dog.schedule(0.01, fired.set)
    assert fired.wait(5)
    never = threading.Event()
    dog.cancel(dog.schedule(0.01, never.set))
    assert not never.wait(0.3), "a canceled deadline never fires"


def test_time_limit_interrupts_after_many_quick_queries():
    con = duckdb.connect()
    for _ in range(1500):  # each schedules and cancels a 60 s deadline
        execute(con.cursor(), [_read("SELECT 1")], row_limit=10, time_limit=60).close()
    slow = _read("SELECT count(*) FROM range(10000000000000) a")
    t = time.monotonic()
    with pytest.raises(Exception) as err:
        execute(con.cursor(), [slow], row_limit=10, time_limit=0.3).close()
    assert "time limit" in str(err.value)
    assert time.monotonic() - t < 10


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 AS a, 2 AS a",
        "SELECT NULL::INT AS x, 'é' AS y, DATE '2020-01-02' AS d, TIMESTAMP '2020-01-01 10:00:00.123456' AS t, true AS b",
        "SELECT * FROM range(0) t(x)",
        "SELECT 1.5::FLOAT AS f, NULL::VARCHAR AS v UNION ALL SELECT NULL, 'x'",
    ],
)
def test_small_batch_equals_the_engines_own_arrow(sql):
    con = duckdb.connect()
    con.execute(sql)
    small, schema = _small_batch(con)
    assert small.schema.equals(schema)
    expected = con.execute(sql).to_arrow_table()
    assert small.schema.names == expected.schema.names
    assert pa.Table.from_batches([small]).equals(expected.cast(small.schema))
    # The same column shape gives the same schema object (what writers derive from it is remembered).
    con.execute(sql)
    assert _small_batch(con)[1] is schema


def test_annotate_keeps_metadata_per_schema_and_columns():
    schema = pa.schema([pa.field("ra", pa.float64()), pa.field("dec", pa.float64())])
    first = annotate(schema, {"ra": {"unit": "deg", "ucd": "pos.eq.ra"}})
    again = annotate(schema, {"RA": {"unit": "rad"}})
    assert field_meta(first.field("ra")) == {"unit": "deg", "ucd": "pos.eq.ra"}
    assert field_meta(again.field("ra")) == {"unit": "rad"}
    assert field_meta(first.field("dec")) == {}
    # A schema already carrying metadata merges with it (not answered from the cache).
    marked = pa.schema([pa.field("ra", pa.float64(), metadata={"xtype": "x"}), pa.field("dec", pa.float64())])
    assert field_meta(annotate(marked, {"ra": {"unit": "deg"}}).field("ra")) == {"unit": "deg", "xtype": "x"}


def test_values_remembered_per_object_tell_metadata_apart():
    calls = []

    @per_object
    def units(schema):
        calls.append(schema)
        return [field_meta(f).get("unit") for f in schema]

    deg = pa.schema([pa.field("ra", pa.float64(), metadata={"unit": "deg"})])
    rad = pa.schema([pa.field("ra", pa.float64(), metadata={"unit": "rad"})])
    assert deg == rad  # Arrow's equality ignores metadata: an equality-keyed cache would mix them up
    assert units(deg) == ["deg"] and units(rad) == ["rad"] and units(deg) == ["deg"]
    assert len(calls) == 2


@pytest.mark.parametrize("limit, truncated", [(2_500_000, True), (3_000_000, False)])
def test_a_row_limited_result_past_what_memory_holds_spools_and_keeps_every_row(limit, truncated):
    # 3,000,000 rows of two 8-byte columns are ~48 MB of Arrow, more than spool.HOLD_BYTES.
    result = execute(duckdb.connect().cursor(), [_read("SELECT range AS i, range * 0.5 AS x FROM range(3000000)")],
                     row_limit=limit)
    assert result.truncated is truncated
    assert not result.small and not result.complete, "the rows past what memory holds wait on disk"
    total, last = 0, -1
    for b in result.batches():
        i = b.column("i").to_numpy()
        assert i[0] == last + 1 and (i[1:] - i[:-1] == 1).all(), "every row, in order"
        total, last = total + b.num_rows, int(i[-1])
    assert total == min(limit, 3_000_000) and result.closed


def test_a_small_row_limited_result_is_cut_at_the_limit():
    result = execute(duckdb.connect().cursor(), [_read("SELECT range AS i FROM range(20)")], row_limit=10)
    assert result.truncated and result.small
    assert result.to_table().column("i").to_pylist() == list(range(10))
