"""The reservoir that samples rows streamed from a SQL server or a job's stored result (``samples.reservoir``):
uniform, the same rows however the stream is cut into batches, all rows when there are few, and the sizes
and seeds a request may ask checked."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.execution.pool import QueryResult
from jupyter_archive.core.execution.samples import MAX_SAMPLE, MAX_SEED, checked, reservoir

SCHEMA = pa.schema([pa.field("i", pa.int64(), metadata={b"unit": b"deg"}), pa.field("s", pa.string())])


def stream(total: int, cuts: list[int]) -> QueryResult:
    """Rows 0 .. total - 1 (and their text) cut into batches at ``cuts``."""
    edges = sorted({0, total, *(c for c in cuts if 0 < c < total)})
    batches = [pa.record_batch([pa.array(range(a, b), pa.int64()), pa.array([str(i) for i in range(a, b)])], schema=SCHEMA)
               for a, b in zip(edges, edges[1:])]  # fmt: skip
    return QueryResult(SCHEMA, batches, None)


def drawn(total: int, size: int, seed: int, cuts: list[int]) -> list[int]:
    out = reservoir(stream(total, cuts), size, seed)
    table = out.to_table()
    assert out.sample.rows == table.num_rows == min(size, total) and out.sample.total == total and out.sample.seed == seed
    assert table.schema == SCHEMA and table.column("s").to_pylist() == [str(i) for i in table.column("i").to_pylist()]
    return table.column("i").to_pylist()


@settings(max_examples=60, deadline=None)
@given(total=st.integers(0, 3000), size=st.integers(1, 400), seed=st.integers(0, MAX_SEED), cuts=st.lists(st.integers(0, 3000), max_size=12))
def test_the_sample_does_not_depend_on_how_the_rows_came_in_batches(total, size, seed, cuts):
    one = drawn(total, size, seed, [])
    assert drawn(total, size, seed, cuts) == one
    assert len(set(one)) == len(one) == min(size, total) and one == sorted(one)  # distinct rows, in the order they came
    if total <= size:
        assert one == list(range(total))


def test_every_row_is_as_likely_to_be_drawn():
    # 2,000 seeds, 8 of 40 rows each: every row drawn 400 times, give or take (a binomial's sd is ~18).
    counts = np.zeros(40, dtype=int)
    for seed in range(2000):
        counts[drawn(40, 8, seed, [7, 13, 30])] += 1
    assert counts.sum() == 16_000 and counts.min() > 330 and counts.max() < 470, counts


def test_a_long_stream_keeps_only_about_twice_the_sample():
    # 200 batches of 1,000 rows sampled to 50: the rows kept are compacted as they are replaced.
    one = drawn(200_000, 50, 9, list(range(1000, 200_000, 1000)))
    assert len(one) == 50 and max(one) > 150_000 and min(one) < 50_000


@pytest.mark.parametrize(("size", "seed", "word"), [
    ("0", None, "sample"), (str(MAX_SAMPLE + 1), None, "sample"), ("", None, "sample"), ("ten", None, "sample"),
    ("5", "-1", "seed"), ("5", str(MAX_SEED + 1), "seed"), ("5", "1.5", "seed"),
])  # fmt: skip
def test_sizes_and_seeds_out_of_bounds_are_refused(size, seed, word):
    with pytest.raises(ArchiveError) as err:
        checked(size, seed)
    assert err.value.status == 400 and word in err.value.message


def test_sizes_and_seeds_within_bounds_are_taken():
    assert checked("1", None) == (1, 0) and checked(str(MAX_SAMPLE), str(MAX_SEED)) == (MAX_SAMPLE, MAX_SEED)
