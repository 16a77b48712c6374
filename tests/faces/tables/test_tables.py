"""Table uploads, listings, drop and rename through the real server: CasJobs as SciScript
speaks it, and the native API with every upload format."""

from __future__ import annotations

import asyncio
import io
import json
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support import body_json
from tests.support.raw_http import dechunk

CJ = ("archive", "casjobs", "contexts")
API = ("archive", "api", "contexts")
TASK = {"TaskName": "SciScript-Python.CasJobs.uploadCSVDataToTable"}


@pytest.fixture
def alice(archive):
    """SciScript's headers: an X-Auth-Token and nothing else (no Jupyter token)."""
    return {"Authorization": "", "X-Auth-Token": archive.users.create_token("alice")}


@pytest.fixture
def raw(jp_http_port, jp_base_url):
    """Send a request byte for byte (tornado's client always adds a Content-Type to a body)."""

    async def send(method: str, path: str, headers: dict, body: bytes = b"") -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
        lines = [f"{method} {jp_base_url.rstrip('/')}/{path} HTTP/1.1", f"Host: 127.0.0.1:{jp_http_port}",
                 f"Content-Length: {len(body)}", "Connection: close"] + [f"{k}: {v}" for k, v in headers.items()]  # fmt: skip
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        data = await reader.read()
        writer.close()
        head, _, payload = data.partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" in head.lower():
            payload = dechunk(payload)
        return int(head.split()[1]), payload

    return send


def casjobs_upload(fetch, headers, table, body, context="MyDB", **kw):
    return fetch(*CJ, context, "Tables", table, method="POST", body=body, headers=dict(headers), params=TASK, **kw)


async def casjobs_rows(fetch, headers, query, context="MyDB"):
    resp = await fetch(*CJ, context, "query", method="POST", params={"TaskName": "SciScript-Python.CasJobs.executeQuery"},
                       body=json.dumps({"Query": query, "TaskName": "x"}),
                       headers={**headers, "Content-Type": "application/json", "Accept": "application/json+array"})  # fmt: skip
    assert resp.code == 200, resp.body
    result = body_json(resp)["Result"][0]
    return result["Columns"], result["Data"]


async def count(fetch, headers, table):
    return (await casjobs_rows(fetch, headers, f"SELECT count(*) AS n FROM {table}"))[1][0][0]


def assert_casjobs_error(resp, status):
    assert resp.code == status, resp.body
    err = body_json(resp)
    assert set(err) >= {"Error Code", "Error Type", "Error Message", "LogMessageID"}
    return err["Error Message"]


def assert_native_error(resp, status, code=None):
    assert resp.code == status, resp.body
    err = body_json(resp)["error"]
    assert err["message"] and (code is None or err["code"] == code), err
    return err["message"]


# -- CasJobs, as SciScript-Python sends it ------------------------------------------------------------------
async def test_sciscript_upload_without_content_type_reads_back_ints(raw, fetch, alice):
    status, body = await raw("POST", "archive/casjobs/contexts/MyDB/Tables/Upl1?TaskName=SciScript-Python.CasJobs.uploadCSVDataToTable",
                             {"X-Auth-Token": alice["X-Auth-Token"]}, b"Column1,Column2\n4,5\n")  # fmt: skip
    assert status == 200, body
    cols, data = await casjobs_rows(fetch, alice, "SELECT * FROM Upl1")
    assert cols == ["Column1", "Column2"]
    assert data == [[4, 5]] and all(isinstance(v, int) for v in data[0])


@pytest.mark.parametrize("ctype", ["application/json", "text/csv", "text/plain", "", None])
async def test_casjobs_upload_ignores_the_content_type(fetch, alice, ctype):
    headers = dict(alice) if ctype is None else {**alice, "Content-Type": ctype}  # None: tornado's form default
    resp = await casjobs_upload(fetch, headers, "Ct", "a,b\n1,x\n2,y\n")
    assert resp.code == 200, resp.body
    assert await casjobs_rows(fetch, alice, "SELECT a, b FROM Ct ORDER BY a") == (["a", "b"], [[1, "x"], [2, "y"]])


