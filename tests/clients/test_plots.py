"""The TableBrowser's pictures: a sky plot and a histogram of the rows the server sent (a random sample of a
table bigger than the plot limit, all rows of a smaller one), checked against the same rows read straight from
the demo's DuckDB file (the same reservoir, the same seed) and against numpy's histogram; and what the plot
says it shows, the same words as the sidebar's (labextension/test/sample_notes.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_archive.widgets import TableBrowser, plots

from tests.support import DEMO_ROWS

LIMIT = plots.PLOT_LIMIT


@pytest.fixture(scope="module")
def demo(demo_dir):
    import duckdb

    con = duckdb.connect(str(demo_dir / "demo.duckdb"), read_only=True)
    yield lambda sql: con.sql(sql).df()
    con.close()


def xtick_labels(svg: str) -> list[float]:
    """The x-axis labels of a plot, from left to right."""
    ticks = re.findall(r'<text x="([\d.]+)" y="[\d.]+" text-anchor="middle" class="xtick">([^<]+)</text>', svg)
    return [float(v) for _x, v in sorted(ticks, key=lambda t: float(t[0]))]


def test_sky_plot_draws_a_random_sample_of_a_big_table_ra_to_the_left(client, demo):
    assert DEMO_ROWS > LIMIT  # the demo table is bigger than a plot draws
    tb = TableBrowser(client, context="DEMO", table="PhotoObj")
    assert tb.plot.value == ""  # the table until asked
    tb.view.value = "sky"
    sky = tb.plotted
    want = demo(f"SELECT ra, dec, g FROM PhotoObj USING SAMPLE reservoir({LIMIT} ROWS) REPEATABLE (0)")
    assert np.array_equal(sky.ra, want["ra"]) and np.array_equal(sky.dec, want["dec"])
    assert sky.colour is None and sky.svg.count("<circle") == LIMIT
    assert sky.note == f"random sample of {LIMIT:,} of {DEMO_ROWS:,} rows"
    assert sky.note in tb.plot.value and tb.preview.layout.display == "none"
    labels = xtick_labels(sky.svg)
    assert len(labels) >= 3 and labels == sorted(labels, reverse=True)  # RA grows to the left
    assert "ra [deg]" in sky.svg and "dec [deg]" in sky.svg

    tb.plot_column.value = "g"
    assert np.array_equal(tb.plotted.colour, want["g"]) and 'class="colourbar"' in tb.plot.value
    tb.view.value = "table"
    assert tb.plotted is None and tb.preview.layout.display is None and len(tb.page) == tb.page_size


def test_histogram_counts_are_numpys_on_the_sample_whatever_the_sort(client, demo):
    tb = TableBrowser(client, context="DEMO", table="PhotoObj", plot_limit=5000)
    tb.sort.value = "r"
    tb.descending.value = True
    tb.view.value = "histogram"
    assert tb.plot_column.value not in ("objid", "ra", "dec")  # a measured quantity by default
    tb.plot_column.value = "r"
    hist = tb.plotted
    r = demo("SELECT r FROM PhotoObj USING SAMPLE reservoir(5000 ROWS) REPEATABLE (0)")["r"].to_numpy()
    counts, edges = np.histogram(r, bins=len(hist.counts))
    assert np.array_equal(hist.counts, counts) and np.allclose(hist.edges, edges)
    assert hist.counts.sum() == 5000 and hist.svg.count("<rect") == np.count_nonzero(counts) + 1  # + the frame
    assert hist.note == f"random sample of 5,000 of {DEMO_ROWS:,} rows"
    # Not the first rows of the sort (the faintest quarter): the sample reaches below the table's median.
    assert hist.edges[0] < demo("SELECT median(r) AS m FROM PhotoObj")["m"][0]
    # Another sort plots the same sample: a sample has no order.
    tb.sort.value = "g"
    assert tb.plotted.note == hist.note and np.array_equal(tb.plotted.counts, hist.counts)
    # The pick is kept per view; the sky plot is back with its own.
    tb.view.value = "sky"
    assert tb.plot_column.value == "(one colour)"
    tb.view.value = "histogram"
    assert tb.plot_column.value == "r"


def test_the_note_says_what_the_sidebar_says():
    cases = json.loads((Path(__file__).parents[2] / "labextension" / "test" / "sample_notes.json").read_text())["cases"]
    assert any(c.get("sampled") for c in cases) and any(not c.get("sampled") for c in cases)
    for c in cases:
        note = plots.sample_note(c["shown"], c["total"], c["limit"], c.get("order"), c.get("desc", False), sampled=c.get("sampled", False))
        assert note == c["note"], c


def test_a_small_table_is_drawn_whole_and_a_table_without_position_says_so(client):
    # x is a DECIMAL (pandas holds it as objects): drawn as a number all the same.
    client.query("CREATE OR REPLACE TABLE Plain AS SELECT range AS i, range * 0.5 AS x FROM range(300)", context="MyDB")
    try:
        tb = TableBrowser(client, context="MyDB", table="Plain")
        tb.view.value = "sky"
        assert tb.plotted is None and "No RA/Dec columns" in tb.plot.value
        tb.view.value = "histogram"
        assert tb.plot_column.value == "x" and tb.plotted.note == "all 300 rows"
        assert np.array_equal(tb.plotted.counts, np.histogram(np.arange(300) * 0.5, bins=len(tb.plotted.counts))[0])
    finally:
        client.drop("Plain", context="MyDB")


def test_radec_columns_by_ucd_then_by_name():
    schema = pd.DataFrame({"name": ["objid", "ra_err", "alpha_x", "delta_x"],
                           "ucd": [None, "stat.error;pos.eq.ra", "pos.eq.ra;meta.main", "POS.EQ.DEC;meta.main"]})
    assert plots.radec_columns(schema) == ("alpha_x", "delta_x")
    assert plots.radec_columns(pd.DataFrame({"name": ["RAJ2000", "DEJ2000"], "ucd": [None, None]})) == ("RAJ2000", "DEJ2000")
    assert plots.radec_columns(pd.DataFrame({"name": ["u", "g"], "ucd": [None, None]})) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 359.999), st.floats(-90, 90)), min_size=2, max_size=40, unique_by=lambda p: p[0]),
       st.floats(0, 359.999))
def test_sky_plot_puts_larger_ra_to_the_left_across_zero(points, shift):
    """Generated fields anywhere on the sky (a shift may carry one across RA 0): each row with a
    position is one circle, and a point with larger RA (unwrapped) is never right of a smaller one."""
    ra = np.array([(p[0] * 0.05 + shift) % 360 for p in points])  # a field under 18 degrees wide
    rows = pd.DataFrame({"ra": ra, "dec": [p[1] for p in points]})
    sky = plots.sky_plot(rows, "ra", "dec", None, "note")
    cx = [float(x) for x in re.findall(r'<circle cx="([-\d.]+)"', sky.svg)]
    assert len(cx) == len(rows)
    unwrapped = (ra - shift + 180) % 360  # the field's own order, whatever the shift
    order = np.argsort(unwrapped)
    assert all(np.diff(np.array(cx)[order]) <= 0.1)  # (rounded to 0.1 px)
