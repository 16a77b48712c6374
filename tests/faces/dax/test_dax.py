"""The LSST DAX face through the real server: metaserv v0 listings and dbserv sync queries."""

from __future__ import annotations

import io
import json
import urllib.parse

import duckdb
import pandas as pd
import pytest
from astropy.io import fits
from astropy.io.votable import parse_single_table
from astropy.table import Table

from tests.support import DEMO_ROWS, body_json
from tests.support.html_table import html_cells

NO_AUTH = {"Authorization": ""}
QUERY = "SELECT objid, ra, dec FROM DEMO.PhotoObj ORDER BY objid LIMIT 5"


def meta(fetch, *parts, **kw):
    return fetch("archive", "dax", "meta", "v0", *parts, **kw)


def sync_get(fetch, params=None, **kw):
    return fetch("archive", "dax", "db", "v0", "tap", "sync", params=params or {}, **kw)


def sync_post(fetch, fields: dict, **kw):
    headers = {"Content-Type": "application/x-www-form-urlencoded", **kw.pop("headers", {})}
    return fetch("archive", "dax", "db", "v0", "tap", "sync", method="POST",
                 body=urllib.parse.urlencode(fields), headers=headers, **kw)


def assert_meta_error(resp, status, kind=None):
    assert resp.code == status, resp.body
    err = body_json(resp)
    assert set(err) >= {"exception", "message"}, err
    assert err["message"] and "Traceback" not in err["message"]
    if kind:
        assert err["exception"] == kind
    return err


def assert_dbserv_error(resp, status):
    assert resp.code == status, resp.body
    err = body_json(resp)
    assert set(err) >= {"error", "message"}, err
    assert isinstance(err["error"], str) and err["message"]
    return err


async def make_mydb_table(fetch, sql="CREATE TABLE t AS SELECT 1 AS a"):
    resp = await fetch("archive", "api", "query", method="POST", body=json.dumps({"query": sql, "context": "MyDB"}))
    assert resp.code == 200, resp.body


# -- metaserv ----------------------------------------------------------------------------------


async def test_service_tree_listings(fetch):
    assert body_json(await fetch("archive", "dax"))["results"] == ["db", "image", "meta"]
    assert body_json(await fetch("archive", "dax", "meta")) == {"results": ["v0"]}
    assert body_json(await meta(fetch)) == {"results": ["db", "image"]}
    assert body_json(await meta(fetch, "db")) == {"results": ["L2", "L3"]}
    assert body_json(await fetch("archive", "dax", "db", "v0", "tap")) == {"Links": "/tap/sync"}


async def test_l2_lists_the_demo_database(fetch):
    out = body_json(await meta(fetch, "db", "L2"))
    assert out["results"] == [["DEMO"]]
    assert out["more"] is False and out["stable"] is True
    assert body_json(await meta(fetch, "db", "l2"))["results"] == [["DEMO"]]  # levels are case-insensitive


@pytest.mark.parametrize(
    "params, want",
    [
        ({"containing": "em"}, [["DEMO"]]),
        ({"containing": "%EM%"}, [["DEMO"]]),
        ({"containing": "D%O"}, [["DEMO"]]),
        ({"containing": "Stripe82"}, []),
        ({"start": "1"}, []),
        ({"start": "0", "count": "1"}, [["DEMO"]]),
    ],
)
async def test_database_listing_filters_and_pages(fetch, params, want):
    resp = await meta(fetch, "db", "L2", params=params)
    assert resp.code == 200, resp.body
    assert body_json(resp)["results"] == want


async def test_count_zero_says_there_is_more(fetch):
    out = body_json(await meta(fetch, "db", "L2", params={"count": "0"}))
    assert out["results"] == [] and out["more"] is True


@pytest.mark.parametrize("params", [{"start": "-1"}, {"count": "-5"}, {"count": "ten"}, {"start": "1.5"}])
async def test_bad_paging_is_a_value_error(fetch, params):
    err = assert_meta_error(await meta(fetch, "db", "L2", params=params), 400, "ValueError")
    assert next(iter(params)) in err["message"]
    assert_meta_error(await meta(fetch, "db", "L2", "DEMO", "tables", params=params), 400, "ValueError")