async def test_casjobs_get_tables_shape_and_append(fetch, alice):
    assert (await casjobs_upload(fetch, alice, "Stars", "Column1,Column2\n4,5\n")).code == 200
    # same columns: appended (by name, so their order may differ)
    assert (await casjobs_upload(fetch, alice, "stars", "Column1,Column2\n6,7\n")).code == 200
    assert (await casjobs_upload(fetch, alice, "STARS", "column2,column1\n9,8\n")).code == 200
    for path in ("Tables", "tables"):
        resp = await fetch(*CJ, "mydb", path, headers=alice, params={"TaskName": "SciScript-Python.CasJobs.getTables"})
        assert resp.code == 200, resp.body
        tables = {t["Name"]: t for t in body_json(resp)}
        t = tables["Stars"]
        assert set(t) == {"Name", "Rows", "Size", "Date"}
        assert t["Rows"] == 3 and isinstance(t["Size"], int) and t["Size"] >= 0
        now_ticks = int(time.time() * 10**7) + 621355968000000000
        assert isinstance(t["Date"], int) and abs(t["Date"] - now_ticks) < 120 * 10**7
    assert (await casjobs_rows(fetch, alice, "SELECT * FROM Stars ORDER BY Column1"))[1] == [[4, 5], [6, 7], [8, 9]]


async def test_casjobs_tables_of_demo(fetch, alice, demo_db):
    resp = await fetch(*CJ, "DEMO", "Tables", headers=alice, params={"TaskName": "x"})
    assert resp.code == 200, resp.body
    tables = {t["Name"]: t for t in body_json(resp)}
    for name in ("PhotoObj", "SpecObj"):
        assert tables[name]["Rows"] == demo_db.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0]
        assert tables[name]["Size"] > 0 and tables[name]["Date"] > 621355968000000000


async def test_casjobs_mismatch_and_bad_rows_change_nothing(fetch, alice):
    assert (await casjobs_upload(fetch, alice, "T", "a,b\n1,2\n3,4\n")).code == 200
    bad = {
        "a,c\n5,6\n": "columns",  # other columns
        "a,b,c\n5,6,7\n": "columns",
        "a,b\n5,6\n7,8,9\n": "line 3",  # an extra value on the last line
        "a,b\n5,6\n7,x\n": "x",  # not an integer
        "a,b\n5,6\n7,1.5\n": "1.5",  # not an integer either: refused, not rounded
    }
    for body, hint in bad.items():
        msg = assert_casjobs_error(await casjobs_upload(fetch, alice, "T", body), 400)
        assert hint in msg, msg
        assert "/tmp" not in msg and "upload-" not in msg  # our temp path stays ours
    assert await casjobs_rows(fetch, alice, "SELECT * FROM T ORDER BY a") == (["a", "b"], [[1, 2], [3, 4]])
    # a failing create leaves no table behind
    msg = assert_casjobs_error(await casjobs_upload(fetch, alice, "Fresh", "a,b\n" + "1,2\n" * 30000 + "3,4,5\n"), 400)
    assert "30002" in msg
    resp = await fetch(*CJ, "MyDB", "Tables", headers=alice)
    assert "Fresh" not in {t["Name"] for t in body_json(resp)}


async def test_casjobs_bom_crlf_quotes_spaces_newlines(fetch, alice):
    body = '\ufeffid,name,note\r\n1,"Smith, J.", two  spaces \r\n2,"multi\r\nline","say ""hi"""\r\n3,,\r\n'
    assert (await casjobs_upload(fetch, alice, "Quoted", body.encode("utf-8"))).code == 200
    cols, data = await casjobs_rows(fetch, alice, "SELECT * FROM Quoted ORDER BY id")
    assert cols == ["id", "name", "note"]
    assert data == [[1, "Smith, J.", " two  spaces "], [2, "multi\r\nline", 'say "hi"'], [3, None, None]]


