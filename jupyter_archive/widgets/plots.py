"""Results as pictures for the widgets: a sky plot (RA/Dec, coloured by a column) and a histogram.

Drawn as SVG text in Python (shown in an ``ipywidgets.HTML``): matplotlib is not a dependency of
the package, and an SVG of 10,000 points is small. Each plot keeps the numbers it drew (``ra``,
``dec``, ``colour``; ``counts``, ``edges``) next to its SVG, so a program or a test can read
them. The sidebar draws the same pictures in TypeScript (labextension/src/plot.ts).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

PLOT_LIMIT = 10_000  # the most rows a plot draws: past it, a random sample of this many (one request)

RA_NAMES = ("ra", "raj2000", "ra_icrs", "s_ra", "ra_deg", "alpha", "ra2000")
DEC_NAMES = ("dec", "decl", "dej2000", "dec_icrs", "s_dec", "dec_deg", "delta", "de2000", "dec2000")
VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
W, H = 640, 440
LEFT, RIGHT, TOP, BOTTOM = 64, 90, 34, 48


@dataclass
class SkyPlot:
    """A sky plot: the positions drawn (RA as given, degrees), the colour values and the SVG."""

    ra: np.ndarray
    dec: np.ndarray
    colour: np.ndarray | None
    colour_by: str | None
    note: str
    svg: str


@dataclass
class Histogram:
    """A histogram of one column: numpy's counts and bin edges over the rows drawn, and the SVG."""

    column: str
    counts: np.ndarray
    edges: np.ndarray
    note: str
    svg: str


def radec_columns(schema: pd.DataFrame) -> tuple[str, str] | None:
    """The RA and Dec columns of a schema (name, ucd): by UCD ``pos.eq.ra``/``pos.eq.dec`` (the
    ``meta.main`` one first), else by a usual name; None when the table holds no position."""
    records = schema.to_dict("records")

    def by_ucd(word: str) -> str | None:
        found = [r for r in records if word in _ucd_words(r.get("ucd"))]
        main = [r for r in found if "meta.main" in _ucd_words(r.get("ucd"))]
        return (main or found or [{"name": None}])[0]["name"]

    def by_name(names) -> str | None:
        lower = {str(r["name"]).lower(): r["name"] for r in records}
        return next((lower[n] for n in names if n in lower), None)

    ra, dec = by_ucd("pos.eq.ra"), by_ucd("pos.eq.dec")
    if ra is None or dec is None:
        ra, dec = by_name(RA_NAMES), by_name(DEC_NAMES)
    return (ra, dec) if ra is not None and dec is not None else None


def _ucd_words(ucd) -> list[str]:
    return [w.strip() for w in ucd.lower().split(";")] if isinstance(ucd, str) else []


def numeric_columns(rows: pd.DataFrame) -> list[str]:
    """The columns of ``rows`` that hold numbers: numeric dtypes (booleans are not) and DECIMALs
    (which pandas holds as objects)."""
    from decimal import Decimal

    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    def numeric(s) -> bool:
        if s.dtype == object:
            values = s.dropna()
            return len(values) > 0 and all(isinstance(v, Decimal) for v in values)
        return is_numeric_dtype(s) and not is_bool_dtype(s)

    return [c for c in rows.columns if numeric(rows[c])]


def sample_note(shown: int, total: int | None, limit: int, order: str | None = None, descending: bool = False, *,
                sampled: bool = False) -> str:
    """What a plot shows, said honestly: all rows; a uniform random sample of them (``sampled``: the
    server drew it, ``sample=`` of the rows endpoint); or else the first ``shown`` in the order the
    server sent them (the table's own, or the chosen sort), which is not a random sample. The sidebar
    says the same (labextension/src/plot.ts ``sampleNote``; both are tested on labextension/test/sample_notes.json)."""
    if (total is not None and shown >= total) or (total is None and shown < limit):
        return f"all {shown:,} rows"
    of = f" of {total:,}" if total is not None else ""
    if sampled:
        return f"random sample of {shown:,}{of} rows"
    how = f"sorted by {order}{', descending' if descending else ''}" if order else "table order"
    return f"first {shown:,}{of} rows ({how}; not a random sample)"


def bin_count(n: int) -> int:
    """Sturges' rule on the rows drawn, between 10 and 50 bins (as the sidebar)."""
    return max(10, min(50, math.ceil(math.log2(max(1, n)) + 1)))


def sky_plot(rows: pd.DataFrame, ra: str, dec: str, colour_by: str | None, note: str, units: dict | None = None) -> SkyPlot:
    """A sky plot of the rows with a position; RA grows to the left, as on the sky."""
    import numpy as np

    units = units or {}
    keep = rows[ra].notna() & rows[dec].notna()
    ra_v = rows.loc[keep, ra].to_numpy(dtype=float)
    dec_v = rows.loc[keep, dec].to_numpy(dtype=float)
    colour = rows.loc[keep, colour_by].to_numpy(dtype=float) if colour_by else None
    parts = [_head(note, "sky")]
    if len(ra_v):
        x = _unwrap_ra(ra_v)
        x0, x1 = _padded(x.min(), x.max())
        y0, y1 = _padded(dec_v.min(), dec_v.max())

        def sx(v):
            return LEFT + (x1 - v) / (x1 - x0) * (W - LEFT - RIGHT)

        def sy(v):
            return H - BOTTOM - (v - y0) / (y1 - y0) * (H - TOP - BOTTOM)

        parts.append(_axes([(sx(t), _fmt(t % 360)) for t in _ticks(x0, x1)], [(sy(t), _fmt(t)) for t in _ticks(y0, y1)],
                           _label(ra, units), _label(dec, units)))
        finite = colour[np.isfinite(colour)] if colour is not None else np.array([])
        c0, c1 = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
        fills = (["#1976d2"] * len(x) if colour is None else
                 ["#bbb" if not np.isfinite(v) else _colour((v - c0) / (c1 - c0) if c1 > c0 else 0.5) for v in colour])
        parts.append('<g class="points" fill-opacity="0.75">' + "".join(
            f'<circle cx="{sx(a):.1f}" cy="{sy(d):.1f}" r="1.6" fill="{f}"/>' for a, d, f in zip(x, dec_v, fills)) + "</g>")
        if colour is not None and len(finite):
            parts.append(_colour_bar(c0, c1, _label(colour_by, units)))
    return SkyPlot(ra_v, dec_v, colour, colour_by, note, "".join(parts) + "</svg>")


