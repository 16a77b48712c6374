"""Completion of query text: what may be typed at the cursor, from a context's tables and columns.

One pure function, :func:`complete`, serves the ``%%archive`` magic (an IPython matcher) and the
QueryEditor widget. It reads the text with a small lexer of its own, not a parser, so a query
still being typed (unbalanced, unterminated, unparsable) completes as well as a finished one; and
it imports nothing, so a kernel that completes does not load the SQL pipeline.

What it offers for the word at the cursor:

- after ``FROM``/``JOIN`` (or a ``,`` in a FROM list): the context's tables, named as the language
  names them (``schema.table`` in ADQL, see :func:`table_names`);
- after ``name.``: the columns of that alias or table (``p.`` where ``FROM demo.PhotoObj AS p``),
  or the tables of that schema (``demo.``);
- elsewhere (select list, WHERE, ON, ORDER BY...): the columns of the tables named in the query's
  FROM clauses, their aliases, the language's functions (ADQL's geometry ones included) and keywords.
"""

from __future__ import annotations

import re
from typing import NamedTuple

ADQL_GEOMETRY = ("AREA", "BOX", "CENTROID", "CIRCLE", "CONTAINS", "COORD1", "COORD2", "COORDSYS", "DISTANCE",
                 "INTERSECTS", "POINT", "POLYGON")
_MATH = ("ABS", "ACOS", "ASIN", "ATAN", "ATAN2", "CEILING", "COS", "DEGREES", "EXP", "FLOOR", "LOG", "LOG10",
         "MOD", "PI", "POWER", "RADIANS", "ROUND", "SIN", "SQRT", "TAN")
_AGGREGATES = ("AVG", "COUNT", "MAX", "MIN", "SUM")
#: The functions offered per language family: ADQL 2.1's (REGION and IN_UNIT left out: the
#: archive refuses them), and the common ones of DuckDB's and CasJobs' SQL.
FUNCTIONS = {
    "adql": ADQL_GEOMETRY + _MATH + _AGGREGATES + ("COALESCE", "COT", "LOWER", "RAND", "TRUNCATE", "UPPER"),
    "sql": _MATH + _AGGREGATES + ("CAST", "CEIL", "COALESCE", "CONCAT", "GREATEST", "LEAST", "LENGTH", "LN",
                                  "LOWER", "NULLIF", "RANDOM", "REPLACE", "ROW_NUMBER", "STDDEV", "SUBSTRING",
                                  "TRIM", "UPPER"),
}
_KEYWORDS = ("SELECT", "TOP", "DISTINCT", "FROM", "WHERE", "JOIN", "INNER", "LEFT", "RIGHT", "FULL", "OUTER",
             "CROSS", "ON", "USING", "AS", "AND", "OR", "NOT", "IN", "BETWEEN", "LIKE", "IS", "NULL", "GROUP",
             "ORDER", "BY", "HAVING", "ASC", "DESC", "UNION", "EXCEPT", "INTERSECT", "CASE", "WHEN", "THEN",
             "ELSE", "END", "OFFSET", "WITH", "EXISTS", "NATURAL")
KEYWORDS = {"adql": _KEYWORDS + ("ILIKE",), "sql": _KEYWORDS + ("LIMIT", "INTO", "ILIKE")}
# Words that end a FROM item (so are never its alias), and those that start a clause.
_CLAUSES = {"SELECT", "FROM", "JOIN", "WHERE", "ON", "USING", "BY", "HAVING", "LIMIT", "OFFSET", "UNION",
            "EXCEPT", "INTERSECT", "WITH", "INTO", "SET", "VALUES", "QUALIFY", "WINDOW", "TOP"}
_NOT_ALIAS = _CLAUSES | {"AS", "INNER", "LEFT", "RIGHT", "FULL", "OUTER", "CROSS", "NATURAL", "GROUP", "ORDER",
                         "TABLESAMPLE", "APPLY", "FETCH", "LATERAL"}

# Strings and comments (possibly unterminated: the query is being typed), names, and single marks.
_LEX = re.compile(r"""
    (?P<skip>'(?:[^']|'')*'?|--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<quoted>"(?:[^"]|"")*"?|\[[^\]]*\]?|`[^`]*`?)
  | (?P<name>[^\W\d][\w$]*)
  | (?P<number>\d[\w.]*)
  | (?P<mark>\S)
""", re.X | re.S)


