"""The geometry behind the ADQL translation: region values, and the DuckDB text (or the answer) of each test.

Definitions are in ``adql.py``'s docstring (unit sphere, degrees, gnomonic BOX, great-circle POLYGON).
Two layers:

- POINT tests keep their tuned SQL (``in_circle_sql``, ``in_box_sql``: a Dec band lets zone maps skip data).
- Region tests are written once over :class:`X`, a number or condition that is either known now or
  DuckDB text. Constants fold in Python as the formula is built, so two constant regions give a plain
  TRUE/FALSE at compile time and a constant polygon costs a column row only dot products. A polygon
  whose vertices are not all constants (a POLYGON of column values, a BOX around a column, a DALI
  polygon column of any length) becomes a DuckDB list of edges walked with list lambdas: still one
  vectorised expression, no UDF.

Two regions intersect iff a vertex of one lies in the other, two edges cross, or (with a circle) the
centre lies inside or within ``r`` of an edge. Region tests assume circles of radius <= 90 degrees.
"""

from __future__ import annotations

import math
import operator
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp


@dataclass
class Point:
    ra: exp.Expr
    dec: exp.Expr
    frame: str = ""


@dataclass
class Circle:
    center: Point
    r: exp.Expr
    frame: str = ""


@dataclass
class Box:
    center: Point
    w: exp.Expr
    h: exp.Expr
    frame: str = ""


@dataclass
class Polygon:
    vertices: list[Point] = field(default_factory=list)
    frame: str = ""


@dataclass
class PolygonColumn:
    """A column holding DALI polygons (``DOUBLE[]`` of ``ra1, dec1, ra2, dec2, ...``)."""

    values: exp.Expr
    frame: str = ""


def _s(node: exp.Expr) -> str:
    """An expression as DuckDB text to splice into a formula (parenthesised unless a leaf)."""
    text = node.sql(dialect="duckdb")
    if isinstance(node, (exp.Column, exp.Placeholder)) or (isinstance(node, exp.Literal) and not text.startswith("-")):
        return text
    return "(" + text + ")"


def _parse(text: str) -> exp.Expr:
    return sqlglot.parse_one(text, read="duckdb")


def _const(node: exp.Expr, params: Mapping[str, Any], used: dict[str, Any]) -> float | None:
    """A numeric constant known at compile time (literals, bound parameters, arithmetic)."""
    if isinstance(node, exp.Paren):
        return _const(node.this, params, used)
    if isinstance(node, exp.Literal) and not node.is_string:
        return float(node.this)
    if isinstance(node, exp.Neg):
        v = _const(node.this, params, used)
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
            a, b = _const(node.this, params, used), _const(node.expression, params, used)
            if a is None or b is None or (kind is exp.Div and b == 0):
                return None
            return op(a, b)
    return None


# ---------------------------------------------------------------------------------------------
# POINT tests and DISTANCE (tuned SQL)
# ---------------------------------------------------------------------------------------------


def distance_sql(p: Point, q: Point) -> str:
    """Great-circle distance in degrees (haversine; LEAST guards ASIN against rounding)."""
    a1, d1, a2, d2 = _s(p.ra), _s(p.dec), _s(q.ra), _s(q.dec)
    return (
        f"DEGREES(2 * ASIN(LEAST(1.0, SQRT(POWER(SIN(RADIANS({d2} - {d1}) / 2), 2) + "
        f"COS(RADIANS({d1})) * COS(RADIANS({d2})) * POWER(SIN(RADIANS({a2} - {a1}) / 2), 2)))))"
    )


def in_circle_sql(p: Point, c: Circle) -> str:
    # The Dec band is implied by the distance test but is cheap and lets zone maps skip data.
    d, cd, r = _s(p.dec), _s(c.center.dec), _s(c.r)
    return f"({d} BETWEEN {cd} - {r} AND {cd} + {r} AND {distance_sql(p, c.center)} <= {r})"


def in_box_sql(p: Point, b: Box) -> str:
    """Gnomonic rectangle about the box centre (see the module docstring)."""
    a, d, a0, d0 = (f"RADIANS({_s(x)})" for x in (p.ra, p.dec, b.center.ra, b.center.dec))
    tw, th = f"TAN(RADIANS({_s(b.w)}) / 2)", f"TAN(RADIANS({_s(b.h)}) / 2)"
    cosc = f"(SIN({d}) * SIN({d0}) + COS({d}) * COS({d0}) * COS({a} - {a0}))"
    x = f"(COS({d}) * SIN({a} - {a0}))"
    y = f"(SIN({d}) * COS({d0}) - COS({d}) * SIN({d0}) * COS({a} - {a0}))"
    reach = f"DEGREES(ATAN(SQRT({tw} * {tw} + {th} * {th})))"  # centre to corner: a Dec band prefilter
    dd, dc = _s(p.dec), _s(b.center.dec)
    return (
        f"({dd} BETWEEN {dc} - {reach} AND {dc} + {reach} AND {cosc} > 0 "
        f"AND ABS({x}) <= {tw} * {cosc} AND ABS({y}) <= {th} * {cosc})"
    )


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
            c = _const(v, {}, {})
            return X(c) if c is not None else X(_s(v))
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


