"""The geometry behind the ADQL translation: region values, and the DuckDB text (or the answer) of each test.

Definitions are in ``adql.py``'s docstring (unit sphere, degrees, gnomonic BOX, great-circle POLYGON).
Two layers:

- POINT tests keep their tuned SQL (``in_circle_sql``, ``in_box_sql``: a Dec band lets zone maps skip data).
- Region tests are written once over ``spherical.X``, a number or condition that is either known now or
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
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from .spherical import (
    V,
    X,
    angle,
    atan2,
    cos,
    cross,
    degrees,
    dot,
    math_fn,
    norm,
    radians,
    sin,
    splice,
    sqrt,
    vec,
    xabs,
)


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


# ---------------------------------------------------------------------------------------------
# POINT tests and DISTANCE (tuned SQL)
# ---------------------------------------------------------------------------------------------


def distance_sql(p: Point, q: Point) -> str:
    """Great-circle distance in degrees (haversine; LEAST guards ASIN against rounding)."""
    a1, d1, a2, d2 = splice(p.ra), splice(p.dec), splice(q.ra), splice(q.dec)
    return (
        f"DEGREES(2 * ASIN(LEAST(1.0, SQRT(POWER(SIN(RADIANS({d2} - {d1}) / 2), 2) + "
        f"COS(RADIANS({d1})) * COS(RADIANS({d2})) * POWER(SIN(RADIANS({a2} - {a1}) / 2), 2)))))"
    )


def in_circle_sql(p: Point, c: Circle) -> str:
    # The Dec band is implied by the distance test but is cheap and lets zone maps skip data.
    d, cd, r = splice(p.dec), splice(c.center.dec), splice(c.r)
    return f"({d} BETWEEN {cd} - {r} AND {cd} + {r} AND {distance_sql(p, c.center)} <= {r})"


def in_box_sql(p: Point, b: Box) -> str:
    """Gnomonic rectangle about the box centre (see the module docstring)."""
    a, d, a0, d0 = (f"RADIANS({splice(x)})" for x in (p.ra, p.dec, b.center.ra, b.center.dec))
    tw, th = f"TAN(RADIANS({splice(b.w)}) / 2)", f"TAN(RADIANS({splice(b.h)}) / 2)"
    cosc = f"(SIN({d}) * SIN({d0}) + COS({d}) * COS({d0}) * COS({a} - {a0}))"
    x = f"(COS({d}) * SIN({a} - {a0}))"
    y = f"(SIN({d}) * COS({d0}) - COS({d}) * SIN({d0}) * COS({a} - {a0}))"
    reach = f"DEGREES(ATAN(SQRT({tw} * {tw} + {th} * {th})))"  # centre to corner: a Dec band prefilter
    dd, dc = splice(p.dec), splice(b.center.dec)
    return (
        f"({dd} BETWEEN {dc} - {reach} AND {dc} + {reach} AND {cosc} > 0 "
        f"AND ABS({x}) <= {tw} * {cosc} AND ABS({y}) <= {th} * {cosc})"
    )


def point_vec(p: Point) -> V:
    """The unit vector of a POINT."""
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
    tx, ty = math_fn("TAN", math.tan, radians(X.of(b.w)) / 2), math_fn("TAN", math.tan, radians(X.of(b.h)) / 2)
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
    c = splice(values)
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


@dataclass(frozen=True)
class LateTest:
    """A POINT in a POLYGON of numbers written in the text, whose test is made when values are bound
    (``healpix_index.fill``), as a cone's ranges are: the test folds the vertices into other numbers, so
    made at compile time it would hide them from the compile cache (``literals``), which pastes a new
    text's numbers into ``values`` instead."""

    token: str  # stands in the SQL for the test until it is filled in
    point: tuple[str, str]  # the point's RA and Dec as engine SQL
    values: tuple[str, ...]  # ra1, dec1, ra2, dec2, ... as engine SQL (numbers)

    def text(self, numbers: list[float]) -> str:
        """The test for the vertices ``numbers``: exactly what ``point_in`` makes of them."""
        vertices = [vec(X(numbers[i]), X(numbers[i + 1])) for i in range(0, len(numbers) - 1, 2)]
        p = vec(X(self.point[0]), X(self.point[1]))
        return _bound([region_of_vectors(vertices)], lambda r: in_region(p, r)).sql()


def late_point_in(token: str, p: Point, g) -> LateTest | None:
    """A ``LateTest`` for POINT ``p`` in ``g`` when ``g`` is a POLYGON whose vertices are all numbers written
    in the text (which ``point_in`` would fold), else None."""
    if not isinstance(g, Polygon) or not all(X.of(x).known for v in g.vertices for x in (v.ra, v.dec)):
        return None
    return LateTest(token, (splice(p.ra), splice(p.dec)), tuple(x.sql(dialect="duckdb") for v in g.vertices for x in (v.ra, v.dec)))


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
            return n[k] * atan2(size, dot(a, b)) / math_fn("GREATEST", max, size, 1e-300)

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
    return math_fn("SIGN", lambda x: math.copysign(1.0, x), v)
