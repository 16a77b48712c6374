"""Directives in the core: saved, foldered queries that are checked when saved and run as jobs."""

from __future__ import annotations

import time

import pytest

from jupyter_archive.core.archive import Archive
from jupyter_archive.core.config import ArchiveConfig
from jupyter_archive.core.errors import ArchiveError

BRIGHT = "SELECT objid, r FROM PhotoObj WHERE r < 19 ORDER BY objid"


@pytest.fixture
def archive(archive_data_dir):
    a = Archive(ArchiveConfig(data_dir=archive_data_dir, demo_rows=20_000))
    a.start()
    yield a
    a.close()


@pytest.fixture
def alice(archive):
    return archive.users.principal("alice")


def make(archive, who, name="bright", **fields):
    return archive.directives.create(who, {"name": name, "query": BRIGHT, "context": "DEMO", **fields})


def test_create_normalises_and_reads_back(archive, alice):
    d = make(archive, alice, folderPath="Users//alice/My Folder/", description="stars", targetTable="mydb.Bright")
    assert len(d.id) == 36 and d.id.count("-") == 4  # a UUID4 string
    assert d.folder_path == "/Users/alice/My Folder" and d.path == "/Users/alice/My Folder/bright"
    assert d.language == "sql" and d.context == "DEMO" and d.target_table == "mydb.Bright" and d.owner == "alice"
    j = archive.directives.get(alice, d.id).to_json()
    assert j["folderPath"] == "/Users/alice/My Folder" and j["description"] == "stars"
    assert j["creationTimeStamp"].endswith("Z") and len(j["creationTimeStamp"]) == len("2024-01-02T03:04:05.678Z")
    assert archive.directives.by_path(alice, "/users/alice/my folder/BRIGHT").id == d.id  # case-insensitive path
    assert make(archive, alice, name="top").folder_path == "/"  # default folder


def test_list_pages_and_folders(archive, alice):
    for i in range(5):
        make(archive, alice, name=f"d{i}", folderPath="/a")
    for i in range(3):
        make(archive, alice, name=f"e{i}", folderPath="/b")
    items, total = archive.directives.list(alice)
    assert total == 8 and [d.name for d in items] == ["d0", "d1", "d2", "d3", "d4", "e0", "e1", "e2"]
    items, total = archive.directives.list(alice, "/a", start=2, limit=2)
    assert total == 5 and [d.name for d in items] == ["d2", "d3"]
    items, total = archive.directives.list(alice, "/b/", start=2, limit=10)
    assert total == 3 and [d.name for d in items] == ["e2"]
    assert archive.directives.list(alice, "/nowhere") == ([], 0)


def test_update_and_delete(archive, alice):
    d = make(archive, alice, folderPath="/a")
    time.sleep(0.01)
    u = archive.directives.update(alice, d.id, {"name": "brighter", "query": "SELECT objid FROM PhotoObj WHERE r < 18"})
    assert u.name == "brighter" and u.folder_path == "/a" and u.context == "DEMO" and u.modified > d.modified
    assert u.created == d.created
    again = archive.directives.get(alice, d.id)
    assert again.query.endswith("r < 18") and again.name == "brighter"
    u = archive.directives.update(alice, d.id, {"targetTable": "T1", "folderPath": "/b"})
    assert (u.target_table, u.folder_path) == ("T1", "/b")
    assert archive.directives.update(alice, d.id, {"targetTable": None}).target_table is None
    with pytest.raises(ArchiveError) as err:
        archive.directives.update(alice, d.id, {"query": "SELECT nope FROM PhotoObj"})
    assert err.value.status == 400
    assert archive.directives.get(alice, d.id).query.endswith("r < 18")  # a refused edit changes nothing
    archive.directives.delete(alice, d.id)
    with pytest.raises(ArchiveError) as err:
        archive.directives.get(alice, d.id)
    assert err.value.status == 404 and err.value.code == "not_found"


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"name": ""}, 400, "bad_request"),
        ({"name": "a/b"}, 400, "bad_request"),
        ({"query": "  "}, 400, "bad_request"),
        ({"query": "SELECT FROM WHERE"}, 400, "syntax_error"),
        ({"query": "SELECT * FROM NoSuchTable"}, 400, "unknown_table"),
        ({"language": "cobol"}, 400, "bad_request"),
        ({"context": "NOPE"}, 404, None),
        ({"targetTable": "demo.Evil"}, 403, "permission"),
        ({"targetTable": "a.b.c"}, 400, "bad_request"),
        ({"folderPath": "/a/../b"}, 400, "bad_request"),
        ({"colour": "red"}, 400, "bad_request"),
    ],
)
def test_validation_refuses_at_save_time(archive, alice, fields, status, code):
    with pytest.raises(ArchiveError) as err:
        make(archive, alice, **fields)
    assert err.value.status == status, err.value.message
    if code:
        assert err.value.code == code
    assert archive.directives.list(alice) == ([], 0)


def test_syntax_error_carries_the_position(archive, alice):
    with pytest.raises(ArchiveError) as err:
        make(archive, alice, query="SELECT objid FROM PhotoObj WHERE")
    assert err.value.code == "syntax_error" and err.value.position is not None


