"""SqlBackend against a real PostgreSQL server (tests/support/pg.py) and a SQLite file: no mocks."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest

from jupyter_archive.core.backends.sqlalchemy import SqlBackend
from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.sql import TableTarget, compile_query

from tests.support.pg import BIG_ROWS, PG_PASSWORD

STARS = ("pg", "main", "stars")
TABLES = {
    STARS: "stars",
    ("pg", "main", "galaxies"): "galaxies",
    ("pg", "main", "big"): "big",
    ("pg", "main", "secret"): "secret",
    ("pg", "main", "survey/fields"): "survey/fields",
}


@pytest.fixture(scope="module")
def pg(pg_server):  # noqa: F811
    backend = SqlBackend(pg_server, context="PG", read_only=True, pool_size=2)
    yield backend
    backend.close()


def pg_rows(uri: str, sql: str) -> list[tuple]:
    """psycopg's own answer: the reference the backend's rows are compared to."""
    with psycopg.connect(uri) as con:
        return con.execute(sql).fetchall()


def run_all(backend: SqlBackend, sql: str, params: dict | None = None, tables=TABLES, **kw) -> pa.Table:
    with backend.run(sql, params or {}, tables, **kw) as result:
        return result.to_table()


def raises(fn, *args, **kw) -> ArchiveError:
    with pytest.raises(ArchiveError) as info:
        fn(*args, **kw)
    return info.value


# -- metadata ---------------------------------------------------------------------------------------
def test_tables_lists_names_columns_comments_and_rows(pg):
    tables = pg.tables()
    assert {"stars", "galaxies", "bright_stars", "big", "survey/fields"} <= set(tables)
    assert "secret" not in tables  # the mount's user may not read it
    stars = tables["stars"]
    assert (stars.name, stars.context, stars.rows, stars.description) == ("stars", "PG", 5, "Stars of the sample")
    cols = {c.name: c for c in stars.columns}
    assert [c.name for c in stars.columns][:3] == ["id", "n", "mag"]
    assert {k: cols[k].datatype for k in ("id", "n", "mag", "name", "bright", "seen", "flux", "amount", "blob", "tags")} == {
        "id": "BIGINT", "n": "INTEGER", "mag": "DOUBLE", "name": "VARCHAR", "bright": "BOOLEAN", "seen": "TIMESTAMP",
        "flux": "DECIMAL(10,3)", "amount": "DOUBLE", "blob": "BLOB", "tags": "VARCHAR[]",
    }  # fmt: skip
    assert cols["mag"].description == "apparent magnitude" and cols["id"].description is None
    fields = tables["survey/fields"]
    assert (fields.name, fields.rows, fields.description) == ("survey/fields", 2, "Survey fields")
    assert [(c.name, c.description) for c in fields.columns] == [("field_id", None), ("ra", None), ("Dec", "declination")]
    assert tables["galaxies"].rows == 3 and tables["big"].rows == BIG_ROWS and tables["bright_stars"].rows == 2
    assert pg.remote_name("survey/fields") == ("survey", "fields")
    assert pg.remote_name("Stars") == ("public", "stars")


# -- transpile --------------------------------------------------------------------------------------
def test_transpile_pushes_postgres_sql_with_remote_names_and_driver_params(pg):
    sql = 'SELECT "id", "mag" FROM "pg"."main"."stars" WHERE "mag" < $p1 LIMIT 11'
    assert pg.transpile(sql, TABLES) == 'SELECT "id", "mag" FROM "public"."stars" WHERE "mag" < %(p1)s LIMIT 11'
    # Names in another schema keep the name the query's qualifiers use; case follows the server.
    pushed = pg.transpile('SELECT "survey/fields"."DEC", "S"."NAME" FROM "pg"."main"."survey/fields", "pg"."main"."stars" AS "s" '
                          "WHERE \"s\".\"name\" LIKE 'a%' AND \"s\".\"id\" = $p2", TABLES)  # fmt: skip
    assert pushed == (
        'SELECT "survey/fields"."Dec", "s"."name" FROM "survey"."fields" AS "survey/fields", "public"."stars" AS "s" '
        "WHERE \"s\".\"name\" LIKE 'a%%' AND \"s\".\"id\" = %(p2)s"
    )


def test_transpile_refuses_what_the_server_cannot_run(pg):
    err = raises(pg.transpile, 'SELECT * FROM "other"."main"."t"', TABLES)
    assert (err.code, err.status) == ("unknown_table", 400)
    err = raises(pg.transpile, "SELEC 1 FROM", TABLES)
    assert err.status == 400


# -- rows -------------------------------------------------------------------------------------------
def test_run_streams_rows_equal_to_psycopg(pg, pg_server):  # noqa: F811
    table = run_all(pg, 'SELECT * FROM "pg"."main"."stars" ORDER BY "id"')
    types = {f.name: f.type for f in table.schema}
    assert types["id"] == pa.int64() and types["n"] == pa.int32() and types["mag"] == pa.float64()
    assert types["ra"] == pa.float32() and types["name"] == pa.string() and types["bright"] == pa.bool_()
    assert types["seen"] == pa.timestamp("us") and types["seen_tz"] == pa.timestamp("us", tz="UTC")
    assert types["obs"] == pa.date32() and types["flux"] == pa.decimal128(10, 3) and types["amount"] == pa.float64()
    assert types["blob"] == pa.binary() and types["tags"] == pa.list_(pa.string()) and types["extra"] == pa.string()
    expected = pg_rows(pg_server, "SELECT * FROM stars ORDER BY id")
    got = table.to_pylist()
    assert len(got) == len(expected) == 5
    for row, ref in zip(got, expected, strict=True):
        ref = dict(zip(table.column_names, ref, strict=True))
        ref["amount"] = None if ref["amount"] is None else float(ref["amount"])
        extra = row.pop("extra")
        assert (json.loads(extra) if extra is not None else None) == ref.pop("extra")
        assert row == ref
    nulls = got[2]
    assert nulls["id"] == 3 and all(v is None for k, v in nulls.items() if k != "id")
    assert got[0]["seen_tz"] == dt.datetime(2020, 1, 2, 1, 4, 5, tzinfo=dt.timezone.utc)
    assert got[0]["flux"] == Decimal("1.250") and got[0]["blob"] == b"\x00\xff\x10"


def test_run_binds_parameters_and_keeps_percent_literals(pg):
    sql = "SELECT \"name\" FROM \"pg\".\"main\".\"stars\" WHERE \"name\" LIKE '%\\%x' ESCAPE '\\' OR \"mag\" < $p1 OR \"name\" = $p2 ORDER BY \"id\""
    assert run_all(pg, sql, {"p1": 2, "p2": "Altair's"}).column("name").to_pylist() == ["Sirius", "Deneb %x", "Altair's"]


def test_run_pipeline_output(pg):
    class Resolver:
        def resolve_name(self, parts, *, write=False):
            return TableTarget("pg", "main", parts[-1], "PG", False)

    compiled = compile_query("SELECT TOP 2 ID, Mag FROM Stars WHERE mag < @m ORDER BY mag DESC", "tsql", Resolver(),
                             variables={"m": "5"}, row_limit=10)  # fmt: skip
    st = compiled.statements[-1]
    table = run_all(pg, st.sql, st.params, {("pg", "main", "Stars"): "stars"})
    assert table.column_names == ["id", "mag"]
    assert table.to_pylist() == [{"id": 4, "mag": 4.75}, {"id": 2, "mag": 2.25}]


def test_empty_result_keeps_its_columns(pg):
    with pg.run('SELECT "id", "name", "flux" FROM "pg"."main"."stars" WHERE FALSE', {}, TABLES) as result:
        assert result.schema.names == ["id", "name", "flux"]
        assert result.schema.types == [pa.int64(), pa.string(), pa.decimal128(10, 3)]
        assert result.to_table().num_rows == 0
    assert pg.active == 0


def test_batches_are_chunked_and_closing_gives_the_connection_back(pg):
    result = pg.run('SELECT "id", "x" FROM "pg"."main"."big" ORDER BY "id"', {}, TABLES, batch_rows=50_000)
    assert pg.active == 1 and result.schema.types == [pa.int64(), pa.float64()]
    sizes, total = [], 0
    for batch in result.batches():
        sizes.append(batch.num_rows)
        total += pa.compute.sum(batch.column(0)).as_py()
    assert len(sizes) >= 4 and max(sizes) == 50_000 and sum(sizes) == BIG_ROWS
    assert total == BIG_ROWS * (BIG_ROWS + 1) // 2
    assert pg.active == 0
    # Abandoned mid-stream: close() still returns the connection (pool_size is 2, so 5 runs prove it).
    for _ in range(5):
        result = pg.run('SELECT "id" FROM "pg"."main"."big"', {}, TABLES, batch_rows=1000)
        next(iter(result.batches()))
        result.close()
    assert pg.active == 0


def test_row_limit_marks_truncation_and_releases_the_connection(pg):
    result = pg.run('SELECT "id" FROM "pg"."main"."big" ORDER BY "id"', {}, TABLES, row_limit=3, batch_rows=2)
    assert result.truncated and result.complete and pg.active == 0
    assert result.to_table().column("id").to_pylist() == [1, 2, 3]
    result = pg.run('SELECT "id" FROM "pg"."main"."stars"', {}, TABLES, row_limit=5)
    assert not result.truncated and result.to_table().num_rows == 5


# -- refusals and errors ----------------------------------------------------------------------------
def test_read_only_refuses_writes_and_data_is_unchanged(pg, pg_server):  # noqa: F811
    err = raises(pg.run, 'INSERT INTO "pg"."main"."stars" ("id") VALUES (99)', {}, TABLES)
    assert (err.code, err.status) == ("permission", 403) and "read-only" in err.message
    # The server refuses too: nextval() is a write that no parser sees.
    err = raises(pg.run, "SELECT nextval('counter')", {}, TABLES)
    assert (err.code, err.status) == ("permission", 403) and "read-only transaction" in err.message
    assert pg_rows(pg_server, "SELECT count(*), max(id) FROM stars") == [(5, 5)]
    assert pg_rows(pg_server, "SELECT last_value, is_called FROM counter") == [(1, False)]


def test_errors_carry_the_servers_message(pg):
    err = raises(pg.run, 'SELECT "nope" FROM "pg"."main"."stars"', {}, TABLES)
    assert (err.code, err.status) == ("invalid_query", 400) and 'column "nope" does not exist' in err.message
    err = raises(pg.run, "SELECT no_such_function(1)", {}, TABLES)
    assert err.status == 400 and "no_such_function" in err.message
    err = raises(pg.run, 'SELECT * FROM "pg"."main"."secret"', {}, TABLES)
    assert (err.code, err.status) == ("permission", 403) and "permission denied" in err.message
    err = raises(pg.run, "SELECT 1 / 0", {}, TABLES)
    assert err.status == 400 and "division by zero" in err.message
    assert pg.active == 0


def test_time_limit_cancels_on_the_server(pg):
    start = time.monotonic()
    err = raises(pg.run, "SELECT pg_sleep(5)", {}, TABLES, time_limit=0.5)
    assert (err.code, err.status) == ("time_limit", 400) and "0.5 s" in err.message
    assert time.monotonic() - start < 1.5
    assert run_all(pg, "SELECT 1 AS one").column("one").to_pylist() == [1]  # the pool still works


def test_time_limit_while_streaming(pg):
    sql = 'SELECT "id", pg_sleep(0.05) IS NULL AS "slow" FROM "pg"."main"."big" LIMIT 100'
    start = time.monotonic()
    err = raises(run_all, pg, sql, time_limit=0.6, batch_rows=5)
    assert err.code == "time_limit" and time.monotonic() - start < 2.0
    assert pg.active == 0


def test_interrupt_all_cancels_a_running_query(pg):
    errors = []

    def work():
        try:
            run_all(pg, "SELECT pg_sleep(10)")
        except ArchiveError as err:
            errors.append(err)

    thread = threading.Thread(target=work)
    start = time.monotonic()
    thread.start()
    deadline = time.monotonic() + 5
    while pg.active == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    pg.interrupt_all()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - start < 3
    assert [(e.code, e.status) for e in errors] == [("canceled", 409)]


def test_writable_backend_writes(pg_server):  # noqa: F811
    with psycopg.connect(pg_server, autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS scratch; CREATE TABLE scratch (id integer, label text)")
    backend = SqlBackend(pg_server, context="PGW", read_only=False)
    try:
        tables = {("pgw", "main", "scratch"): "scratch"}
        with backend.run('INSERT INTO "pgw"."main"."scratch" VALUES (1, $p1), (2, \'b%\')', {"p1": "a"}, tables) as res:
            assert res.schema.names == ["Rows Affected"] and res.to_table().column(0).to_pylist() == [2]
        assert pg_rows(pg_server, "SELECT * FROM scratch ORDER BY id") == [(1, "a"), (2, "b%")]
        assert run_all(backend, 'SELECT count(*) AS "n" FROM "pgw"."main"."scratch"', tables=tables).to_pylist() == [{"n": 2}]
    finally:
        backend.close()
        with psycopg.connect(pg_server, autocommit=True) as con:
            con.execute("DROP TABLE scratch")


def test_connection_errors_name_the_server_not_the_password(pg_server):  # noqa: F811
    wrong = pg_server.replace(PG_PASSWORD, "wrong-pw")
    err = raises(SqlBackend, wrong, context="X")
    assert err.code == "bad_request" and "archive_test" in err.message and "127.0.0.1" in err.message
    assert "wrong-pw" not in err.message and PG_PASSWORD not in err.message
    err = raises(SqlBackend, "postgresql://u:topsecret@127.0.0.1:1/nodb", context="X")
    assert (err.code, err.status) == ("engine_error", 503) and "nodb" in err.message and "topsecret" not in err.message
    err = raises(SqlBackend, "mysql://u:p@h/db", context="X")
    assert err.code == "bad_request"


# -- SQLite -----------------------------------------------------------------------------------------
@pytest.fixture
def sqlite_file(tmp_path):
    path = tmp_path / "sample.db"
    con = sqlite3.connect(path)
    con.executescript(
        """CREATE TABLE stars (id INTEGER PRIMARY KEY, mag REAL, name TEXT, blob BLOB, seen TIMESTAMP);
           INSERT INTO stars VALUES (1, 1.5, 'Sirius', x'00ff', '2020-01-02 03:04:05'), (2, NULL, NULL, NULL, NULL),
                                    (3, 3, 'Vega', x'', '2021-01-01 00:00:00');
           CREATE VIEW named AS SELECT id, name FROM stars WHERE name IS NOT NULL;"""
    )
    con.commit()
    con.close()
    return path


def test_sqlite_tables_and_rows(sqlite_file):
    backend = SqlBackend(f"sqlite:///{sqlite_file}", context="LITE")
    try:
        assert backend.dialect == "sqlite"
        tables = backend.tables()
        assert set(tables) == {"stars", "named"} and tables["stars"].rows == 3 and tables["named"].rows == 2
        assert [(c.name, c.datatype) for c in tables["stars"].columns] == [
            ("id", "BIGINT"), ("mag", "DOUBLE"), ("name", "VARCHAR"), ("blob", "BLOB"), ("seen", "TIMESTAMP")]  # fmt: skip
        lite = {("lite", "main", "stars"): "stars"}
        sql = 'SELECT "id", "MAG", "name", "blob" FROM "lite"."main"."stars" WHERE "id" >= $p1 ORDER BY "id"'
        assert backend.transpile(sql, lite) == (
            "SELECT `id`, `mag`, `name`, `blob` FROM `stars` WHERE `id` >= :p1 ORDER BY `id` NULLS LAST"
        )
        table = run_all(backend, sql, {"p1": 1}, lite, batch_rows=2)
        assert table.schema.types == [pa.int64(), pa.float64(), pa.string(), pa.binary()]
        assert table.to_pylist() == [
            {"id": 1, "mag": 1.5, "name": "Sirius", "blob": b"\x00\xff"},
            {"id": 2, "mag": None, "name": None, "blob": None},
            {"id": 3, "mag": 3.0, "name": "Vega", "blob": b""},
        ]
        err = raises(backend.run, 'SELECT "nope" FROM "lite"."main"."stars"', {}, lite)
        assert (err.code, err.status) == ("invalid_query", 400) and "no such column: nope" in err.message
    finally:
        backend.close()


def test_sqlite_read_only_refuses_writes(sqlite_file):
    backend = SqlBackend(f"sqlite:///{sqlite_file}", context="LITE")
    lite = {("lite", "main", "stars"): "stars"}
    try:
        err = raises(backend.run, 'DELETE FROM "lite"."main"."stars"', {}, lite)
        assert (err.code, err.status) == ("permission", 403)
        # The file itself is open read-only: SQLite refuses a write that reaches it.
        raw = backend._engine.raw_connection()
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            raw.driver_connection.execute("DELETE FROM stars")
        raw.close()
    finally:
        backend.close()
    assert sqlite3.connect(sqlite_file).execute("SELECT count(*) FROM stars").fetchone() == (3,)
    writable = SqlBackend(f"sqlite:///{sqlite_file}", context="LITE", read_only=False)
    try:
        res = writable.run('DELETE FROM "lite"."main"."stars" WHERE "id" = $p1', {"p1": 2}, lite)
        assert res.rows_affected == 1
    finally:
        writable.close()
    assert sqlite3.connect(sqlite_file).execute("SELECT count(*) FROM stars").fetchone() == (2,)


def test_sqlite_time_limit(sqlite_file):
    backend = SqlBackend(f"sqlite:///{sqlite_file}", context="LITE")
    try:
        sql = 'WITH RECURSIVE "c"("x") AS (SELECT 1 UNION ALL SELECT "x" + 1 FROM "c") SELECT count(*) FROM "c"'
        start = time.monotonic()
        err = raises(backend.run, sql, {}, {}, time_limit=0.3)
        assert err.code == "time_limit" and time.monotonic() - start < 1.5
        assert run_all(backend, "SELECT 1 AS one", tables={}).to_pylist() == [{"one": 1}]
    finally:
        backend.close()


def test_sqlite_missing_file(tmp_path):
    err = raises(SqlBackend, f"sqlite:///{tmp_path / 'missing.db'}", context="LITE")
    assert err.code == "bad_request" and "missing.db" in err.message
