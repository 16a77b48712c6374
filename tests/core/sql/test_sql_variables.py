"""Variables and parameters: bound as DuckDB parameters, never pasted; malformed, unbound and injected values."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import strategies as st

from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.sql import compile_query, parse_variable

from tests.support.sql import error, q, run


# --- variables and parameters -----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw,value",
    [
        ("123", 123),
        ("-7", -7),
        ("-1.5e3", -1500.0),
        ("2.5", 2.5),
        ("'CO'", "CO"),
        ('"CO"', "CO"),
        ("'it''s'", "it's"),
        ("DATE '2015-07-06'", dt.date(2015, 7, 6)),
        ('DATE("2015-07-06")', dt.date(2015, 7, 6)),
        ("TIMESTAMP '2015-07-06T10:11:12'", dt.datetime(2015, 7, 6, 10, 11, 12)),
        ("TIME '10:11'", dt.time(10, 11)),
        ("true", True),
        ("FALSE", False),
        ("null", None),
    ],
)
def test_parse_variable(raw, value):
    got = parse_variable("v", raw)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    "raw",
    [
        "18; DROP TABLE x",
        "0 OR 1=1",
        "1 + 1",
        "ra",
        "upper('x')",
        "DATE '2015-13-45'",
        "'a' 'b'",
        "'unterminated",
        "",
        "(1)",
    ],
)
def test_parse_variable_malformed(raw):
    with pytest.raises(ArchiveError) as info:
        parse_variable("cut", raw)
    err = info.value
    assert err.code == "malformed_variable" and err.status == 400
    assert err.details == {"varName": "cut", "varValue": raw}


@pytest.mark.parametrize(
    "variables,expected",
    [
        ({"cut": "25", "state": "'CO'"}, [(3,), (5,)]),
        ({"cut": "25", "state": '"CO"'}, [(3,), (5,)]),
        ({"cut": "2.5e1", "state": "'NY'"}, [(4,)]),
    ],
)
def test_sql2_variables_bound_as_parameters(con, resolver, variables, expected):
    text = "SELECT objID FROM `/demo/PhotoObj` WHERE ra > :cut AND state = :state ORDER BY objID"
    compiled = compile_query(text, "sql2", resolver, variables=variables)
    st = compiled.statements[0]
    assert "$p1" in st.sql and "$p2" in st.sql
    assert "CO" not in st.sql and "25" not in st.sql and "NY" not in st.sql
    assert set(st.params) == {"p1", "p2"}
    assert run(con, compiled) == expected
    detail = compiled.phases[1].detail
    assert "cut" in detail and "state" in detail and "str" in detail
    assert "CO" not in detail  # types, never values


def test_backticked_variable_name_and_reuse(con, resolver):
    text = "SELECT objID FROM `/demo/PhotoObj` WHERE ra > :`min ra` AND ra < :`min ra` + 15 ORDER BY 1"
    compiled = compile_query(text, "sql2", resolver, variables={"min ra": "15"})
    assert compiled.statements[0].params == {"p1": 15}
    assert run(con, compiled) == [(2,)]


def test_date_variable(con, resolver):
    compiled = compile_query(
        "SELECT :d + 1 AS next FROM `/demo/PhotoObj` LIMIT 1", "sql2", resolver, variables={"d": "DATE '2015-07-06'"}
    )
    assert compiled.statements[0].params == {"p1": dt.date(2015, 7, 6)}
    assert run(con, compiled) == [(dt.date(2015, 7, 7),)]


def test_unbound_variable(resolver):
    err = error("SELECT * FROM `/demo/PhotoObj` WHERE ra > :cut", "sql2", resolver, variables={"other": "1"})
    assert err.code == "unbound_variable" and err.status == 400
    assert err.message == "Unbound variable: cut"
    assert err.details["varName"] == "cut"
    assert [p["name"] for p in err.details["phases"]] == ["SQL AST", "Variables Substituted"]
    assert "error" in err.details["phases"][-1]


def test_malformed_variable_in_query(resolver):
    text = "SELECT * FROM `/demo/PhotoObj` WHERE ra > :cut"
    err = error(text, "sql2", resolver, variables={"cut": "18; DROP TABLE x"})
    assert err.code == "malformed_variable"
    assert err.details["varName"] == "cut" and err.details["varValue"] == "18; DROP TABLE x"


@pytest.mark.parametrize("raw", ["18; DROP TABLE T", "0 OR 1=1", "'CO' OR 1=1", "1); DELETE FROM mydb.T; --"])
def test_injection_attempts_refused(con, resolver, raw):
    err = error("SELECT objID FROM `/demo/PhotoObj` WHERE objID = :id", "sql2", resolver, variables={"id": raw})
    assert err.code == "malformed_variable"
    assert con.sql('SELECT count(*) FROM mydb.main."T"').fetchall() == [(2,)]


def test_injection_string_is_one_value(con, resolver):
    raw = "'a'' OR ''1''=''1'"
    text = "SELECT objID FROM `/demo/PhotoObj` WHERE state = :s"
    compiled = compile_query(text, "sql2", resolver, variables={"s": raw})
    st = compiled.statements[0]
    assert st.params == {"p1": "a' OR '1'='1"}
    # the query text is exactly what it is for a harmless value
    harmless = compile_query(text, "sql2", resolver, variables={"s": "'CO'"}).statements[0]
    assert st.sql == harmless.sql
    assert run(con, compiled) == []
    assert run(con, compile_query(text, "sql2", resolver, variables={"s": "'CO'"})) == [(1,), (3,), (5,)]


def test_native_params(con, resolver):
    for text in (
        "SELECT objID FROM PhotoObj WHERE state = $s AND ra < :maxra ORDER BY 1",
        "SELECT objID FROM PhotoObj WHERE state = :s AND ra < $maxra ORDER BY 1",
    ):
        compiled = compile_query(text, "sql", resolver, params={"s": "CO", "maxra": 40})
        assert compiled.statements[0].params == {"p1": "CO", "p2": 40}
        assert run(con, compiled) == [(1,), (3,)]
    assert q(con, resolver, "SELECT TOP (@n) objID FROM PhotoObj ORDER BY objID", "tsql", params={"n": 2}) == [
        (1,),
        (2,),
    ]
    assert q(con, resolver, "SELECT objID FROM PhotoObj WHERE state = :s", "mysql", params={"s": "NY"}) == [(4,)]


def test_param_injection_is_a_value(con, resolver):
    text = "SELECT objID FROM PhotoObj WHERE state = $s"
    compiled = compile_query(text, "sql", resolver, params={"s": "x' OR 1=1 --"})
    assert "OR 1=1" not in compiled.statements[0].sql
    assert run(con, compiled) == []


def test_variable_as_table_refused(resolver):
    err = error("SELECT * FROM :tbl", "sql2", resolver, variables={"tbl": "'PhotoObj'"})
    assert err.status == 400 and "table" in err.message
    err = error("SELECT * FROM $tbl", "sql", resolver, params={"tbl": "PhotoObj"})
    assert err.status == 400 and "table" in err.message


def test_positional_parameters_refused(resolver):
    err = error("SELECT * FROM PhotoObj WHERE ra > ?", "sql", resolver, params={"1": 1})
    assert err.code == "bad_request"
