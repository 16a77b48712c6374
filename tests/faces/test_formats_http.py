"""Every result format through HTTP, parsed back by the library that reads it, equal to DuckDB's answer."""

from __future__ import annotations

import gzip
import io
import json
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.io.votable import parse as parse_votable
from astropy.table import Table

from tests.support import body_json

QUERY = "SELECT objid, ra, dec, r, err_r, type, flags FROM PhotoObj WHERE r < 19 ORDER BY objid"
SPEC_QUERY = "SELECT specobjid, bestobjid, z, class FROM SpecObj ORDER BY specobjid LIMIT 50"


async def native(fetch, query, fmt=None, accept=None, **extra):
    body = {"query": query, "context": "DEMO", **extra}
    if fmt:
        body["format"] = fmt
    headers = {"Accept": accept} if accept else {}
    return await fetch("archive", "api", "query", method="POST", body=json.dumps(body), headers=headers)


@pytest.fixture
def want(demo_db):
    return demo_db.sql(QUERY).df()


@pytest.fixture
def want_spec(demo_db):
    return demo_db.sql(SPEC_QUERY).df()


def assert_frame_like(got: pd.DataFrame, want: pd.DataFrame):
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    for col in want.columns:
        g, w = got[col].to_numpy(), want[col].to_numpy()
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g.astype(float), w.astype(float), rtol=1e-6)
        else:
            assert [x for x in g.tolist()] == [x for x in w.tolist()], col


async def test_csv_and_tsv(fetch, want, want_spec):
    resp = await native(fetch, QUERY, accept="text/csv")
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert_frame_like(pd.read_csv(io.BytesIO(resp.body)), want)
    resp = await native(fetch, SPEC_QUERY, fmt="tsv")
    assert_frame_like(pd.read_csv(io.BytesIO(resp.body), sep="\t"), want_spec)


async def test_quasar_csv_media_type_parameters(fetch, demo_db):
    resp = await fetch(
        "archive", "quasar", "query", "fs", "demo",
        params={"q": "SELECT bestobjid, class FROM `SpecObj` ORDER BY bestobjid LIMIT 3"},
        headers={"Accept": 'text/csv; columnDelimiter="|"&rowDelimiter=";"&quoteChar="\'"&escapeChar="\\"'},
    )
    assert resp.code == 200, resp.body
    text = resp.body.decode()
    assert text.startswith("bestobjid|class;")
    want = demo_db.sql("SELECT bestobjid, class FROM SpecObj ORDER BY bestobjid LIMIT 3").fetchall()
    assert text.split(";")[1].split("|")[0] == str(want[0][0])


async def test_json_ldjson(fetch, want):
    resp = await fetch("archive", "quasar", "query", "fs", "demo", params={"q": QUERY.replace("PhotoObj", "`PhotoObj`")},
                       headers={"Accept": "application/json"})
    assert_frame_like(pd.DataFrame(json.loads(resp.body)), want)
    resp = await fetch("archive", "quasar", "query", "fs", "demo", params={"q": QUERY.replace("PhotoObj", "`PhotoObj`")})
    assert resp.headers["Content-Type"].startswith("application/ldjson")
    assert_frame_like(pd.read_json(io.BytesIO(resp.body), lines=True), want)


@pytest.mark.parametrize("serialization", ["tabledata", "binary", "binary2"])
async def test_votable(fetch, want, serialization):
    resp = await native(fetch, QUERY, accept=f"application/x-votable+xml;serialization={serialization}")
    assert resp.code == 200, resp.body
    vot = parse_votable(io.BytesIO(resp.body))
    table = vot.get_first_table()
    got = table.to_table().to_pandas()
    assert_frame_like(got, want)
    ra = table.get_field_by_id_or_name("ra")
    assert str(ra.unit) == "deg" and ra.ucd == "pos.eq.ra;meta.main"


async def test_fits(fetch, want_spec):
    resp = await native(fetch, SPEC_QUERY, accept="application/fits")
    with fits.open(io.BytesIO(resp.body)) as hdul:
        t = Table(hdul[1].data)
    got = t.to_pandas()
    got["class"] = got["class"].str.strip()
    assert_frame_like(got, want_spec)


async def test_parquet_and_arrow(fetch, demo_db):
    want = demo_db.sql(QUERY).to_arrow_table()
    resp = await native(fetch, QUERY, accept="application/vnd.apache.parquet")
    got = pq.read_table(io.BytesIO(resp.body))
    assert got.select(want.column_names).cast(want.schema).equals(want)
    resp = await native(fetch, QUERY, fmt="arrow")
    got = pa.ipc.open_stream(resp.body).read_all()
    assert got.cast(want.schema).equals(want)


