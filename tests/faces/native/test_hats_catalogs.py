"""HATS catalogs through the real server's native API: a catalog x catalog cross-match answered as DuckDB over
all the files answers it (and a radius beyond the margin refused in the face's error shape), and a MyDB table
turned into a HATS catalog by a ``hats_import`` job: queryable with the table's rows, its owner's alone, and a
bad import refused or failed clearly with nothing left behind."""

from __future__ import annotations

import json

import duckdb
import pytest

from tests.support import body_json
from tests.support.hats_data import HATS_ROWS

AUTH = {"Authorization": ""}  # a token user: not the server's owner


@pytest.fixture
def archive_config(hats_root, hats_near_root):
    return {"mounts": [{"path": "/sky", "type": "hats", "location": str(hats_root), "context": "SKY"},
                       {"path": "/near", "type": "hats", "location": str(hats_near_root), "context": "NEAR"}]}  # fmt: skip


async def post(fetch, path, body, token=None):
    headers = {**AUTH, "X-Auth-Token": token} if token else {}
    return await fetch("archive", "api", path, method="POST", body=json.dumps(body), headers=headers)


async def test_a_catalog_x_catalog_cross_match_equals_the_oracle(fetch, hats_root, hats_near_root):
    r = 4 / 3600
    text = ("SELECT a.objid AS a, b.objid AS b FROM near.near AS a JOIN sky.stars AS b "
            f"ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, {r!r})) ORDER BY a, b")  # fmt: skip
    resp = await post(fetch, "query", {"query": text, "language": "adql"})
    assert resp.code == 200, resp.body
    got = [tuple(row) for row in body_json(resp)["data"]]
    d = ("degrees(2 * asin(sqrt(pow(sin(radians(b.dec - a.dec) / 2), 2) + cos(radians(a.dec)) * cos(radians(b.dec)) "
         "* pow(sin(radians(b.ra - a.ra) / 2), 2))))")  # fmt: skip
    want = duckdb.sql(
        f"SELECT a.objid, b.objid FROM read_parquet('{hats_near_root}/near/dataset/**/*.parquet') AS a "
        f"JOIN read_parquet('{hats_root}/stars/dataset/**/*.parquet') AS b ON a.dec BETWEEN b.dec - 0.01 AND b.dec + 0.01 "
        f"WHERE {d} < {r} ORDER BY 1, 2"
    ).fetchall()  # fmt: skip
    assert got == want and len(got) > 1000
    plan = body_json(await post(fetch, "compile", {"query": text, "language": "adql"}))
    detail = next(p["detail"] for p in plan["phases"] if p["name"] == "partitions")
    assert "cross-match stars x near" in detail and "pairs of partitions" in detail and "margin cache (10 arcsec)" in detail
    wide = await post(fetch, "query", {"query": text.replace(repr(r), "0.01"), "language": "adql"})
    assert wide.code == 400 and "margin" in body_json(wide)["error"]["message"], wide.body


async def wait_job(fetch, job_id, token=None):
    headers = {**AUTH, "X-Auth-Token": token} if token else {}
    for _ in range(60):
        job = body_json(await fetch("archive", "api", "jobs", str(job_id), params={"wait": "10"}, headers=headers))
        if job["state"] in ("completed", "failed", "canceled"):
            return job
    return job