async def test_database_info_has_connection_and_annotations(fetch):
    resp = await meta(fetch, "db", "L2", "demo")
    assert resp.code == 200, resp.body
    first, about = body_json(resp)["result"]
    assert set(first) == {"name", "owner", "host", "port"}
    assert first["name"] == "DEMO" and first["host"] and first["port"].isdigit()
    assert about["tables"] == 2 and about["path"] == "/demo" and about["kind"] == "duckdb"
    assert about["level"] == "L2" and about["readOnly"] is True and about["description"]


async def test_tables_listing_as_rows(fetch):
    out = body_json(await meta(fetch, "db", "L2", "DEMO", "tables"))
    assert out["results"] == [["PhotoObj"], ["SpecObj"]]
    assert body_json(await meta(fetch, "db", "L2", "DEMO", "tables", params={"containing": "photo"}))["results"] == [["PhotoObj"]]
    paged = body_json(await meta(fetch, "db", "L2", "DEMO", "tables", params={"start": "1", "count": "1"}))
    assert paged["results"] == [["SpecObj"]] and paged["more"] is False


async def test_table_info_with_column_metadata(fetch, demo_db):
    resp = await meta(fetch, "db", "L2", "DEMO", "tables", "photoobj")
    assert resp.code == 200, resp.body
    first, about = body_json(resp)["result"]
    assert first["name"] == "PhotoObj" and "descr" in first
    assert about["rows"] == DEMO_ROWS
    cols = {c["name"]: c for c in about["columns"]}
    want = [r[0] for r in demo_db.sql("DESCRIBE PhotoObj").fetchall()]
    assert list(cols) == want
    assert cols["ra"]["unit"] == "deg" and cols["ra"]["ucd"].startswith("pos.eq.ra")
    assert cols["objid"]["datatype"] == "BIGINT"


async def test_schema_is_a_runnable_create_table(fetch, demo_db):
    resp = await meta(fetch, "db", "L2", "DEMO", "tables", "PhotoObj", "schema")
    assert resp.code == 200, resp.body
    name, ddl = body_json(resp)["result"]
    assert name == "PhotoObj" and ddl.startswith("CREATE TABLE")
    want = demo_db.sql("DESCRIBE PhotoObj").fetchall()
    for col, *_ in want:
        assert col in ddl
    con = duckdb.connect()
    try:
        con.execute(ddl)  # the statement recreates the table's columns and types
        assert [r[:2] for r in con.sql("DESCRIBE PhotoObj").fetchall()] == [r[:2] for r in want]
    finally:
        con.close()


async def test_l3_is_the_callers_mydb(fetch):
    assert body_json(await meta(fetch, "db", "L3"))["results"] == [["MyDB"]]
    await make_mydb_table(fetch)
    first, about = body_json(await meta(fetch, "db", "L3", "MyDB"))["result"]
    assert first["name"] == "MyDB" and first["owner"]
    assert about["tables"] == 1 and about["readOnly"] is False and about["level"] == "L3"
    tables = body_json(await meta(fetch, "db", "L3", "mydb", "tables"))
    assert tables["results"] == [["t"]] and tables["stable"] is False
    # "<user>_MyDB" names the same database
    alias = body_json(await meta(fetch, "db", "L3", f"{first['owner']}_MyDB", "tables"))
    assert alias["results"] == [["t"]]
    t_first, t_about = body_json(await meta(fetch, "db", "L3", "MyDB", "tables", "t"))["result"]
    assert t_first["name"] == "t" and t_about["columns"][0]["name"] == "a"
    name, ddl = body_json(await meta(fetch, "db", "L3", "MyDB", "tables", "t", "schema"))["result"]
    assert name == "t" and ddl.startswith("CREATE TABLE") and "a INTEGER" in ddl


async def test_other_users_mydb_is_not_found(fetch, archive):
    token = archive.users.create_token("bob")
    bob = {"Authorization": "", "X-Auth-Token": token}
    await make_mydb_table(fetch)  # the owner's table
    out = body_json(await meta(fetch, "db", "L3", "MyDB", "tables", headers=bob))
    assert out["results"] == []  # bob sees his own, empty MyDB
    assert_meta_error(await meta(fetch, "db", "L3", "someone_MyDB", headers=bob), 404, "NotFound")


