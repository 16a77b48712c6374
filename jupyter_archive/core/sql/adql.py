"""ADQL 2.1 on DuckDB: the geometry translation and the HEALPix cone speed-up.

``pipeline.py`` parses ADQL with ``dialects.ADQL``, calls :func:`check_batch` in its AST phase and
:func:`rewrite` in its rewrite phase. Geometry never reaches the engine as a type: every
ADQL geometry function becomes a plain DuckDB expression over the coordinates (degrees).

Geometry definitions (all on the unit sphere, angles in degrees):

- ``DISTANCE`` is the great-circle distance (haversine, clamped against rounding).
- ``CIRCLE(c, r)`` holds the points whose distance to ``c`` is <= ``r``.
- ``BOX(c, w, h)`` follows ADQL 2.0/STC: a cross through ``c`` with arms along the RA and Dec
  directions of half-lengths ``w/2`` and ``h/2``, closed by four great circles meeting the arms
  at right angles. That is exactly the rectangle ``|x| <= tan(w/2), |y| <= tan(h/2)`` of the
  gnomonic projection about ``c``, i.e. the POLYGON of its four corners (w, h < 180).
  DaCHS/pgsphere instead use an RA/Dec coordinate rectangle; both agree near the equator.
- ``POLYGON`` has great-circle edges and is the smaller region (it must fit in a hemisphere):
  a point is inside when the signed angles it subtends along the edges sum to +-360 deg
  (winding number) and it lies in the hemisphere of the vertices' mean. This works for
  non-convex polygons and across RA 0/360 and the poles.
- ``AREA`` in square degrees: circle ``2 pi (1 - cos r)``, box ``4 asin(sin(w/2) sin(h/2))``,
  polygon by the signed spherical excess of a fan of triangles (Eriksson's formula).
- ``INTERSECTS`` with a POINT is CONTAINS (ADQL 2.1). Two regions intersect iff a vertex of one
  lies in the other, two edges cross, or (a CIRCLE) its centre is inside or within ``r`` of an
  edge; ``CONTAINS`` of regions is "inside, and no boundary crossing". Every pair of CIRCLE, BOX
  and POLYGON is supported (``geometry``); with constants only, it is decided at compile time.
- ``CENTROID`` of a POLYGON is the direction of the mean position over its surface.
- Geometry columns: a column whose metadata declares xtype ``point``, ``circle`` or ``polygon``
  (a DALI array, DuckDB ``DOUBLE[]``) is used wherever a geometry is expected. A geometry left
  in the SELECT list becomes a DALI array (``[ra, dec]``, ``[ra, dec, r]``, ``[ra1, dec1, ...]``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from ..errors import ArchiveError
from . import geometry as geo
from .compiled import TableTarget
from .geometry import (
    Box,
    Circle,
    Point,
    Polygon,
    PolygonColumn,
    distance_sql,
)
from . import crossmatch
from .healpix_index import HealpixIndex, SkyRegion, region_token, late_token
from .spherical import constant, parse_duckdb, splice


def unsupported(function: str, why: str) -> ArchiveError:
    """The 400 'unsupported' error for a geometry use we do not translate, naming the function."""
    return ArchiveError("unsupported", f"{function}: {why}", 400, details={"function": function})


# ---------------------------------------------------------------------------------------------
# Checks (AST phase)
# ---------------------------------------------------------------------------------------------


def check_batch(stmts: list[exp.Expr]) -> None:
    """ADQL is one read-only query: no batches, no SELECT ... INTO."""
    if len(stmts) > 1:
        raise ArchiveError("bad_request", "an ADQL query is a single SELECT; remove the ';'-separated statements", 400)
    for stmt in stmts:
        if stmt.find(exp.Into) is not None:
            raise ArchiveError("unsupported", "SELECT ... INTO is not ADQL", 400)


# ---------------------------------------------------------------------------------------------
# The rewrite
# ---------------------------------------------------------------------------------------------

_FRAMES = {"", "ICRS", "FK5", "J2000", "UNKNOWNFRAME"}  # no frame transforms: these are all ~ICRS
_CONSTRUCTORS = {"point", "circle", "box", "polygon", "centroid"}
_CONSUMERS = {"contains", "intersects", "distance", "coord1", "coord2", "coordsys", "area"}
_REFUSED = {"region": "REGION is deprecated in ADQL 2.1 and not supported", "in_unit": "unit conversion is not supported"}
#: Column xtypes (DALI) that make a column a geometry: DOUBLE[] of [ra, dec], [ra, dec, r], [ra1, dec1, ...].
GEOMETRY_XTYPES = ("point", "circle", "polygon")
_REGIONS = (Circle, Box, Polygon, PolygonColumn)


def _kind(g) -> str:
    return "POLYGON" if isinstance(g, PolygonColumn) else type(g).__name__.upper()


def geometry_columns(column_meta: Callable[[TableTarget], Mapping[str, Mapping[str, str]]] | None, refs: list) -> dict[str, str]:
    """``{column name (casefolded): xtype}`` of the geometry columns of the tables a statement
    reads, from ``column_meta`` (TableTarget -> {column: {"xtype": ...}}); for :func:`rewrite`."""
    out: dict[str, str] = {}
    for _, target, role, _ in refs if column_meta is not None else ():
        if role == "read":
            for name, meta in column_meta(target).items():
                xtype = str(meta.get("xtype") or "").lower()
                if xtype in GEOMETRY_XTYPES:
                    out[name.casefold()] = xtype
    return out


@dataclass
class _Cone:
    """A ``point in region`` condition (a circle, a box or a polygon) a HEALPix range filter may be ANDed to."""

    node: exp.Expr  # the condition as it now stands in the tree
    point: Point
    region: Circle | Box | Polygon

    @property
    def values(self) -> list[exp.Expr]:
        """The region's numbers, as ``healpix_index.sky_ranges`` takes them."""
        g = self.region
        if isinstance(g, Circle):
            return [g.center.ra, g.center.dec, g.r]
        if isinstance(g, Box):
            return [g.center.ra, g.center.dec, g.w, g.h]
        return [x for v in g.vertices for x in (v.ra, v.dec)]


