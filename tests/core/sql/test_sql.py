"""The SQL pipeline in every language: selects, T-SQL, TOP, SQL², errors, limits, phases and bounds
(variables: test_sql_variables; checks and table references: test_sql_checks). The ``con`` and
``resolver`` fixtures are in this folder's conftest."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.languages import DEFAULT_LANGUAGE, LANGUAGES
from jupyter_archive.core.sql import TableTarget, compile_query

from tests.support.sql import PHOTO, DictResolver, error, memory_con, mydb_tables, q, run


PHASE_NAMES = ["SQL AST", "Variables Substituted", "Resolved", "Rewritten", "Engine SQL"]


# --- each language's basic select -------------------------------------------------------------


def test_languages():
    assert LANGUAGES == ("sql", "tsql", "sql2", "mysql", "adql")


@pytest.mark.parametrize(
    "language,text",
    [
        ("sql", "SELECT objID FROM PhotoObj WHERE ra > 25 ORDER BY objID"),
        ("sql", "FROM photoobj SELECT objid WHERE ra > 25 ORDER BY 1"),
        ("tsql", "SELECT [objID] FROM [DEMO].[dbo].[PhotoObj] WHERE [ra] > 25 ORDER BY [objID]"),
        ("tsql", "SELECT p.objID FROM DEMO..PhotoObj AS p WHERE p.ra > 25 ORDER BY p.objID"),
        ("mysql", "SELECT `objID` FROM `DEMO`.`PhotoObj` WHERE ra > 25 ORDER BY `objID`"),
        ("sql2", "SELECT objID FROM `/demo/PhotoObj` WHERE ra > 25 ORDER BY objID"),
    ],
)
def test_basic_select(con, resolver, language, text):
    compiled = compile_query(text, language, resolver)
    assert [s.kind for s in compiled.statements] == ["read"]
    st = compiled.statements[0]
    assert '"demo"."main"."PhotoObj"' in st.sql
    assert st.tables == [TableTarget("demo", "main", "PhotoObj", "DEMO", False)]
    assert run(con, compiled) == [(3,), (4,), (5,), (6,)]


def test_join_and_column_qualifiers(con, resolver):
    rows = q(
        con,
        resolver,
        "SELECT dbo.PhotoObj.objID, s.z FROM dbo.PhotoObj JOIN DEMO.dbo.SpecObj s "
        "ON s.bestObjID = dbo.PhotoObj.objID WHERE DEMO.dbo.PhotoObj.type = 'GALAXY' ORDER BY 1",
        "tsql",
    )
    assert rows == [(2, 0.1), (4, 0.2)]


def test_table_names_case_insensitive_and_quoted(con, resolver):
    compiled = compile_query("select OBJID from photoOBJ p where p.RA < 15", "sql", resolver)
    assert '"demo"."main"."PhotoObj"' in compiled.statements[0].sql
    assert run(con, compiled) == [(1,)]


def test_table_functions_allowed(con, resolver):
    assert q(con, resolver, "SELECT count(*) FROM range(10)") == [(10,)]
    assert q(con, resolver, "SELECT * FROM generate_series(1, 3)") == [(1,), (2,), (3,)]
    assert q(con, resolver, "SELECT * FROM unnest([4, 5])") == [(4,), (5,)]


# --- T-SQL ------------------------------------------------------------------------------------


def test_tsql_top(con, resolver):
    compiled = compile_query("SELECT TOP 2 objID FROM PhotoObj ORDER BY objID DESC", "tsql", resolver)
    assert "LIMIT 2" in compiled.statements[0].sql
    assert run(con, compiled) == [(6,), (5,)]


# --- TOP n in the default language (DuckDB's SQL has no TOP of its own) ---------------------


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 8),
    form=st.sampled_from(["TOP {n}", "top {n}", "TOP ({n})", "TOP (:n)"]),
    distinct=st.booleans(),
    nested=st.booleans(),
)
def test_default_language_reads_top_as_limit(n, form, distinct, nested):
    con = memory_con()
    con.sql('CREATE TABLE demo.main."PhotoObj" ("objID" BIGINT, type VARCHAR)')
    con.executemany('INSERT INTO demo.main."PhotoObj" VALUES (?, ?)', [(i, t) for i, t, *_ in PHOTO])
    resolver = DictResolver(con)
    column = "type" if distinct else '"objID"'
    select = f"SELECT {'DISTINCT ' if distinct else ''}{form.format(n=n)} {column} FROM PhotoObj ORDER BY {column}"
    text = f"SELECT * FROM ({select}) AS t ORDER BY 1" if nested else select
    got = q(con, resolver, text, DEFAULT_LANGUAGE, params={"n": n})
    want = con.sql(f"SELECT {'DISTINCT ' if distinct else ''}{column} FROM demo.PhotoObj ORDER BY 1 LIMIT {n}").fetchall()
    assert got == want
    assert got == q(con, resolver, text.replace(":n", "@n"), "tsql", params={"n": n})  # as CasJobs reads it


@pytest.mark.parametrize(
    "text, rows",
    [
        ("SELECT top FROM Boxes ORDER BY top", [(1,), (2,)]),
        ("SELECT top, bottom FROM Boxes ORDER BY 1", [(1, 5), (2, 6)]),
        ("SELECT top + 1 AS t FROM Boxes ORDER BY 1", [(2,), (3,)]),
        ("SELECT b.top FROM Boxes AS b ORDER BY 1", [(1,), (2,)]),
        ("SELECT DISTINCT top FROM Boxes ORDER BY 1", [(1,), (2,)]),
        ("SELECT TOP 1 top FROM Boxes ORDER BY top DESC", [(2,)]),
        ('SELECT "top" FROM Boxes WHERE top > 1', [(2,)]),
    ],
)
def test_default_language_keeps_columns_named_top(con, resolver, text, rows):
    con.sql('CREATE TABLE demo.main."Boxes" ("top" INTEGER, bottom INTEGER)')
    con.sql('INSERT INTO demo.main."Boxes" VALUES (1, 5), (2, 6)')
    assert q(con, resolver, text, DEFAULT_LANGUAGE) == rows


def test_default_language_refuses_top_percent_by_name(resolver):
    err = error("SELECT TOP 10 PERCENT objID FROM PhotoObj", DEFAULT_LANGUAGE, resolver)
    assert err.code == "unsupported" and "PERCENT" in err.message


@pytest.mark.parametrize("into", ["mydb.Stars", "MyDB.dbo.Stars", "[mydb].[Stars]"])
def test_tsql_select_into(con, resolver, into):
    text = f"SELECT objID, ra INTO {into} FROM PhotoObj WHERE type = 'STAR'"
    compiled = compile_query(text, "tsql", resolver)
    st = compiled.statements[0]
    assert st.kind == "write"
    assert st.into == TableTarget("mydb", "main", "Stars", "MyDB", True)
    assert st.sql.startswith('CREATE TABLE "mydb"."main"."Stars" AS SELECT')
    assert st.tables == [TableTarget("demo", "main", "PhotoObj", "DEMO", False)]
    assert "INTO" not in compiled.modified_query.upper().split("/*")[0]
    assert compiled.modified_query.endswith("/*CASJOBS_INTO_TABLE:MyDB.Stars*/")
    run(con, compiled)
    assert "Stars" in mydb_tables(con)
    assert con.sql('SELECT * FROM mydb.main."Stars" ORDER BY 1').fetchall() == [(1, 10.0), (3, 30.0), (6, 60.0)]


def test_tsql_select_into_bare_name_in_mydb_context(con):
    resolver = DictResolver(con, default="MyDB")
    compiled = compile_query("SELECT TOP 1 objID INTO Top1 FROM DEMO..PhotoObj ORDER BY objID", "tsql", resolver)
    assert compiled.statements[0].into.catalog == "mydb"
    run(con, compiled)
    assert con.sql('SELECT * FROM mydb.main."Top1"').fetchall() == [(1,)]


def test_tsql_batch_with_go_semicolons_and_no_separator(con, resolver):
    text = (
        "SELECT objID INTO mydb.Gal FROM PhotoObj WHERE type = 'GALAXY'\n"
        "GO\n"
        "INSERT INTO mydb.Gal SELECT 99; SELECT count(*) AS n FROM mydb.Gal\n"
        "SELECT max(objID) FROM mydb.Gal\n"
        "go\n"
    )
    compiled = compile_query(text, "tsql", resolver)
    assert [s.kind for s in compiled.statements] == ["write", "write", "read", "read"]
    assert compiled.statements[1].source == "INSERT INTO mydb.Gal SELECT 99"
    assert compiled.statements[2].source == "SELECT count(*) AS n FROM mydb.Gal"
    assert compiled.statements[2].tables == [TableTarget("mydb", "main", "Gal", "MyDB", True)]
    assert run(con, compiled) == [(99,)]
    assert con.sql('SELECT count(*) FROM mydb.main."Gal"').fetchall() == [(3,)]


def test_go_inside_string_or_comment_does_not_split(resolver):
    compiled = compile_query("SELECT 'a\nGO\nb' AS s /*\nGO\n*/ FROM PhotoObj", "tsql", resolver)
    assert len(compiled.statements) == 1


def test_tsql_temp_tables_refused(resolver):
    err = error("SELECT objID INTO #tmp FROM PhotoObj", "tsql", resolver)
    assert err.code == "unsupported" and "temporary" in err.message


# --- SQL² -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,base",
    [
        ("`PhotoObj`", "/demo/"),
        ("`photoobj`", "/demo"),
        ("`./PhotoObj`", "/demo/"),
        ("`/demo/PhotoObj`", None),
        ("`/demo/PhotoObj`", "/mydb/"),
        ("`../demo/PhotoObj`", "/mydb/"),
        ("`demo/PhotoObj`", "/"),
        ("`/mydb/../demo/PhotoObj`", None),
    ],
)
def test_sql2_paths(con, resolver, path, base):
    compiled = compile_query(f"SELECT count(*) FROM {path}", "sql2", resolver, base_path=base)
    assert compiled.statements[0].tables == [TableTarget("demo", "main", "PhotoObj", "DEMO", False)]
    assert run(con, compiled) == [(6,)]


def test_sql2_relative_path_into_mydb(con, resolver):
    rows = q(con, resolver, "SELECT t.s FROM `../mydb/T` AS t ORDER BY t.x", "sql2", base_path="/demo/")
    assert rows == [("a",), ("b",)]


def test_sql2_path_escaping_root(resolver):
    err = error("SELECT * FROM `../../x/T`", "sql2", resolver, base_path="/demo/")
    assert err.status == 400 and "escapes the root" in err.message
    assert err.details["phases"][-1]["name"] == "Resolved"


def test_sql2_strings_and_limit_offset(con, resolver):
    text = "SELECT objID FROM `/demo/PhotoObj` WHERE state = \"CO\" OR state = 'TX' ORDER BY objID LIMIT 2 OFFSET 1"
    assert q(con, resolver, text, "sql2") == [(3,), (5,)]


def test_sql2_concat_is_string_concatenation(con, resolver):
    assert q(con, resolver, "SELECT type || '/' || state FROM `/demo/PhotoObj` WHERE objID = 1", "sql2") == [
        ("STAR/CO",)
    ]


@pytest.mark.parametrize("op", ["[*]", "{*}", "[_]", "{_}", "??", "~~"])
def test_sql2_quasar_operators_refused(resolver, op):
    text = f"SELECT a{op} FROM `/demo/PhotoObj`" if op not in ("??", "~~") else f"SELECT a {op} b FROM `/demo/PhotoObj`"
    err = error(text, "sql2", resolver)
    assert err.code == "unsupported" and err.status == 400
    assert op in err.message
    assert err.details["phases"][-1]["name"] == "SQL AST"


def test_sql2_operator_inside_string_is_fine(con, resolver):
    assert q(con, resolver, "SELECT '[*]' FROM `/demo/PhotoObj` LIMIT 1", "sql2") == [("[*]",)]


def test_sql2_writes(con, resolver):
    q(con, resolver, 'INSERT INTO `/mydb/T` VALUES (3, "c")', "sql2")
    q(con, resolver, "DELETE FROM `T` WHERE x = 1", "sql2", base_path="/mydb/")
    assert con.sql('SELECT * FROM mydb.main."T" ORDER BY x').fetchall() == [(2, "b"), (3, "c")]
    err = error("DELETE FROM `PhotoObj`", "sql2", resolver, base_path="/demo/")
    assert err.status == 403
    err = error("UPDATE `/mydb/T` SET x = 1", "sql2", resolver)
    assert err.code == "unsupported" and "UPDATE" in err.message


# --- errors -----------------------------------------------------------------------------------


def test_syntax_error_position(resolver):
    err = error("SELECT *\nFROM PhotoObj\nWHERE ra >", "sql", resolver)
    assert err.code == "syntax_error" and err.status == 400
    assert err.position is not None and err.position[0] == 3
    assert err.message.startswith(f"syntax error at line {err.position[0]}, column {err.position[1]}:")
    assert err.details["phases"] == [{"name": "SQL AST", "error": err.message}]


def test_syntax_error_position_in_later_statement(resolver):
    err = error("SELECT 1;\n  SELECT objID FROM PhotoObj WHERE WHERE", "sql", resolver)
    assert err.code == "syntax_error"
    assert err.position == (2, 36)  # the second WHERE


def test_unterminated_string_position(resolver):
    err = error("SELECT 1;\nSELECT 'abc", "sql", resolver)
    assert err.code == "syntax_error" and err.position == (2, 8)


def test_unknown_table_names_the_table(resolver):
    err = error("SELECT * FROM PhotoObj JOIN NoSuchTable ON 1=1", "sql", resolver)
    assert err.code == "unknown_table" and "NoSuchTable" in err.message
    assert err.position == (1, 29)
    assert [p["name"] for p in err.details["phases"]] == ["SQL AST", "Variables Substituted", "Resolved"]
    assert err.details["phases"][-1]["error"] == err.message


def test_unknown_language(resolver):
    err = error("SELECT 1", "cobol", resolver)
    assert err.code == "bad_request" and "cobol" in err.message


def test_empty_query(resolver):
    err = error("  -- nothing\n ; ", "sql", resolver)
    assert err.code == "bad_request"


# --- limits -----------------------------------------------------------------------------------


def test_offset_limit(con, resolver):
    compiled = compile_query("SELECT objID FROM PhotoObj ORDER BY objID", "sql", resolver, offset=1, limit=2)
    assert run(con, compiled) == [(2,), (3,)]
    # a query that already limits is wrapped
    compiled = compile_query(
        "SELECT objID FROM `/demo/PhotoObj` ORDER BY objID LIMIT 4", "sql2", resolver, offset=3, limit=5
    )
    assert "AS \"_q\"" in compiled.statements[0].sql
    assert run(con, compiled) == [(4,)]


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"offset": -1}, "invalid offset: -1 (must be >= 0)"),
        ({"limit": 0}, "invalid limit: 0 (must be >= 1)"),
        ({"limit": "ten"}, "invalid limit: 'ten' (must be an integer >= 1)"),
    ],
)
def test_offset_limit_validation(resolver, kw, message):
    err = error("SELECT 1", "sql", resolver, **kw)
    assert err.code == "bad_request" and err.message == message


def test_row_limit_adds_one(con, resolver):
    compiled = compile_query("SELECT objID FROM PhotoObj ORDER BY objID", "sql", resolver, row_limit=3)
    assert len(run(con, compiled)) == 4
    compiled = compile_query("SELECT TOP 5 objID FROM PhotoObj ORDER BY objID", "tsql", resolver, row_limit=2)
    assert run(con, compiled) == [(1,), (2,), (3,)]
    compiled = compile_query("SELECT objID FROM PhotoObj WHERE objID = 1", "sql", resolver, row_limit=3)
    assert run(con, compiled) == [(1,)]


@pytest.mark.parametrize(
    ("text", "language", "wrapped"),
    [
        ("SELECT TOP 3 objID FROM PhotoObj ORDER BY objID", "tsql", False),  # its own limit is tighter
        ("SELECT objID FROM PhotoObj ORDER BY objID LIMIT 4 OFFSET 1", "sql", False),
        ("SELECT objID FROM PhotoObj ORDER BY objID LIMIT 5", "sql", True),  # more than the row limit + 1
        ("SELECT objID FROM PhotoObj ORDER BY objID LIMIT $n", "sql", True),
    ],
)
def test_row_limit_wraps_only_a_query_that_could_return_more(con, resolver, text, language, wrapped):
    compiled = compile_query(text, language, resolver, row_limit=3, params={"n": 9} if "$n" in text else None)
    assert ('AS "_q"' in compiled.statements[0].sql) is wrapped
    rows = run(con, compiled)
    assert 1 <= len(rows) <= 4 and rows == sorted(rows)


def test_row_limit_only_on_last_read(con, resolver):
    compiled = compile_query(
        "SELECT * FROM PhotoObj; CREATE TABLE mydb.All_ AS SELECT * FROM PhotoObj; SELECT objID FROM mydb.All_",
        "sql",
        resolver,
        row_limit=1,
    )
    sts = compiled.statements
    assert "LIMIT" not in sts[0].sql and "LIMIT" not in sts[1].sql and "LIMIT 2" in sts[2].sql
    assert len(run(con, compiled)) == 2
    assert con.sql('SELECT count(*) FROM mydb.main."All_"').fetchall() == [(6,)]


# --- phases -----------------------------------------------------------------------------------


def test_phases_present_and_named(resolver):
    compiled = compile_query(
        "SELECT TOP 2 p.objID INTO mydb.X FROM PhotoObj p WHERE p.ra > :cut", "tsql", resolver, params={"cut": 1}
    )
    phases = [p.to_json() for p in compiled.phases]
    assert [p["name"] for p in phases] == PHASE_NAMES
    assert not any("error" in p for p in phases)
    ast = phases[0]["tree"]
    assert ast["type"] == "AST/Select"
    labels = []

    def walk(node):
        assert set(node) <= {"type", "label", "children"} and node["type"].startswith("AST/")
        labels.append(node["label"])
        for child in node.get("children", []):
            walk(child)

    walk(ast)
    assert "p.objID" in labels
    assert "$p1" in phases[1]["detail"] and "int" in phases[1]["detail"]
    assert "PhotoObj -> DEMO: demo.main.PhotoObj" in phases[2]["detail"]
    assert "mydb.X -> MyDB: mydb.main.X" in phases[2]["detail"]
    assert phases[3]["tree"]["type"] == "AST/Create"
    assert phases[4]["detail"] == compiled.statements[0].sql


def test_batch_phase_tree(resolver):
    compiled = compile_query("SELECT 1; SELECT 2", "sql", resolver)
    tree = compiled.phases[0].to_json()["tree"]
    assert tree["type"] == "AST/Batch" and len(tree["children"]) == 2
    assert compiled.phases[4].detail.count(";") == 1


def test_go_after_semicolon_on_same_line(resolver):
    compiled = compile_query("SELECT 1; GO\nSELECT 2;\nGO", "tsql", resolver)
    assert [st.source for st in compiled.statements] == ["SELECT 1", "SELECT 2"]


def test_check_error_keeps_the_ast_tree(resolver):
    err = error("SELECT getenv('HOME') FROM PhotoObj", "sql", resolver)
    phase = err.details["phases"][-1]
    assert phase["name"] == "SQL AST" and phase["tree"]["type"] == "AST/Select"
    assert err.position == (1, 8)


def test_modified_query_keeps_variables_and_names_as_written(resolver):
    compiled = compile_query(
        "SELECT objID FROM `PhotoObj` WHERE ra > :cut", "sql2", resolver, base_path="/demo", variables={"cut": "1"}
    )
    assert compiled.modified_query == "SELECT objID FROM `PhotoObj` WHERE ra > :cut"
    assert compiled.language == "sql2"


def test_rename_then_use_in_same_batch(con, resolver):
    q(con, resolver, "ALTER TABLE mydb.T RENAME TO T9; INSERT INTO mydb.T9 VALUES (3, 'c')")
    assert con.sql('SELECT count(*) FROM mydb.main."T9"').fetchall() == [(3,)]


def test_numpy_and_other_param_values(con, resolver):
    np = pytest.importorskip("numpy")
    rows = q(con, resolver, "SELECT objID FROM PhotoObj WHERE objID = $id", params={"id": np.int64(4)})
    assert rows == [(4,)]
    err = error("SELECT $x", "sql", resolver, params={"x": object()})
    assert err.code == "bad_request"


# --- bounds on compiling one query -------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(LANGUAGES)),
       st.sampled_from(["SELECT 7.5 AS a{nul}", "SELECT 1 AS \"a{nul}b\"", "SELECT '{nul}' AS s", "SELECT 1 AS x -- {nul}\nFROM t",
                        "SELECT 1{nul} AS x", "SELECT 2.5 AS y;\nSELECT 3 AS z{nul}"]),
       st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=5))
def test_a_query_holding_a_nul_character_is_refused(resolver, language, template, around):
    """In a name, a string, a comment or between tokens: a 400 naming its line. It was no SQL: DuckDB's column
    names ended at it (``SELECT 7.5 AS "a<NUL>"`` answered a column ``a``)."""
    text = template.replace("{nul}", around + "\x00" + around)
    err = error(text, language, resolver)
    assert err.status == 400 and f"NUL character (U+0000) on line {text.count(chr(10), 0, text.index(chr(0))) + 1}" in err.message, err.message


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_an_error_of_a_deep_chain_shows_its_tree_cut_short(resolver, language):
    """5,000 ORs parse as a tree as deep: the parsed tree shown with a later error (here an unknown table's; it was
    the time budget's) once recursed past Python's limit while the error was made, and the reply was a 500."""
    text = "SELECT objID FROM no_such_table WHERE " + " OR ".join(f"objID = {i}" for i in range(5_000))
    err = error(text, language, resolver)
    assert err.status in (400, 404) and "no_such_table" in err.message, err.message
    def deepest(tree: dict) -> tuple[int, str]:  # (depth, type) of the deepest node
        return max(((d + 1, t) for d, t in map(deepest, tree.get("children", []))), default=(0, tree["type"]))

    depth, kind = deepest(err.details["phases"][0]["tree"])
    assert kind == "AST/Truncated" and depth <= 101, (depth, kind)


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_compiling_is_bounded_in_size_and_time(resolver, language):
    from jupyter_archive.core.sql.pipeline import MAX_QUERY_CHARS, MAX_STATEMENTS

    scripts = language != "adql"  # an ADQL query is one SELECT
    if scripts:
        many = ";\n".join(["SELECT 1 AS x"] * (MAX_STATEMENTS + 1))
        err = error(many, language, resolver)
        assert err.status == 400 and f"more than {MAX_STATEMENTS:,} statements" in err.message
        assert len(compile_query(";\n".join(["SELECT 1 AS x"] * 50), language, resolver).statements) == 50
    long = "SELECT 1 AS x -- " + "y" * MAX_QUERY_CHARS
    err = error(long, language, resolver)
    assert err.status == 400 and f"at most {MAX_QUERY_CHARS:,}" in err.message
    text = ";\n".join(["SELECT 1 AS x"] * (200 if scripts else 1))
    err = error(text, language, resolver, time_budget=0.0)
    assert err.status == 400 and "longer than 0 s" in err.message and err.details["phases"][-1]["error"]
    assert compile_query(text, language, resolver, time_budget=30.0).statements