@pytest.mark.parametrize("named_index", [False, True])
async def test_pandas_dataframe_as_sciscript_uploads_it(fetch, alice, named_index):
    df = pd.DataFrame({"ra": [10.5, 20.25, 30.0], "n": [1, 2, 3], "name": ["a b", "c,d", "e"]})
    if named_index:
        df.index = pd.Index([7, 8, 9], name="objid")
        text = df.to_csv()  # uploadPandasDataFrameToTable: the named index becomes the first column
    else:
        text = df.to_csv(index=False)
    assert (await casjobs_upload(fetch, alice, "Frame", text.encode("utf-8"))).code == 200
    cols, data = await casjobs_rows(fetch, alice, "SELECT * FROM Frame ORDER BY n")
    got = pd.DataFrame(data, columns=cols)
    want = df.reset_index() if named_index else df
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True))


async def test_casjobs_upload_refusals(fetch, raw, alice, demo_db):
    msg = assert_casjobs_error(await casjobs_upload(fetch, alice, "PhotoObj", "a\n1\n", context="DEMO"), 403)
    assert "read-only" in msg
    assert demo_db.sql("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'a'").fetchall()[0][0] == 0
    assert_casjobs_error(await casjobs_upload(fetch, {"Authorization": ""}, "T", "a\n1\n"), 403)
    assert_casjobs_error(await casjobs_upload(fetch, {"Authorization": "", "X-Auth-Token": "nope"}, "T", "a\n1\n"), 401)
    assert_casjobs_error(await casjobs_upload(fetch, alice, "T", b""), 400)
    assert_casjobs_error(await casjobs_upload(fetch, alice, "x" * 200, "a\n1\n"), 400)
    status, body = await raw("POST", "archive/casjobs/contexts/MyDB/Tables/a%2Fb", {"X-Auth-Token": alice["X-Auth-Token"]}, b"a\n1\n")
    assert status == 400 and "'/'" in json.loads(body)["Error Message"]


@pytest.mark.parametrize("archive_config", [{"allow_anonymous": True}])
async def test_anonymous_may_list_demo_but_not_upload(fetch, archive_config):
    no_auth = {"Authorization": ""}
    resp = await fetch(*CJ, "DEMO", "Tables", headers=no_auth)
    assert resp.code == 200 and {"PhotoObj", "SpecObj"} <= {t["Name"] for t in body_json(resp)}
    assert_casjobs_error(await casjobs_upload(fetch, no_auth, "T", "a\n1\n"), 403)
    assert_native_error(await fetch(*API, "MyDB", "tables", "T", method="PUT", body="a\n1\n", headers=no_auth), 403)


# -- native: formats ------------------------------------------------------------------------------------------
FRAME = pd.DataFrame(
    {"id": np.array([1, 2, 3], dtype="int64"), "ra": [10.5, 20.25, -30.125], "name": ["alpha", "beta b", "gamma, c"],
     "ok": [True, False, True]}
)  # fmt: skip


def as_csv():
    return FRAME.to_csv(index=False).encode(), "text/csv"


def as_parquet():
    table = pa.Table.from_pandas(FRAME, preserve_index=False)
    fields = [f.with_metadata({b"unit": b"deg", b"ucd": b"pos.eq.ra"}) if f.name == "ra" else f for f in table.schema]
    sink = io.BytesIO()
    pq.write_table(table.cast(pa.schema(fields, metadata={b"description": b"test stars"})), sink)
    return sink.getvalue(), "application/vnd.apache.parquet"


def as_ldjson():
    return FRAME.to_json(orient="records", lines=True).encode(), "application/x-ndjson"