def _fn(name: str, py: Callable, *args) -> X:
    xs = [X.of(a) for a in args]
    if all(x.known for x in xs):
        return X(float(py(*(x.v for x in xs))))
    return X(f"{name}({', '.join(x.sql() for x in xs)})")


def sin(a):
    return _fn("SIN", math.sin, a)


def cos(a):
    return _fn("COS", math.cos, a)


def atan2(y, x):
    return _fn("ATAN2", math.atan2, y, x)


def sqrt(a):
    return _fn("SQRT", math.sqrt, a)


def xabs(a):
    return _fn("ABS", abs, a)


def radians(a):
    return _fn("RADIANS", math.radians, a)


def degrees(a):
    return _fn("DEGREES", math.degrees, a)


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


def point_vec(p: Point) -> V:
    return vec(X.of(p.ra), X.of(p.dec))


# ---------------------------------------------------------------------------------------------
# Regions: caps and polygons
# ---------------------------------------------------------------------------------------------

_names = threading.local()  # lambda variable numbers of the statement being rewritten


def reset_names() -> None:
    """Number lambda variables from 1 again (one statement's SQL stays the same across compiles)."""
    _names.n = 0


def _fresh(prefix: str) -> str:
    # Every lambda gets its own name: nested lambdas never shadow each other.
    _names.n = getattr(_names, "n", 0) + 1
    return f"{prefix}{_names.n}"


def _at(items: str, i) -> str:
    # LIST_EXTRACT rather than items[i]: sqlglot re-reads bracket indexes very slowly.
    return f"LIST_EXTRACT({items}, {i})"


def _vsql(v: V) -> str:
    return "[" + ", ".join(c.sql() for c in v) + "]"


def let(values: list[X], fn: Callable[[list[X]], X]) -> X:
    """``fn(values)`` with each engine-computed value evaluated once: DuckDB has no LET, but a
    lambda over a one-element list binds them, so a big expression is not spliced many times."""
    if all(v.known for v in values):
        return fn(values)
    h = _fresh("h")
    bound = [v.sql() for v in values if not v.known]
    it = iter(range(1, len(bound) + 1))
    body = fn([v if v.known else X(_at(h, next(it))) for v in values])
    return X(_at(f"LIST_TRANSFORM([[{', '.join(bound)}]], LAMBDA {h} : {body.sql()})", 1))


@dataclass
class Cap:
    """A CIRCLE as a centre vector and a radius (degrees)."""

    c: V
    r: X


@dataclass
class Region:
    """A great-circle polygon: its vertices when all are constants, else ``edges``, DuckDB text
    of a list of ``[[x, y, z], [x, y, z]]`` (each edge's two unit vectors), walked by lambdas."""

    given_first: V | None
    verts: list[V] | None = None
    edges: str | None = None

    @property
    def first(self) -> V:
        """A vertex (the first edge's start)."""
        if self.given_first is not None:
            return self.given_first
        return tuple(X(_at(_at(_at(self.edges, 1), 1), i)) for i in (1, 2, 3))

    def _walk(self, agg: str, py: Callable, fn: Callable[[V, V], X]) -> X:
        if self.verts is not None:
            n = len(self.verts)
            terms = [fn(self.verts[i], self.verts[(i + 1) % n]) for i in range(n)]
            out = terms[0]
            for t in terms[1:]:
                out = py(out, t)
            return out
        g = _fresh("g")
        body = fn(*(tuple(X(_at(_at(g, k), i)) for i in (1, 2, 3)) for k in (1, 2)))
        return X(f"{agg}(LIST_TRANSFORM({self.edges}, LAMBDA {g} : {body.sql()}))")

    def any(self, fn) -> X:
        return self._walk("LIST_BOOL_OR", operator.or_, fn)

    def all(self, fn) -> X:
        return self._walk("LIST_BOOL_AND", operator.and_, fn)

    def sum(self, fn) -> X:
        return self._walk("LIST_SUM", operator.add, fn)


def region_of_vectors(vs: list[V]) -> Region:
    if all(c.known for v in vs for c in v):
        return Region(vs[0], verts=vs)
    n = len(vs)
    edges = ", ".join(f"[{_vsql(vs[i])}, {_vsql(vs[(i + 1) % n])}]" for i in range(n))
    return Region(vs[0], edges=f"[{edges}]")


