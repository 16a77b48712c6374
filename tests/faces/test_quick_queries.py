"""Quick queries through the real server: CasJobs, Quasar and the native API on the demo archive."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support import DEMO_ROWS, body_json


def casjobs_post(fetch, context, query, accept=None, **kw):
    headers = {"Content-Type": "application/json"}
    if accept:
        headers["Accept"] = accept
    headers.update(kw.pop("headers", {}))
    return fetch(
        "archive", "casjobs", "contexts", context, "query",
        method="POST", body=json.dumps({"Query": query, "TaskName": "test"}), headers=headers,
        params={"TaskName": "SciScript-Python.CasJobs.executeQuery"}, **kw,
    )


async def test_casjobs_quick_query_csv_default(fetch, demo_db):
    resp = await casjobs_post(fetch, "DEMO", "SELECT TOP 10 objid, ra, dec FROM PhotoObj")
    assert resp.code == 200
    assert resp.headers["Content-Type"].startswith("text/")
    got = pd.read_csv(io.BytesIO(resp.body))
    want = demo_db.sql("SELECT objid, ra, dec FROM PhotoObj LIMIT 10").df()
    assert list(got.columns) == ["objid", "ra", "dec"]
    assert got["objid"].tolist() == want["objid"].tolist()
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


async def test_casjobs_json_array_as_sciserver_reads_it(fetch, demo_db):
    resp = await casjobs_post(
        fetch, "demo", "SELECT TOP 5 objid, r, type FROM PhotoObj WHERE r < 20 ORDER BY objid", accept="application/json+array"
    )
    assert resp.code == 200
    r = body_json(resp)
    assert isinstance(r["Result"], list) and len(r["Result"]) == 1
    entry = r["Result"][0]
    df = pd.DataFrame(entry["Data"], columns=entry["Columns"])  # SciScript's parsing
    want = demo_db.sql("SELECT objid, r, type FROM PhotoObj WHERE r < 20 ORDER BY objid LIMIT 5").fetchall()
    assert [(a, c) for a, _, c in df.itertuples(index=False)] == [(a, c) for a, _, c in want]
    assert df["r"].tolist() == pytest.approx([w[1] for w in want], rel=1e-6)  # REAL: shortest float32 text
    assert all(isinstance(row[0], int) for row in entry["Data"])  # bigint ids stay exact integers


async def test_casjobs_routes_are_case_insensitive_and_contexts_too(fetch):
    resp = await fetch(
        "archive", "CasJobs", "Contexts", "Demo", "Query", method="POST",
        body=json.dumps({"query": "SELECT TOP 1 objid FROM [PhotoObj]"}),
    )
    assert resp.code == 200
    assert resp.body.decode().splitlines()[0] == "objid"


async def test_casjobs_ddl_in_mydb_answers_rows_affected(fetch):
    resp = await casjobs_post(fetch, "MyDB", "CREATE TABLE t1 (a INT, b VARCHAR)", accept="application/json+array")
    assert resp.code == 200, resp.body
    assert body_json(resp)["Result"][0]["Columns"] == ["Rows Affected"]
    resp = await casjobs_post(fetch, "MyDB", "INSERT INTO t1 VALUES (1, 'x'), (2, 'y')", accept="application/json+array")
    assert body_json(resp)["Result"][0]["Data"] == [[2]]
    resp = await casjobs_post(fetch, "mydb", "SELECT * FROM t1 ORDER BY a")
    assert resp.body.decode().replace("\r\n", "\n") == "a,b\n1,x\n2,y\n" or resp.body.decode() == 'a,b\n1,"x"\n2,"y"\n'
    resp = await casjobs_post(fetch, "MyDB", "DROP TABLE t1", accept="text/plain")
    assert resp.code == 200
    assert resp.body.decode().splitlines() == ["Rows Affected", "0"]


@pytest.fixture(scope="session")
def read_dataset(tmp_path_factory):
    """``read_dataset(path)``: what .NET's ``DataSet.ReadXml`` makes of a file (Mono's System.Data):
    ``(columns [(name, .NET type, DateTimeMode)], rows [[text]])`` as tests/faces/dotnet/ReadDataSet.cs prints it."""
    mcs, mono = shutil.which("mcs"), shutil.which("mono")
    if not (mcs and mono):
        pytest.fail("Mono is not installed: apt-get install mono-mcs libmono-system-data4.0-cil (scripts/test.sh does)")
    exe = tmp_path_factory.mktemp("dotnet") / "ReadDataSet.exe"
    source = Path(__file__).parent / "dotnet" / "ReadDataSet.cs"
    subprocess.run([mcs, "-r:System.Data.dll", "-r:System.Xml.dll", f"-out:{exe}", str(source)], check=True, capture_output=True)

    def read(path) -> tuple[str, list[tuple[str, str, str]], list[list[str]]]:
        out = subprocess.run([mono, str(exe), str(path)], check=True, capture_output=True, text=True, timeout=120).stdout
        lines = out.splitlines()
        cols = [tuple(x.split(" ")[1:]) for x in lines if x.startswith("col ")]
        rows = [x[4:].split("\t") for x in lines if x.startswith("row ")]
        tables = [x.split(" ")[1] for x in lines if x.startswith("table ")]
        return tables, [(urllib.parse.unquote(n), t, m) for n, t, m in cols], rows

    return read


def dotnet_value(text: str, dotnet_type: str):
    """A value as ReadDataSet.cs prints it, back in Python."""
    if text == "NULL":
        return None
    if dotnet_type == "System.String":
        return urllib.parse.unquote(text[2:])
    if dotnet_type in ("System.Int64", "System.Int32", "System.Int16", "System.Byte", "System.SByte"):
        return int(text)
    if dotnet_type == "System.Single":
        return np.float32(text)
    if dotnet_type == "System.Double":
        return float(text)
    if dotnet_type == "System.Decimal":
        return decimal.Decimal(text)
    if dotnet_type == "System.DateTime":
        return dt.datetime.fromisoformat(text)
    if dotnet_type == "System.Boolean":
        return text == "true"
    raise AssertionError(f"unexpected .NET type {dotnet_type}")


async def test_casjobs_dataset_is_what_dotnet_reads_with_its_types(fetch, demo_db, tmp_path, read_dataset):
    """``Accept: application/x-dataset``: the DataSet XML with its inline schema, which .NET's
    DataSet.ReadXml loads into typed columns holding DuckDB's own values."""
    select = ("p.objid, p.ra, p.r, p.type, s.class, s.z, s.ra, p.ra AS [right ascension], "
              "CAST(p.ra AS DECIMAL(12, 6)) AS ra_exact, CAST('2015-01-31 10:30:00.5' AS DATETIME) AS t")
    joined = "FROM PhotoObj p LEFT JOIN SpecObj s ON s.bestobjid = p.objid"
    resp = await casjobs_post(fetch, "DEMO", f"SELECT TOP 60 {select} {joined} ORDER BY p.objid", accept="application/x-dataset")
    assert resp.code == 200, resp.body
    assert resp.headers["Content-Type"].startswith("application/x-dataset")
    path = tmp_path / "result.xml"
    path.write_bytes(resp.body)
    tables, cols, rows = read_dataset(path)
    assert tables == ["Table1"]
    assert cols == [
        ("objid", "System.Int64", "UnspecifiedLocal"), ("ra", "System.Double", "UnspecifiedLocal"),
        ("r", "System.Single", "UnspecifiedLocal"), ("type", "System.Int16", "UnspecifiedLocal"),
        ("class", "System.String", "UnspecifiedLocal"), ("z", "System.Single", "UnspecifiedLocal"),
        ("ra1", "System.Double", "UnspecifiedLocal"), ("right ascension", "System.Double", "UnspecifiedLocal"),
        ("ra_exact", "System.Decimal", "UnspecifiedLocal"), ("t", "System.DateTime", "Unspecified"),
    ]  # fmt: skip
    duck = select.replace("[right ascension]", '"right ascension"').replace("AS DATETIME", "AS TIMESTAMP")
    want = demo_db.sql(f"SELECT {duck} {joined} ORDER BY p.objid LIMIT 60").fetchall()
    got = [[dotnet_value(v, t) for v, (_, t, _) in zip(row, cols)] for row in rows]
    assert len(got) == len(want) == 60
    assert any(r[4] is None for r in want) and any(r[4] is not None for r in want)  # NULLs and values both
    for g, w in zip(got, want):
        assert g[:2] == list(w[:2]) and g[2] == np.float32(w[2]) and g[3:5] == list(w[3:5])
        assert (g[5] is None and w[5] is None) or g[5] == np.float32(w[5])
        assert g[6:] == list(w[6:])


