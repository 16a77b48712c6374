"""The phases of a compilation as the user sees them (/compile, error replies), and their trees."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Iterator

from sqlglot import exp
from sqlglot.errors import SqlglotError, UnsupportedError

from ..errors import ArchiveError, bad_request
from .checks import function_name

PHASE_AST = "SQL AST"
PHASE_VARIABLES = "Variables Substituted"
PHASE_RESOLVED = "Resolved"
PHASE_REWRITTEN = "Rewritten"
PHASE_ENGINE_SQL = "Engine SQL"


@dataclass
class Phase:
    """One step of the pipeline as shown to the user: a tree, a text, or the error it stopped at."""

    name: str
    tree: dict | None = None
    detail: str | None = None
    error: str | None = None
    # Trees are for /compile and errors; a query that just runs never needs one, so it is made
    # on first use (building it costs as much as the rest of a small query's compile).
    tree_of: Callable[[], dict] | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        if self.tree is None and self.tree_of is not None:
            self.tree, self.tree_of = self.tree_of(), None
        out: dict = {"name": self.name}
        for key in ("tree", "detail", "error"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class PhaseLog:
    """The phases of one compilation; attaches them to any error raised inside a phase."""

    def __init__(self) -> None:
        self.phases: list[Phase] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        ph = Phase(name)
        try:
            yield ph
        except ArchiveError as err:
            self._fail(ph, err)
            raise
        except UnsupportedError as e:
            err = ArchiveError("unsupported", f"cannot translate to the engine's SQL: {e}", 400)
            self._fail(ph, err)
            raise err from None
        except SqlglotError as e:
            err = ArchiveError("syntax_error", f"syntax error: {e}", 400)
            self._fail(ph, err)
            raise err from None
        except RecursionError:
            err = bad_request("the query is nested too deeply")
            self._fail(ph, err)
            raise err from None
        self.phases.append(ph)

    def _fail(self, ph: Phase, err: ArchiveError) -> None:
        ph.error = err.message
        self.phases.append(ph)
        err.details["phases"] = [p.to_json() for p in self.phases]


_LEAVES = (exp.Identifier, exp.Literal, exp.Column, exp.Table, exp.Placeholder, exp.Parameter, exp.Star,
           exp.DataType, exp.Var, exp.Boolean, exp.Null)  # fmt: skip
_TREE_BUDGET = 4000  # nodes per tree; a phase is for reading, not for shipping megabytes
_TREE_DEPTH = 100  # levels per tree


def _label(node: exp.Expr, dialect) -> str:
    try:
        if isinstance(node, _LEAVES):
            return node.sql(dialect=dialect)
        if isinstance(node, exp.Func):
            return function_name(node)
        if isinstance(node, (exp.Alias, exp.TableAlias, exp.CTE)):
            return node.alias or node.name
        if isinstance(node, exp.Binary):
            return node.key.upper()
        kind = node.args.get("kind")
        if isinstance(kind, str):
            return kind.upper()
    except Exception:  # a label is cosmetic; never fail a query over it
        pass
    return ""


def ast_tree(node: exp.Expr, dialect=None, _budget: list[int] | None = None, _depth: int = 0) -> dict:
    """``{"type": "AST/Select", "label": ..., "children": [...]}`` for a phase."""
    budget = _budget if _budget is not None else [_TREE_BUDGET]
    budget[0] -= 1
    out: dict = {"type": f"AST/{type(node).__name__}", "label": _label(node, dialect)}
    if isinstance(node, _LEAVES):
        return out
    children = []
    for child in node.iter_expressions():
        if budget[0] <= 0 or _depth >= _TREE_DEPTH:  # a chain of 30,000 ORs is as deep: past the recursion limit
            children.append({"type": "AST/Truncated", "label": "..."})
            break
        children.append(ast_tree(child, dialect, budget, _depth + 1))
    if children:
        out["children"] = children
    return out


def batch_tree(trees: list[dict]) -> dict:
    """One tree for a phase: the statement's own, or a Batch node over several."""
    if len(trees) == 1:
        return trees[0]
    return {"type": "AST/Batch", "label": f"{len(trees)} statements", "children": trees}