def astropy_table():
    from astropy.table import Table

    t = Table.from_pandas(FRAME)
    t["ra"].unit = "deg"
    t["ra"].description = "right ascension"
    return t


def as_votable():
    from astropy.io.votable import from_table

    vot = from_table(astropy_table())
    vot.get_first_table().get_field_by_id("ra").ucd = "pos.eq.ra"
    sink = io.BytesIO()
    vot.to_xml(sink)
    return sink.getvalue(), "application/x-votable+xml"


def as_fits():
    sink = io.BytesIO()
    astropy_table().write(sink, format="fits")
    return sink.getvalue(), "application/fits"


async def read_back(fetch, table, context="MyDB"):
    resp = await fetch(*API, context, "tables", table, "rows", params={"format": "parquet", "limit": 1000, "order": "id"})
    assert resp.code == 200, resp.body
    return pq.read_table(io.BytesIO(resp.body)).to_pandas()


@pytest.mark.parametrize("make", [as_csv, as_parquet, as_ldjson, as_votable, as_fits])
@pytest.mark.parametrize("how", ["content-type", "format", "sniffed"])
async def test_native_upload_each_format_reads_back_equal(fetch, make, how):
    body, media = make()
    kw = {"headers": {"Content-Type": media}}
    if how == "format":
        kw = {"params": {"format": make.__name__[3:]}, "headers": {"Content-Type": "application/octet-stream"}}
    elif how == "sniffed":
        kw = {"headers": {"Content-Type": "application/octet-stream"}}
    resp = await fetch(*API, "MyDB", "tables", "Up", method="PUT", body=body, **kw)
    assert resp.code == 201, resp.body
    info = body_json(resp)
    assert info["name"] == "Up" and info["rows"] == 3 and info["created"] is True
    assert [c["name"] for c in info["columns"]] == list(FRAME.columns)
    types = {c["name"]: c["datatype"] for c in info["columns"]}
    assert types["id"] in ("BIGINT", "INTEGER") and types["ra"] == "DOUBLE" and types["ok"] == "BOOLEAN"
    pd.testing.assert_frame_equal(read_back_fix(await read_back(fetch, "Up")), FRAME, check_dtype=False)
    if make in (as_parquet, as_votable, as_fits):  # units travel with the table
        ra = next(c for c in info["columns"] if c["name"] == "ra")
        assert ra["unit"] == "deg"
        if make is not as_fits:
            assert ra["ucd"] == "pos.eq.ra"
        got = body_json(await fetch(*API, "MyDB", "tables", "up"))
        assert next(c for c in got["columns"] if c["name"] == "ra")["unit"] == "deg"


def read_back_fix(df):
    return df.astype({"id": "int64", "ok": "bool"})