async def test_xml_and_casjobs_accept_types(fetch, want_spec):
    resp = await fetch("archive", "casjobs", "contexts", "DEMO", "query", method="POST",
                       body=json.dumps({"Query": SPEC_QUERY.replace("LIMIT 50", "").replace("SELECT", "SELECT TOP 50")}),
                       headers={"Accept": "application/xml"})
    assert resp.code == 200, resp.body
    root = ET.fromstring(resp.body)
    rows = list(root)
    assert len(rows) == 50
    assert int(rows[0].find("specobjid").text) == int(want_spec["specobjid"][0])


async def test_empty_result_still_has_its_header(fetch):
    empty = "SELECT objid, ra FROM PhotoObj WHERE r > 99"
    csv = await native(fetch, empty, fmt="csv")
    assert csv.body.decode().strip() == "objid,ra"
    vot = await native(fetch, empty, fmt="votable")
    table = parse_votable(io.BytesIO(vot.body)).get_first_table()
    assert [f.name for f in table.fields] == ["objid", "ra"] and len(table.array) == 0
    js = body_json(await native(fetch, empty))
    assert [c["name"] for c in js["columns"]] == ["objid", "ra"] and js["data"] == []


async def test_gzip_is_honoured(fetch, want):
    resp = await fetch("archive", "api", "query", method="POST", body=json.dumps({"query": QUERY, "context": "DEMO", "format": "csv"}),
                       headers={"Accept-Encoding": "gzip"}, decompress_response=False)
    assert resp.headers.get("Content-Encoding") == "gzip"
    assert_frame_like(pd.read_csv(io.BytesIO(gzip.decompress(resp.body))), want)


@pytest.mark.parametrize("archive_config", [{"quick_row_limit": 5}])
@pytest.mark.parametrize("fmt", ["json", "votable", "csv", "json-array-casjobs", "parquet", "fits"])
async def test_row_limit_sets_a_visible_truncation_flag(fetch, fmt, archive_config):
    resp = await native(fetch, "SELECT objid FROM PhotoObj", fmt=fmt)
    assert resp.code == 200, resp.body
    assert resp.headers.get("X-Archive-Truncated") == "true"
    if fmt == "votable":
        vot = parse_votable(io.BytesIO(resp.body))
        assert len(vot.get_first_table().array) == 5
        assert b'value="OVERFLOW"' in resp.body
    elif fmt == "csv":
        assert len(resp.body.decode().strip().splitlines()) == 6
    elif fmt == "json-array-casjobs":
        entry = body_json(resp)["Result"][0]
        assert len(entry["Data"]) == 5 and entry["Truncated"] is True
    elif fmt == "json":
        assert len(body_json(resp)) == 5
    elif fmt == "parquet":
        t = pq.read_table(io.BytesIO(resp.body))
        assert t.num_rows == 5 and t.schema.metadata[b"archive.truncated"] == b"true"
    elif fmt == "fits":
        with fits.open(io.BytesIO(resp.body)) as hdul:
            assert len(hdul[1].data) == 5 and hdul[1].header["TRUNCATE"] is True
    small = await native(fetch, "SELECT objid FROM PhotoObj LIMIT 3", fmt=fmt)
    assert small.headers.get("X-Archive-Truncated") is None


@pytest.mark.parametrize("face", ["native", "casjobs"])
async def test_parquet_is_voparquet(fetch, face):
    """Parquet from the native API and CasJobs carries the VOTable's FIELDs (VOParquet): astropy's
    ``parquet.votable`` reader gives the units, UCDs and descriptions the VOTable answer has."""
    query = "SELECT TOP 30 objid, ra, dec, r, err_r, type FROM PhotoObj ORDER BY objid"

    async def ask(accept):
        if face == "native":
            return await native(fetch, query, accept=accept)
        return await fetch("archive", "casjobs", "contexts", "DEMO", "query", method="POST",
                           body=json.dumps({"Query": query}), headers={"Accept": accept})

    resp = await ask("application/vnd.apache.parquet")
    assert resp.code == 200, resp.body
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's Parquet reader notes that no string lengths are given
        got = Table.read(io.BytesIO(resp.body), format="parquet.votable")
    want = parse_votable(io.BytesIO((await ask("application/x-votable+xml")).body)).get_first_table().to_table()
    assert [(c.name, c.unit, c.meta.get("ucd"), c.description) for c in got.columns.values()] == \
        [(c.name, c.unit, c.meta.get("ucd"), c.description) for c in want.columns.values()]
    assert got["ra"].unit == "deg" and got["ra"].meta["ucd"] == "pos.eq.ra;meta.main" and got["r"].description
    assert [got[n].tolist() for n in got.colnames] == [want[n].tolist() for n in want.colnames]