@pytest.mark.parametrize(
    "parts",
    [
        ("db", "L9"),
        ("db", "L1", "DEMO"),
        ("db", "L2", "NOPE"),
        ("db", "L3", "DEMO"),  # a mount is not a level-3 database
        ("db", "L2", "DEMO", "tables", "Nope"),
        ("db", "L2", "DEMO", "tables", "Nope", "schema"),
        ("image", "L9"),
        ("nonsense",),
    ],
)
async def test_unknown_things_are_404(fetch, parts):
    assert_meta_error(await meta(fetch, *parts), 404, "NotFound")


async def test_unknown_dax_paths_are_404_in_shape(fetch):
    assert_meta_error(await fetch("archive", "dax", "image", "v0", "L2"), 404, "NotFound")
    assert_meta_error(await fetch("archive", "dax", "whatever", "else"), 404, "NotFound")


async def test_no_credentials_is_403(fetch):
    assert_meta_error(await meta(fetch, "db", "L2", headers=NO_AUTH), 403, "PermissionError")
    assert_meta_error(await meta(fetch, "db", "L2", "DEMO", "tables", headers=NO_AUTH), 403)
    assert_dbserv_error(await sync_get(fetch, {"query": QUERY}, headers=NO_AUTH), 403)
    assert_dbserv_error(await sync_post(fetch, {"query": QUERY}, headers=NO_AUTH), 403)


@pytest.mark.parametrize("archive_config", [{"allow_anonymous": True}])
async def test_anonymous_reads_l2_only(fetch, archive_config):
    assert body_json(await meta(fetch, "db", "L2", headers=NO_AUTH))["results"] == [["DEMO"]]
    assert body_json(await meta(fetch, "db", "L3", headers=NO_AUTH))["results"] == []
    assert_meta_error(await meta(fetch, "db", "L3", "MyDB", headers=NO_AUTH), 403)
    resp = await sync_get(fetch, {"query": QUERY}, headers=NO_AUTH)
    assert resp.code == 200, resp.body
    assert len(body_json(resp)["result"]["table"]["data"]) == 5


# Every listing of the document (M4, M6, M10, M11, M12 and I5) and a value it holds.
LISTINGS = [
    "archive/dax/meta/v0/db/L2", "archive/dax/meta/v0/db/L2/DEMO/tables", "archive/dax/meta/v0/image/L2",
    "archive/dax/meta/v0/image/L2/DEMO", "archive/dax/meta/v0/image/L2/DEMO/calexp", "archive/dax/image/v0/L2/DEMO/calexp",
]  # fmt: skip


@pytest.mark.parametrize("path", LISTINGS)
async def test_listings_take_the_documents_semicolon_form(raw, path):
    """``start=<x>;count=<y>`` (the document's form) pages exactly as ``start=<x>&count=<y>`` does."""
    whole = body_json(await raw(path))
    n = len(whole["results"] if isinstance(whole, dict) else whole)
    assert n >= 1
    for start in range(n + 2):
        for count in range(n + 2):
            semi = await raw(path, f"start={start};count={count}")
            amp = await raw(path, f"start={start}&count={count}")
            assert semi.code == amp.code == 200, semi.body
            assert body_json(semi) == body_json(amp), (start, count)
    page = body_json(await raw(path, f"start={n - 1};count=1"))
    items = page["results"] if isinstance(page, dict) else page
    assert len(items) == 1 and items[0] == (whole["results"] if isinstance(whole, dict) else whole)[-1]
    # the other arguments may join the same way; a bad value is still a ValueError naming it
    err = assert_meta_error(await raw(path, "start=0;count=ten"), 400, "ValueError")
    assert "count" in err["message"]