async def test_native_drop_rename_and_modes(fetch):
    body = FRAME.to_csv(index=False)
    resp = await fetch(*API, "mydb", "tables", "One", method="POST", body=body)
    assert resp.code == 201 and body_json(resp)["mode"] == "create"
    resp = await fetch(*API, "mydb", "tables", "one", method="POST", body=body)  # default: append
    assert resp.code == 200 and body_json(resp)["rows"] == 6 and body_json(resp)["mode"] == "append"
    assert_native_error(await fetch(*API, "MyDB", "tables", "One", method="POST", body=body, params={"mode": "create"}), 409, "conflict")
    assert_native_error(await fetch(*API, "MyDB", "tables", "None", method="POST", body=body, params={"mode": "append"}), 404)
    assert_native_error(await fetch(*API, "MyDB", "tables", "One", method="POST", body=body, params={"mode": "merge"}), 400)
    assert_native_error(await fetch(*API, "MyDB", "tables", "One", method="POST", body=body, params={"format": "xlsx"}), 415)
    # rename: 409 onto an existing table, fine onto a new name or a change of case
    assert (await fetch(*API, "MyDB", "tables", "Two", method="PUT", body=body)).code == 201
    resp = await fetch(*API, "MyDB", "tables", "one", "rename", method="POST", body=json.dumps({"name": "TWO"}))
    assert_native_error(resp, 409, "conflict")
    resp = await fetch(*API, "MyDB", "tables", "one", "rename", method="POST", body=json.dumps({"name": "Three"}))
    assert resp.code == 200 and body_json(resp)["name"] == "Three" and body_json(resp)["rows"] == 6
    assert_native_error(await fetch(*API, "MyDB", "tables", "One"), 404)
    resp = await fetch(*API, "MyDB", "tables", "three", "rename", method="POST", body=json.dumps({"name": "THREE"}))
    assert resp.code == 200 and body_json(resp)["name"] == "THREE"
    assert_native_error(await fetch(*API, "MyDB", "tables", "THREE", "rename", method="POST", body=json.dumps({"name": "a/b"})), 400)
    # drop
    assert (await fetch(*API, "MyDB", "tables", "three", method="DELETE")).code == 204
    assert_native_error(await fetch(*API, "MyDB", "tables", "THREE"), 404)
    assert_native_error(await fetch(*API, "MyDB", "tables", "THREE", method="DELETE"), 404)
    names = [t["name"] for t in body_json(await fetch(*API, "MyDB", "tables"))["tables"]]
    assert names == ["Two"]
    # a read-only context refuses every write
    assert_native_error(await fetch(*API, "DEMO", "tables", "PhotoObj", method="DELETE"), 403, "permission")
    assert_native_error(await fetch(*API, "DEMO", "tables", "X", method="PUT", body=body), 403, "permission")
    resp = await fetch(*API, "DEMO", "tables", "PhotoObj", "rename", method="POST", body=json.dumps({"name": "P"}))
    assert_native_error(resp, 403)
    assert (await fetch(*API, "DEMO", "tables", "PhotoObj")).code == 200  # GET still served


async def test_native_replace_and_failed_writes_are_atomic(fetch, archive):
    old = "id,v\n1,10\n2,20\n"
    assert (await fetch(*API, "MyDB", "tables", "Atom", method="PUT", body=old)).code == 201
    resp = await fetch(*API, "MyDB", "tables", "Atom", method="PUT", body="id,v,w\n5,50,x\n")
    assert resp.code == 200 and body_json(resp)["mode"] == "replace"
    assert [c["name"] for c in body_json(resp)["columns"]] == ["id", "v", "w"]
    assert (await fetch(*API, "MyDB", "tables", "Atom", method="PUT", body=old)).code == 200
    for mode, bad in [("replace", "id,v\n3,30\n4,40,99\n"), ("append", "id,v\n3,30\n4,forty\n"), ("append", "id,v\n3,30\n4,4.5\n")]:
        method = "PUT" if mode == "replace" else "POST"
        resp = await fetch(*API, "MyDB", "tables", "Atom", method=method, body=bad, params={"mode": mode})
        assert_native_error(resp, 400)
        df = await read_back_plain(fetch, "Atom")
        assert df.to_dict("list") == {"id": [1, 2], "v": [10, 20]}
    # the bad Parquet body of a replace leaves the old table too
    resp = await fetch(*API, "MyDB", "tables", "Atom", method="PUT", body=b"PAR1 not really", params={"format": "parquet"})
    assert_native_error(resp, 400)
    assert (await read_back_plain(fetch, "Atom")).to_dict("list") == {"id": [1, 2], "v": [10, 20]}
    # no upload files are left behind in the engine's temp dir
    leftovers = list((archive.data_dir / "tmp").rglob("upload-*"))
    assert leftovers == []


async def read_back_plain(fetch, table):
    resp = await fetch(*API, "MyDB", "tables", table, "rows", params={"format": "parquet", "order": "id"})
    assert resp.code == 200, resp.body
    return pq.read_table(io.BytesIO(resp.body)).to_pandas()


