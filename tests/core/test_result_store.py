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


def _random_table(rows: int, seed: int) -> pa.Table:
    import numpy as np

    return pa.table({"x": np.random.default_rng(seed).random(rows)})  # ~8 bytes a row whatever the compression


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["write", "remove"]), st.sampled_from(["ann", "bob"]), st.integers(0, 60_000)),
                min_size=1, max_size=12),
       st.integers(200_000, 600_000), st.integers(0, 3))
def test_each_owners_results_stay_within_the_quota_and_are_counted_exactly(tmp_path_factory, steps, quota, known):
    """Whatever the writes and removals of two owners: every result that would take its owner's results past the quota
    fails with a 507 and leaves no file; the others are stored; what each owner is counted as holding is what their
    files take; results stored before the store was made (``known``, by a job id list) are counted too."""
    root = tmp_path_factory.mktemp("quota")
    owners: dict[int, str] = {}
    before = ResultStore(root)
    for job in range(known):  # stored by an earlier server
        owners[100 + job] = "ann"
        before.write(100 + job, pa.schema([("x", pa.float64())]), iter(_random_table(5_000, job).to_batches()))
    store = ResultStore(root, quota=quota, owned=lambda who: [j for j, o in owners.items() if o == who])
    for i, (what, owner, rows) in enumerate(steps):
        if what == "remove":
            mine = [j for j, o in owners.items() if o == owner and store.path(j).exists()]
            if mine:
                store.remove(mine[0], owner)
            continue
        owners[i] = owner
        table = _random_table(rows, i)
        held = store.held(owner)
        try:
            store.write(i, table.schema, iter(table.to_batches(max_chunksize=8_000)), owner=owner)
        except ArchiveError as err:
            assert err.status == 507 and err.code == "quota_exceeded" and not store.path(i).exists()
            # Refused only when it would not have fitted (written in full, it takes at least its rows' bytes).
            assert held + rows * 8 > quota * 0.9, (held, rows, quota)
        for who in ("ann", "bob"):
            on_disk = sum(store.path(j).stat().st_size for j, o in owners.items() if o == who and store.path(j).exists())
            assert store.held(who) == on_disk and on_disk <= quota + 400_000, (who, store.held(who), on_disk)
    assert not list(root.glob("*.tmp"))