async def test_casjobs_select_into_mydb_from_demo(fetch, demo_db):
    resp = await casjobs_post(
        fetch, "DEMO", "SELECT TOP 7 objid, ra, dec INTO mydb.Bright FROM PhotoObj WHERE r < 19 ORDER BY r", accept="application/json+array"
    )
    assert resp.code == 200, resp.body
    resp = await casjobs_post(fetch, "MyDB", "SELECT count(*) AS n FROM Bright", accept="application/json+array")
    assert body_json(resp)["Result"][0]["Data"] == [[7]]


async def test_quasar_query_with_variables_and_paging(fetch, demo_db):
    q = "SELECT objid, r FROM `PhotoObj` WHERE r < :cut ORDER BY objid"
    resp = await fetch("archive", "quasar", "query", "fs", "demo", params={"q": q, "var.cut": "18", "offset": "0", "limit": "100"})
    assert resp.code == 200, resp.body
    lines = resp.body.decode().splitlines()
    rows = [json.loads(line) for line in lines]
    want = demo_db.sql("SELECT objid, r FROM PhotoObj WHERE r < 18 ORDER BY objid LIMIT 100").fetchall()
    assert [(d["objid"], pytest.approx(d["r"])) for d in rows] == [(a, pytest.approx(b)) for a, b in want]
    # paging: the second page
    resp = await fetch("archive", "quasar", "query", "fs", "demo", params={"q": q, "var.cut": "18", "offset": "10", "limit": "5"})
    page = [json.loads(line)["objid"] for line in resp.body.decode().splitlines()]
    assert page == [w[0] for w in want[10:15]]


