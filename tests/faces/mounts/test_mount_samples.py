"""Random samples (``sample=N``) of mounted tables through the real server: a Parquet file of a files mount
(drawn by DuckDB) and a PostgreSQL table (its rows streamed through the archive's reservoir): the size, the
total, the same rows for the same seed, and rows spread over the whole table."""

from __future__ import annotations

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support import body_json
from tests.support.pg import BIG_ROWS

FILE_ROWS = 50_000


@pytest.fixture
def archive_config(tmp_path, pg_server):  # noqa: F811
    files = tmp_path / "survey"
    files.mkdir()
    pq.write_table(pa.table({"id": pa.array(range(FILE_ROWS), pa.int64()), "flux": [i * 0.5 for i in range(FILE_ROWS)]}),
                   files / "flux.parquet", row_group_size=4096)  # fmt: skip
    return {"mounts": [{"path": "/survey", "type": "files", "location": str(files), "context": "SURVEY"},
                       {"path": "/pg", "type": "postgresql", "location": pg_server, "context": "PG"}]}  # fmt: skip


async def sample(fetch, context, table, **params):
    resp = await fetch("archive", "api", "contexts", context, "tables", table, "rows", params=params)
    assert resp.code == 200, resp.body
    body = body_json(resp)
    return [row[0] for row in body["data"]], resp.headers["X-Archive-Sample"]


def spread(ids: list[int], total: int) -> list[int]:
    """How many of ``ids`` (0 .. total - 1) fall in each tenth of the table."""
    tenths = [0] * 10
    for i in ids:
        tenths[i * 10 // total] += 1
    return tenths


async def test_a_parquet_file_of_a_files_mount(fetch):
    ids, said = await sample(fetch, "SURVEY", "flux", sample="5000")
    assert said == f"5000 of {FILE_ROWS}; seed=0" and len(set(ids)) == 5000 and all(0 <= i < FILE_ROWS for i in ids)
    assert all(400 <= n <= 600 for n in spread(ids, FILE_ROWS))
    assert (await sample(fetch, "SURVEY", "flux", sample="5000"))[0] == ids
    other, _ = await sample(fetch, "SURVEY", "flux", sample="5000", seed="1")
    assert len(set(other) & set(ids)) < 1000  # two samples of a tenth share about a tenth of their rows


async def test_a_postgresql_table_streams_through_the_reservoir(fetch, pg_server):
    ids, said = await sample(fetch, "PG", "big", sample="4000", seed="5")
    assert said == f"4000 of {BIG_ROWS}; seed=5" and len(set(ids)) == 4000
    with psycopg.connect(pg_server) as con:
        everything = sorted(r[0] for r in con.execute("SELECT id FROM big").fetchall())
    assert set(ids) <= set(everything)
    position = {v: i for i, v in enumerate(everything)}
    assert all(300 <= n <= 500 for n in spread([position[i] for i in ids], BIG_ROWS))
    assert (await sample(fetch, "PG", "big", sample="4000", seed="5"))[0] == ids
    small, said = await sample(fetch, "PG", "stars", sample="1000")
    with psycopg.connect(pg_server) as con:
        stars = con.execute("SELECT count(*) FROM stars").fetchone()[0]
    assert said == f"{stars} of {stars}; seed=0" and len(small) == stars
