"""SODA stencils on images: parse ``POS``/``CIRCLE``/``POLYGON`` and turn each into a cutout box.

A CIRCLE is cut as the square of side 2r around its centre (what Cutout2D cuts for an
angular size); RANGE and POLYGON as their bounding box in the image's pixels, clipped at the
image's edge. Open RANGEs (``-Inf``/``+Inf``) are first clipped to the image's own span.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import bad_request
from .catalog import Image, LoadedImage, check_position, parse_numbers, parse_polygon
from .cut import no_overlap


def parse_stencil(kind: str, text: str) -> dict:
    """A SODA stencil: ``POS`` (``CIRCLE ra dec r``, ``RANGE ra1 ra2 dec1 dec2``, ``POLYGON ...``),
    ``CIRCLE`` (``ra dec r``) or ``POLYGON`` (``ra dec`` pairs); degrees, ICRS."""
    words = (text or "").replace(",", " ").split()
    kind = kind.upper()
    if kind == "POS":
        if not words:
            raise bad_request("POS is empty; use CIRCLE ra dec r, RANGE ra1 ra2 dec1 dec2 or POLYGON ra1 dec1 ...")
        kind, words = words[0].upper(), words[1:]
        if kind not in ("CIRCLE", "RANGE", "POLYGON"):
            raise bad_request(f"unknown POS shape {kind!r}; shapes: CIRCLE, RANGE, POLYGON")
    if kind == "CIRCLE":
        values = parse_numbers(words, "CIRCLE")
        if len(values) != 3:
            raise bad_request(f"CIRCLE needs ra dec radius (3 numbers); got {text!r}")
        ra, dec = check_position(values[0], values[1])
        if not 0 < values[2] <= 180:
            raise bad_request(f"CIRCLE radius {values[2]:g} must be > 0 and <= 180 degrees")
        return {"shape": "circle", "ra": ra, "dec": dec, "radius": values[2]}
    if kind == "RANGE":
        values = _range_numbers(words)
        ra1, ra2, dec1, dec2 = values
        if ra1 > ra2 or dec1 > dec2:
            raise bad_request(f"RANGE needs ra1 <= ra2 and dec1 <= dec2; got {text!r}")
        return {"shape": "range", "ra1": ra1, "ra2": ra2, "dec1": max(dec1, -90.0), "dec2": min(dec2, 90.0)}
    if kind == "POLYGON":
        return {"shape": "polygon", "vertices": parse_polygon(" ".join(words))}
    raise bad_request(f"unknown stencil {kind!r}")


def _range_numbers(words: list[str]) -> list[float]:
    if len(words) != 4:
        raise bad_request(f"RANGE needs ra1 ra2 dec1 dec2 (4 numbers); got {' '.join(words)!r}")
    out = []
    for w in words:
        try:
            value = float(w)  # "-Inf" and "+Inf" are allowed (open ranges)
        except ValueError:
            raise bad_request(f"RANGE values must be numbers; got {w!r}") from None
        if math.isnan(value):
            raise bad_request("RANGE values must not be NaN")
        out.append(value)
    return out


def _stencil_points(stencil: dict, image: Image) -> np.ndarray:
    """Sky points (ra, dec) outlining a stencil, for its bounding box in an image's pixels."""
    t = np.linspace(0.0, 1.0, 33)
    if stencil["shape"] == "polygon":
        v = stencil["vertices"]
        pts = []
        for (ra1, dec1), (ra2, dec2) in zip(v, v[1:] + v[:1]):
            dra = ((ra2 - ra1 + 180.0) % 360.0) - 180.0  # the short way round
            pts.append(np.stack([ra1 + t * dra, dec1 + t * (dec2 - dec1)], axis=-1))
        return np.concatenate(pts)
    # RANGE: open or wide ranges are first clipped to the image's own span, padded a little.
    fra = np.array([p[0] for p in image.footprint])
    fdec = np.array([p[1] for p in image.footprint])
    centre = image.centre[0]
    rel = ((fra - centre + 180.0) % 360.0) - 180.0
    pad = 0.01 + 0.1 * float(np.ptp(fdec))
    lo_ra, hi_ra = centre + rel.min() - pad, centre + rel.max() + pad
    ra1, ra2 = stencil["ra1"], stencil["ra2"]
    if ra2 - ra1 < 360.0:
        # move the range next to the image before clipping (ra wraps at 360)
        shift = 360.0 * round((centre - (ra1 + ra2) / 2) / 360.0)
        ra1, ra2 = ra1 + shift, ra2 + shift
        lo_ra, hi_ra = max(lo_ra, ra1), min(hi_ra, ra2)
    lo_dec, hi_dec = max(fdec.min() - pad, stencil["dec1"]), min(fdec.max() + pad, stencil["dec2"])
    if lo_ra > hi_ra or lo_dec > hi_dec:
        return np.zeros((0, 2))
    ras, decs = lo_ra + t * (hi_ra - lo_ra), lo_dec + t * (hi_dec - lo_dec)
    return np.concatenate([
        np.stack([ras, np.full_like(ras, lo_dec)], -1), np.stack([ras, np.full_like(ras, hi_dec)], -1),
        np.stack([np.full_like(decs, lo_ra), decs], -1), np.stack([np.full_like(decs, hi_ra), decs], -1),
    ])  # fmt: skip


def stencil_request(loaded: LoadedImage, stencil: dict) -> dict:
    """The cutout request (for :func:`cut`) of a SODA stencil on one image: the stencil's
    bounding box in the image's pixels (a CIRCLE is the square of side 2r, as Cutout2D cuts it)."""
    image = loaded.image
    if stencil["shape"] == "circle":
        size = 2.0 * stencil["radius"] * 3600.0
        return {"shape": "sky", "ra": stencil["ra"], "dec": stencil["dec"], "width": size, "height": size, "unit": "arcsec"}
    pts = _stencil_points(stencil, image)
    if len(pts) == 0:
        raise no_overlap(image)
    x, y = loaded.wcs.all_world2pix(pts[:, 0] % 360.0, pts[:, 1], 0)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        raise no_overlap(image)
    x, y = x[ok], y[ok]
    return {"shape": "box", "x1": int(math.floor(x.min() + 0.5)), "y1": int(math.floor(y.min() + 0.5)),
            "x2": int(math.floor(x.max() + 0.5)), "y2": int(math.floor(y.max() + 0.5))}  # fmt: skip
