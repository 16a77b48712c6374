"""A PostgreSQL mount through the real server: queried, pushed down, compiled, streamed; no cross-backend joins."""

from __future__ import annotations

import io
import json

import pandas as pd
import psycopg
import pytest

from tests.support import body_json


@pytest.fixture
def archive_config(pg_server):  # noqa: F811
    return {"mounts": [
        {"path": "/pg", "type": "postgresql", "location": pg_server, "context": "PG"},
        {"path": "/demo", "type": "duckdb", "location": "", "context": "DEMO"},
    ]}


@pytest.fixture
def jp_server_config(archive_data_dir, archive_config):
    # The demo file of the per-test data dir (the mounts list above needs its real path).
    mounts = [dict(m) for m in archive_config["mounts"]]
    mounts[1]["location"] = str(archive_data_dir / "demo" / "demo.duckdb")
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_archive": True}, "allow_unauthenticated_access": False},
        "ArchiveApp": {"data_dir": str(archive_data_dir), "mounts": mounts},
    }


async def q(fetch, text, context="PG", language="sql", **body):
    return await fetch("archive", "api", "query", method="POST",
                       body=json.dumps({"query": text, "context": context, "language": language, **body}))


async def test_pg_tables_and_queries(fetch, pg_server):  # noqa: F811
    tables = {t["name"]: t for t in body_json(await fetch("archive", "api", "contexts", "PG", "tables"))["tables"]}
    assert {"stars", "galaxies", "bright_stars", "survey/fields", "big"} <= set(tables)
    assert tables["stars"]["description"] == "Stars of the sample"
    resp = await q(fetch, "SELECT id, name, mag FROM stars WHERE mag < $m ORDER BY id", params={"m": 5})
    assert resp.code == 200, resp.body
    got = body_json(resp)
    with psycopg.connect(pg_server) as con:
        want = con.execute("SELECT id, name, mag FROM stars WHERE mag < 5 ORDER BY id").fetchall()
    assert [tuple(r) for r in got["data"]] == [tuple(w) for w in want] and want
    # CasJobs T-SQL and Quasar SQL² reach it too
    cas = await fetch("archive", "casjobs", "contexts", "PG", "query", method="POST",
                      body=json.dumps({"Query": "SELECT TOP 3 id FROM big ORDER BY id DESC"}), headers={"Accept": "application/json+array"})
    assert body_json(cas)["Result"][0]["Data"] == [[200000], [199999], [199998]]
    qs = await fetch("archive", "quasar", "query", "fs", "pg", params={"q": "SELECT count(*) AS n FROM `big` WHERE x > :v", "var.v": "50000"})
    assert json.loads(qs.body) == {"n": 100000}
    # table reads stream in batches, every format
    csv = await fetch("archive", "quasar", "data", "fs", "pg", "big", headers={"Accept": "text/csv"})
    frame = pd.read_csv(io.BytesIO(csv.body))
    assert len(frame) == 200_000 and frame["id"].iloc[-1] == 200_000


async def test_pg_compile_shows_the_pushed_sql(fetch):
    resp = await fetch("archive", "api", "compile", method="POST",
                       body=json.dumps({"query": "SELECT name FROM stars WHERE mag < $m", "context": "PG", "params": {"m": 3}}))
    phases = {p["name"]: p for p in body_json(resp)["phases"]}
    pushed = phases["Pushed SQL"]["detail"]
    assert "stars" in pushed and "%(p1)s" in pushed and '"pg"' not in pushed
    quasar = body_json(await fetch("archive", "quasar", "compile", "fs", "pg", params={"q": "SELECT name FROM `stars`"}))
    assert any(p["name"] == "Pushed SQL" for p in quasar["phases"])


async def test_pg_mount_is_read_only_and_errors_are_clear(fetch):
    err = await q(fetch, "INSERT INTO stars (id) VALUES (99)")
    assert err.code == 403
    bad = await q(fetch, "SELECT nosuch FROM stars")
    assert bad.code == 400 and "nosuch" in body_json(bad)["error"]["message"]
    mixed = await q(fetch, "SELECT count(*) FROM stars s JOIN DEMO.PhotoObj p ON s.id = p.type", context="PG")
    assert mixed.code == 400 and "different backends" in body_json(mixed)["error"]["message"]


async def test_copy_from_pg_into_mydb(fetch):
    resp = await fetch("archive", "casjobs", "contexts", "PG", "query", method="POST",
                       body=json.dumps({"Query": "SELECT id, x INTO mydb.half FROM big WHERE id <= 1000"}))
    assert resp.code == 200, resp.body
    assert resp.body.decode().splitlines() == ["Rows Affected", "1000"]
    n = body_json(await q(fetch, "SELECT count(*), max(id) FROM half", context="MyDB"))["data"]
    assert n == [[1000, 1000]]
    job = body_json(await fetch("archive", "api", "jobs", method="POST",
                                body=json.dumps({"query": "SELECT * FROM galaxies", "context": "PG", "into": "mydb.gal"})))
    done = body_json(await fetch("archive", "api", "jobs", str(job["id"]), params={"wait": "20"}))
    assert done["state"] == "completed", done
    stored = body_json(await fetch("archive", "api", "jobs", method="POST", body=json.dumps({"query": "SELECT id FROM big", "context": "PG"})))
    done = body_json(await fetch("archive", "api", "jobs", str(stored["id"]), params={"wait": "30"}))
    assert done["state"] == "completed" and done["rows"] == 200_000


async def test_sql_mounts_through_the_mount_api(fetch, pg_server, jp_root_dir):  # noqa: F811
    resp = await fetch("archive", "quasar", "mount", "fs", "pg2/", method="PUT", body=json.dumps({"postgresql": {"connectionUri": pg_server}}))
    assert resp.code == 200, resp.body
    shown = body_json(await fetch("archive", "quasar", "mount", "fs", "pg2/"))["postgresql"]["connectionUri"]
    assert "s3cret" not in shown and "****" in shown
    assert body_json(await q(fetch, "SELECT count(*) FROM galaxies", context="PG2"))["data"][0][0] > 0
    import sqlite3

    path = jp_root_dir / "small.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    con.execute("INSERT INTO t VALUES (1, 'x'), (2, 'y')")
    con.commit()
    con.close()
    resp = await fetch("archive", "quasar", "mount", "fs", "lite/", method="PUT", body=json.dumps({"sqlite": {"connectionUri": str(path)}}))
    assert resp.code == 200, resp.body
    assert body_json(await q(fetch, "SELECT b FROM t ORDER BY a", context="LITE"))["data"] == [["x"], ["y"]]
    bad = await fetch("archive", "quasar", "mount", "fs", "bad/", method="PUT",
                      body=json.dumps({"postgresql": {"connectionUri": pg_server.replace("s3cret-pw", "wrong")}}))
    assert bad.code == 400 and "wrong" not in body_json(bad)["error"]