@pytest.mark.parametrize("archive_config", [{"upload_limit": 1000}])
async def test_upload_limit(fetch, alice, archive_config):
    small = "a,b\n" + "1,2\n" * 100  # 404 bytes
    assert (await fetch(*API, "MyDB", "tables", "Small", method="PUT", body=small)).code == 201
    big = "a,b\n" + "1,2\n" * 1000
    msg = assert_native_error(await fetch(*API, "MyDB", "tables", "Big", method="PUT", body=big), 413, "too_large")
    assert "1000 bytes" in msg
    assert "1000 bytes" in assert_casjobs_error(await casjobs_upload(fetch, alice, "Big", big), 413)

    # without a Content-Length (chunked), the count stops at the limit
    async def producer(write):
        for _ in range(20):
            await write(b"1,2\n" * 100)

    resp = await fetch(*API, "MyDB", "tables", "Big", method="PUT", body_producer=producer)
    assert_native_error(resp, 413, "too_large")
    assert_native_error(await fetch(*API, "MyDB", "tables", "Big"), 404)


async def test_a_late_fraction_is_not_rounded_into_an_integer_column(fetch, alice):
    """Types come from a sample; a "1.5" far past it must make the column DOUBLE, never round to 2."""
    body = "a,b\n" + "".join(f"{i},x\n" for i in range(50_000)) + "1.5,y\n"
    resp = await casjobs_upload(fetch, alice, "late", body)
    assert resp.code == 200, resp.body
    cols, data = await casjobs_rows(fetch, alice, "SELECT typeof(a) AS t, a FROM late WHERE b = 'y'")
    assert data == [["DOUBLE", 1.5]]
    assert await count(fetch, alice, "late") == 50_001


@pytest.mark.parametrize(
    ("first", "late", "kind", "value"),
    [
        ("{i}", "15e-1", "DOUBLE", 1.5),  # an exponent that DuckDB would round as well
        ("{i}", "9007199254740993", "BIGINT", 9007199254740993),  # past 2**53: kept exact
        ("{i}", "abc", "VARCHAR", "abc"),  # not a number at all: the column becomes text
        ("{i}", "nan", "DOUBLE", None),  # NaN stays NaN (JSON null)
        ("900719925474099{i}", "1.5", "DOUBLE", 1.5),  # big integers are read as text and checked
        ("900719925474099{i}", "1E-1", "DOUBLE", 0.1),
        ("900719925474099{i}", ".5", "DOUBLE", 0.5),
        ("900719925474099{i}", "x1", "VARCHAR", "x1"),
        ("900719925474099{i}", "-9223372036854775808", "BIGINT", -9223372036854775808),
    ],
)
async def test_late_values_past_the_sample_keep_their_exact_value(fetch, alice, first, late, kind, value):
    body = "a,b\n" + "".join(first.format(i=i % 10) + ",x\n" for i in range(50_000)) + f"{late},y\n"
    resp = await casjobs_upload(fetch, alice, "late2", body)
    assert resp.code == 200, resp.body
    cols, data = await casjobs_rows(fetch, alice, "SELECT typeof(a) AS t, a FROM late2 WHERE b = 'y'")
    assert data == [[kind, value]]
    cols, data = await casjobs_rows(fetch, alice, "SELECT count(*), count(a) FROM late2")
    assert data == [[50_001, 50_001]]


async def test_a_word_among_integers_makes_the_column_text(fetch, alice):
    body = "a,b\n" + "".join(f"{i},x\n" for i in range(15_000)) + "abc,y\n" + "".join(f"{i},z\n" for i in range(100_000))
    resp = await casjobs_upload(fetch, alice, "word", body)
    assert resp.code == 200, resp.body
    cols, data = await casjobs_rows(fetch, alice, "SELECT typeof(a), a FROM word WHERE b = 'y'")
    assert data == [["VARCHAR", "abc"]]