async def test_filters_join_with_semicolons_too(raw):
    tables = body_json(await raw("archive/dax/meta/v0/db/L2/DEMO/tables", "containing=spec;start=0;count=5"))
    assert tables["results"] == [["SpecObj"]]
    images = body_json(await raw("archive/dax/meta/v0/image/L2/DEMO/calexp", "createdAfter=2024-03-01T12:00:00Z;count=1"))
    assert images["ids"] == ["1001"] and images["more"] is True


# The metadata resources (JSON by default) and the table each is as CSV: (path, columns, a row it has).
METADATA = [
    ("archive/dax", ["name"], ["db"]),
    ("archive/dax/meta/v0/db", ["level"], ["L2"]),
    ("archive/dax/meta/v0/db/L2", ["name"], ["DEMO"]),
    ("archive/dax/meta/v0/db/L2/DEMO", ["name", "owner", "host", "port"], ["DEMO", "archive"]),
    ("archive/dax/meta/v0/db/L2/DEMO/tables", ["name"], ["PhotoObj"]),
    ("archive/dax/meta/v0/db/L2/DEMO/tables/SpecObj", ["name", "datatype", "unit", "ucd", "description"], ["specobjid", "BIGINT"]),
    ("archive/dax/meta/v0/db/L2/DEMO/tables/SpecObj/schema", ["name", "schema"], ["SpecObj"]),
    ("archive/dax/meta/v0/image", ["level"], ["L2"]),
    ("archive/dax/meta/v0/image/L2/DEMO", ["name"], ["calexp"]),
    ("archive/dax/meta/v0/image/L2/DEMO/calexp", ["url", "id"], ["1000"]),
    ("archive/dax/meta/v0/image/L2/DEMO/calexp/1000", ["id", "level", "collection", "kind", "url"], ["1000", "L2", "DEMO", "calexp"]),
]  # fmt: skip


@pytest.mark.parametrize("path, columns, cells", METADATA)
async def test_metadata_honours_csv_html_and_the_documents_other_formats(raw, path, columns, cells):
    plain = await raw(path)
    assert plain.code == 200 and plain.headers["Content-Type"].startswith("application/json")
    doc = body_json(plain)
    assert body_json(await raw(path, headers={"Accept": "application/json"})) == doc
    csv = await raw(path, headers={"Accept": "text/csv"})
    assert csv.code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    df = pd.read_csv(io.BytesIO(csv.body), dtype=str, keep_default_na=False)
    assert list(df.columns)[: len(columns)] == columns and len(df) >= 1
    assert any(all(c in row for c in cells) for row in df.astype(str).values.tolist()), df
    # the same table as a page (what a browser asks for first), as TSV and as a FITS table
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    page = await raw(path, headers={"Accept": browser})
    assert page.code == 200 and page.headers["Content-Type"].startswith("text/html")
    head, *rows = html_cells(page.body.decode())
    assert head == list(df.columns) and rows == df.values.tolist()
    tsv = await raw(path, headers={"Accept": "text/tsv"})
    assert tsv.code == 200 and pd.read_csv(io.BytesIO(tsv.body), sep="\t", dtype=str, keep_default_na=False).shape == df.shape
    table = Table.read(io.BytesIO((await raw(path, headers={"Accept": "application/fitsTable"})).body), format="fits")
    assert table.colnames == list(df.columns) and len(table) == len(df)
    assert (await raw(path, "format=csv")).body == csv.body
    assert_meta_error(await raw(path, headers={"Accept": "image/png"}), 406)


async def test_metadata_tables_hold_what_the_json_holds(raw, demo_db):
    columns = pd.read_csv(io.BytesIO((await raw("archive/dax/meta/v0/db/L2/DEMO/tables/PhotoObj", "format=csv")).body))
    described = demo_db.sql("DESCRIBE PhotoObj").fetchall()
    assert columns["name"].tolist() == [r[0] for r in described] and columns["datatype"].tolist() == [r[1] for r in described]
    ra = columns.set_index("name").loc["ra"]
    assert ra["unit"] == "deg" and ra["ucd"].startswith("pos.eq.ra")
    _, ddl = body_json(await raw("archive/dax/meta/v0/db/L2/DEMO/tables/PhotoObj/schema"))["result"]
    schema = pd.read_csv(io.BytesIO((await raw("archive/dax/meta/v0/db/L2/DEMO/tables/PhotoObj/schema", "format=csv")).body))
    assert schema.values.tolist() == [["PhotoObj", ddl]]
    paged = pd.read_csv(io.BytesIO((await raw("archive/dax/meta/v0/db/L2/DEMO/tables", "start=1;count=1;format=csv")).body))
    assert paged["name"].tolist() == ["SpecObj"]