def _box_basis(b: Box) -> list[X]:
    """What a BOX's corners are made of: sin/cos of the centre's RA and Dec, tan(w/2), tan(h/2)."""
    a0, d0 = radians(X.of(b.center.ra)), radians(X.of(b.center.dec))
    tx, ty = _fn("TAN", math.tan, radians(X.of(b.w)) / 2), _fn("TAN", math.tan, radians(X.of(b.h)) / 2)
    return [sin(a0), cos(a0), sin(d0), cos(d0), tx, ty]


def _corners(sa, ca, sd, cd, tx, ty) -> list[V]:
    """The four corners: the gnomonic points (+-tan(w/2), +-tan(h/2)) about the centre."""
    c = (cd * ca, cd * sa, sd)
    east, north = (-sa, ca, X(0.0)), (-sd * ca, -sd * sa, cd)
    scale = sqrt(1 + tx * tx + ty * ty)
    return [
        tuple((c[k] + sx * tx * east[k] + sy * ty * north[k]) / scale for k in range(3))
        for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]


def column_region(values: exp.Expr) -> Region:
    """The edges of a DALI polygon column, built in one list lambda from its coordinates."""
    c = _s(values)
    n, i = f"(LEN({c}) // 2)", _fresh("i")

    def vertex(k: str) -> str:
        return _vsql(vec(X(_at(c, f"2 * {k} + 1")), X(_at(c, f"2 * {k} + 2"))))

    edges = f"LIST_TRANSFORM(RANGE({n}), LAMBDA {i} : [{vertex(i)}, {vertex(f'(({i} + 1) % {n})')}])"
    return Region(None, edges=edges)


def region(g) -> Region | Cap:
    """A CIRCLE, BOX, POLYGON or polygon column as a Cap or a Region."""
    if isinstance(g, Circle):
        return Cap(point_vec(g.center), X.of(g.r))
    if isinstance(g, Box):
        basis = _box_basis(g)
        if all(x.known for x in basis):
            return region_of_vectors(_corners(*basis))
        # A box around a column: the corners' ingredients are computed once per row.
        edges = let(basis, lambda h: X(region_of_vectors(_corners(*h)).edges))
        return Region(None, edges=edges.sql())
    if isinstance(g, Polygon):
        return region_of_vectors([point_vec(v) for v in g.vertices])
    return column_region(g.values)


def in_region(p: V, r: Region, bound: bool = False) -> X:
    """Winding number: the signed angles at P of the triangles (P, A, B) along the edges sum to
    +-360 deg inside; and P lies in the hemisphere of the vertices' mean (the smaller region)."""
    if r.edges is not None and not bound and not all(c.known for c in p):
        return let(list(p), lambda h: in_region(tuple(h), r, True))
    wind = r.sum(lambda a, b: atan2(dot(p, cross(a, b)), dot(a, b) - dot(p, a) * dot(p, b)))
    mean = tuple(r.sum(lambda a, b, k=k: a[k]) for k in range(3))
    return (xabs(wind) > math.pi) & (dot(p, mean) > 0)


def _bound(regions: list, fn: Callable[..., X]) -> X:
    """``fn(*regions)`` with each region's engine-built edge list evaluated once per row: bound
    to a lambda variable (as :func:`let` does), since the tests walk the edges several times."""
    out, binds = [], []
    for r in regions:
        if isinstance(r, Region) and r.edges is not None and not r.edges.isidentifier():
            h = _fresh("h")
            binds.append((h, r.edges))
            r = Region(None, edges=h)
        out.append(r)
    body = fn(*out)
    for h, edges in reversed(binds):
        body = X(_at(f"LIST_TRANSFORM([{edges}], LAMBDA {h} : {body.sql()})", 1))
    return body


def in_cap(p: V, cap: Cap) -> X:
    return dot(p, cap.c) >= cos(radians(cap.r))


def _near_edge(p: V, r: X, a: V, b: V) -> X:
    """P is within r of arc AB: its foot on AB's great circle lies between A and B, and it is
    within r of that great circle. (Endpoints are tested as vertices.)"""
    n = cross(a, b)
    return (dot(cross(a, p), n) >= 0) & (dot(cross(p, b), n) >= 0) & (xabs(dot(p, n)) <= sin(radians(r)) * norm(n))


def _cap_meets_edges(cap: Cap, reg: Region, bound: bool = False) -> X:
    if reg.edges is not None and not bound and not all(c.known for c in (*cap.c, cap.r)):
        return let([*cap.c, cap.r], lambda h: _cap_meets_edges(Cap(tuple(h[:3]), h[3]), reg, True))
    return reg.any(lambda a, b: in_cap(a, cap) | _near_edge(cap.c, cap.r, a, b))


