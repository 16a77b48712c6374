"""VOParquet through the TAP face: sync and async Parquet results read by astropy's ``parquet.votable``
reader carry what TAP_SCHEMA and the VOTable answer say of the columns, and the same values."""

from __future__ import annotations

import io
import urllib.parse
import warnings

import pyarrow.parquet as pq
from astropy.table import Table

from tests.support.faces import in_thread

PARQUET = "application/vnd.apache.parquet"
QUERY = "SELECT TOP 40 * FROM demo.PhotoObj WHERE r < 21 ORDER BY objid"


def sync(fetch, fmt: str, query: str = QUERY):
    return fetch("archive", "tap", "sync", method="POST", body=urllib.parse.urlencode(
        {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": fmt}),
        headers={"Content-Type": "application/x-www-form-urlencoded"})


def read(body: bytes, fmt: str) -> Table:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's Parquet reader notes that no string lengths are given
        return Table.read(io.BytesIO(body), format=fmt)


def described(t: Table) -> list[tuple]:
    """(name, unit, UCD, description) of each column of an astropy table."""
    return [(c.name, c.unit and c.unit.to_string(), c.meta.get("ucd"), c.description) for c in t.columns.values()]


def assert_same_table(got: Table, want: Table):
    assert described(got) == described(want)
    assert len(got) == len(want) > 0
    for name in want.colnames:
        assert got[name].tolist() == want[name].tolist(), name


async def test_sync_parquet_is_the_votable_answer_with_tap_schema_metadata(fetch):
    resp = await sync(fetch, "parquet")
    assert resp.code == 200, resp.body
    assert resp.headers["Content-Type"] == PARQUET
    got = read(resp.body, "parquet.votable")
    want = read((await sync(fetch, "votable")).body, "votable")
    assert_same_table(got, want)
    # what TAP_SCHEMA says of demo.PhotoObj's columns (units, UCDs, descriptions), in table order
    schema = read((await sync(fetch, "votable", "SELECT column_name, unit, ucd, description FROM TAP_SCHEMA.columns "
                              "WHERE table_name = 'demo.PhotoObj' ORDER BY column_index")).body, "votable")
    declared = [(r["column_name"], r["unit"] or None, r["ucd"] or None, r["description"] or None) for r in schema]
    assert described(got) == declared
    assert ("ra", "deg", "pos.eq.ra;meta.main") == described(got)[1][:3]
    plain = pq.read_table(io.BytesIO(resp.body))  # no VOParquet reader needed
    assert plain.column_names == got.colnames and plain.column("objid").to_pylist() == got["objid"].tolist()


async def test_async_parquet_through_pyvo_and_the_capabilities_alias(tap_service, tap_session, fetch):
    url, session = tap_session

    def work():
        import pyvo

        outputs = [(o.mime, list(o.aliases)) for o in tap_service.get_tap_capability().outputformats]
        job = pyvo.dal.AsyncTAPJob.create(url, QUERY, RESPONSEFORMAT="vo-parquet", session=session)
        job.run().wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
        job.raise_if_error()
        result = session.get(job.result_uri)
        job.delete()
        return outputs, result

    outputs, result = await in_thread(work)
    assert (PARQUET, ["parquet", "vo-parquet"]) in outputs
    assert result.status_code == 200 and result.headers["Content-Type"] == PARQUET
    want = read((await sync(fetch, "votable")).body, "votable")
    assert_same_table(read(result.content, "parquet.votable"), want)