class _Translator:
    def __init__(self, params: Mapping[str, Any], xtypes: Mapping[str, str], regions: list):
        self.params = params
        self.regions = regions  # what is made when values are bound: sky regions' ranges, late tests
        self.xtypes = xtypes  # geometry columns: casefolded name -> "point" | "circle" | "polygon"
        self.cones: list[_Cone] = []

    # --- reading geometry constructors --------------------------------------------------
    def frame(self, name: str, node: exp.Expr) -> str:
        if isinstance(node, exp.Placeholder):
            value = self.params.get(str(node.this))
            text = value if isinstance(value, str) else None
        else:
            text = node.this if isinstance(node, exp.Literal) and node.is_string else None
        if text is None:
            raise unsupported(name, "the coordinate system must be a string such as 'ICRS'")
        words = text.upper().split()
        if (words[0] if words else "") not in _FRAMES:
            raise unsupported(name, f"coordinate system {text!r} is not supported (use 'ICRS')")
        return text

    def split_frame(self, name: str, args: list[exp.Expr], plain: int) -> tuple[str, list[exp.Expr]]:
        """(frame, rest) for a constructor whose frame argument ADQL 2.1 made optional."""
        if args and (
            (isinstance(args[0], exp.Literal) and args[0].is_string)
            or (len(args) > plain and isinstance(args[0], exp.Placeholder))
        ):
            return self.frame(name, args[0]), args[1:]
        return "", args

    def geom(self, node: exp.Expr):
        """The geometry a constructor call or a geometry column gives, or None if ``node`` is neither."""
        xtype = self.xtypes.get(node.name.casefold()) if isinstance(node, exp.Column) else None
        if xtype is not None:  # a DALI array column; DuckDB lists count from 1
            item = [parse_duckdb(f"LIST_EXTRACT({splice(node)}, {i})") for i in (1, 2, 3)]
            point = Point(item[0], item[1])
            return point if xtype == "point" else Circle(point, item[2]) if xtype == "circle" else PolygonColumn(node)
        name = _fname(node)
        if name not in _CONSTRUCTORS:
            return None
        args, up = list(node.expressions), name.upper()
        if name == "centroid":
            g = self.geom(args[0]) if len(args) == 1 else None
            if isinstance(g, (Circle, Box)):
                return g.center
            if isinstance(g, Point):
                return g
            if isinstance(g, (Polygon, PolygonColumn)):
                return Point(*(parse_duckdb(x.sql()) for x in geo.centroid(g)))
            raise unsupported(up, "expects one geometry: a POINT, CIRCLE, BOX or POLYGON")
        frame, rest = self.split_frame(up, args, {"point": 2, "circle": 3, "box": 4, "polygon": 6}[name])
        self.finite(up, rest)
        if any(_fname(a) == "polygon" or _fname(a) in ("circle", "box") for a in rest):
            raise unsupported(up, "arguments must be numbers or POINTs")
        pts = [self.geom(a) for a in rest]
        if any(p is not None and not isinstance(p, Point) for p in pts):
            raise unsupported(up, "arguments must be numbers or POINTs")
        if name == "point":
            if len(rest) != 2 or any(pts):
                raise unsupported(up, "expects POINT([coordsys,] ra, dec)")
            return Point(rest[0], rest[1], frame)
        if isinstance(pts[0] if pts else None, Point):
            center, sizes = pts[0], rest[1:]
        else:
            center, sizes = (Point(rest[0], rest[1], frame) if len(rest) >= 2 else None), rest[2:]
        if name == "circle":
            if center is None or len(sizes) != 1 or any(pts[1:]):
                raise unsupported(up, "expects CIRCLE([coordsys,] ra, dec, radius) or CIRCLE(point, radius)")
            return Circle(center, sizes[0], frame)
        if name == "box":
            if center is None or len(sizes) != 2 or any(pts[1:]):
                raise unsupported(up, "expects BOX([coordsys,] ra, dec, width, height) or BOX(point, width, height)")
            return Box(center, sizes[0], sizes[1], frame)
        if all(isinstance(p, Point) for p in pts) and len(pts) >= 3:
            return Polygon(pts, frame)
        if not any(pts) and len(rest) >= 6 and len(rest) % 2 == 0:
            return Polygon([Point(rest[i], rest[i + 1], frame) for i in range(0, len(rest), 2)], frame)
        raise unsupported(up, "expects at least 3 vertices, as ra, dec pairs or as POINTs")

    def finite(self, name: str, args: list[exp.Expr]) -> None:
        """Refuse a coordinate or size known now that is no finite number (``1e309`` is infinite): the engine's
        tests of it would answer with NaN's arithmetic (every row, or none)."""
        for a in args:
            v = constant(a, self.params, {})
            if v is not None and not math.isfinite(v):
                raise unsupported(name, f"{a.sql()} is not a finite number")

    def need(self, name: str, node: exp.Expr, kinds: tuple, what: str):
        g = self.geom(node)
        if not isinstance(g, kinds):
            why = "a column needs xtype point, circle or polygon" if isinstance(node, exp.Column) else "not a geometry"
            raise unsupported(name, f"the argument must be {what} ({why})")
        return g

    # --- consumers ----------------------------------------------------------------------
    def contains(self, name: str, inner, outer) -> str:
        if isinstance(inner, Point):
            if isinstance(outer, Circle):
                return geo.in_circle_sql(inner, outer)
            if isinstance(outer, Box):
                return geo.in_box_sql(inner, outer)
            if isinstance(outer, (Polygon, PolygonColumn)):
                late = geo.late_point_in(late_token(len(self.regions)), inner, outer)
                if late is not None:  # made when values are bound, so the compile cache learns its shape
                    self.regions.append(late)
                    return late.token
                return geo.point_in(inner, outer).sql()
        if isinstance(inner, _REGIONS) and isinstance(outer, _REGIONS):
            self.check_caps(name, inner, outer)
            return geo.contains(inner, outer).sql()
        raise unsupported(name, f"{_kind(inner)} in {_kind(outer)} is not supported (a POINT contains nothing else)")

    def area(self, g) -> str:
        """AREA in square degrees (DEGREES twice turns steradians into deg^2)."""
        if isinstance(g, Point):
            return "0.0"
        if isinstance(g, Circle):
            return f"DEGREES(DEGREES(2 * PI() * (1 - COS(RADIANS({splice(g.r)})))))"
        if isinstance(g, Box):
            return f"DEGREES(DEGREES(4 * ASIN(SIN(RADIANS({splice(g.w)}) / 2) * SIN(RADIANS({splice(g.h)}) / 2))))"
        return geo.area(g).sql()

    @staticmethod
    def check_caps(name: str, *regions) -> None:
        """Region tests take a CIRCLE to be convex, i.e. of radius <= 90 degrees."""
        for g in regions:
            r = constant(g.r, {}, {}) if isinstance(g, Circle) else None
            if r is not None and r > 90:
                raise unsupported(name, "a CIRCLE of radius over 90 degrees is only supported with a POINT")

    def translate(self, node: exp.Expr) -> None:
        """Replace one consumer call (CONTAINS, DISTANCE, ...) by its DuckDB expression."""
        name = _fname(node)
        up = name.upper()
        args = [node.this, node.expression] if isinstance(node, exp.Contains) else list(node.expressions)
        if name in ("contains", "intersects"):
            if len(args) != 2:
                raise unsupported(up, "expects 2 geometries")
            kinds = (Point, *_REGIONS)
            a = self.need(up, args[0], kinds, "a POINT, CIRCLE, BOX or POLYGON")
            b = self.need(up, args[1], kinds, "a POINT, CIRCLE, BOX or POLYGON")
            if name == "intersects" and isinstance(a, Point) != isinstance(b, Point):
                a, b = (a, b) if isinstance(a, Point) else (b, a)  # with a point it is CONTAINS
            elif name == "intersects":
                if isinstance(a, Point):
                    raise unsupported(up, "POINT and POINT is not supported; compare DISTANCE with 0")
                self.check_caps(up, a, b)
                self.emit_flag(node, geo.intersects(a, b).sql(), None)
                return
            self.emit_flag(node, self.contains(up, a, b), (a, b))
            return
        if name == "distance":
            if len(args) == 4 and not any(self.geom(x) for x in args):
                self.finite(up, args)
                p, q = Point(args[0], args[1]), Point(args[2], args[3])
            elif len(args) == 2:
                p, q = (self.need(up, x, (Point,), "a POINT") for x in args)
            else:
                raise unsupported(up, "expects DISTANCE(point, point) or DISTANCE(ra1, dec1, ra2, dec2)")
            new = _raw(distance_sql(p, q))
            node.replace(new)
            self.note_distance(new, p, q)
            return
        if name in ("coord1", "coord2"):
            p = self.need(up, args[0], (Point,), "a POINT") if len(args) == 1 else None
            node.replace(exp.Paren(this=(p.ra if name == "coord1" else p.dec).copy()))
            return
        if name == "coordsys":
            g = self.need(up, args[0], (Point, *_REGIONS), "a geometry") if len(args) == 1 else None
            node.replace(exp.Literal.string(g.frame))
            return
        if name == "area":
            g = self.need(up, args[0], (Point, *_REGIONS), "a geometry") if len(args) == 1 else None
            node.replace(_raw(self.area(g)))

    def emit_flag(self, node: exp.Expr, cond: str, pair) -> None:
        """CONTAINS/INTERSECTS give 1/0; compared with a literal 1 or 0 they become the condition."""
        parent, cond_node = node.parent, exp.Paren(this=_raw(cond))
        if isinstance(parent, exp.EQ):
            other = parent.expression if parent.this is node else parent.this
            if isinstance(other, exp.Literal) and not other.is_string and other.this in ("1", "0"):
                new = cond_node if other.this == "1" else exp.Not(this=cond_node)
                parent.replace(new)
                if other.this == "1" and pair and isinstance(pair[0], Point) and isinstance(pair[1], (Circle, Box, Polygon)):
                    self.cones.append(_Cone(new, pair[0], pair[1]))
                return
        node.replace(exp.Cast(this=cond_node, to=exp.DataType.build("INTEGER")))

    def note_distance(self, new: exp.Expr, p: Point, q: Point) -> None:
        parent = new.parent
        left = parent is not None and parent.this is new
        if isinstance(parent, (exp.LT, exp.LTE)) and left or isinstance(parent, (exp.GT, exp.GTE)) and not left:
            other = parent.expression if left else parent.this
            for point, center in ((p, q), (q, p)):
                self.cones.append(_Cone(parent, point, Circle(center, other)))

    def literal_geometry(self, node: exp.Expr) -> None:
        """A geometry left as a value: a DALI array of doubles."""
        g = self.geom(node)
        if isinstance(g, Point):
            items = [g.ra, g.dec]
        elif isinstance(g, Circle):
            items = [g.center.ra, g.center.dec, g.r]
        elif isinstance(g, Polygon):
            items = [c for v in g.vertices for c in (v.ra, v.dec)]
        else:
            raise unsupported(_fname(node).upper(), "a BOX cannot be returned as a value; use it in CONTAINS")
        node.replace(parse_duckdb("CAST([" + ", ".join(splice(i) for i in items) + "] AS DOUBLE[])"))


