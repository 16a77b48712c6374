"""Reading a table page by page or whole (``Queries.read_table``): an export-sized page (a limit of
``STREAMED_LIMIT`` rows or more, streamed rather than gathered in the engine) holds the same rows, in
the same order, as the same rows asked for in small pages."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.archive import Archive
from jupyter_archive.core.config import ArchiveConfig
from jupyter_archive.core.execution.compiling import STREAMED_LIMIT
from tests.support import DEMO_ROWS, copy_demo

ROWS = STREAMED_LIMIT + 50_000


@pytest.fixture(scope="module")
def core(tmp_path_factory, demo_dir):
    data = tmp_path_factory.mktemp("reads") / "data"
    copy_demo(demo_dir, data)
    a = Archive(ArchiveConfig(data_dir=data, demo_rows=DEMO_ROWS))
    p = a.users.principal("alice")
    r = a.queries.query(p, f"CREATE TABLE big AS SELECT i, i * 7 % 1000 AS j, repeat('x', (i % 40)::INT) AS s "
                           f"FROM range({ROWS}) t(i) ORDER BY (i * 7919) % {ROWS}", "sql", context="MyDB")
    r.close()
    yield a, p
    a.close()


def _read(a, p, **kw) -> pa.Table:
    result = a.queries.read_table(p, "MyDB", "big", **kw)
    try:
        return result.to_table()
    finally:
        result.close()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.integers(0, ROWS), limit=st.integers(STREAMED_LIMIT, ROWS + 10))
def test_an_export_sized_page_holds_the_rows_of_the_small_pages(core, offset, limit):
    a, p = core
    got = _read(a, p, offset=offset, limit=limit)
    want = [_read(a, p, offset=o, limit=min(20_000, offset + limit - o)) for o in range(offset, min(ROWS, offset + limit), 20_000)]
    want = pa.concat_tables(want) if want else got.slice(0, 0)
    assert got.num_rows == max(0, min(limit, ROWS - offset))
    assert got.equals(want)