async def test_a_mydb_table_becomes_a_private_hats_catalog(fetch, archive):
    alice, bob = archive.users.create_token("alice"), archive.users.create_token("bob")
    made_text = "SELECT objid, ra, dec, g INTO mydb.picked FROM stars WHERE objid % 40 = 3"
    made = await post(fetch, "query", {"query": made_text, "context": "SKY", "language": "sql"}, alice)
    assert made.code == 200, made.body
    resp = await post(fetch, "jobs", {"kind": "hats_import", "table": "picked", "name": "mine", "margin_arcsec": 5}, alice)
    assert resp.code == 201, resp.body
    job = await wait_job(fetch, body_json(resp)["id"], alice)
    assert job["state"] == "completed", job
    same = "SELECT COUNT(*) AS n, SUM(objid) AS s, MIN(ra) AS lo, MAX(dec) AS hi, SUM(CAST(ROUND(g * 1000) AS BIGINT)) AS g FROM {t}"
    mine = body_json(await post(fetch, "query", {"query": same.format(t="alice_hats.mine"), "language": "adql"}, alice))
    table = body_json(await post(fetch, "query", {"query": same.format(t="mydb.picked"), "language": "adql"}, alice))
    assert mine["data"] == table["data"] and table["data"][0][0] == 5000, (mine, table)
    contexts = lambda token: fetch("archive", "api", "contexts", headers={**AUTH, "X-Auth-Token": token})  # noqa: E731
    assert "ALICE_HATS" in json.dumps(body_json(await contexts(alice)))
    assert "ALICE_HATS" not in json.dumps(body_json(await contexts(bob)))
    other = await post(fetch, "query", {"query": "SELECT COUNT(*) FROM alice_hats.mine", "language": "adql"}, bob)
    assert other.code in (400, 404) and "alice_hats" in body_json(other)["error"]["message"].lower()
    folder = archive.hats_imports.user_folder(archive.users.principal("alice"))
    assert sorted(p.name for p in folder.iterdir()) == ["mine", "mine_5arcs"]  # nothing of the build left beside it
    # alice's history holds her queries and the import's job, not the import's own check of the positions
    history = body_json(await fetch("archive", "api", "history", headers={**AUTH, "X-Auth-Token": alice}))["history"]
    assert sorted(e["query"] for e in history) == sorted([made_text, same.format(t="alice_hats.mine"), same.format(t="mydb.picked")]), history


@pytest.mark.parametrize(
    ("body", "words"),
    [({"table": "nosuch"}, "nosuch"), ({"table": "picked", "ra": "g2"}, "no column 'g2'"), ({"table": "picked", "dec": "label"}, "not a number"),
     ({"table": "picked", "name": "1bad"}, "name"), ({"table": "picked", "margin_arcsec": -1}, "margin_arcsec"), ({}, "table")],
)  # fmt: skip
async def test_a_bad_import_is_refused_clearly(fetch, archive, body, words):
    alice = archive.users.create_token("alice")
    made = await post(fetch, "query", {"query": "SELECT 1 AS objid, 10.0 AS ra, 5.0 AS dec, 'x' AS label INTO mydb.picked", "language": "sql"}, alice)
    assert made.code == 200, made.body
    resp = await post(fetch, "jobs", {"kind": "hats_import", **body}, alice)
    assert resp.code in (400, 404) and words in body_json(resp)["error"]["message"], resp.body


async def test_an_import_that_fails_leaves_nothing_behind(fetch, archive):
    alice = archive.users.create_token("alice")
    made = await post(fetch, "query", {"query": "SELECT 1 AS objid, 10.0 AS ra, 120.0 AS dec INTO mydb.off_sky", "language": "sql"}, alice)
    assert made.code == 200, made.body
    resp = await post(fetch, "jobs", {"kind": "hats_import", "table": "off_sky"}, alice)
    assert resp.code == 201, resp.body
    job = await wait_job(fetch, body_json(resp)["id"], alice)
    assert job["state"] == "failed" and "outside [-90, 90]" in json.dumps(job), job
    history = body_json(await fetch("archive", "api", "history", headers={**AUTH, "X-Auth-Token": alice}))["history"]
    assert [e["query"] for e in history] == ["SELECT 1 AS objid, 10.0 AS ra, 120.0 AS dec INTO mydb.off_sky"], history  # not the check's
    folder = archive.hats_imports.user_folder(archive.users.principal("alice"))
    assert not folder.exists() or not any(folder.iterdir())
    resp = await post(fetch, "jobs", {"kind": "hats_import", "table": "off_sky", "name": "gone"}, alice)
    job_id = body_json(resp)["id"]
    canceled = await fetch("archive", "api", "jobs", str(job_id), "cancel", method="POST", body="", headers={**AUTH, "X-Auth-Token": alice})
    assert canceled.code == 200, canceled.body
    assert (await wait_job(fetch, job_id, alice))["state"] in ("canceled", "failed")
    assert not folder.exists() or not any(folder.iterdir())
    unknown = await post(fetch, "jobs", {"kind": "teleport"}, alice)
    assert unknown.code == 400 and "hats_import" in body_json(unknown)["error"]["message"]


