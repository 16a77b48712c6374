"""The accepted query languages: a sqlglot dialect each, and what else differs between them.

Adding a language: a sqlglot dialect (subclass one if needed), a ``LanguageSpec`` in ``SPECS``, and
its name in ``core/languages.py`` (which the client and the magic import without loading sqlglot).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp
from sqlglot import parser as sg_parser
from sqlglot import tokens as sg_tokens
from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.dialects.mysql import MySQL
from sqlglot.dialects.tsql import TSQL
from sqlglot.tokens import TokenType

from ..errors import bad_request
from ..languages import LANGUAGES

# Meta key set on identifiers the parser made out of a string literal (``FROM 'x.csv'``):
# sqlglot turns those into quoted identifiers, which would otherwise look like table names.
STRING_NAME = "archive_string_name"


def _marking_parser(base: type) -> type:
    """A parser class that tags identifiers built from string literals (see STRING_NAME)."""

    class Parser(base):
        def _parse_string_as_identifier(self):
            ident = super()._parse_string_as_identifier()
            if ident is not None:
                ident.meta[STRING_NAME] = True
            return ident

    return Parser


class ArchiveDuckDB(DuckDB):
    """DuckDB's dialect, with string-literal table names marked and ``SELECT TOP n`` read as
    ``LIMIT n``: the archive's default language takes the TOP that CasJobs and ADQL users
    write by habit (DuckDB has none), while ``top`` stays a usable column name."""

    class Parser(_marking_parser(DuckDB.Parser)):
        def _parse_limit(self, this=None, top=False, skip_limit_token=False):
            if top and _top_ahead(self._tokens[self._index : self._index + 5]):
                self._advance()
                return super()._parse_limit(this, top=True, skip_limit_token=True)
            return super()._parse_limit(this, top=top, skip_limit_token=skip_limit_token)


_TOP_IN_PARENS = (
    [TokenType.NUMBER, TokenType.R_PAREN],
    [TokenType.COLON, TokenType.VAR, TokenType.R_PAREN],
    [TokenType.PARAMETER, TokenType.VAR, TokenType.R_PAREN],
)


def _top_ahead(tokens: list) -> bool:
    """Whether the tokens after SELECT [DISTINCT] start ``TOP n``, ``TOP (n)`` or ``TOP (:name)``:
    where DuckDB could read neither a column nor a function named top."""
    kinds = [t.token_type for t in tokens]
    if len(kinds) < 2 or kinds[0] != TokenType.VAR or tokens[0].text.upper() != "TOP":
        return False
    if kinds[1] == TokenType.NUMBER:
        return True
    return kinds[1] == TokenType.L_PAREN and any(kinds[2 : 2 + len(c)] == c for c in _TOP_IN_PARENS)


class ArchiveTSQL(TSQL):
    """T-SQL (CasJobs), with string-literal table names marked."""

    Parser = _marking_parser(TSQL.Parser)


class ArchiveMySQL(MySQL):
    """MySQL, with string-literal table names marked."""

    Parser = _marking_parser(MySQL.Parser)


class SQL2(MySQL):
    """SlamData Quasar SQL²: MySQL's lexical rules (backtick identifiers, double-quoted
    strings, ``:name`` placeholders) except that ``||`` concatenates strings."""

    DPIPE_IS_STRING_CONCAT = True

    class Parser(_marking_parser(MySQL.Parser)):
        # MySQL reads || as OR; SQL² reads it as concatenation.
        DISJUNCTION = dict(sg_parser.Parser.DISJUNCTION)

        def _parse_bitwise(self):
            this = super()._parse_bitwise()
            while self._match(TokenType.DPIPE):
                this = self.expression(exp.DPipe(this=this, expression=super()._parse_bitwise(), safe=True))
            return this


class ADQL(Dialect):
    """ADQL 2.1 lexical rules on sqlglot's base dialect: ``SELECT TOP n``, ``OFFSET``,
    double-quoted identifiers, single-quoted strings, ``||`` concatenation; no LIMIT."""

    NULL_ORDERING = "nulls_are_last"  # ADQL leaves it open; keep DuckDB's default

    class Tokenizer(sg_tokens.Tokenizer):
        KEYWORDS = {**sg_tokens.Tokenizer.KEYWORDS, "TOP": TokenType.TOP}  # noqa: RUF012 (sqlglot's pattern)

    class Parser(Dialect.parser_class):  # sqlglot's base parser
        def _parse_limit(self, this=None, top=False, skip_limit_token=False):
            if not top and not skip_limit_token and self._curr and self._curr.token_type == TokenType.LIMIT:
                self.raise_error("LIMIT is not ADQL; use SELECT TOP n")
            return super()._parse_limit(this, top=top, skip_limit_token=skip_limit_token)


DEFAULT_FIRST_WORDS = frozenset(
    {"SELECT", "WITH", "VALUES", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "TRUNCATE", "("}
)


@dataclass(frozen=True)
class LanguageSpec:
    """What differs between the accepted query languages, for scanning, parsing and checks."""

    name: str
    dialect: type[Dialect]
    paths: bool = False  # table references are SQL² paths resolved through resolve_path
    go_batches: bool = False  # a line holding only GO separates statements (T-SQL)
    loose_statements: bool = False  # statements may follow each other without ';' (T-SQL)
    backslash_strings: bool = False  # backslash escapes inside quoted strings (MySQL, SQL²)
    bracket_idents: bool = False  # [bracketed] identifiers (T-SQL)
    backtick_idents: bool = False
    dollar_quotes: bool = False  # $$...$$ / $tag$...$tag$ strings (DuckDB)
    hash_comments: bool = False  # '#' starts a comment (MySQL)
    quasar_ops: bool = False  # refuse the Quasar postfix operators by name
    first_words: frozenset[str] = DEFAULT_FIRST_WORDS  # leading keywords a statement may have
    statement_types: tuple[type, ...] = ()  # if set: the only statement classes allowed


SPECS: dict[str, LanguageSpec] = {
    "sql": LanguageSpec("sql", ArchiveDuckDB, dollar_quotes=True, first_words=DEFAULT_FIRST_WORDS | {"FROM"}),
    "tsql": LanguageSpec("tsql", ArchiveTSQL, go_batches=True, loose_statements=True, bracket_idents=True),
    "sql2": LanguageSpec(
        "sql2",
        SQL2,
        paths=True,
        backslash_strings=True,
        backtick_idents=True,
        quasar_ops=True,
        first_words=frozenset({"SELECT", "WITH", "INSERT", "DELETE", "("}),
        statement_types=(exp.Query, exp.Values, exp.Insert, exp.Delete),
    ),
    "mysql": LanguageSpec("mysql", ArchiveMySQL, backslash_strings=True, backtick_idents=True, hash_comments=True),
    "adql": LanguageSpec("adql", ADQL, first_words=frozenset({"SELECT", "WITH", "("}), statement_types=(exp.Query,)),
}
if set(SPECS) != set(LANGUAGES):  # pragma: no cover - a language added in one place only
    raise ImportError(f"query languages {sorted(LANGUAGES)} and their specs {sorted(SPECS)} differ")


def language_spec(language: str) -> LanguageSpec:
    """The spec of a language named in any case; a 400 naming the accepted ones otherwise."""
    spec = SPECS.get((language or "").lower())
    if spec is None:
        raise bad_request(f"unknown query language {language!r}; expected one of {', '.join(LANGUAGES)}")
    return spec