# -- dbserv --------------------------------------------------------------------------------------


def check_result(out, demo_db):
    result = out["result"]
    elements = result["metadata"]["elements"]
    assert [(e["name"], e["datatype"]) for e in elements] == [("objid", "long"), ("ra", "double"), ("dec", "double")]
    assert result["table"]["metadata"] == result["metadata"]  # also where dax_dbserv put it
    want = demo_db.sql(QUERY.replace("DEMO.", "")).fetchall()
    assert [tuple(r) for r in result["table"]["data"]] == want
    assert result["truncated"] is False


async def test_sync_get_matches_the_database(fetch, demo_db):
    resp = await sync_get(fetch, {"query": QUERY})
    assert resp.code == 200, resp.body
    assert resp.headers["Content-Type"].startswith("application/json")
    out = body_json(resp)
    check_result(out, demo_db)
    ra = out["result"]["metadata"]["elements"][1]
    assert ra["unit"] == "deg"  # column metadata travels with the result


async def test_sync_post_form_matches_the_database(fetch, demo_db):
    resp = await sync_post(fetch, {"query": QUERY})
    assert resp.code == 200, resp.body
    check_result(body_json(resp), demo_db)


async def test_sync_post_query_string_and_json_body(fetch, demo_db):
    resp = await fetch("archive", "dax", "db", "v0", "tap", "sync", method="POST", body="", params={"query": QUERY},
                       allow_nonstandard_methods=True)
    assert resp.code == 200, resp.body
    check_result(body_json(resp), demo_db)
    resp = await fetch("archive", "dax", "db", "v0", "tap", "sync", method="POST", body=json.dumps({"query": QUERY}))
    check_result(body_json(resp), demo_db)


async def test_sync_db_sets_the_default_context(fetch, demo_db):
    resp = await sync_get(fetch, {"query": "SELECT count(*) AS n FROM `PhotoObj` WHERE r < 20", "db": "DEMO"})
    assert resp.code == 200, resp.body
    out = body_json(resp)["result"]
    assert out["metadata"]["elements"] == [{"name": "n", "datatype": "long"}]
    assert out["table"]["data"] == [[demo_db.sql("SELECT count(*) FROM PhotoObj WHERE r < 20").fetchall()[0][0]]]


async def test_sync_reads_mydb(fetch):
    await make_mydb_table(fetch)
    out = body_json(await sync_get(fetch, {"query": "SELECT a FROM MyDB.t"}))
    assert out["result"]["table"]["data"] == [[1]]


async def test_sync_datatypes(fetch):
    q = ("SELECT 1 AS i, 1.5e0 AS d, 'x\"y' AS s, TIMESTAMP '2020-01-02 03:04:05' AS ts, DATE '2020-01-02' AS dt, "
         "true AS b, NULL AS n, X'0102' AS bin, CAST(2.50 AS DECIMAL(5,2)) AS dec2")
    resp = await sync_get(fetch, {"query": q})
    assert resp.code == 200, resp.body
    out = body_json(resp)["result"]
    types = {e["name"]: (e["datatype"], e.get("xtype")) for e in out["metadata"]["elements"]}
    assert types == {
        "i": ("long", None), "d": ("double", None), "s": ("text", None), "ts": ("text", "timestamp"),
        "dt": ("text", "date"), "b": ("boolean", None), "n": ("text", None), "bin": ("binary", None),
        "dec2": ("double", None),
    }
    row = out["table"]["data"][0]
    assert row[:3] == [1, 1.5, 'x"y']
    assert row[3].startswith("2020-01-02T") and row[4] == "2020-01-02"
    assert row[5] is True and row[6] is None and row[7] == "AQI=" and row[8] == 2.5