class Token(NamedTuple):
    kind: str  # skip, quoted, name, number or mark
    text: str
    start: int
    end: int


class Match(NamedTuple):
    text: str
    kind: str  # column, table, alias, schema, function or keyword


class Completions(NamedTuple):
    """What to put in place of ``text[start:cursor]`` (the word being typed)."""

    start: int
    matches: tuple[Match, ...]


def table_names(tables: list[dict], language: str, schema: str | None = None) -> dict[str, list[str]]:
    """The native API's tables of a context as ``{name as the language writes it: [column names]}``.

    ADQL names a table ``schema.table`` (the context's ``schema``); the SQL languages by its name.
    """
    prefix = f"{schema}." if schema and language == "adql" else ""
    return {f"{prefix}{t['name']}": [c["name"] for c in t.get("columns") or ()] for t in tables}


def _tokens(text: str) -> list[Token]:
    return [Token(m.lastgroup, m.group(0), m.start(), m.end()) for m in _LEX.finditer(text)]


def _unquote(tok: Token) -> str:
    t = tok.text
    return t[1:-1] if tok.kind == "quoted" and len(t) > 1 and t[-1] in "\"]`" else t.lstrip("\"[`")


def _dotted(toks: list[Token], i: int) -> tuple[list[str], int]:
    """The parts of the dotted name starting at ``toks[i]``, and the index after it."""
    parts = [_unquote(toks[i])]
    i += 1
    while i + 1 < len(toks) and toks[i].text == "." and toks[i + 1].kind in ("name", "quoted"):
        parts.append(_unquote(toks[i + 1]))
        i += 2
    return parts, i


def _from_items(toks: list[Token]) -> list[tuple[list[str], str | None]]:
    """Every table named after FROM/JOIN (and in FROM lists), with its alias if any."""
    out = []
    for i, tok in enumerate(toks):
        if tok.kind != "name" or tok.text.upper() not in ("FROM", "JOIN"):
            continue
        listed, j = tok.text.upper() == "FROM", i + 1
        while j < len(toks):
            parts: list[str] = []
            if toks[j].text == "(":  # a subquery: its alias names no table we know
                depth = 0
                while j < len(toks):
                    depth += {"(": 1, ")": -1}.get(toks[j].text, 0)
                    j += 1
                    if depth == 0:
                        break
            elif toks[j].kind in ("name", "quoted") and toks[j].text.upper() not in _NOT_ALIAS:
                parts, j = _dotted(toks, j)
            else:
                break
            if j < len(toks) and toks[j].text.upper() == "AS":
                j += 1
            alias = None
            if j < len(toks) and toks[j].kind in ("name", "quoted") and toks[j].text.upper() not in _NOT_ALIAS:
                alias, j = _unquote(toks[j]), j + 1
            out.append((parts, alias))
            if not (listed and j < len(toks) and toks[j].text == ","):
                break
            j += 1
    return out


def _resolve(parts: list[str], tables: dict[str, list[str]]) -> str | None:
    """The table a written name means: the same full name, else the one table of that last part."""
    if not parts:
        return None
    want = ".".join(parts).casefold()
    for name in tables:
        if name.casefold() == want:
            return name
    last = [n for n in tables if n.rsplit(".", 1)[-1].casefold() == parts[-1].casefold()]
    return last[0] if len(last) == 1 else None


def _clause(toks: list[Token], k: int) -> str | None:
    """The clause keyword the token before index ``k`` is in (at the same parenthesis depth)."""
    depth = 0
    for tok in reversed(toks[:k]):
        if tok.text == ")":
            depth += 1
        elif tok.text == "(":
            if depth == 0:
                return "("
            depth -= 1
        elif depth == 0 and tok.kind == "name" and tok.text.upper() in _CLAUSES:
            return tok.text.upper()
    return None