def _crosses(a: V, b: V, c: V, d: V) -> X:
    """Arcs AB and CD cross: C, D on opposite sides of AB's plane, A, B of CD's, and the
    signs exclude the antipodal crossing of the two great circles."""
    n1, n2 = cross(a, b), cross(c, d)
    s1, s2, s3, s4 = dot(n1, c), dot(n1, d), dot(n2, a), dot(n2, b)
    return (s1 * s2 < 0) & (s3 * s4 < 0) & (s1 * s3 < 0)


def _edges_cross(r1: Region, r2: Region) -> X:
    return r1.any(lambda a, b: r2.any(lambda c, d: _crosses(a, b, c, d)))


def intersects(g1, g2) -> X:
    """INTERSECTS of two regions (CIRCLE, BOX, POLYGON, polygon column)."""
    return _bound([region(g1), region(g2)], _intersects)


def _intersects(a: Region | Cap, b: Region | Cap) -> X:
    if isinstance(a, Cap) and isinstance(b, Cap):
        return angle(a.c, b.c) <= a.r + b.r
    if isinstance(a, Cap) or isinstance(b, Cap):
        cap, reg = (a, b) if isinstance(a, Cap) else (b, a)
        return in_region(cap.c, reg) | _cap_meets_edges(cap, reg)
    return in_region(a.first, b) | in_region(b.first, a) | _edges_cross(a, b)


def contains(inner, outer) -> X:
    """CONTAINS(inner, outer) for two regions: inner lies wholly in outer."""
    return _bound([region(inner), region(outer)], _contains)


def _contains(a: Region | Cap, b: Region | Cap) -> X:
    if isinstance(a, Cap) and isinstance(b, Cap):
        return angle(a.c, b.c) + a.r <= b.r
    if isinstance(a, Cap):  # the centre inside and the boundary nowhere within r
        return in_region(a.c, b) & ~_cap_meets_edges(a, b)
    if isinstance(b, Cap):  # a cap of radius <= 90 is convex: the vertices decide
        return a.all(lambda p, q: in_cap(p, b))
    return in_region(a.first, b) & ~_edges_cross(a, b)


def point_in(p: Point, g) -> X:
    """A POINT in a polygon (constructor, BOX as polygon, or column)."""
    return _bound([region(g)], lambda r: in_region(point_vec(p), r))


def area(g) -> X:
    """Polygon area in square degrees: the signed spherical excess of the fan of triangles
    (first vertex, A, B) over the edges (Eriksson's formula; edges at the first vertex add 0)."""
    return _bound([region(g)], lambda reg: degrees(degrees(xabs(2 * _signed_area(reg)))))


def _signed_area(reg: Region) -> X:
    """Half the signed area in steradians: positive when the edges run counter-clockwise."""
    v0 = reg.first
    return reg.sum(lambda b, c: atan2(dot(v0, cross(b, c)), 1 + dot(v0, b) + dot(b, c) + dot(c, v0)))


def centroid(g) -> tuple[X, X]:
    """(ra, dec) of a polygon's centroid: the direction of the integral of the position over its
    surface, which Stokes turns into the sum over edges of (edge length) x (edge's unit normal).
    That sum points into the polygon when its edges run counter-clockwise (positive signed area)."""
    both = _bound([region(g)], _centroid)
    if both.known:
        return X(both.v[0]), X(both.v[1])
    return X(_at(both.sql(), 1)), X(_at(both.sql(), 2))


def _centroid(reg: Region) -> X:
    def term(k):
        def f(a, b):
            n = cross(a, b)
            size = norm(n)
            return n[k] * atan2(size, dot(a, b)) / _fn("GREATEST", max, size, 1e-300)

        return f

    sums = [*(reg.sum(term(k)) for k in range(3)), _signed_area(reg)]

    def ra(h):
        deg = degrees(atan2(_sign(h[3]) * h[1], _sign(h[3]) * h[0]))
        return X(deg.v % 360) if deg.known else X(f"(({deg.sql()} + 360) % 360)")

    def dec(h):
        return _sign(h[3]) * degrees(atan2(h[2], sqrt(h[0] * h[0] + h[1] * h[1])))

    if all(x.known for x in sums):
        return X([ra(sums).v, dec(sums).v])
    return let(sums, lambda h: X(f"[{ra(h).sql()}, {dec(h).sql()}]"))


def _sign(v: X) -> X:
    return _fn("SIGN", lambda x: math.copysign(1.0, x), v)
