"""Arithmetic on the unit sphere that folds what is known at compile time into numbers.

``X`` is a number or condition: a Python value when known now, else DuckDB text. Formulas written
once over ``X`` (and vectors ``V`` of three) give a plain value for constants and one vectorised
DuckDB expression otherwise; ``geometry.py`` writes its region tests with them.
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

import sqlglot
from sqlglot import exp


def splice(node: exp.Expr) -> str:
    """An expression as DuckDB text to splice into a formula (parenthesised unless a leaf)."""
    text = node.sql(dialect="duckdb")
    if isinstance(node, (exp.Column, exp.Placeholder)) or (isinstance(node, exp.Literal) and not text.startswith("-")):
        return text
    return "(" + text + ")"


def parse_duckdb(text: str) -> exp.Expr:
    """DuckDB text as a tree."""
    return sqlglot.parse_one(text, read="duckdb")


def constant(node: exp.Expr, params: Mapping[str, Any], used: dict[str, Any]) -> float | None:
    """A numeric constant known at compile time (literals, bound parameters, arithmetic)."""
    if isinstance(node, exp.Paren):
        return constant(node.this, params, used)
    if isinstance(node, exp.Literal) and not node.is_string:
        return float(node.this)
    if isinstance(node, exp.Neg):
        v = constant(node.this, params, used)
        return None if v is None else -v
    if isinstance(node, exp.Placeholder):
        value = params.get(str(node.this))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            used[str(node.this)] = value
            return float(value)
        return None
    ops = {exp.Add: float.__add__, exp.Sub: float.__sub__, exp.Mul: float.__mul__, exp.Div: float.__truediv__}
    for kind, op in ops.items():
        if type(node) is kind:
            a, b = constant(node.this, params, used), constant(node.expression, params, used)
            if a is None or b is None or (kind is exp.Div and b == 0):
                return None
            return op(a, b)
    return None


# ---------------------------------------------------------------------------------------------
# X: a value known now or computed by the engine
# ---------------------------------------------------------------------------------------------


class X:
    """A number or condition: a Python float/bool when known at compile time, else DuckDB text.

    Operators fold known operands, so formulas over constants collapse to their value."""

    __slots__ = ("v",)

    def __init__(self, v: float | bool | str):
        self.v = v

    @staticmethod
    def of(v) -> X:
        if isinstance(v, X):
            return v
        if isinstance(v, exp.Expr):
            # Only literals fold: a bound parameter stays $pN so a compile cache may rebind it.
            c = constant(v, {}, {})
            return X(c) if c is not None else X(splice(v))
        return X(float(v) if isinstance(v, int) and not isinstance(v, bool) else v)

    @property
    def known(self) -> bool:
        return not isinstance(self.v, str)

    def sql(self) -> str:
        v = self.v
        if isinstance(v, bool):
            return "TRUE" if v else "FALSE"
        if isinstance(v, float):
            if not math.isfinite(v):
                return f"CAST('{v!r}' AS DOUBLE)"
            text = repr(v) if "e" in repr(v) else repr(v) + "e0"  # exponent form: DOUBLE, not DECIMAL
            return f"({text})" if v < 0 else text
        return v

    def _bin(self, other, sym: str, py) -> X:
        b = X.of(other)
        if self.known and b.known:
            with contextlib.suppress(ArithmeticError):  # a division by zero: left to the engine, as written
                return X(py(self.v, b.v))
        return X(f"({self.sql()} {sym} {b.sql()})")

    def __add__(self, o):
        o = X.of(o)
        if o.known and o.v == 0:
            return self
        return o if self.known and self.v == 0 else self._bin(o, "+", operator.add)

    def __radd__(self, o):
        return X.of(o) + self

    def __sub__(self, o):
        o = X.of(o)
        return self if o.known and o.v == 0 else self._bin(o, "-", operator.sub)

    def __rsub__(self, o):
        return X.of(o) - self

    def __mul__(self, o):
        o = X.of(o)
        for a, b in ((self, o), (o, self)):
            if a.known and a.v == 0:
                return X(0.0)
            if a.known and a.v == 1:
                return b
        return self._bin(o, "*", operator.mul)

    def __rmul__(self, o):
        return X.of(o) * self

    def __truediv__(self, o):
        return self._bin(o, "/", operator.truediv)

    def __neg__(self):
        return X(-self.v) if self.known else X(f"(-{self.v})")

    def __lt__(self, o):
        return self._bin(o, "<", operator.lt)

    def __le__(self, o):
        return self._bin(o, "<=", operator.le)

    def __gt__(self, o):
        return self._bin(o, ">", operator.gt)

    def __ge__(self, o):
        return self._bin(o, ">=", operator.ge)

    def __and__(self, o):
        o = X.of(o)
        for a, b in ((self, o), (o, self)):
            if a.known:
                return b if a.v else X(False)
        return X(f"({self.v} AND {o.v})")

    def __or__(self, o):
        o = X.of(o)
        for a, b in ((self, o), (o, self)):
            if a.known:
                return X(True) if a.v else b
        return X(f"({self.v} OR {o.v})")

    def __invert__(self):
        return X(not self.v) if self.known else X(f"(NOT {self.v})")


def math_fn(name: str, py: Callable, *args) -> X:
    """The math function ``py`` (DuckDB's ``name``) of X values: folded when all are known."""
    xs = [X.of(a) for a in args]
    if all(x.known for x in xs):
        with contextlib.suppress(ValueError, OverflowError):  # out of its domain (the sine of infinity): left to the engine
            return X(float(py(*(x.v for x in xs))))
    return X(f"{name}({', '.join(x.sql() for x in xs)})")


def sin(a):
    return math_fn("SIN", math.sin, a)


def cos(a):
    return math_fn("COS", math.cos, a)


def atan2(y, x):
    return math_fn("ATAN2", math.atan2, y, x)


def sqrt(a):
    return math_fn("SQRT", math.sqrt, a)


def xabs(a):
    return math_fn("ABS", abs, a)


def radians(a):
    return math_fn("RADIANS", math.radians, a)


def degrees(a):
    return math_fn("DEGREES", math.degrees, a)


V = tuple[X, X, X]


def vec(ra, dec) -> V:
    """Unit vector of (ra, dec) in degrees."""
    a, d = radians(ra), radians(dec)
    return cos(d) * cos(a), cos(d) * sin(a), sin(d)


def dot(u: V, v: V) -> X:
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def cross(u: V, v: V) -> V:
    return u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]


def norm(u: V) -> X:
    return sqrt(dot(u, u))


def angle(u: V, v: V) -> X:
    """Angle between two unit vectors in degrees (atan2: accurate at 0 and 180)."""
    return degrees(atan2(norm(cross(u, v)), dot(u, v)))
