"""ArchiveClient against a real server over HTTP: every method, its results and its errors."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import astropy.units as u
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import requests
from astropy.table import Table

from jupyter_archive.client import HISTORY_COLUMNS, ArchiveClient, ArchiveError, find_server

from tests.support import DEMO_ROWS


@pytest.fixture(scope="module")
def demo(demo_dir):
    """The demo's DuckDB file, read directly: what the HTTP answers are compared to."""
    con = duckdb.connect(str(demo_dir / "demo.duckdb"), read_only=True)
    yield con
    con.close()


def test_query_to_pandas_astropy_and_arrow(client, demo):
    sql = "SELECT TOP 10 objid, ra, dec, r FROM PhotoObj WHERE r < 18 ORDER BY objid"
    want = demo.sql("SELECT objid, ra, dec, r FROM PhotoObj WHERE r < 18 ORDER BY objid LIMIT 10").df()
    df = client.query(sql, language="tsql")
    assert list(df.columns) == ["objid", "ra", "dec", "r"]
    assert df["objid"].tolist() == want["objid"].tolist()
    assert df.attrs["columns"]["ra"]["unit"] == "deg"
    t = client.query(sql, language="tsql", format="astropy")
    assert isinstance(t, Table) and t["ra"].unit == u.deg and t["r"].unit == u.mag
    assert t["ra"].meta["ucd"].startswith("pos.eq.ra")
    assert (t["ra"].quantity.to(u.arcsec)[0].value == pytest.approx(want["ra"][0] * 3600))
    arrow = client.query(sql, language="tsql", format="arrow")
    assert isinstance(arrow, pa.Table) and arrow.num_rows == 10


def test_parameters_are_bound_not_pasted(client, demo):
    cut = np.float32(17.5)  # a numpy scalar from the user's code
    df = client.query("SELECT count(*) AS n FROM PhotoObj WHERE r < :cut", params={"cut": cut}, language="tsql")
    assert df["n"][0] == demo.sql("SELECT count(*) FROM PhotoObj WHERE r < 17.5").fetchall()[0][0]
    plan = client.compile("SELECT objid FROM PhotoObj WHERE r < :cut", params={"cut": 17.5})
    assert "17.5" not in plan["statements"][0]["sql"]
    # A value that would be SQL if pasted stays a value.
    evil = "x' OR '1'='1"
    assert client.query("SELECT count(*) AS n FROM SpecObj WHERE class = :c", params={"c": evil})["n"][0] == 0


def test_query_languages_limit_and_offset(client, demo):
    df = client.query("SELECT TOP 3 objid FROM PhotoObj ORDER BY objid", language="adql")
    assert df["objid"].tolist() == [r[0] for r in demo.sql("SELECT objid FROM PhotoObj ORDER BY objid LIMIT 3").fetchall()]
    page = client.query("SELECT objid FROM PhotoObj ORDER BY objid", offset=5, limit=4)
    assert page["objid"].tolist() == [r[0] for r in demo.sql("SELECT objid FROM PhotoObj ORDER BY objid LIMIT 4 OFFSET 5").fetchall()]


def test_errors_carry_the_server_message(client):
    with pytest.raises(ArchiveError) as e:
        client.query("SELECT nope FROM PhotoObj")
    assert e.value.status == 400 and "nope" in e.value.message
    with pytest.raises(ArchiveError) as e:
        client.query("SELECT * FROM NoSuchTable")
    assert "NoSuchTable" in str(e.value)
    with pytest.raises(ArchiveError) as e:
        client.tables("NOWHERE")
    assert e.value.status == 404
    with pytest.raises(ArchiveError) as e:
        ArchiveClient(client.url, "wrong-token").contexts()
    assert e.value.status == 403 and "authentication" in e.value.message


