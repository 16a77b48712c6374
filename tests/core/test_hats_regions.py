"""Sky regions on a HATS catalog: boxes and polygons are pruned to the partitions their HEALPix cover
touches, as cones are, and every answer equals the same exact test over all of the catalog's files in one
DuckDB (the range filters left out); regions that cannot be covered read everything. Cone shapes are
learnt by the compile cache: a new cone's numbers are pasted into the learnt compilation and its ranges
made for them."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.sql.healpix_index import SkyRegion
from tests.support.hats_data import sky_archive

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def sky(hats_root, tmp_path_factory):
    a = sky_archive(tmp_path_factory.mktemp("hats-regions"), hats_root)
    yield a
    a.close()


def user(a):
    return a.users.principal("alice")


def answer(a, text) -> list:
    with a.queries.query(user(a), text, "adql", row_limit=None) as result:
        return sorted(tuple(r.values()) for r in result.to_table().to_pylist())


def unpruned(a, oracle, text) -> list:
    """The same compiled exact test over every file of the catalog in one DuckDB: the range filters left out."""
    (st_,) = a.queries.compile(user(a), text, "adql", explain=False).statements
    sql = st_.late.sql if st_.late is not None else st_.sql
    for region in st_.late.regions if st_.late is not None else ():  # a polygon's exact test is made as when bound
        sql = sql.replace(region.token, "TRUE" if isinstance(region, SkyRegion) else region.text([float(v) for v in region.values]))
    return sorted(oracle.execute(sql.replace('"sky"."main"."stars"', "stars"), st_.params).fetchall())


def partitions_read(a, text) -> tuple[int, int]:
    compiled = a.queries.compile(user(a), text, "adql")
    (read,) = a.queries.plan(user(a), compiled.statements).partitioned.reads
    phase = next(p for p in compiled.phases if p.name == "partitions")
    assert f"read {len(read.partitions)}, total {read.table.partitions}" in phase.detail
    return len(read.partitions), read.table.partitions


def select(region: str, how: str = "CONTAINS") -> str:
    return f"SELECT objid, ra, dec FROM sky.stars WHERE {how}(POINT('ICRS', ra, dec), {region}) = 1"


def box(ra, dec, w, h) -> str:
    return f"BOX('ICRS', {ra!r}, {dec!r}, {w!r}, {h!r})"


def polygon(vertices) -> str:
    return "POLYGON('ICRS', " + ", ".join(f"{a!r}, {d!r}" for a, d in vertices) + ")"


def around(ra, dec, radius, azimuths) -> list[tuple[float, float]]:
    """Vertices at ``radius`` degrees from (ra, dec) at the given azimuths (degrees): a convex polygon when sorted."""
    out = []
    d0, r = math.radians(dec), math.radians(radius)
    for az in azimuths:
        a = math.radians(az)
        d = math.asin(math.sin(d0) * math.cos(r) + math.cos(d0) * math.sin(r) * math.cos(a))
        da = math.atan2(math.sin(a) * math.sin(r) * math.cos(d0), math.cos(r) - math.sin(d0) * math.sin(d))
        out.append(((ra + math.degrees(da)) % 360, math.degrees(d)))
    return out


@SETTINGS
@given(ra=st.floats(0, 359.999), dec=st.floats(-89.9, 89.9), w=st.floats(0.01, 8), h=st.floats(0.01, 8),
       how=st.sampled_from(["CONTAINS", "INTERSECTS"]))  # fmt: skip
@example(ra=0.1, dec=0.0, w=1.0, h=0.6, how="CONTAINS")  # across RA = 0/360
@example(ra=123.0, dec=89.8, w=1.0, h=1.0, how="CONTAINS")  # around the pole
@example(ra=300.0, dec=-89.95, w=0.3, h=2.0, how="INTERSECTS")
def test_generated_boxes_equal_the_unpruned_scan_and_prune(sky, hats_oracle, ra, dec, w, h, how):
    text = select(box(ra, dec, w, h), how)
    assert answer(sky, text) == unpruned(sky, hats_oracle, text)
    read, total = partitions_read(sky, text)
    if max(w, h) < 2:
        assert read < total / 4


@SETTINGS
@given(ra=st.floats(0, 359.999), dec=st.floats(-89.9, 89.9), radius=st.floats(0.005, 6),
       azimuths=st.lists(st.floats(0, 359), min_size=3, max_size=7, unique=True), reverse=st.booleans())  # fmt: skip
@example(ra=0.0, dec=0.3, radius=0.8, azimuths=[10.0, 130.0, 250.0], reverse=False)  # across RA = 0/360
@example(ra=45.0, dec=90.0, radius=1.5, azimuths=[0.0, 90.0, 180.0, 270.0], reverse=True)  # the pole inside
def test_generated_polygons_equal_the_unpruned_scan_and_prune(sky, hats_oracle, ra, dec, radius, azimuths, reverse):
    vertices = around(ra, dec, radius, sorted(azimuths, reverse=reverse))
    text = select(polygon(vertices))
    assert answer(sky, text) == unpruned(sky, hats_oracle, text)
    if radius < 1:
        read, total = partitions_read(sky, text)
        assert read < total / 4


# Any number a query may hold: the edges of the sky, the tiny and the huge, and anything between.
ANY = st.one_of(st.sampled_from([0.0, 1e-300, 1e-12, 1e-7, 3e-6, 0.5, 59.9999, 60.0, 89.9999999, 90.0, -90.0, 180.0, 360.0,
                                 720.0, -1e-7, 1e308]), st.floats(-400, 400))


@SETTINGS
@given(kind=st.sampled_from(["circle", "box", "polygon"]), numbers=st.lists(ANY, min_size=10, max_size=10),
       corners=st.integers(3, 5), how=st.sampled_from(["CONTAINS", "INTERSECTS"]))  # fmt: skip
@example(kind="polygon", numbers=[0.0, 60.0, 399.46583241759015, 1e-12, 89.9999999, 1e-300, 0, 0, 0, 0], corners=3, how="CONTAINS")
@example(kind="polygon", numbers=[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1e-300, 1e308, 0.0, 0.0], corners=4, how="CONTAINS")  # sin(inf)
def test_any_region_of_any_numbers_answers_as_the_unpruned_scan(sky, hats_oracle, kind, numbers, corners, how):
    """Regions no sensible client asks for (a cover cdshealpix cannot make once panicked: a 500) still answer right."""
    n = [repr(x) for x in numbers]
    region = {
        "circle": f"CIRCLE('ICRS', {n[0]}, {n[1]}, {n[2]})",
        "box": f"BOX('ICRS', {n[0]}, {n[1]}, {n[2]}, {n[3]})",
        "polygon": "POLYGON('ICRS', " + ", ".join(n[: 2 * corners]) + ")",
    }[kind]
    # One shape with new numbers each time: the compile cache learns it at the second, renders it at the third.
    for k in (1, 2, 3):
        text = select(region, how) + f" AND objid > -{k}"
        try:
            got = answer(sky, text)
        except ArchiveError as exc:  # a region the archive refuses is refused with a 400, as a region of nothing
            assert exc.status == 400, exc
            continue
        assert got == unpruned(sky, hats_oracle, text)


@pytest.mark.parametrize(
    "region",
    [
        polygon([(10, 0), (12, 0), (11, 0)]),  # degenerate: on one great circle
        polygon([(20, -1), (22, 1), (22, -1), (20, 1)]),  # self-crossing (a bow tie)
        polygon([(0, -40), (120, -40), (240, -40)]),  # over a hemisphere's reach
        box(10, 5, 179.9, 30),  # huge
        "CIRCLE('ICRS', 10, 5, 75)",  # huge
        "CIRCLE('ICRS', 62.2, -63.9, 0.0000001)",  # tiny: cells finer than HEALPix has (a panic in cdshealpix, a 500)
        polygon([(62.2, -63.9), (62.2, -63.9), (62.2000000001, -63.9)]),  # its vertices together: a cap of ~0 radius
        polygon([(0, 60), (399.46583241759015, 1e-12), (89.9999999, 1e-300)]),  # cdshealpix's polygon cover panics
    ],
)
def test_regions_that_cannot_be_covered_well_are_never_wrong(sky, hats_oracle, region):
    text = select(region)
    assert answer(sky, text) == unpruned(sky, hats_oracle, text)


def test_a_region_with_an_infinite_number_is_refused(sky):
    # Its sine, folded, was a ValueError (a 500); left to the engine, NaN's arithmetic answered every row or none.
    with pytest.raises(ArchiveError) as info:
        answer(sky, select("POLYGON('ICRS', 0, 0, 1, 0, 1e309, 1e309)"))
    assert info.value.status == 400 and "1e309 is not a finite number" in info.value.message


def test_a_region_of_column_values_reads_everything(sky, hats_oracle):
    text = "SELECT objid FROM sky.stars WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), BOX('ICRS', ra, dec, 1, 1)) AND objid < 50"
    assert len(answer(sky, text)) == 49
    read, total = partitions_read(sky, text)
    assert read == total


def cone(ra, dec, r, form="CONTAINS") -> str:
    if form == "DISTANCE":
        return f"SELECT objid, ra, dec FROM sky.stars WHERE DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', {ra!r}, {dec!r})) < {r!r}"
    return f"SELECT objid, ra, dec FROM sky.stars WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra!r}, {dec!r}, {r!r}))"


ROUNDED = st.floats(0.01, 89.9).map(lambda x: round(x, 4))


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cones=st.lists(st.tuples(ROUNDED.map(lambda x: x * 4), ROUNDED, ROUNDED.map(lambda x: x / 45)), min_size=3, max_size=3, unique=True),
       south=st.booleans(), form=st.sampled_from(["CONTAINS", "DISTANCE"]))  # fmt: skip
def test_cone_shapes_are_learnt_and_answer_as_fresh_compilations(tmp_path_factory, hats_root, hats_oracle, cones, south, form):
    # one sign for all: a minus sign is part of a shape
    learnt_and_fresh(tmp_path_factory, hats_root, hats_oracle, [cone(ra, -dec if south else dec, r, form) for ra, dec, r in cones])


def learnt_and_fresh(tmp_path_factory, hats_root, oracle, texts: list[str]) -> None:
    """Three texts of one shape through a fresh compile cache: the first two are compiled (the second teaches the
    shape), the third is rendered from the shape; each plans the SQL a fresh compile plans and equals the oracle."""
    a = sky_archive(tmp_path_factory.mktemp("shapes"), hats_root)
    try:
        for k, text in enumerate(texts):
            with a.queries.query(user(a), text, "adql", row_limit=None) as result:
                got = sorted(tuple(row.values()) for row in result.to_table().to_pylist())
                assert (result.compiled.phases == []) == (k == 2), text
                rendered = result.compiled.statements
            fresh = a.queries.compile(user(a), text, "adql", explain=False).statements
            plan = a.queries.plan(user(a), fresh)
            assert [s.sql for s in plan.ready(rendered)] == [s.sql for s in plan.ready(fresh)]
            assert got == unpruned(a, oracle, text)
    finally:
        a.close()


def test_a_cross_match_with_a_constant_radius_is_learnt_and_right(sky, hats_oracle):
    text = ("SELECT a.objid AS a, b.objid AS b FROM sky.stars AS a JOIN sky.stars_dirs AS b "
            "ON 1 = CONTAINS(POINT('ICRS', b.ra, b.dec), CIRCLE('ICRS', a.ra, a.dec, {r})) WHERE a.objid < {n}")  # fmt: skip
    d = ("degrees(2 * asin(sqrt(pow(sin(radians(b.dec - a.dec) / 2), 2) + cos(radians(a.dec)) * cos(radians(b.dec)) "
         "* pow(sin(radians(b.ra - a.ra) / 2), 2))))")  # fmt: skip
    pairs = hats_oracle.sql(f"SELECT a.objid, b.objid, {d} FROM (SELECT * FROM stars WHERE objid < 80) AS a, stars_dirs AS b "
                            f"WHERE abs(a.dec - b.dec) < 0.03 AND {d} < 0.03").fetchall()  # fmt: skip
    for n, r in ((40, 0.01), (60, 0.02), (80, 0.015)):
        got = answer(sky, text.format(n=n, r=r))
        sure = {(i, j) for i, j, x in pairs if i < n and x < r - 1e-9}
        maybe = {(i, j) for i, j, x in pairs if i < n and x < r + 1e-9}
        assert sure <= set(got) <= maybe and len(got) == len(set(got)) and {(i, i) for i in range(1, n)} <= set(got)


def _stars(a):
    (table,) = [t for tables in a.catalog.hats.values() for name, t in tables.items() if name == "stars"]
    return table


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_coarsened_ranges_read_the_same_row_groups(sky, data):
    """A range filter on a HATS catalog is planned with as few ranges as meet the same row groups (the rows in
    those row groups are the exact test's to drop); ranges are drawn about the row groups' own bounds."""
    table = _stars(sky)
    groups = list(zip(table.group_min, table.group_max))
    assert len(groups) >= table.partitions  # the catalog is in index order: its row groups' bounds are known
    ends = [x for g in groups for x in g]
    point = st.one_of(st.integers(ends[0] - 10, ends[-1] + 10), st.sampled_from(ends).flatmap(lambda e: st.integers(e - 2, e + 2)))
    cuts = sorted(data.draw(st.lists(point, min_size=2, max_size=16, unique=True)))
    ranges = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts) - 1, 2)]
    fewer = table.coarsen(ranges)

    def met(rs):
        return [g for g in groups if any(lo <= g[1] and hi >= g[0] for lo, hi in rs)]

    assert met(fewer) == met(ranges)
    assert all(any(a <= lo and hi <= b for a, b in fewer) for lo, hi in ranges)
    assert fewer == sorted(fewer) and all(fewer[i][1] < fewer[i + 1][0] for i in range(len(fewer) - 1))
    assert len(fewer) <= len(ranges)


CENTRE = st.tuples(st.floats(1, 359).map(lambda x: round(x, 4)), st.floats(5, 80).map(lambda x: round(x, 4)))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(centres=st.lists(CENTRE, min_size=3, max_size=3, unique=True), size=st.floats(0.2, 4).map(lambda x: round(x, 3)),
       south=st.booleans(), kind=st.sampled_from(["box", "polygon"]), how=st.sampled_from(["CONTAINS", "INTERSECTS"]))  # fmt: skip
def test_box_and_polygon_shapes_are_learnt_and_answer_as_fresh_compilations(tmp_path_factory, hats_root, hats_oracle, centres, size, south, kind, how):
    texts = []
    for ra, dec in centres:
        dec = -dec if south else dec  # one sign for all: a minus sign is part of a shape
        if kind == "box":
            texts.append(select(box(ra, dec, size, size / 2), how))
        else:
            texts.append(select(polygon([(round(x, 4), round(y, 4)) for x, y in around(ra, dec, size, (10, 130, 250))]), how))
    learnt_and_fresh(tmp_path_factory, hats_root, hats_oracle, texts)
