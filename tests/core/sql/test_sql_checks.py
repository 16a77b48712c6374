"""What a query may do: writes only where writable, refused statements by name, and table references
(CTEs, lateral, set operations)."""

from __future__ import annotations

import pytest

from jupyter_archive.core.sql import TableTarget, compile_query

from tests.support.sql import error, mydb_tables, q, run


# --- check: writes and refused statements -----------------------------------------------------


@pytest.mark.parametrize(
    "language,text",
    [
        ("sql", "INSERT INTO PhotoObj VALUES (7, 1, 1, 'STAR', 'CO')"),
        ("sql", "UPDATE PhotoObj SET ra = 0"),
        ("sql", "DELETE FROM DEMO.PhotoObj"),
        ("sql", "DROP TABLE PhotoObj"),
        ("sql", "ALTER TABLE PhotoObj ADD COLUMN c INT"),
        ("sql", "TRUNCATE PhotoObj"),
        ("sql", "CREATE TABLE DEMO.X (a INT)"),
        ("sql", "CREATE TABLE X AS SELECT 1"),
        ("sql", "CREATE VIEW DEMO.V AS SELECT 1"),
        ("tsql", "SELECT objID INTO DEMO..X FROM PhotoObj"),
        ("tsql", "SELECT objID INTO X FROM PhotoObj"),
    ],
)
def test_write_into_demo_refused(con, resolver, language, text):
    err = error(text, language, resolver)
    assert err.code == "permission" and err.status == 403
    assert err.details["phases"][-1]["name"] == "Resolved"
    assert con.sql('SELECT count(*) FROM demo.main."PhotoObj"').fetchall() == [(6,)]


def test_read_only_message_suggests_mydb(resolver):
    err = error("SELECT objID INTO X FROM PhotoObj", "tsql", resolver)
    assert "read-only" in err.message and "mydb.X" in err.message


def test_writes_in_mydb(con, resolver):
    compiled = compile_query(
        "CREATE TABLE mydb.U (a INTEGER, b VARCHAR);"
        "INSERT INTO mydb.U SELECT objID, state FROM PhotoObj WHERE type = 'STAR';"
        "UPDATE mydb.U SET b = lower(b) WHERE a = 1;"
        "DELETE FROM mydb.U WHERE a = 6;"
        "ALTER TABLE mydb.U ADD COLUMN c DOUBLE;"
        "CREATE VIEW mydb.UV AS SELECT a FROM mydb.U;"
        "CREATE TABLE mydb.W AS SELECT * FROM mydb.UV;"
        "DROP TABLE mydb.T;"
        "DROP TABLE IF EXISTS mydb.NotThere;"
        "SELECT * FROM mydb.U ORDER BY a",
        "sql",
        resolver,
    )
    kinds = [s.kind for s in compiled.statements]
    assert kinds == ["ddl", "write", "write", "write", "ddl", "ddl", "write", "ddl", "ddl", "read"]
    assert compiled.statements[1].into == TableTarget("mydb", "main", "U", "MyDB", True)
    assert compiled.statements[1].tables == [TableTarget("demo", "main", "PhotoObj", "DEMO", False)]
    assert run(con, compiled) == [(1, "co", None), (3, "CO", None)]
    assert mydb_tables(con) == {"U", "W"}
    q(con, resolver, "ALTER TABLE mydb.U RENAME TO U2; TRUNCATE mydb.U2", "sql")
    assert mydb_tables(con) == {"U2", "W"}
    assert con.sql('SELECT count(*) FROM mydb.main."U2"').fetchall() == [(0,)]


REFUSED = [
    "ATTACH 'evil.db' AS evil",
    "ATTACH DATABASE ':memory:' AS x",
    "DETACH demo",
    "COPY PhotoObj TO '/tmp/out.csv'",
    "COPY (SELECT 1) TO '/tmp/out.csv'",
    "EXPORT DATABASE '/tmp/x'",
    "IMPORT DATABASE '/tmp/x'",
    "PRAGMA database_list",
    "SET enable_external_access = true",
    "RESET threads",
    "INSTALL httpfs",
    "LOAD httpfs",
    "FORCE INSTALL httpfs",
    "USE demo",
    "CALL pragma_version()",
    "CHECKPOINT",
    "VACUUM",
    "BEGIN TRANSACTION",
    "COMMIT",
    "CREATE SECRET s (TYPE s3)",
    "CREATE MACRO m(a) AS a + 1",
    "CREATE FUNCTION f(a) AS a + 1",
    "CREATE SCHEMA mydb.s",
    "CREATE SEQUENCE mydb.seq",
    "CREATE TYPE mood AS ENUM ('a')",
    "DESCRIBE PhotoObj",
    "SHOW TABLES",
    "EXPLAIN SELECT 1",
    "SELECT * FROM read_csv('/etc/passwd')",
    "FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_parquet('x.parquet')",
    "SELECT * FROM read_json_auto('x.json')",
    "SELECT * FROM 'x.csv'",
    "SELECT * FROM PhotoObj JOIN 'x.parquet' ON true",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM query_table('PhotoObj')",
    "SELECT * FROM query('SELECT 1')",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM pragma_table_info('PhotoObj')",
    "SELECT * FROM sniff_csv('x.csv')",
    "SELECT getenv('HOME')",
    "SELECT current_setting('home_directory')",
    "SELECT (SELECT count(*) FROM read_csv('/etc/passwd'))",
    "WITH x AS (SELECT * FROM read_blob('/etc/passwd')) SELECT * FROM x",
    "CREATE TABLE mydb.P AS SELECT * FROM read_csv('/etc/passwd')",
    "INSERT INTO mydb.T SELECT * FROM read_csv('/etc/passwd')",
]


