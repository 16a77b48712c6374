"""A MyDB's table list is read live, so every write is seen by the very next query and listing
(it is kept between writes: a point lookup in MyDB must not read the catalog every time)."""

from __future__ import annotations

import pytest

from jupyter_archive.core.archive import Archive
from jupyter_archive.core.config import ArchiveConfig
from jupyter_archive.core.errors import ArchiveError


@pytest.fixture
def core(archive_data_dir):
    a = Archive(ArchiveConfig(data_dir=archive_data_dir, demo_rows=20_000))
    yield a, a.users.principal("alice")
    a.close()


def _run(a, p, text):
    result = a.queries.query(p, text, "sql", context="MyDB")
    try:
        return [row for b in result.batches() for row in b.to_pylist()]
    finally:
        result.close()


def _names(a, p):
    return sorted(t.name for t in a.catalog.tables(p, "MyDB"))


def test_every_write_is_seen_by_the_next_query_and_listing(core):
    a, p = core
    for i in range(40):  # back to back, faster than a file system's clock ticks
        _run(a, p, f"CREATE TABLE t{i} AS SELECT {i} AS a")
        assert _run(a, p, f"SELECT a FROM t{i}") == [{"a": i}]
        assert f"t{i}" in _names(a, p)
        _run(a, p, f"CREATE OR REPLACE TABLE t{i} AS SELECT {i} AS a, 'x' AS b")
        assert [c.name for c in a.catalog.table(p, "MyDB", f"t{i}").columns] == ["a", "b"]
        _run(a, p, f"DROP TABLE t{i}")
        assert f"t{i}" not in _names(a, p)
        with pytest.raises(ArchiveError) as err:
            _run(a, p, f"SELECT a FROM t{i}")
        assert err.value.code == "unknown_table"


def test_each_user_sees_their_own_tables(core):
    a, p = core
    bob = a.users.principal("bob")
    _run(a, p, "CREATE TABLE mine AS SELECT 1 AS a")
    assert _names(a, p) == ["mine"]
    assert _names(a, bob) == []
    _run(a, bob, "CREATE TABLE mine AS SELECT 2 AS a")
    assert _run(a, bob, "SELECT a FROM mine") == [{"a": 2}]
    assert _run(a, p, "SELECT a FROM mine") == [{"a": 1}]


@pytest.mark.parametrize("writers", [2, 4, 8])
def test_first_uploads_at_once_into_a_new_mydb_all_succeed(core, writers):
    """Each upload first makes MyDB's metadata tables if missing: made at once by several, one failed on the other's
    (a 409, "Catalog write-write conflict on create ... archive_meta"), 3 of 60 uploads from four connections."""
    import threading

    import pyarrow as pa
    import pyarrow.parquet as pq

    a, _ = core
    for round_ in range(3):  # a new user each round: a MyDB with no metadata yet
        p = a.users.principal(f"u{writers}_{round_}")
        paths = []
        for i in range(writers):
            paths.append(a.tables.upload_path(p, "MyDB"))  # where the user's engine may read
            pq.write_table(pa.table({"i": list(range(i + 1))}), paths[-1])
        failures, start = [], threading.Barrier(writers)

        def upload(i):
            start.wait()
            try:
                a.tables.upload(p, "MyDB", f"t{i}", paths[i], "parquet")
            except ArchiveError as exc:
                failures.append(exc.message)
            finally:
                paths[i].unlink()

        threads = [threading.Thread(target=upload, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures
        assert _names(a, p) == sorted(f"t{i}" for i in range(writers))
        assert all(_run(a, p, f"SELECT count(*) AS n FROM t{i}") == [{"n": i + 1}] for i in range(writers))


def test_two_writes_of_one_table_at_once_fail_in_words(core):
    """DuckDB's writes are optimistic: of two that change one table at once, the later fails. Its 409 said
    'TransactionContext Error: Catalog write-write conflict on alter with "Schema\\0main\\0Table\\0main\\0t"'."""
    import threading

    a, p = core
    _run(a, p, "CREATE TABLE t AS SELECT 1 AS a")
    seen = []
    for _ in range(50):  # until writes have met
        start, errors = threading.Barrier(6), []

        def write(i):
            start.wait()
            try:
                _run(a, p, f"CREATE OR REPLACE TABLE t AS SELECT {i} AS a")
            except ArchiveError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for exc in errors:
            assert exc.status == 409 and exc.message.startswith("another request changed 't' at the same moment"), exc.message
            assert "\x00" not in exc.message and exc.details["table"] == "t"
        seen += errors
        if seen:
            break
    assert seen, "no two writes met in 50 tries"
    assert len(_run(a, p, "SELECT a FROM t")) == 1  # one of them won, whole


@pytest.mark.parametrize(("engine_text", "table"), [  # as DuckDB words them (seen from concurrent uploads, CREATE, INTO)
    ('TransactionContext Error: Catalog write-write conflict on alter with "Schema\\0main\\0Table\\0main\\0c"', "c"),
    ('TransactionContext Error: Catalog write-write conflict on alter with "Table\\0main\\0c\\0Schema\\0main"', "c"),
    ('TransactionContext Error: Catalog write-write conflict on create with "b"', "b"),
])
def test_a_write_conflict_names_its_table(engine_text, table):
    from jupyter_archive.core.errors import write_conflict

    err = write_conflict(engine_text)
    assert err.status == 409 and err.details == {"table": table} and f"changed {table!r} at the same moment" in err.message
