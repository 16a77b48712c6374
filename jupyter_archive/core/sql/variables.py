"""Variables and parameters: bound as DuckDB ``$pN`` parameters, never pasted into the SQL text.

A Quasar ``var.name=value`` is one SQL literal (``parse_variable``); a native-API parameter is a
python value. ``Binder`` replaces each variable node by a placeholder and keeps the values.
"""

from __future__ import annotations

import datetime as _dt
import re
import uuid
from decimal import Decimal
from typing import Any, Iterator

from sqlglot import exp
from sqlglot.errors import SqlglotError, TokenError
from sqlglot.tokens import TokenType

from ..errors import ArchiveError, bad_request
from .dialects import SQL2

INTEGER = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_TEMPORAL = {
    "DATE": _dt.date.fromisoformat,
    "TIME": _dt.time.fromisoformat,
    "TIMESTAMP": _dt.datetime.fromisoformat,
    "DATETIME": _dt.datetime.fromisoformat,
}
# Values a native-API parameter may have (numpy scalars are turned into these first).
_PARAM_TYPES = (type(None), bool, int, float, Decimal, str, bytes, _dt.date, _dt.time, _dt.timedelta, uuid.UUID)


def _plain(value: Any) -> Any:
    """A numpy scalar as the python value DuckDB can bind; anything else unchanged."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()  # scalar -> int/float/..., array -> list
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _malformed(name: str, raw: str, why: str) -> ArchiveError:
    return ArchiveError(
        "malformed_variable",
        f"Malformed variable {name}: {why}",
        400,
        details={"varName": name, "varValue": raw},
    )


def parse_variable(name: str, raw: str) -> Any:
    """Turn one SQL literal text (a Quasar ``var.name=value``) into a python value.

    Accepts exactly one literal: a number, a '...' or "..." string, true/false/null, or
    DATE/TIME/TIMESTAMP with a string (``DATE '2015-07-06'`` or ``DATE("2015-07-06")``).
    Anything else (expressions, several tokens, names, other functions) is refused.
    """
    text = (raw or "").strip()
    if INTEGER.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    try:
        tokens = SQL2().tokenize(text)
    except (TokenError, SqlglotError):
        raise _malformed(name, raw, f"cannot read {raw!r} as a literal") from None
    kinds = [t.token_type for t in tokens]
    if kinds == [TokenType.STRING]:
        return tokens[0].text
    if len(tokens) == 1 and kinds[0] in (TokenType.TRUE, TokenType.FALSE, TokenType.NULL):
        return {TokenType.TRUE: True, TokenType.FALSE: False, TokenType.NULL: None}[kinds[0]]
    if tokens and tokens[0].text.upper() in _TEMPORAL and kinds[0] not in (TokenType.STRING, TokenType.IDENTIFIER):
        rest = kinds[1:]
        if rest == [TokenType.STRING] or rest == [TokenType.L_PAREN, TokenType.STRING, TokenType.R_PAREN]:
            word = tokens[0].text.upper()
            literal = tokens[1].text if rest == [TokenType.STRING] else tokens[2].text
            try:
                return _TEMPORAL[word](literal)
            except ValueError:
                raise _malformed(name, raw, f"{literal!r} is not a valid {word}") from None
    raise _malformed(name, raw, f"{raw!r} is not a single literal value")


class Binder:
    """Replaces variable nodes by ``$pN`` placeholders and collects their values."""

    def __init__(self, variables: dict[str, str] | None, params: dict[str, Any] | None):
        self.variables = dict(variables or {})
        self.params = dict(params or {})
        self.names: dict[str, str] = {}  # variable name -> engine parameter name
        self.values: dict[str, Any] = {}  # engine parameter name -> value
        self.sources: dict[str, str] = {}  # engine parameter name -> "var"/"param"

    def value(self, name: str) -> tuple[Any, str]:
        """(value, "param" or "var") of a variable, checked; 400 when unbound or of a refused type."""
        if name in self.params:
            value = _plain(self.params[name])
            if not isinstance(value, _PARAM_TYPES) and not (
                isinstance(value, (list, tuple)) and all(isinstance(v, _PARAM_TYPES) for v in value)
            ):
                raise bad_request(f"parameter {name}: unsupported value type {type(value).__name__}", varName=name)
            return value, "param"
        if name in self.variables:
            return parse_variable(name, self.variables[name]), "var"
        raise ArchiveError("unbound_variable", f"Unbound variable: {name}", 400, details={"varName": name})

    def bind(self, stmt: exp.Expr, position) -> dict[str, Any]:
        used: dict[str, Any] = {}
        for node, name in list(walk_placeholders(stmt)):
            try:
                if not name or name.isdigit():
                    raise bad_request("positional parameters (? or $1) are not supported; name them, e.g. :ra_min")
                parent = node.parent
                if isinstance(parent, exp.Table) and node.arg_key in ("this", "db", "catalog"):
                    raise bad_request(f"a variable cannot stand for a table name: {name}", varName=name)
                if name not in self.names:
                    pname = f"p{len(self.names) + 1}"
                    value, source = self.value(name)
                    self.names[name], self.values[pname], self.sources[pname] = pname, value, source
            except ArchiveError as err:
                if err.position is None:
                    err.position = position(node)
                raise
            pname = self.names[name]
            used[pname] = self.values[pname]
            node.replace(exp.Placeholder(this=pname))
        return used

    def describe(self) -> str:
        if not self.names:
            return "no variables"
        lines = []
        for name, pname in self.names.items():
            value = self.values[pname]
            kind = "null" if value is None else type(value).__name__
            origin = "var." + name if self.sources[pname] == "var" else "params"
            lines.append(f"${pname} <- {name} ({kind}, from {origin})")
        return "\n".join(lines)


def walk_placeholders(stmt: exp.Expr) -> Iterator[tuple[exp.Expr, str]]:
    """Variable/parameter nodes with their names: ``:name``, ``$name``, T-SQL ``@name``.

    T-SQL has no ``$name`` syntax; sqlglot reads it as a column named ``$name``."""
    for node in list(stmt.walk()):
        if isinstance(node, exp.Placeholder):
            yield node, str(node.this or "")
        elif isinstance(node, exp.Parameter):
            yield node, node.name
        elif (
            isinstance(node, exp.Column)
            and node.args.get("table") is None
            and isinstance(node.this, exp.Identifier)
            and not node.this.quoted
            and re.fullmatch(r"\$[A-Za-z_]\w*", node.name)
        ):
            yield node, node.name[1:]