def _fname(node: exp.Expr) -> str:
    if isinstance(node, exp.Contains):
        return "contains"
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return ""


def _map_functions(stmt: exp.Expr) -> None:
    """ADQL math names whose sqlglot node would mean something else in DuckDB."""
    for node in list(stmt.find_all(exp.Log, exp.Rand, exp.Anonymous)):
        if isinstance(node, exp.Log) and node.args.get("expression") is None:
            node.replace(exp.Ln(this=node.this))  # ADQL LOG is natural; DuckDB's LOG(x) is base 10
        elif isinstance(node, exp.Rand) and node.this is not None:
            raise unsupported("RAND", "a seed is not supported; use RAND()")
        elif isinstance(node, exp.Anonymous) and _fname(node) in _REFUSED:
            raise unsupported(_fname(node).upper(), _REFUSED[_fname(node)])


def _name_geometry(stmt: exp.Expr) -> None:
    """Name a select item that is a geometry call (DISTANCE, CONTAINS, POINT, ...) and has no alias after the function,
    lower case (``distance``): DuckDB names an item by its SQL, which once translated is the engine's formula."""
    for select in list(stmt.find_all(exp.Select)):
        for item in list(select.expressions):
            if not isinstance(item, exp.Alias) and (name := _fname(item)) in _CONSUMERS | _CONSTRUCTORS:
                item.replace(exp.alias_(item.copy(), name, quoted=True))


