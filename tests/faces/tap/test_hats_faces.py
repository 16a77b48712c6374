"""HATS mounts through the real server: TAP sync with pyvo, TAP_SCHEMA, CasJobs quick queries, the
native API's compile (the partitions phase), and Quasar's PUT mount of a catalog."""

from __future__ import annotations

import json

import duckdb
import pytest

from tests.support import body_json
from tests.support.faces import in_thread, mount_body

CONE = "SELECT objid FROM sky.stars WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 30.5, -2.25, 0.7)) = 1 ORDER BY objid"
ORACLE_CONE = ("SELECT objid FROM read_parquet('{root}/stars/dataset/**/*.parquet', hive_partitioning = false) "
               "WHERE degrees(2 * asin(sqrt(pow(sin(radians(dec + 2.25) / 2), 2) + cos(radians(dec)) * cos(radians(-2.25)) "
               "* pow(sin(radians(ra - 30.5) / 2), 2)))) < 0.7 ORDER BY objid")  # fmt: skip


@pytest.fixture
def archive_config(hats_root, tmp_path):
    return {
        "mounts": [{"path": "/sky", "type": "hats", "location": str(hats_root), "context": "SKY", "public": True}],
        "mount_roots": [str(hats_root), str(tmp_path)],
    }


async def test_tap_sync_with_pyvo_and_tap_schema(tap_service, hats_root):
    def work():
        res = tap_service.run_sync(CONE)
        names = [t.name for t in tap_service.tables]
        schema = tap_service.run_sync("SELECT table_name FROM TAP_SCHEMA.tables WHERE schema_name = 'sky' ORDER BY table_name")
        return [int(r["objid"]) for r in res], names, [str(r["table_name"]) for r in schema]

    got, names, schema = await in_thread(work)
    want = [r[0] for r in duckdb.sql(ORACLE_CONE.format(root=hats_root)).fetchall()]
    assert got == want and got
    assert "sky.stars" in names and schema == ["sky.stars", "sky.stars_dirs"]


async def test_casjobs_quick_query_and_native_compile(fetch):
    q = await fetch("archive", "casjobs", "contexts", "SKY", "query", method="POST", body=json.dumps({"Query": "SELECT COUNT(*) AS n FROM stars"}))
    assert q.code == 200 and q.body.decode().split() == ["n", "200000"]
    top = await fetch("archive", "casjobs", "contexts", "SKY", "query", method="POST",
                      body=json.dumps({"Query": "SELECT TOP 2 objid FROM stars_dirs ORDER BY objid"}))  # fmt: skip
    assert top.body.decode().split() == ["objid", "1", "2"]
    plan = body_json(await fetch("archive", "api", "compile", method="POST", body=json.dumps({"query": CONE, "language": "adql"})))
    detail = next(p["detail"] for p in plan["phases"] if p["name"] == "partitions")
    assert "sky.stars: read " in detail and ", total " in detail and "engine: in-process" in detail
    tree = body_json(await fetch("archive", "api", "contexts", "SKY", "tables"))
    assert {t["name"]: t["rows"] for t in tree["tables"]} == {"stars": 200_000, "stars_dirs": 200_000}
    table = body_json(await fetch("archive", "api", "contexts", "SKY", "tables", "stars"))
    stats = {c["name"]: c.get("statistics") for c in table["columns"]}
    assert stats["objid"] == {"min_value": 1, "max_value": 200_000, "null_count": 0} and stats["flags"]["max_value"] == 15


async def test_quasar_mounts_a_catalog_and_refuses_a_partial_one(fetch, hats_root, tmp_path):
    # a file:// URL is a path on this server's (shared) filesystem
    put = await fetch("archive", "quasar", "mount", "fs", "more/", method="PUT", body=mount_body("hats", (hats_root / "stars").as_uri(), context="MORE"))
    assert put.code == 200, put.body
    q = await fetch("archive", "casjobs", "contexts", "MORE", "query", method="POST", body=json.dumps({"Query": "SELECT COUNT(*) AS n FROM stars WHERE flags = 3"}))
    want = duckdb.sql(f"SELECT count(*) FROM read_parquet('{hats_root}/stars/dataset/**/*.parquet') WHERE flags = 3").fetchall()[0][0]
    assert q.code == 200 and q.body.decode().split() == ["n", str(want)]
    partial = tmp_path / "partial"
    (partial / "dataset").mkdir(parents=True)
    (partial / "properties").write_text("obs_collection=partial\ndataproduct_type=object\nhats_nrows=5\n")
    bad = await fetch("archive", "quasar", "mount", "fs", "partial/", method="PUT", body=mount_body("hats", partial))
    assert bad.code == 400 and "not a readable HATS catalog" in body_json(bad)["error"]
    for url in ("s3://bucket/stars", "http://127.0.0.1:1/stars", "memory://stars", "file://otherhost/stars"):
        bad = await fetch("archive", "quasar", "mount", "fs", "remote/", method="PUT", body=mount_body("hats", url))
        assert bad.code == 400 and "a path or a file:// URL" in body_json(bad)["error"], (url, bad.body)


async def test_a_catalog_damaged_on_disk_is_a_clear_4xx_in_every_face(fetch, hats_root, tmp_path):
    import shutil
    from urllib.parse import urlencode

    from tests.support.faces import shape_problem
    from tests.support.raw_http import Reply

    copy = tmp_path / "stars"
    shutil.copytree(hats_root / "stars", copy)
    put = await fetch("archive", "quasar", "mount", "fs", "copy/", method="PUT", body=mount_body("hats", copy, context="COPY"))
    assert put.code == 200, put.body
    sorted((copy / "dataset").rglob("Npix=*.parquet"))[0].write_bytes(b"not parquet any more")
    text = "SELECT TOP 5 objid FROM copy.stars ORDER BY objid"
    replies = {
        "tap": await fetch("archive", "tap", "sync", method="POST", body=urlencode({"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": text})),
        "casjobs": await fetch("archive", "casjobs", "contexts", "COPY", "query", method="POST", body=json.dumps({"Query": "SELECT TOP 5 objid FROM stars"})),
        "native": await fetch("archive", "api", "query", method="POST", body=json.dumps({"query": text, "language": "adql"})),
        "quasar": await fetch("archive", "quasar", "query", "fs", "copy", params={"q": "SELECT objid FROM stars LIMIT 5"}),
    }  # fmt: skip
    for face, resp in replies.items():
        assert 400 <= resp.code < 500, (face, resp.code, resp.body)
        reply = Reply(resp.code, {k.lower(): v for k, v in resp.headers.items()}, resp.body)
        assert shape_problem(face, reply) is None, (face, resp.body)
        assert b"changed on disk" in resp.body and b"mounted again" in resp.body, (face, resp.body)


async def test_compile_shows_boxes_and_polygons_read_few_partitions(fetch):
    for region in ("BOX('ICRS', 30.5, -2.25, 1.5, 0.8)", "POLYGON('ICRS', 30, -2, 31, -2, 30.5, -1)"):
        for how in ("CONTAINS", "INTERSECTS"):
            query = f"SELECT objid FROM sky.stars WHERE {how}(POINT('ICRS', ra, dec), {region}) = 1"
            plan = body_json(await fetch("archive", "api", "compile", method="POST", body=json.dumps({"query": query, "language": "adql"})))
            detail = next(p["detail"] for p in plan["phases"] if p["name"] == "partitions")
            read, total = (int(x) for x in detail.split("read ")[1].split(" (")[0].split(", total "))
            assert 0 < read < total / 4, detail