async def test_a_random_sample_of_a_catalog_reads_all_its_partitions_in_one_pass(fetch, hats_oracle):
    async def drawn(seed):
        resp = await fetch("archive", "api", "contexts", "SKY", "tables", "stars", "rows", params={"sample": "3000", "seed": seed})
        assert resp.code == 200, resp.body
        return [row[0] for row in body_json(resp)["data"]], resp.headers["X-Archive-Sample"]

    objids, said = await drawn("4")
    assert said == f"3000 of {HATS_ROWS}; seed=4" and len(set(objids)) == 3000
    columns = [c[0] for c in hats_oracle.sql("SELECT * FROM stars LIMIT 0").description]
    assert columns[0] == "objid"
    everything = sorted(r[0] for r in hats_oracle.sql("SELECT objid FROM stars").fetchall())
    assert set(objids) <= set(everything)
    position = {v: i for i, v in enumerate(everything)}  # objid follows the sky: a tenth of them is a part of it
    tenths = [0] * 10
    for v in objids:
        tenths[position[v] * 10 // HATS_ROWS] += 1
    assert all(220 <= n <= 380 for n in tenths), tenths
    assert (await drawn("4"))[0] == objids and set((await drawn("5"))[0]) != set(objids)


async def test_an_imported_catalog_is_deleted_whole_by_its_owner_alone(fetch, archive):
    alice, bob = archive.users.create_token("alice"), archive.users.create_token("bob")
    made = await post(fetch, "query", {"query": "SELECT objid, ra, dec INTO mydb.picked FROM stars WHERE objid % 40 = 3", "context": "SKY", "language": "sql"}, alice)
    assert made.code == 200, made.body
    for name in ("one", "two"):
        resp = await post(fetch, "jobs", {"kind": "hats_import", "table": "picked", "name": name, "margin_arcsec": 5}, alice)
        assert (await wait_job(fetch, body_json(resp)["id"], alice))["state"] == "completed"
    # A margin cache's folder is taken like a catalog's: neither name may be imported over it.
    for name, margin in (("one_5arcs", 5), ("one", 7)):
        taken = await post(fetch, "jobs", {"kind": "hats_import", "table": "picked", "name": name, "margin_arcsec": margin}, alice)
        assert taken.code == 409 and name in body_json(taken)["error"]["message"], taken.body
    folder = archive.hats_imports.user_folder(archive.users.principal("alice"))

    def delete(context, name, token):
        return fetch("archive", "api", "contexts", context, "tables", name, method="DELETE", headers={**AUTH, "X-Auth-Token": token})

    def count(name, token):
        return post(fetch, "query", {"query": f"SELECT COUNT(*) AS n FROM alice_hats.{name}", "language": "adql"}, token)

    assert (await delete("ALICE_HATS", "one", bob)).code == 404  # bob sees no such context
    shared = await delete("SKY", "stars", alice)
    assert shared.code == 403 and "read-only" in body_json(shared)["error"]["message"], shared.body
    assert (await delete("ALICE_HATS", "ONE", alice)).code == 204  # names as in queries: any case
    assert sorted(p.name for p in folder.iterdir()) == ["two", "two_5arcs"]  # the catalog and its margin cache, nothing left aside
    gone = await count("one", alice)
    assert gone.code == 400 and "one" in body_json(gone)["error"]["message"], gone.body
    assert body_json(await count("two", alice))["data"] == [[5000]]
    again = await delete("ALICE_HATS", "one", alice)
    assert again.code == 404 and "one" in body_json(again)["error"]["message"], again.body
    assert (await delete("ALICE_HATS", "two", alice)).code == 204
    assert not any(folder.iterdir())
    listing = body_json(await fetch("archive", "api", "contexts", headers={**AUTH, "X-Auth-Token": alice}))
    assert "ALICE_HATS" not in json.dumps(listing)
    assert not [m for m in archive.mounts.store.all() if m.get("owner")], "the mount is gone from what a restart mounts"
    # The name is free again.
    resp = await post(fetch, "jobs", {"kind": "hats_import", "table": "picked", "name": "one", "margin_arcsec": 5}, alice)
    assert (await wait_job(fetch, body_json(resp)["id"], alice))["state"] == "completed"
    assert body_json(await count("one", alice))["data"] == [[5000]]