def test_catalog_tables_schema_and_rows(client, demo):
    assert {"DEMO", "MyDB"} <= {c["name"] for c in client.contexts()}
    assert [m["name"] for m in client.mounts()] == ["DEMO"]
    tables = {t["name"]: t for t in client.tables("demo")}
    assert tables["PhotoObj"]["rows"] == DEMO_ROWS
    schema = client.schema("PhotoObj")
    ra = schema.set_index("name").loc["ra"]
    assert ra["unit"] == "deg" and ra["datatype"] and schema.attrs["rows"] == DEMO_ROWS
    page = client.rows("PhotoObj", offset=10, limit=5, order="r", descending=True)
    want = demo.sql("SELECT objid FROM PhotoObj ORDER BY r DESC LIMIT 5 OFFSET 10").fetchall()
    assert page["objid"].tolist() == [w[0] for w in want]


def test_rows_as_a_random_sample(client, demo):
    df = client.rows("PhotoObj", sample=2500, seed=11)
    want = demo.sql("SELECT objid FROM PhotoObj USING SAMPLE reservoir(2500 ROWS) REPEATABLE (11)").fetchall()
    assert df["objid"].tolist() == [w[0] for w in want] and df.attrs["sample"] == {"rows": 2500, "total": DEMO_ROWS, "seed": 11}
    assert df.attrs["columns"]["ra"]["unit"] == "deg"
    t = client.rows("PhotoObj", sample=2500, seed=11, format="astropy")
    assert t["objid"].tolist() == df["objid"].tolist() and t.meta["sample"]["total"] == DEMO_ROWS and t["ra"].unit == u.deg
    assert client.rows("PhotoObj", sample=50_000).attrs["sample"] == {"rows": DEMO_ROWS, "total": DEMO_ROWS, "seed": 0}
    assert "sample" not in client.rows("PhotoObj", limit=3).attrs  # a page says nothing of samples
    with pytest.raises(ArchiveError) as err:
        client.rows("PhotoObj", sample=100_001)
    assert err.value.status == 400 and "sample" in str(err.value)
    with pytest.raises(ValueError):
        client.rows("PhotoObj", sample=10, order="r")
    job = client.submit("SELECT objid FROM PhotoObj").wait(timeout=60)
    drawn = job.result(sample=300, seed=2)
    assert len(set(drawn["objid"])) == 300 and drawn.attrs["sample"] == {"rows": 300, "total": DEMO_ROWS, "seed": 2}
    assert drawn["objid"].tolist() == job.result(sample=300, seed=2)["objid"].tolist()


def test_jobs_submit_wait_result_and_into(client, demo):
    job = client.submit("SELECT objid, r FROM PhotoObj WHERE r < 19 ORDER BY objid LIMIT 20", into="mydb.ClientBright", replace=True)
    assert job.wait(timeout=60) is job and job.state == "completed" and job.progress == 1
    assert job.rows == 20
    df = client.query("SELECT count(*) AS n FROM ClientBright", context="MyDB")
    assert df["n"][0] == 20
    plain = client.submit("SELECT objid FROM PhotoObj ORDER BY objid LIMIT 7").wait(timeout=60)
    assert plain.result()["objid"].tolist() == [r[0] for r in demo.sql("SELECT objid FROM PhotoObj ORDER BY objid LIMIT 7").fetchall()]
    assert plain.result(format="astropy", offset=2, limit=2)["objid"].tolist() == plain.result()["objid"].tolist()[2:4]
    assert any("rows" in line or "completed" in line for line in plain.log())
    ids = [j.id for j in client.jobs(state="completed")]
    assert plain.id in ids and job.id in ids
    assert client.job(plain.id).state == "completed"


def test_job_cancel_and_failure(client):
    later = "2099-01-01T00:00:00Z"
    job = client.submit("SELECT 1 AS x", start_time=later)
    assert job.state == "scheduled"
    assert job.cancel().state == "canceled"
    other = client.submit("SELECT 1 AS x", run=False)
    assert client.cancel(other.id).state == "canceled"
    bad = client.submit("SELECT CAST('x' AS INTEGER) AS boom")
    with pytest.raises(ArchiveError) as e:
        bad.wait(timeout=60)
    assert bad.state == "failed" and e.value.message == bad.error["message"]