def test_names_are_unique_per_owner_and_folder(archive, alice):
    make(archive, alice, folderPath="/a")
    with pytest.raises(ArchiveError) as err:
        make(archive, alice, name="BRIGHT", folderPath="/a/")
    assert err.value.status == 409 and err.value.code == "conflict"
    other = make(archive, alice, folderPath="/b")
    with pytest.raises(ArchiveError) as err:
        archive.directives.update(alice, other.id, {"folderPath": "/a"})
    assert err.value.status == 409
    make(archive, archive.users.principal("bob"), folderPath="/a")  # another owner may use the name


def test_run_writes_the_target_table_and_reruns(archive, alice):
    d = make(archive, alice, folderPath="/Users/alice", targetTable="mydb.Bright")
    job = archive.directives.run(alice, d.id)
    assert job.kind == "directive" and job.face == "sas" and job.owner == "alice"
    assert job.request["directive"] == d.id and job.request["directive_name"] == "bright"
    assert job.request["into"] == {"context": "MyDB", "name": "Bright"} and job.request["modified_query"]
    job = archive.jobs.wait(alice, job.id, timeout=30)
    assert job.state == "completed", job.error_message
    want = archive.queries.query(alice, "SELECT count(*) AS n FROM PhotoObj WHERE r < 19", context="DEMO").to_table().column("n")[0].as_py()
    got = archive.queries.query(alice, "SELECT count(*) AS n FROM Bright", context="MyDB").to_table().column("n")[0].as_py()
    assert job.rows == got == want > 0 and job.results["table"] == {"context": "MyDB", "name": "Bright"}
    # a second run (by path) replaces the table rather than failing on it
    archive.directives.update(alice, d.id, {"query": "SELECT objid, r FROM PhotoObj WHERE r < 18"})
    job2 = archive.directives.run(alice, "/Users/alice/bright", by_path=True)
    job2 = archive.jobs.wait(alice, job2.id, timeout=30)
    assert job2.state == "completed", job2.error_message
    n18 = archive.queries.query(alice, "SELECT count(*) AS n FROM Bright", context="MyDB").to_table().column("n")[0].as_py()
    assert job2.rows == n18 < got
    jobs, total = archive.jobs.list(alice, face="sas")
    assert total == 2 and {j.id for j in jobs} == {job.id, job2.id}


def test_run_without_target_keeps_the_rows(archive, alice):
    d = make(archive, alice)
    job = archive.jobs.wait(alice, archive.directives.run(alice, d.id, face="native").id, timeout=30)
    assert job.state == "completed" and job.face == "native" and "store" in job.results
    rows = archive.jobs.result(alice, job.id).to_table().column("objid").to_pylist()
    want = archive.queries.query(alice, BRIGHT, context="DEMO").to_table().column("objid").to_pylist()
    assert rows == want


def test_run_refuses_a_directive_that_no_longer_compiles(archive, alice):
    archive.queries.query(alice, "CREATE TABLE Src AS SELECT 1 AS a", context="MyDB")
    d = make(archive, alice, query="SELECT a FROM Src", context="MyDB")
    archive.queries.query(alice, "DROP TABLE Src", context="MyDB")
    with pytest.raises(ArchiveError) as err:
        archive.directives.run(alice, d.id)
    assert err.value.code == "unknown_table"
    with pytest.raises(ArchiveError) as err:
        archive.directives.run(alice, "/no/such", by_path=True)
    assert err.value.status == 404


def test_other_users_cannot_see_a_directive(archive, alice):
    d = make(archive, alice, folderPath="/shared")
    bob = archive.users.principal("bob")
    for call in (
        lambda: archive.directives.get(bob, d.id),
        lambda: archive.directives.by_path(bob, "/shared/bright"),
        lambda: archive.directives.update(bob, d.id, {"name": "mine"}),
        lambda: archive.directives.delete(bob, d.id),
        lambda: archive.directives.run(bob, d.id),
    ):
        with pytest.raises(ArchiveError) as err:
            call()
        assert err.value.status == 404
    assert archive.directives.list(bob) == ([], 0)
    assert archive.directives.list(bob, all_users=True) == ([], 0)  # only admins list everyone's
    admin = archive.users.principal("root", admin=True)
    assert archive.directives.get(admin, d.id).owner == "alice"
    assert archive.directives.list(admin, all_users=True)[1] == 1
    with pytest.raises(ArchiveError) as err:
        archive.directives.run(admin, d.id)  # a job runs in its owner's MyDB: only the owner runs it
    assert err.value.status == 403


def test_directives_survive_a_restart(archive_data_dir):
    a = Archive(ArchiveConfig(data_dir=archive_data_dir, demo_rows=20_000))
    d = make(a, a.users.principal("alice"), folderPath="/keep")
    a.close()
    b = Archive(ArchiveConfig(data_dir=archive_data_dir, demo_rows=20_000))
    try:
        assert b.directives.get(b.users.principal("alice"), d.id).path == "/keep/bright"
    finally:
        b.close()


def test_cancel_right_after_start_stops_the_job(archive, alice):
    d = make(archive, alice, name="slow", query="SELECT count(*) FROM range(10000000000000) a")
    job = archive.directives.run(alice, d.id)
    archive.jobs.wait(alice, job.id, timeout=30, until=lambda j: j.state != "queued")
    archive.jobs.cancel(alice, job.id)
    assert archive.jobs.wait(alice, job.id, timeout=2).state == "canceled"


def test_anonymous_has_no_directives(archive):
    from jupyter_archive.core.catalog import ANONYMOUS

    with pytest.raises(ArchiveError) as err:
        archive.directives.list(ANONYMOUS)
    assert err.value.status == 403