async def test_quasar_absolute_and_string_variables(fetch, demo_db):
    q = "SELECT count(*) AS n FROM `/demo/SpecObj` WHERE class = :cls"
    resp = await fetch("archive", "quasar", "query", "fs", params={"q": q, "var.cls": '"GALAXY"'}, headers={"Accept": "application/json"})
    assert resp.code == 200, resp.body
    want = demo_db.sql("SELECT count(*) FROM SpecObj WHERE class = 'GALAXY'").fetchall()[0][0]
    assert body_json(resp) == [{"n": want}]


async def test_quasar_compile_shows_phases_and_engine_sql(fetch):
    q = "SELECT objid FROM `PhotoObj` WHERE r < :cut"
    resp = await fetch("archive", "quasar", "compile", "fs", "demo", params={"q": q, "var.cut": "18"})
    assert resp.code == 200, resp.body
    plan = body_json(resp)
    names = [p["name"] for p in plan["phases"]]
    assert names[0] == "SQL AST" and "Engine SQL" in names and names[-1] == "Engine Plan"
    assert "18" not in plan["physicalPlan"]  # the value is a parameter, never pasted
    assert plan["inputs"] == ["/demo/PhotoObj"]
    post = await fetch("archive", "quasar", "compile", "fs", "demo", method="POST", body=q, params={"var.cut": "18"})
    assert body_json(post)["physicalPlan"] == plan["physicalPlan"]


async def test_quasar_data_reads_a_window_of_a_table(fetch, demo_db):
    resp = await fetch("archive", "quasar", "data", "fs", "demo", "PhotoObj", params={"offset": "10", "limit": "2"})
    assert resp.code == 200, resp.body
    rows = [json.loads(line) for line in resp.body.decode().splitlines()]
    want = demo_db.sql("SELECT objid FROM PhotoObj LIMIT 2 OFFSET 10").fetchall()
    assert [r["objid"] for r in rows] == [w[0] for w in want]
    assert set(rows[0]) >= {"objid", "ra", "dec", "u", "g", "r", "i", "z", "type", "flags"}


async def test_quasar_data_lists_folders(fetch):
    resp = await fetch("archive", "quasar", "data", "fs", "demo")
    names = {c["name"]: c["type"] for c in body_json(resp)["children"]}
    assert names == {"PhotoObj": "file", "SpecObj": "file"}
    root = body_json(await fetch("archive", "quasar", "data", "fs"))
    assert {"demo", "mydb"} <= {c["name"] for c in root["children"]}


async def test_native_contexts_tables_and_query(fetch, demo_db):
    ctx = body_json(await fetch("archive", "api", "contexts"))["contexts"]
    by_name = {c["name"]: c for c in ctx}
    assert by_name["DEMO"]["readOnly"] is True and by_name["DEMO"]["path"] == "/demo"
    assert by_name["MyDB"]["readOnly"] is False
    tables = body_json(await fetch("archive", "api", "contexts", "demo", "tables"))["tables"]
    photo = next(t for t in tables if t["name"] == "PhotoObj")
    assert photo["rows"] == DEMO_ROWS
    ra = next(c for c in photo["columns"] if c["name"] == "ra")
    assert ra["unit"] == "deg" and ra["ucd"].startswith("pos.eq.ra")
    resp = await fetch(
        "archive", "api", "query", method="POST",
        body=json.dumps({"query": "SELECT objid, ra FROM PhotoObj WHERE objid = $id", "context": "DEMO",
                         "params": {"id": int(demo_db.sql("SELECT min(objid) FROM PhotoObj").fetchall()[0][0])}}),
    )
    assert resp.code == 200, resp.body
    out = body_json(resp)
    assert [c["name"] for c in out["columns"]] == ["objid", "ra"]
    assert out["columns"][1]["unit"] == "deg"
    assert out["rows"] == 1 and out["truncated"] is False
    assert out["data"][0][0] == demo_db.sql("SELECT min(objid) FROM PhotoObj").fetchall()[0][0]


async def test_native_table_rows_paged_and_sorted(fetch, demo_db):
    resp = await fetch("archive", "api", "contexts", "DEMO", "tables", "PhotoObj", "rows",
                       params={"offset": "3", "limit": "4", "order": "r", "desc": "true"})
    out = body_json(resp)
    want = demo_db.sql("SELECT objid FROM PhotoObj ORDER BY r DESC LIMIT 4 OFFSET 3").fetchall()
    assert [row[0] for row in out["data"]] == [w[0] for w in want]