def test_query_history_newest_first_filtered_paged_and_cleared(client):
    mark = f"h{time.time_ns()}"  # the shared server's owner has other tests' queries too: this test's carry a mark
    ones = [f"SELECT 1 AS {mark}", f"SELECT 2 AS {mark}"]
    for text in ones:
        client.query(text)
    job = client.submit(f"SELECT 3 AS {mark} UNION ALL SELECT 4", context="MyDB").wait(timeout=60)
    with pytest.raises(ArchiveError):
        client.query(f"SELECT nope AS {mark} FROM PhotoObj")
    client.rows("PhotoObj", limit=3)  # browsing a table and compiling are no queries of the user's
    client.compile(f"SELECT 5 AS {mark}")
    df = client.history(mark)
    assert df["query"].tolist() == [f"SELECT nope AS {mark} FROM PhotoObj", job.data["request"]["query"], *reversed(ones)]
    assert list(df.columns) == list(HISTORY_COLUMNS) and df.attrs["total"] == 4
    assert df["kind"].tolist() == ["quick", "job", "quick", "quick"] and df["job"].tolist()[:2] == [pd.NA, job.id]
    assert df["outcome"].tolist() == ["error", "ok", "ok", "ok"] and df["rows"].tolist()[1:] == [2, 1, 1]
    assert "nope" in df["error"][0]["message"].lower() and df["error"][1] is None
    assert df["context"].tolist() == ["DEMO", "MyDB", "DEMO", "DEMO"] and df["language"].unique().tolist() == ["sql"]
    assert isinstance(df["time"].dtype, pd.DatetimeTZDtype) and df["time"].is_monotonic_decreasing
    assert (pd.Timestamp.now(tz="UTC") - df["time"]).max() < pd.Timedelta(minutes=5) and (df["duration"] >= 0).all()
    assert client.history(mark.upper(), limit=2, offset=2)["query"].tolist() == list(reversed(ones))  # case-insensitive, paged
    empty = client.history("no query holds this text")
    assert empty.empty and list(empty.columns) == list(HISTORY_COLUMNS) and empty.attrs["total"] == 0
    with pytest.raises(ArchiveError) as e:
        client.history(limit=0)
    assert e.value.code == "bad_request"
    assert client.clear_history() >= 4
    assert client.history(mark).empty and client.history().attrs["total"] == 0


def test_job_progress_text_outside_a_notebook(client, capsys):
    job = client.submit("SELECT count(*) AS n FROM PhotoObj").wait(timeout=60, progress=True)
    err = capsys.readouterr().err
    assert f"job {job.id}" in err and "100%" in err and "completed" in err


def test_jobs_from_other_faces(client, live_server):
    r = requests.put(live_server.url + "archive/casjobs/contexts/DEMO/jobs", json={"Query": "SELECT TOP 3 objid FROM PhotoObj"},
                     headers={"Authorization": f"token {live_server.token}", "Accept": "text/plain"}, timeout=30)
    job = client.job(int(r.text)).wait(timeout=60)
    assert job.state == "completed" and job.rows == 3


def test_upload_dataframe_astropy_and_file(client, tmp_path):
    df = pd.DataFrame({"id": [1, 2, 3], "mag": [17.5, 18.25, None], "name": ["a", "b", "c"]})
    info = client.upload(df, "ClientUp", mode="replace")
    assert info["rowsWritten"] == 3
    back = client.query("SELECT * FROM ClientUp ORDER BY id", context="MyDB")
    assert back["name"].tolist() == ["a", "b", "c"] and back["mag"].isna().tolist() == [False, False, True]
    assert client.upload(df.iloc[:1], "ClientUp")["rowsWritten"] == 1  # auto: append
    assert client.query("SELECT count(*) AS n FROM ClientUp", context="MyDB")["n"][0] == 4
    t = Table({"ra": [10.5, 11.0] * u.deg, "flag": [True, False]})
    client.upload(t, "ClientAstro", mode="replace")
    assert client.query("SELECT ra FROM ClientAstro ORDER BY ra", context="MyDB")["ra"].tolist() == [10.5, 11.0]
    path = tmp_path / "small.csv"
    path.write_text("a,b\n1,x\n2,y\n")
    client.upload(path, "ClientCsv", mode="replace")
    assert client.rows("ClientCsv", context="MyDB")["b"].tolist() == ["x", "y"]
    client.rename("ClientCsv", "ClientCsv2")
    client.drop("ClientCsv2")
    assert "ClientCsv2" not in [t["name"] for t in client.tables("MyDB")]
    with pytest.raises(ArchiveError) as e:
        client.upload(df, "Nope", context="DEMO")
    assert e.value.status == 403