def complete(text: str, cursor: int, tables: dict[str, list[str]], language: str = "sql") -> Completions:
    """The candidates for the word at ``cursor`` in query ``text``; never raises on any text.

    ``tables`` maps each table of the context, named as the language writes it, to its columns
    (:func:`table_names`). Every candidate starts with the word typed so far (ignoring case;
    functions and keywords take the case the user types them in).
    """
    cursor = max(0, min(cursor, len(text)))
    toks = _tokens(text)
    here = next((t for t in toks if t.start < cursor <= t.end), None)  # the token the cursor is in or ends
    if here and (here.kind == "number" or here.kind in ("skip", "quoted") and (cursor < here.end or _open(here))):
        return Completions(cursor, ())  # in a number, string, comment or quoted name
    prefix, start = "", cursor
    if here and here.kind == "name":
        prefix, start = text[here.start:cursor], here.start
    code = [t for t in toks if t.kind != "skip" and t.end <= start]
    fold = prefix.casefold()

    def keep(names, kind: str, words: bool = False) -> list[Match]:
        case = str.lower if prefix and prefix.islower() and words else (lambda s: s)
        return [Match(case(n), kind) for n in names if n.casefold().startswith(fold)]

    items = _from_items([t for t in toks if t.kind != "skip"])
    if len(code) >= 2 and code[-1].text == "." and code[-2].kind in ("name", "quoted"):
        j = len(code) - 2  # the dotted qualifier before the cursor, read backwards
        while j >= 2 and code[j - 1].text == "." and code[j - 2].kind in ("name", "quoted"):
            j -= 2
        qual = [_unquote(t) for t in code[j:-1:2]]
        before = code[j - 1].text.upper() if j else ""
        naming = before in ("FROM", "JOIN") or (before == "," and _clause(code, j) == "FROM")  # a table's name
        return Completions(start, tuple(_qualified(qual, [] if naming else items, tables, keep, naming)))
    prev = code[-1].text.upper() if code else ""
    clause = _clause(code, len(code))
    family = "adql" if language == "adql" else "sql"
    if prev in ("FROM", "JOIN") or (prev == "," and clause == "FROM"):
        return Completions(start, tuple(keep(tables, "table")))
    if clause in ("FROM", "JOIN") and prev == "AS":
        return Completions(start, ())  # a new alias: nothing to complete it from
    if clause in ("FROM", "JOIN") and prev != ",":
        return Completions(start, tuple(keep(KEYWORDS[family], "keyword", True)))  # after a table: WHERE, JOIN...
    named = [(_resolve(parts, tables), alias) for parts, alias in items]
    columns = dict.fromkeys(c for name, _ in named if name for c in tables[name])
    aliases = dict.fromkeys(alias or name.rsplit(".", 1)[-1] for name, alias in named if name or alias)
    found = (keep(columns, "column") + keep(aliases, "alias") + keep(FUNCTIONS[family], "function", True)
             + keep(KEYWORDS[family], "keyword", True))
    seen: set[str] = set()
    return Completions(start, tuple(m for m in found if not (m.text in seen or seen.add(m.text))))


def _open(tok: Token) -> bool:
    """Whether a string, comment or quoted name runs to the end of the text unterminated."""
    t = tok.text
    if t.startswith("--"):
        return True
    if t.startswith("/*"):
        return not (len(t) >= 4 and t.endswith("*/"))
    close = {"'": "'", '"': '"', "[": "]", "`": "`"}[t[0]]
    return len(t) < 2 or not t.endswith(close) or (close in "'\"" and _doubled_end(t, close))


def _doubled_end(t: str, q: str) -> bool:
    """``'it''`` ends on an escaped quote, so is still open."""
    body = t[1:]
    run = len(body) - len(body.rstrip(q))
    return run % 2 == 0


def _qualified(qual: list[str], items, tables: dict[str, list[str]], keep, naming: bool) -> list[Match]:
    """After ``qual.``: an alias's or a table's columns, else (or where a table is named) a schema's tables."""
    name = None
    for parts, alias in items:
        if alias and len(qual) == 1 and alias.casefold() == qual[0].casefold():
            name = _resolve(parts, tables)
            if name is None:
                return []  # a subquery's alias or an unknown table: nothing we know
            break
    name = name or (None if naming else _resolve(qual, tables))
    if name:
        return keep(tables[name], "column")
    schema = ".".join(qual).casefold() + "."
    return keep([n[len(schema):] for n in tables if n.casefold().startswith(schema)], "table")
