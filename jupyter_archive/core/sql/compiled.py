"""What a compilation works on and makes: table targets, statements on their way and ready to run.

The ``Resolver`` is what the archive hands the pipeline per request to turn names into targets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlglot import exp

if TYPE_CHECKING:
    from .phases import Phase
    from .scan import Chunk


def quote_ident(name: str) -> str:
    """An engine identifier, delimited (inner double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """An engine string literal (inner single quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class TableTarget:
    """What a table reference resolves to in the engine."""

    catalog: str  # engine database alias, e.g. "demo", "mydb"
    schema: str  # engine schema, usually "main"
    name: str  # table name in the engine (canonical case)
    context: str  # the archive context it belongs to, e.g. "DEMO", "MyDB"
    writable: bool


class Resolver(Protocol):
    """Built by the archive per request: knows the caller, the default context and (sql2) the base path."""

    def resolve_name(self, parts: tuple[str, ...], *, write: bool = False) -> TableTarget: ...

    def resolve_path(self, path: str, *, write: bool = False) -> TableTarget: ...

    def new_table(self, parts_or_path: tuple[str, ...] | str, *, language: str) -> TableTarget: ...


@dataclass
class Statement:
    """One engine statement, ready to run with ``con.sql(sql, params=params)``."""

    kind: str  # "read" (returns rows), "write" (changes/creates data), "ddl" (schema only)
    sql: str
    params: dict[str, Any]
    source: str
    into: TableTarget | None
    tables: list[TableTarget]
    # Read tables whose rows HEALPix ranges of their index bound (a sky region's): TableTarget -> [(ranges,
    # the bound values they hold for)]; only for a table read once in the statement.
    regions: dict = field(default_factory=dict, compare=False, repr=False)
    late: Late | None = field(default=None, compare=False, repr=False)  # the SQL before its regions' ranges


@dataclass
class Late:
    """A statement's SQL with a placeholder where each sky region's range filter goes, filled in when
    values are bound (``healpix_index.bind``: compiling, rebinding, rendering a template)."""

    sql: str
    regions: list  # healpix_index.SkyRegion
    bounds: dict  # TableTarget -> the tokens of the regions that bound its rows


@dataclass
class Compiled:
    """The result of compiling a query text: statements to run, and how we got there."""

    language: str
    statements: list[Statement]
    phases: list[Phase]
    modified: str | Callable[[], str]  # the modified query, or how to make it (on first use)
    param_names: dict[str, str] = field(default_factory=dict)  # variable name -> engine parameter name

    @property
    def modified_query(self) -> str:
        """The query as the user wrote it minus what the archive took over (CasJobs' ModifiedQuery)."""
        if callable(self.modified):
            self.modified = self.modified()
        return self.modified


@dataclass
class Parsed:
    """One statement on its way through the pipeline."""

    chunk: Chunk
    stmt: exp.Expr
    original: exp.Expr  # before binding and rewriting, for modified_query
    source: str
    params: dict[str, Any] = field(default_factory=dict)
    # (table node, its target, role "read"/"write"/"new", name parts as written)
    refs: list[tuple[exp.Table, TableTarget, str, tuple[str, ...]]] = field(default_factory=list)
    kind: str = "read"
    into: TableTarget | None = None