def test_directives_save_list_run(client):
    d = client.save_directive("client-bright", "SELECT TOP 5 objid FROM PhotoObj ORDER BY objid", language="tsql", folder="/client", description="five")
    assert d["id"] in [x["id"] for x in client.directives("/client")]
    job = client.run_directive(d["id"]).wait(timeout=60)
    assert len(job.result()) == 5
    client.delete_directive(d["id"])
    assert client.directives("/client") == []
    with pytest.raises(ArchiveError):
        client.save_directive("broken", "SELEC nothing")


def test_server_found_from_environment_and_running_servers(live_server, monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTER_ARCHIVE_URL", live_server.url)
    monkeypatch.setenv("JUPYTER_ARCHIVE_TOKEN", live_server.token)
    assert "DEMO" in [c["name"] for c in ArchiveClient().contexts()]
    monkeypatch.delenv("JUPYTER_ARCHIVE_URL")
    monkeypatch.delenv("JUPYTER_ARCHIVE_TOKEN")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(live_server.runtime_dir))
    c = ArchiveClient()
    assert c.url == live_server.url and len(c.tables()) == 2
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))  # no server there
    with pytest.raises(ArchiveError) as e:
        ArchiveClient()
    assert "no archive server found" in e.value.message


def test_server_found_by_the_kernels_session(live_server):
    headers = {"Authorization": f"token {live_server.token}"}
    r = requests.post(live_server.url + "api/sessions", json={"path": "k.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
                      headers=headers, timeout=60)
    assert r.status_code == 201, r.text
    try:
        found = find_server(kernel_id=r.json()["kernel"]["id"], runtime_dir=str(live_server.runtime_dir))
        assert found["url"] == live_server.url
    finally:
        requests.delete(live_server.url + f"api/sessions/{r.json()['id']}", headers=headers, timeout=60)


def test_archive_token_in_x_auth_token(live_server):
    out = subprocess.run([str(Path(sys.executable).parent / "jupyter"), "archive", "token", "create", "carol",
                          f"--ArchiveApp.data_dir={live_server.data_dir}"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    carol = live_server.client(archive_token=out.stdout.strip().splitlines()[-1])
    carol.upload(pd.DataFrame({"x": [1]}), "Mine", mode="replace")
    assert carol.session.headers["X-Auth-Token"] and "Authorization" not in carol.session.headers
    assert "Mine" in [t["name"] for t in carol.tables("MyDB")]
    assert "Mine" not in [t["name"] for t in live_server.client().tables("MyDB")]  # carol's own MyDB


def test_images_and_cutouts(client):
    from astropy.wcs import WCS

    images = client.images()
    assert images and {"id", "ra", "dec", "width", "height", "footprint", "planes"} <= set(images[0])
    first = images[0]
    ra, dec = first["ra"], first["dec"]
    assert first["id"] in [i["id"] for i in client.images(ra, dec)]
    hdus = client.cutout(ra, dec, 20.0, image=first["id"])
    data, wcs = hdus[0].data if hdus[0].data is not None else hdus[1].data, None
    header = hdus[0].header if hdus[0].data is not None else hdus[1].header
    wcs = WCS(header)
    assert data.ndim == 2 and 0 < data.shape[0] <= first["height"]
    x, y = wcs.world_to_pixel_values(ra, dec)  # the position asked for is inside the cutout, near its middle
    assert abs(x - (data.shape[1] - 1) / 2) <= 1 and abs(y - (data.shape[0] - 1) / 2) <= 1
    png = client.cutout(ra, dec, 20.0, plane="variance", format="png")  # the covering image is found
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ArchiveError) as e:
        client.cutout(ra, dec, 20.0, image="999999")
    assert e.value.status == 404 and "999999" in e.value.message
    with pytest.raises(ArchiveError) as e:
        client.cutout(0.0, -89.0, 20.0)
    assert "no calexp image" in e.value.message
