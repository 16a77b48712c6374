"""Stored job results: written in small row groups, read back in bounded batches, paged from any row."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.jobs.results import BATCH, ROW_GROUP, ResultStore

ROWS = 3 * ROW_GROUP + 1234  # several row groups and a short last one
TABLE = pa.table({"objid": pa.array(range(ROWS), pa.int64()), "name": pa.array([f"o{i}" for i in range(ROWS)])})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = ResultStore(tmp_path_factory.mktemp("results"))
    # job 1 as a job writes it (the engine's batches: 131,072 rows at most, any length)
    assert s.write(1, TABLE.schema, iter(TABLE.to_batches(max_chunksize=20_000))) == ROWS
    # job 2 as results stored before row groups were small: one row group longer than a batch
    pq.write_table(TABLE, s.path(2), row_group_size=ROWS)
    return s


def test_a_stored_result_is_written_in_small_row_groups(store):
    meta = pq.ParquetFile(store.path(1)).metadata
    assert meta.num_rows == ROWS
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= ROW_GROUP


@pytest.mark.parametrize("job", [1, 2])
def test_a_stored_result_is_read_in_bounded_batches(store, job):
    result = store.read(job)
    batches = list(result.batches())
    assert max(b.num_rows for b in batches) <= BATCH
    assert pa.Table.from_batches(batches).equals(TABLE)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(job=st.sampled_from([1, 2]), offset=st.integers(0, ROWS + 10), limit=st.none() | st.integers(0, ROWS + 10))
def test_a_page_starts_at_its_row_whatever_the_row_groups(store, job, offset, limit):
    got = store.read(job, offset=offset, limit=limit).to_table()
    want = TABLE.slice(offset, limit)
    assert got.column("objid").to_pylist() == want.column("objid").to_pylist()
    assert got.column("name").to_pylist()[:3] == want.column("name").to_pylist()[:3]


def test_a_missing_result_is_not_found(store):
    with pytest.raises(ArchiveError) as err:
        store.read(99)
    assert err.value.status == 404
