"""Quasar's /mount API: run-time mounts (admins only, inside the allowed roots, kept across restarts),
writable DuckDB mounts, and /server/port."""

from __future__ import annotations

import json

import duckdb
import pytest

from jupyter_archive.core.archive import Archive
from jupyter_archive.core.config import ArchiveConfig
from jupyter_archive.core.catalog import Principal
from jupyter_archive.core.errors import ArchiveError

from tests.support import body_json
from tests.support.faces import mount_body


async def test_mount_lifecycle(fetch, sky_db):
    resp = await fetch("archive", "quasar", "mount", "fs", "sky/", method="PUT", body=mount_body("duckdb", sky_db))
    assert resp.code == 200, resp.body
    assert resp.body.decode() == "added /sky/"
    got = body_json(await fetch("archive", "quasar", "mount", "fs", "sky/"))
    assert got == {"duckdb": {"connectionUri": str(sky_db.resolve()), "readOnly": True, "context": "SKY", "public": True}}
    q = await fetch("archive", "casjobs", "contexts", "sky", "query", method="POST", body=json.dumps({"Query": "SELECT count(*) AS n FROM quasars"}))
    assert q.body.decode().split() == ["n", "50"]
    data = await fetch("archive", "quasar", "data", "fs", "sky", "quasars", params={"limit": "2"})
    assert len(data.body.decode().splitlines()) == 2
    again = await fetch("archive", "quasar", "mount", "fs", "sky/", method="PUT", body=mount_body("duckdb", sky_db, context="SKY2"))
    assert again.body.decode() == "updated /sky/"
    assert "SKY2" in [c["name"] for c in body_json(await fetch("archive", "api", "contexts"))["contexts"]]
    gone = await fetch("archive", "quasar", "mount", "fs", "sky/", method="DELETE")
    assert gone.code == 200 and gone.body.decode() == "deleted /sky/"
    assert (await fetch("archive", "quasar", "mount", "fs", "sky/", method="DELETE")).code == 204
    missing = await fetch("archive", "quasar", "mount", "fs", "sky/")
    assert missing.code == 404 and body_json(missing)["error"] == "Mount point not found."
    assert (await fetch("archive", "casjobs", "contexts", "SKY2", "query", method="POST", body=json.dumps({"Query": "SELECT 1"}))).code == 404


async def test_where_a_mounts_files_are_is_for_admins(fetch, sky_db, archive):
    assert (await fetch("archive", "quasar", "mount", "fs", "sky/", method="PUT", body=mount_body("duckdb", sky_db))).code == 200
    inner = mount_body("duckdb", sky_db, context="INNER", public=False)  # for signed-in users only
    assert (await fetch("archive", "quasar", "mount", "fs", "inner/", method="PUT", body=inner)).code == 200
    bob = {"Authorization": "", "X-Auth-Token": archive.users.create_token("bob")}
    seen = await fetch("archive", "quasar", "mount", "fs", "sky/", headers=dict(bob))
    assert body_json(seen) == {"duckdb": {"readOnly": True, "context": "SKY", "public": True}}  # no connectionUri
    assert body_json(await fetch("archive", "quasar", "mount", "fs", "inner/", headers=dict(bob))) == {
        "duckdb": {"readOnly": True, "context": "INNER", "public": False}}
    nothing = await fetch("archive", "quasar", "mount", "fs", "nothing/", headers=dict(bob))
    inside = await fetch("archive", "quasar", "mount", "fs", "sky", "quasars/", headers=dict(bob))
    assert inside.code == nothing.code == 404 and body_json(inside)["error"] == body_json(nothing)["error"]  # inside a mount: no mount
    admin = body_json(await fetch("archive", "quasar", "mount", "fs", "inner/"))
    assert admin["duckdb"]["connectionUri"] == str(sky_db.resolve())