def rewrite(
    stmt: exp.Expr,
    refs: list,
    params: Mapping[str, Any],
    positional_index: Callable[[TableTarget], HealpixIndex | tuple | None] | None = None,
    xtypes: Mapping[str, str] | None = None,
    regions: list | None = None,
) -> exp.Expr:
    """Translate ADQL functions and geometry in a resolved statement into DuckDB expressions.

    ``refs`` are the pipeline's ``(table node, TableTarget, role, written parts)``; ``params``
    the bound values (``pN`` -> value). With ``positional_index`` (TableTarget -> HealpixIndex
    or None), top-level cone conditions on an indexed table also get a range filter on the
    index column: a placeholder in the SQL, whose ``healpix_index.SkyRegion`` is appended to ``regions``
    and filled in when values are bound (so a compile cache rebinding or pasting other values stays
    correct). ``xtypes`` (see :func:`geometry_columns`) names the geometry columns.
    """
    regions = [] if regions is None else regions
    _map_functions(stmt)
    _name_geometry(stmt)
    geo.reset_names()
    tr = _Translator(params, xtypes or {}, regions)
    for node in reversed(list(stmt.find_all(exp.Func, bfs=False))):  # innermost first
        if _fname(node) in _CONSUMERS:
            tr.translate(node)
    for node in reversed(list(stmt.find_all(exp.Anonymous, bfs=False))):
        # A constructor inside another (POINT in CIRCLE, POLYGON in CENTROID) is read by the outer one.
        if _fname(node) in _CONSTRUCTORS and node.parent is not None and _fname(node.parent) not in _CONSTRUCTORS:
            tr.literal_geometry(node)
    if positional_index is not None:
        done: set[int] = set()
        for cone in tr.cones:  # a DISTANCE comparison is listed twice (either point may be the centre)
            if id(cone.node) not in done and _speed_up(cone, refs, params, positional_index, regions):
                done.add(id(cone.node))
    return stmt


