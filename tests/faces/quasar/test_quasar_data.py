"""Quasar's /data/fs writes: atomic replace and append from line-delimited JSON or CSV, delete, move."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import io

from tests.support import body_json

def ld() -> dict:
    # a fresh dict each time: jp_fetch writes the server's token into the headers it is given
    return {"Content-Type": "application/ldjson;mode=precise"}


def ldjson(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


async def read(fetch, *path):
    resp = await fetch("archive", "quasar", "data", "fs", *path)
    assert resp.code == 200, resp.body
    return [json.loads(line) for line in resp.body.decode().splitlines()]


async def test_put_replace_post_append_delete_move(fetch):
    rows = [{"city": "ALGONA", "state": "WA", "pop": 22846}, {"city": "AUBURN", "state": "WA", "pop": 22846}]
    resp = await fetch("archive", "quasar", "data", "fs", "mydb", "zips", method="PUT", body=ldjson(rows), headers=ld())
    assert resp.code == 200, resp.body
    assert await read(fetch, "mydb", "zips") == rows
    more = [{"city": "CUMMINGTON", "state": "MA", "pop": 1484}]
    assert (await fetch("archive", "quasar", "data", "fs", "mydb", "zips", method="POST", body=ldjson(more), headers=ld())).code == 200
    assert await read(fetch, "mydb", "zips") == rows + more
    # PUT replaces whatever was there
    assert (await fetch("archive", "quasar", "data", "fs", "mydb", "zips", method="PUT", body=ldjson(more), headers=ld())).code == 200
    assert await read(fetch, "mydb", "zips") == more
    # CSV works too
    resp = await fetch("archive", "quasar", "data", "fs", "mydb", "csvzips", method="PUT", body="city,pop\nX,1\nY,2\n",
                       headers={"Content-Type": "text/csv"})
    assert resp.code == 200, resp.body
    assert await read(fetch, "mydb", "csvzips") == [{"city": "X", "pop": 1}, {"city": "Y", "pop": 2}]
    # MOVE renames atomically within the context
    resp = await fetch("archive", "quasar", "data", "fs", "mydb", "zips", method="MOVE", headers={"Destination": "/mydb/zips2"},
                       allow_nonstandard_methods=True)
    assert resp.code == 200, resp.body
    assert await read(fetch, "mydb", "zips2") == more
    assert (await fetch("archive", "quasar", "data", "fs", "mydb", "zips")).code == 404
    bad = await fetch("archive", "quasar", "data", "fs", "mydb", "zips2", method="MOVE", headers={"Destination": "/demo/x"},
                      allow_nonstandard_methods=True)
    assert bad.code == 400 and "Illegal move" in body_json(bad)["error"]
    clash = await fetch("archive", "quasar", "data", "fs", "mydb", "zips2", method="MOVE", headers={"Destination": "csvzips"},
                        allow_nonstandard_methods=True)
    assert clash.code == 409
    # DELETE
    assert (await fetch("archive", "quasar", "data", "fs", "mydb", "zips2", method="DELETE")).code == 200
    gone = await fetch("archive", "quasar", "data", "fs", "mydb", "zips2", method="DELETE")
    assert gone.code == 404 and "doesn't exist" in body_json(gone)["error"]


async def test_a_bad_line_changes_nothing(fetch):
    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    await fetch("archive", "quasar", "data", "fs", "mydb", "t", method="PUT", body=ldjson(rows), headers=ld())
    broken = ldjson([{"a": 3, "b": "z"}]) + '{ "a": 4, "b": "w" },\r\n'
    for method in ("PUT", "POST"):
        resp = await fetch("archive", "quasar", "data", "fs", "mydb", "t", method=method, body=broken, headers=ld())
        assert resp.code == 400, resp.body
        err = body_json(resp)
        assert err["error"] == "some uploaded value(s) could not be processed"
        assert err["details"] and err["details"][0]["detail"]
        assert await read(fetch, "mydb", "t") == rows  # old data unchanged and readable
    wrong = await fetch("archive", "quasar", "data", "fs", "mydb", "t", method="POST", body=ldjson([{"a": "not a number", "b": "q"}]), headers=ld())
    assert wrong.code == 400
    assert await read(fetch, "mydb", "t") == rows


async def test_write_refusals(fetch):
    assert (await fetch("archive", "quasar", "data", "fs", "demo", "PhotoObj", method="PUT", body=ldjson([{"a": 1}]), headers=ld())).code == 403
    assert (await fetch("archive", "quasar", "data", "fs", "demo", "PhotoObj", method="DELETE")).code == 403
    missing = await fetch("archive", "quasar", "data", "fs", "mydb", "t", method="PUT", body="x")
    assert missing.code in (400, 415)
    odd = await fetch("archive", "quasar", "data", "fs", "mydb", "t", method="PUT", body="x", headers={"Content-Type": "image/png"})
    assert odd.code == 415 and "supportedMediaTypes" in body_json(odd)
    no_dest = await fetch("archive", "quasar", "data", "fs", "mydb", "t", method="MOVE", allow_nonstandard_methods=True)
    assert no_dest.code in (400, 404)
    anon = await fetch("archive", "quasar", "data", "fs", "mydb", "t", method="PUT", body=ldjson([{"a": 1}]),
                       headers={**ld(), "Authorization": ""})
    assert anon.code == 403


async def test_writes_to_a_writable_mount(fetch, jp_root_dir):
    db = jp_root_dir / "area.duckdb"
    duckdb.connect(str(db)).close()
    resp = await fetch("archive", "quasar", "mount", "fs", "area/", method="PUT",
                       body=json.dumps({"duckdb": {"connectionUri": str(db), "readOnly": False}}))
    assert resp.code == 200, resp.body
    rows = [{"id": 1, "v": 0.5}, {"id": 2, "v": 1.5}]
    resp = await fetch("archive", "quasar", "data", "fs", "area", "points", method="PUT", body=ldjson(rows), headers=ld())
    assert resp.code == 200, resp.body
    assert await read(fetch, "area", "points") == rows
    csv = await fetch("archive", "quasar", "data", "fs", "area", "points", headers={"Accept": "text/csv"})
    assert pd.read_csv(io.BytesIO(csv.body))["id"].tolist() == [1, 2]