async def test_mount_refusals(fetch, sky_db, tmp_path, archive, jp_root_dir):
    outside = tmp_path / "outside.duckdb"
    duckdb.connect(str(outside)).close()
    resp = await fetch("archive", "quasar", "mount", "fs", "evil/", method="PUT", body=mount_body("duckdb", outside))
    assert resp.code == 403 and "outside" in body_json(resp)["error"]
    link = jp_root_dir / "link.duckdb"
    link.symlink_to(outside)  # a symlink inside the root pointing out of it
    resp = await fetch("archive", "quasar", "mount", "fs", "evil/", method="PUT", body=mount_body("duckdb", link))
    assert resp.code == 403
    resp = await fetch("archive", "quasar", "mount", "fs", "x/", method="PUT", body=mount_body("duckdb", str(jp_root_dir / ".." / "x.duckdb")))
    assert resp.code in (400, 403)
    assert (await fetch("archive", "quasar", "mount", "fs", "x/", method="PUT", body=json.dumps({"mongodb": {"connectionUri": "x"}}))).code == 400
    assert (await fetch("archive", "quasar", "mount", "fs", "x/", method="PUT", body=json.dumps({"duckdb": {}}))).code == 400
    assert (await fetch("archive", "quasar", "mount", "fs", "x/", method="PUT", body="not json")).code == 400
    assert (await fetch("archive", "quasar", "mount", "fs", "mydb/", method="PUT", body=mount_body("duckdb", sky_db))).code == 409
    assert (await fetch("archive", "quasar", "mount", "fs", "demo/", method="DELETE")).code == 409  # the demo is configuration
    ok = await fetch("archive", "quasar", "mount", "fs", "a/b/", method="PUT", body=mount_body("duckdb", sky_db))
    assert ok.code == 200, ok.body
    nested = await fetch("archive", "quasar", "mount", "fs", "a/", method="PUT", body=mount_body("files", jp_root_dir))
    assert nested.code == 409
    token = archive.users.create_token("mallory")
    resp = await fetch("archive", "quasar", "mount", "fs", "m/", method="PUT", body=mount_body("duckdb", sky_db),
                       headers={"Authorization": "", "X-Auth-Token": token})
    assert resp.code == 403 and "admin" in body_json(resp)["error"]


async def test_writable_duckdb_mount(fetch, jp_root_dir, archive):
    scratch = jp_root_dir / "scratch.duckdb"
    duckdb.connect(str(scratch)).close()
    resp = await fetch("archive", "quasar", "mount", "fs", "scratch/", method="PUT", body=mount_body("duckdb", scratch, readOnly=False))
    assert resp.code == 200, resp.body

    async def q(text, context="SCRATCH", **kw):
        return await fetch("archive", "api", "query", method="POST", body=json.dumps({"query": text, "context": context}), **kw)

    assert (await q("CREATE TABLE bright AS SELECT objid, r FROM DEMO.PhotoObj WHERE r < 17")).code == 200
    n = body_json(await q("SELECT count(*) AS n FROM bright"))["data"][0][0]
    assert n > 0
    assert "bright" in [t["name"] for t in body_json(await fetch("archive", "api", "contexts", "scratch", "tables"))["tables"]]
    # another signed-in user may read and write it too (a shared scratch area)
    token = archive.users.create_token("bob")
    other = await q("INSERT INTO bright VALUES (1, 1.0)", headers={"Authorization": "", "X-Auth-Token": token})
    assert other.code == 200, other.body
    assert body_json(await q("SELECT count(*) AS n FROM bright"))["data"][0][0] == n + 1
    # MyDB and a writable mount cannot meet in one query
    mixed = await q("CREATE TABLE mine AS SELECT * FROM SCRATCH.bright", context="MyDB")
    assert mixed.code == 400 and "MyDB" in body_json(mixed)["error"]["message"]
    # a job on the writable mount
    job = body_json(await fetch("archive", "api", "jobs", method="POST",
                                body=json.dumps({"query": "SELECT * FROM bright", "context": "SCRATCH", "into": "SCRATCH.copy"})))
    done = body_json(await fetch("archive", "api", "jobs", str(job["id"]), params={"wait": "20"}))
    assert done["state"] == "completed", done
    assert body_json(await q("SELECT count(*) FROM copy"))["data"][0][0] == n + 1


def test_run_time_mounts_survive_a_restart(archive_data_dir, tmp_path):
    db = tmp_path / "kept.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE t AS SELECT 1 AS a")
    con.close()
    admin = Principal("root", admin=True)
    a = Archive(ArchiveConfig(data_dir=archive_data_dir, demo_rows=20_000, mount_roots=[str(tmp_path)]))
    assert a.mounts.put(admin, "/kept", {"duckdb": {"connectionUri": str(db)}}) == "added"
    with pytest.raises(ArchiveError) as err:
        a.mounts.put(Principal("someone"), "/other", {"duckdb": {"connectionUri": str(db)}})
    assert err.value.status == 403
    a.close()
    b = Archive(ArchiveConfig(data_dir=archive_data_dir, demo_rows=20_000, mount_roots=[str(tmp_path)]))
    try:
        assert [t.name for t in b.catalog.tables(admin, "KEPT")] == ["t"]
    finally:
        b.close()


async def test_server_port(fetch, jp_serverapp):
    resp = await fetch("archive", "quasar", "server", "port")
    assert resp.code == 200 and int(resp.body) == jp_serverapp.port
    for method, body in (("PUT", "20224"), ("DELETE", None)):
        r = await fetch("archive", "quasar", "server", "port", method=method, body=body, allow_nonstandard_methods=True)
        assert r.code == 405
        assert "Jupyter" in body_json(r)["error"]