@pytest.mark.parametrize("text", REFUSED)
def test_refused_statements(con, resolver, text):
    err = error(text, "sql", resolver)
    assert (err.code, err.status) in (("permission", 403), ("unsupported", 400))
    assert err.details["phases"][-1]["name"] == "SQL AST"
    assert err.details["phases"][-1]["error"] == err.message
    if "read_" in text or "'x." in text or "glob" in text:
        assert err.status == 403 and "reading files is not allowed in queries" in err.message
    assert mydb_tables(con) == {"T"}


@pytest.mark.parametrize(
    "text,word",
    [
        ("ATTACH 'x' AS y", "ATTACH"),
        ("COPY PhotoObj TO 'x.csv'", "COPY"),
        ("PRAGMA version", "PRAGMA"),
        ("SET threads = 1", "SET"),
        ("INSTALL httpfs", "INSTALL"),
        ("CREATE SECRET s (TYPE s3)", "CREATE SECRET"),
        ("SELECT * FROM query_table('PhotoObj')", "query_table"),
    ],
)
def test_refusal_names_the_statement(resolver, text, word):
    assert word in error(text, "sql", resolver).message


@pytest.mark.parametrize("language", ["tsql", "mysql"])
def test_refused_in_other_languages(resolver, language):
    for text in ("DECLARE @x INT", "EXEC sp_who", "SELECT * FROM OPENROWSET('x')", "SET @x = 1", "SHOW TABLES"):
        if language == "mysql" and text.startswith(("DECLARE", "EXEC", "SELECT * FROM OPENROWSET")):
            continue
        err = error(text, language, resolver)
        assert err.status in (400, 403) and err.code in ("permission", "unsupported")


def test_refusal_after_harmless_statement_in_tsql_batch(con, resolver):
    err = error("SELECT 1\nATTACH 'x.db' AS x", "tsql", resolver)
    assert err.status == 403 and "ATTACH" in err.message and err.position == (2, 1)


# --- table references -------------------------------------------------------------------------


def test_cte_names_not_resolved(con, resolver):
    # A CTE may shadow a real table name; it must not be sent to the resolver.
    assert q(con, resolver, "WITH PhotoObj AS (SELECT 42 AS x) SELECT x FROM PhotoObj") == [(42,)]
    text = (
        "WITH stars AS (SELECT objID FROM PhotoObj WHERE type = 'STAR'), "
        "pairs AS (SELECT s.objID FROM stars s JOIN (WITH inner_ AS (SELECT * FROM SpecObj) SELECT * FROM inner_) sp "
        "ON sp.bestObjID = s.objID) "
        "SELECT count(*) FROM pairs WHERE objID IN (SELECT objID FROM stars)"
    )
    compiled = compile_query(text, "sql", resolver)
    assert {t.name for t in compiled.statements[0].tables} == {"PhotoObj", "SpecObj"}
    assert run(con, compiled) == [(1,)]


def test_recursive_cte(con, resolver):
    text = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4) SELECT sum(i) FROM n"
    assert q(con, resolver, text) == [(10,)]


def test_cte_not_visible_outside_its_scope(resolver):
    # "x" is a CTE only inside the subquery; the outer reference is a (missing) table.
    err = error("SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) a, x", "sql", resolver)
    assert err.code == "unknown_table" and "'x'" in err.message


def test_lateral_and_subqueries(con, resolver):
    text = (
        "SELECT p.objID, l.z FROM PhotoObj p, "
        "LATERAL (SELECT z FROM SpecObj s WHERE s.bestObjID = p.objID) l "
        "WHERE p.objID IN (SELECT bestObjID FROM SpecObj) ORDER BY 1"
    )
    assert q(con, resolver, text) == [(1, 0.01), (2, 0.1), (4, 0.2), (5, 2.1)]


def test_set_operations(con, resolver):
    text = "SELECT objID FROM PhotoObj WHERE objID < 3 UNION ALL SELECT bestObjID FROM SpecObj ORDER BY 1"
    assert q(con, resolver, text) == [(1,), (1,), (2,), (2,), (4,), (5,)]
    assert q(con, resolver, "VALUES (1), (2)") == [(1,), (2,)]