def histogram(rows: pd.DataFrame, column: str, note: str, units: dict | None = None) -> Histogram:
    """A histogram of one numeric column over its finite values (numpy's bins and counts)."""
    import numpy as np

    values = rows[column].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    parts = [_head(note, "histogram")]
    if not len(values):
        return Histogram(column, np.zeros(0, dtype=int), np.zeros(0), note, parts[0] + "</svg>")
    counts, edges = np.histogram(values, bins=bin_count(len(values)))
    x0, x1, top = edges[0], edges[-1], counts.max()

    def sx(v):
        return LEFT + (v - x0) / (x1 - x0) * (W - LEFT - RIGHT)

    def sy(v):
        return H - BOTTOM - v / top * (H - TOP - BOTTOM)

    parts.append(_axes([(sx(t), _fmt(t)) for t in _ticks(x0, x1)], [(sy(t), _fmt(t)) for t in _ticks(0, top, 5)],
                       _label(column, units), "rows"))
    parts.append('<g class="bars" fill="#1976d2">' + "".join(
        f'<rect x="{sx(a):.1f}" y="{sy(n):.1f}" width="{max(0.5, sx(b) - sx(a) - 1):.1f}" height="{sy(0) - sy(n):.1f}">'
        f"<title>{_fmt(a)} – {_fmt(b)}: {n:,} rows</title></rect>"
        for a, b, n in zip(edges[:-1], edges[1:], counts) if n > 0) + "</g>")
    return Histogram(column, counts, edges, note, "".join(parts) + "</svg>")


def _unwrap_ra(ra: np.ndarray) -> np.ndarray:
    """RA in [0, 360), or in [-180, 180) when the points straddle 0° (keeps such a field together)."""
    plain = ra % 360
    shifted = (plain + 180) % 360 - 180
    return shifted if shifted.max() - shifted.min() < plain.max() - plain.min() else plain


def _padded(lo: float, hi: float) -> tuple[float, float]:
    pad = (hi - lo) * 0.03 if hi > lo else 0.5
    return float(lo - pad), float(hi + pad)


def _ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step)
    return [round(k * step, 12) for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    v = float(v)
    return f"{v:.2e}" if abs(v) >= 1e5 or (v != 0 and abs(v) < 1e-3) else f"{v:.6g}"


def _label(name: str, units: dict) -> str:
    unit = units.get(name)
    return f"{name} [{unit}]" if isinstance(unit, str) and unit else name


def _colour(t: float) -> str:
    x = min(1.0, max(0.0, float(t))) * (len(VIRIDIS) - 1)
    i = min(len(VIRIDIS) - 2, int(x))
    c = [round(a + (b - a) * (x - i)) for a, b in zip(VIRIDIS[i], VIRIDIS[i + 1])]
    return f"rgb({c[0]},{c[1]},{c[2]})"


def _text(x: float, y: float, s: str, extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{html.escape(s)}</text>'


def _head(note: str, kind: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="archive-plot archive-plot-{kind}" viewBox="0 0 {W} {H}" '
            f'width="{W}" role="img" aria-label="{html.escape(note)}" font-family="sans-serif" font-size="11">'
            + _text(LEFT, 18, note, ' class="note" font-style="italic" fill="#666"'))


def _axes(xt, yt, x_label: str, y_label: str) -> str:
    bottom = H - BOTTOM
    out = [f'<g class="axes" stroke="#888" fill="none"><rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{bottom - TOP}"/>']
    out += [f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 4}"/>' for x, _ in xt]
    out += [f'<line x1="{LEFT - 4}" x2="{LEFT}" y1="{y:.1f}" y2="{y:.1f}"/>' for y, _ in yt]
    out.append('</g><g class="labels" fill="currentColor">')
    out += [_text(x, bottom + 16, s, ' text-anchor="middle" class="xtick"') for x, s in xt]
    out += [_text(LEFT - 6, y + 4, s, ' text-anchor="end"') for y, s in yt]
    mid = (TOP + bottom) / 2
    out.append(_text((LEFT + W - RIGHT) / 2, H - 10, x_label, ' text-anchor="middle"'))
    out.append(_text(14, mid, y_label, f' text-anchor="middle" transform="rotate(-90 14 {mid:.1f})"'))
    return "".join(out) + "</g>"


def _colour_bar(lo: float, hi: float, name: str) -> str:
    x, steps = W - RIGHT + 18, 24
    h = (H - TOP - BOTTOM) / steps
    out = ['<g class="colourbar">']
    out += [f'<rect x="{x}" y="{TOP + (steps - 1 - i) * h:.1f}" width="12" height="{h + 0.5:.1f}" fill="{_colour((i + 0.5) / steps)}"/>'
            for i in range(steps)]
    out += [_text(x + 16, TOP + 8, _fmt(hi)), _text(x + 16, H - BOTTOM, _fmt(lo)), _text(x, TOP - 6, name)]
    return "".join(out) + "</g>"
