"""The %%archive magic through a real IPython shell against a real server."""

from __future__ import annotations

import time

import astropy.units as u
import pandas as pd
import pyarrow as pa
import pytest
from astropy.table import Table

from jupyter_archive.client import ArchiveError
from jupyter_archive.magic import bind_parameters
from jupyter_archive.widgets import JobProgress, QueryEditor, TableBrowser


def test_cell_query_shows_and_keeps_a_dataframe(ip):
    ip.run_cell("%%archive --context DEMO\nSELECT TOP 10 objid, ra, dec, r FROM PhotoObj WHERE r < 18")
    df = ip.user_ns["_"]
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["objid", "ra", "dec", "r"] and len(df) == 10
    assert (df["r"] < 18).all()
    ip.run_cell("%%archive --out bright --limit 3\nSELECT objid FROM PhotoObj ORDER BY objid")
    assert len(ip.user_ns["bright"]) == 3


def test_parameters_from_the_namespace_are_bound(ip, client):
    ip.user_ns.update(cut=17.5, cls="x' OR '1'='1")
    ip.run_cell("%%archive -o n1\nSELECT count(*) AS n FROM PhotoObj WHERE r < {cut}")
    ip.run_cell("%%archive -o n2\nSELECT count(*) AS n FROM PhotoObj WHERE r < :cut")
    want = client.query("SELECT count(*) AS n FROM PhotoObj WHERE r < 17.5")["n"][0]
    assert ip.user_ns["n1"]["n"][0] == ip.user_ns["n2"]["n"][0] == want
    ip.run_cell("%%archive -o none\nSELECT count(*) AS n FROM SpecObj WHERE class = {cls}")
    assert ip.user_ns["none"]["n"][0] == 0  # a value, never SQL
    ip.run_cell("%%archive --job -o j\nSELECT count(*) AS n FROM SpecObj WHERE class = :cls")
    request = ip.user_ns["j"].wait(timeout=60).data["request"]
    assert "'1'='1" not in str(request.get("query")) and ":cls" in request["query"]


def test_bind_parameters_leaves_strings_comments_and_casts():
    sql, params = bind_parameters("SELECT ':a', \"{a}\", x::int -- :a\nFROM t WHERE y = {a} AND z = :b", {"a": 1, "b": 2})
    assert sql == "SELECT ':a', \"{a}\", x::int -- :a\nFROM t WHERE y = :a AND z = :b"
    assert params == {"a": 1, "b": 2}
    assert bind_parameters("SELECT :v", {"v": 1}, skip={"v"}) == ("SELECT :v", {})


def test_formats_languages_and_variables(ip):
    ip.run_cell("%%archive --format astropy -o t\nSELECT TOP 3 ra, r FROM PhotoObj")
    t = ip.user_ns["t"]
    assert isinstance(t, Table) and t["ra"].unit == u.deg
    ip.run_cell("%%archive -f arrow -o a --lang adql\nSELECT TOP 2 objid FROM demo.PhotoObj")
    assert isinstance(ip.user_ns["a"], pa.Table) and ip.user_ns["a"].num_rows == 2
    ip.run_cell('%%archive --lang sql --var cls=\'GALAXY\' -o g\nSELECT count(*) AS n FROM SpecObj WHERE class = :cls')
    assert ip.user_ns["g"]["n"][0] > 0


def test_config_changes_the_defaults(ip):
    ip.run_cell('%config Archive.context = "MyDB"')
    try:
        ip.run_cell("%%archive\nCREATE OR REPLACE TABLE MagicT AS SELECT 1 AS one")
        ip.run_cell("%%archive -o one\nSELECT one FROM MagicT")
        assert ip.user_ns["one"]["one"].tolist() == [1]
    finally:
        ip.run_cell('%config Archive.context = "DEMO"')
    ip.run_cell("%config Archive.format = 'astropy'")
    try:
        ip.run_cell("%%archive -o t\nSELECT TOP 1 ra FROM PhotoObj")
        assert isinstance(ip.user_ns["t"], Table)
    finally:
        ip.run_cell("%config Archive.format = 'pandas'")


def test_job_into_mydb_with_progress(ip, client, capsys):
    ip.run_cell("%%archive --job --into mydb.MagicBright -o job\nSELECT TOP 15 objid, r FROM PhotoObj WHERE r < 19")
    assert "JobProgress(" in capsys.readouterr().out  # the widget was displayed (as text, outside a kernel)
    job = ip.user_ns["job"].wait(timeout=60)
    assert job.state == "completed" and job.rows == 15
    assert client.query("SELECT count(*) AS n FROM MagicBright", context="MyDB")["n"][0] == 15


def test_line_commands(ip, client):
    tables = ip.run_line_magic("archive", "tables")
    assert set(tables["name"]) == {"PhotoObj", "SpecObj"}
    assert "MyDB" in set(ip.run_line_magic("archive", "contexts")["name"])
    job = client.submit("SELECT 1 AS x", start_time="2099-01-01T00:00:00Z")
    assert job.id in ip.run_line_magic("archive", "jobs")["id"].tolist()
    w = ip.run_line_magic("archive", f"cancel {job.id}")
    assert isinstance(w, JobProgress) and client.job(job.id).state == "canceled"
    assert isinstance(ip.run_line_magic("archive", f"job {job.id}"), JobProgress)
    assert isinstance(ip.run_line_magic("archive", "editor"), QueryEditor)
    assert ip.run_line_magic("archive", "browse DEMO SpecObj").table.value == "SpecObj"
    assert isinstance(ip.run_line_magic("archive", "browse"), TableBrowser)
    assert ip.run_line_magic("archive", "SELECT TOP 1 objid FROM PhotoObj").shape == (1, 1)


def test_history_line_command(ip):
    mark = f"m{time.time_ns()}"  # the shared server's owner has other tests' queries too
    ip.run_cell(f"%%archive\nSELECT 1 AS {mark}")
    ip.run_cell(f"%%archive --lang adql\nSELECT TOP 1 objid AS {mark} FROM demo.PhotoObj")
    with pytest.raises(ArchiveError):
        ip.run_cell(f"%%archive\nSELECT nope AS {mark} FROM PhotoObj")
    shown = ip.run_line_magic("archive", f"history {mark}")
    assert shown["query"].tolist() == [f"SELECT nope AS {mark} FROM PhotoObj", f"SELECT TOP 1 objid AS {mark} FROM demo.PhotoObj",
                                       f"SELECT 1 AS {mark}"]  # fmt: skip
    assert shown["language"].tolist() == ["sql", "adql", "sql"] and shown["context"].tolist() == ["DEMO"] * 3
    assert shown["outcome"].tolist() == ["error", "ok", "ok"] and "nope" in shown["error"][0].lower() and pd.isna(shown["error"][1])
    assert ip.run_line_magic("archive", f"--limit 1 history {mark}")["query"].tolist() == [f"SELECT nope AS {mark} FROM PhotoObj"]
    assert len(ip.run_line_magic("archive", "history")) <= 20  # the newest 20 unless --limit says


def test_errors_are_the_servers_message(ip, capsys):
    with pytest.raises(ArchiveError) as e:
        ip.run_cell("%%archive\nSELECT nope FROM PhotoObj")
    assert "nope" in str(e.value)
    out = capsys.readouterr()
    shown = out.out + out.err
    assert "nope" in shown and "Traceback" not in shown
    with pytest.raises(ArchiveError):
        ip.run_cell("%%archive\n   ")