def _speed_up(cone: _Cone, refs: list, params: Mapping[str, Any], positional_index, regions: list) -> bool:
    """AND a HEALPix range filter to a ``point in region`` condition that is a top-level conjunct of a
    WHERE or of a JOIN's ON, whose region is constant (the filter's placeholder, filled in when values
    are bound: ``regions`` gets its ``SkyRegion``); when the region is a circle about another table's
    position (a cross-match), plan the join on HEALPix cells (``crossmatch.rewrite_join``)."""
    where = cone.node.parent
    while isinstance(where, (exp.And, exp.Paren)):
        where = where.parent
    if isinstance(where, exp.Where) and isinstance(where.parent, exp.Select):
        select = where.parent
    elif isinstance(where, exp.Join) and isinstance(where.parent, exp.Select):
        select = where.parent  # the filter is implied by the cone, so ON may carry it for any join kind
    else:
        return False
    ra, dec = cone.point.ra, cone.point.dec
    if not (isinstance(ra, exp.Column) and isinstance(dec, exp.Column)) or ra.table != dec.table:
        return False
    from_ = select.args.get("from_") or select.args.get("from")
    tables = [from_.this] if from_ is not None else []
    tables += [j.this for j in select.args.get("joins") or []]

    def node_of(qualifier: str) -> exp.Table | None:
        found = [t for t in tables if isinstance(t, exp.Table) and (not qualifier or t.alias_or_name.casefold() == qualifier.casefold())]
        return found[0] if len(found) == 1 else None  # unqualified columns with several tables: not sure whose they are

    t_node = node_of(ra.table)
    target = next((t for node, t, role, _ in refs if node is t_node and role == "read"), None) if t_node is not None else None
    index = positional_index(target) if target is not None else None
    if index is None:
        return False
    index = HealpixIndex(*index)
    if (index.ra.casefold(), index.dec.casefold()) != (ra.name.casefold(), dec.name.casefold()):
        return False
    values = cone.values
    if any(constant(x, params, {}) is None for x in values):
        g = cone.region  # a cross-match: a circle about another table's position
        cra, cdec = (g.center.ra, g.center.dec) if isinstance(g, Circle) else (None, None)
        if not (isinstance(cra, exp.Column) and isinstance(cdec, exp.Column)) or cra.table != cdec.table or not cra.table:
            return False
        u_node = node_of(cra.table)
        return u_node is not None and crossmatch.rewrite_join(cone, where, select, t_node, u_node, index)
    col = exp.column(index.column, table=ra.table or None, quoted=True).sql(dialect="duckdb")
    kind = type(cone.region).__name__.lower()
    region = SkyRegion(region_token(len(regions)), index, col, kind, tuple(x.sql(dialect="duckdb") for x in values))
    regions.append(region)
    node, kept = cone.node, exp.Paren()
    node.replace(exp.And(this=exp.Paren(this=_raw(region.token)), expression=kept))
    kept.set("this", node)
    _note_bounds(where, t_node, region.token)
    return True


def _note_bounds(where: exp.Expr, node: exp.Table, token: str) -> None:
    """Note on the table node the region that bounds every row it gives (``Statement.regions``, from
    which a partitioned table's reads are pruned without parsing the SQL again): a WHERE conjunct
    always does; an ON conjunct only of the join that reads the table, unless that keeps all its rows."""
    if isinstance(where, exp.Join) and (where.this is not node or where.side in ("RIGHT", "FULL") or where.kind == "FULL"):
        return
    node.meta.setdefault("healpix_regions", []).append(token)


def _raw(sql: str) -> exp.Expr:
    """Generated DuckDB text as a tree node, emitted as is: parsing it back with sqlglot cost
    more than the rest of a cone search's compile. Only for text whose columns are final."""
    return exp.Paren(this=exp.Var(this=sql))