async def test_sync_without_query_is_the_info_object(fetch):
    assert body_json(await sync_get(fetch)) == {"Info": "Listing queries is not implemented"}
    assert body_json(await sync_post(fetch, {})) == {"Info": "Listing queries is not implemented"}


@pytest.mark.parametrize(
    "query",
    [
        "SELEC objid FROM DEMO.PhotoObj",
        "SELECT nope FROM DEMO.PhotoObj",
        "SELECT objid FROM DEMO.NoSuchTable",
        "SELECT objid FROM PhotoObj",  # no default context
        "CREATE TABLE DEMO.evil AS SELECT 1 AS a",
    ],
)
async def test_sync_bad_sql_is_a_client_error(fetch, query):
    resp = await sync_get(fetch, {"query": query})
    assert 400 <= resp.code < 500, resp.body
    err = assert_dbserv_error(resp, resp.code)
    assert "Traceback" not in err["message"]


async def test_sync_syntax_error_is_400(fetch):
    err = assert_dbserv_error(await sync_post(fetch, {"query": "SELEC 1"}), 400)
    assert err["error"] == "SyntaxError"


async def test_sync_unknown_db_is_404(fetch):
    err = assert_dbserv_error(await sync_get(fetch, {"query": "SELECT 1", "db": "NOPE"}), 404)
    assert err["error"] == "NotFound"


async def test_sync_other_formats_by_accept(fetch, demo_db):
    resp = await sync_get(fetch, {"query": QUERY}, headers={"Accept": "text/csv"})
    assert resp.code == 200, resp.body
    lines = resp.body.decode().splitlines()
    assert lines[0] == "objid,ra,dec" and len(lines) == 6


@pytest.mark.parametrize("accept", ["application/VOTable", "APPLICATION/VOTABLE", "application/x-votable+xml"])
async def test_sync_answers_the_documents_votable(fetch, demo_db, accept):
    resp = await sync_post(fetch, {"query": QUERY}, headers={"Accept": accept})
    assert resp.code == 200, resp.body
    table = parse_single_table(io.BytesIO(resp.body)).to_table()
    want = demo_db.sql(QUERY.replace("DEMO.", "")).fetchall()
    assert [tuple(r) for r in table.as_array().tolist()] == want


@pytest.mark.parametrize("accept", ["application/fitsTable", "application/FITSTABLE", "application/fits"])
async def test_sync_answers_the_documents_fits_table(fetch, demo_db, accept):
    resp = await sync_get(fetch, {"query": QUERY}, headers={"Accept": accept})
    assert resp.code == 200, resp.body
    with fits.open(io.BytesIO(resp.body)) as hdul:
        got = [tuple(r) for r in Table(hdul[1].data).as_array().tolist()]
    assert got == demo_db.sql(QUERY.replace("DEMO.", "")).fetchall()


async def test_sync_answers_a_page_to_a_browser(fetch, demo_db):
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    resp = await sync_get(fetch, {"query": QUERY}, headers={"Accept": browser})
    assert resp.code == 200 and resp.headers["Content-Type"].startswith("text/html")
    head, *rows = html_cells(resp.body.decode())
    assert head == ["objid", "ra", "dec"]
    assert [(int(a), float(b), float(c)) for a, b, c in rows] == demo_db.sql(QUERY.replace("DEMO.", "")).fetchall()


@pytest.mark.parametrize("archive_config", [{"quick_row_limit": 3}])
async def test_sync_row_limit_sets_truncated(fetch, archive_config):
    out = body_json(await sync_get(fetch, {"query": QUERY}))["result"]
    assert len(out["table"]["data"]) == 3 and out["truncated"] is True


async def test_sync_streams_a_large_result(fetch, demo_db):
    resp = await sync_get(fetch, {"query": "SELECT objid, r FROM DEMO.PhotoObj ORDER BY objid"})
    assert resp.code == 200
    data = body_json(resp)["result"]["table"]["data"]
    assert len(data) == DEMO_ROWS
    assert data[-1][0] == demo_db.sql("SELECT max(objid) FROM PhotoObj").fetchall()[0][0]
