"""Mounts from configuration: a directory of files and a DuckDB database file, queried over HTTP."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.table import Table

from tests.support import body_json


@pytest.fixture
def archive_config(tmp_path):
    files = tmp_path / "survey"
    (files / "deep").mkdir(parents=True)
    (files / "stars.csv").write_text("id,mag,name\n1,12.5,Vega\n2,13.25,Deneb\n3,14.0,\"Altair, the eagle\"\n")
    pq.write_table(pa.table({"id": pa.array([10, 20], pa.int64()), "flux": [1.5, 2.5]}), files / "deep" / "flux.parquet")
    t = Table({"obj": np.array([7, 8, 9], dtype=np.int32), "ra": [10.0, 11.0, 12.0]})
    t["ra"].unit = "deg"
    t.write(files / "fields.fits")
    db = tmp_path / "other.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE galaxies AS SELECT range AS gid, range * 0.5 AS z FROM range(100)")
    con.close()
    return {
        "mounts": [
            {"path": "/survey", "type": "files", "location": str(files), "context": "SURVEY"},
            {"path": "/ext/other", "type": "duckdb", "location": str(db), "context": "OTHER"},
        ]
    }


async def test_files_and_duckdb_mounts(fetch):
    ctx = {c["name"]: c for c in body_json(await fetch("archive", "api", "contexts"))["contexts"]}
    assert set(ctx) == {"SURVEY", "OTHER", "MyDB"}  # no demo when mounts are configured
    tables = {t["name"]: t for t in body_json(await fetch("archive", "api", "contexts", "survey", "tables"))["tables"]}
    assert set(tables) == {"stars", "deep/flux", "fields"}
    ra = next(c for c in tables["fields"]["columns"] if c["name"] == "ra")
    assert ra["unit"] == "deg"
    q = await fetch("archive", "casjobs", "contexts", "SURVEY", "query", method="POST",
                    body=json.dumps({"Query": "SELECT name FROM stars WHERE mag > 13 ORDER BY id"}))
    assert q.body.decode().splitlines()[1:] == ['"Deneb"', '"Altair, the eagle"']  # strings quoted, as CasJobs does
    q = await fetch("archive", "quasar", "query", "fs", "survey", "deep", params={"q": "SELECT sum(flux) AS s FROM `flux`"})
    assert json.loads(q.body) == {"s": 4.0}
    listing = body_json(await fetch("archive", "quasar", "data", "fs", "survey"))
    assert {(c["name"], c["type"]) for c in listing["children"]} == {("stars", "file"), ("deep", "directory"), ("fields", "file")}
    root = body_json(await fetch("archive", "quasar", "data", "fs", "ext"))
    assert root["children"] == [{"name": "other", "type": "directory"}]
    q = await fetch("archive", "api", "query", method="POST",
                    body=json.dumps({"query": "SELECT count(*) AS n FROM OTHER.galaxies g JOIN survey.stars s ON g.gid = s.id", "language": "mysql"}))
    assert body_json(q)["data"] == [[3]]
