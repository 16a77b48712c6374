"""Cutouts of survey images: imgserv's cutout parameters, plane names, and the cut itself.

Cutouts are made with :class:`astropy.nddata.Cutout2D` on the data plane; the other planes are
sliced the same way. The images come from :mod:`.catalog` (:meth:`ImageCatalog.load`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import ArchiveError, bad_request, not_found
from .catalog import PLANES, Image, LoadedImage, check_position


@dataclass
class Cut:
    """A cutout: the planes' pixels, its WCS, and where it lies in the original image."""

    image: Image
    planes: dict[str, np.ndarray]
    wcs: object
    origin: tuple[int, int]  # (x0, y0) of the cutout's first pixel in the image, 0-based

    @property
    def shape(self) -> tuple[int, int]:
        return next(iter(self.planes.values())).shape


def no_overlap(image: Image) -> ArchiveError:
    return ArchiveError("no_overlap", f"the cutout lies outside image {image.ref}", 400, details={"image": image.ref})


def cut(loaded: LoadedImage, request: Mapping, planes: Iterable[str] = PLANES) -> Cut:
    """A cutout described by a request of :func:`cutout_request` (``None``/empty: the whole image)."""
    from astropy.nddata import Cutout2D, NoOverlapError

    image, wcs = loaded.image, loaded.wcs
    planes = check_planes(image, planes)
    data = loaded.planes["data"]
    shape = (request or {}).get("shape")
    if not shape:
        return Cut(image, {p: np.asarray(loaded.planes[p]) for p in planes}, wcs, (0, 0))
    if shape == "box":
        ny, nx = data.shape
        x0, x1 = max(0, int(request["x1"])), min(nx - 1, int(request["x2"]))
        y0, y1 = max(0, int(request["y1"])), min(ny - 1, int(request["y2"]))
        if x0 > x1 or y0 > y1:
            raise no_overlap(image)
        sl = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        return Cut(image, {p: np.asarray(loaded.planes[p][sl]) for p in planes}, wcs.slice(sl), (x0, y0))
    if shape == "pixel":
        position, size = (request["x"], request["y"]), (request["height"], request["width"])
    else:  # "sky": ra, dec and a size in pixels or in arcsec
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        position = SkyCoord(request["ra"], request["dec"], unit="deg", frame="icrs")
        if request.get("unit") == "pix":
            size = (request["height"], request["width"])
        else:
            size = (request["height"] * u.arcsec, request["width"] * u.arcsec)
        x, y = wcs.world_to_pixel(position)
        if not (np.isfinite(x) and np.isfinite(y)):
            raise no_overlap(image)
    try:
        c = Cutout2D(data, position, size, wcs=wcs, mode="trim", copy=False)
    except (NoOverlapError, ValueError) as exc:
        if isinstance(exc, NoOverlapError) or "overlap" in str(exc).lower():
            raise no_overlap(image) from None
        raise bad_request(f"cannot cut image {image.ref}: {exc}") from None
    sl = c.slices_original
    out = {p: (np.asarray(c.data) if p == "data" else np.asarray(loaded.planes[p][sl])) for p in planes}
    return Cut(image, out, c.wcs, (sl[1].start, sl[0].start))


def check_plane_names(planes: Iterable[str]) -> list[str]:
    """The asked plane names in order, without repeats (400 for an unknown one; none: data)."""
    wanted = []
    for p in planes:
        name = str(p).strip().lower()
        if name not in PLANES:
            raise bad_request(f"unknown plane {p!r}; planes: {', '.join(PLANES)}", plane=p)
        if name not in wanted:
            wanted.append(name)
    return wanted or ["data"]


def check_planes(image: Image, planes: Iterable[str]) -> list[str]:
    """The asked planes in order, each one the image has (400 for an unknown plane name)."""
    wanted = check_plane_names(planes)
    for name in wanted:
        if name not in image.planes:
            raise not_found(f"image {image.ref} has no {name} plane", image=image.ref, plane=name)
    return wanted


# Cutout parameters of LSST imgserv v0 (the document's I8..I12), in the order they are tried.
_FORMS = (
    (("x", "y", "width", "height"), "pixel"),
    (("x1", "y1", "x2", "y2"), "box"),
    (("ra", "dec", "deltaRa", "deltaDec"), "arcmin"),
    (("ra", "dec", "widthAng", "heightAng"), "arcsec"),
    (("ra", "dec", "widthPix", "heightPix"), "pix"),
)
CUTOUT_PARAMETERS = tuple(dict.fromkeys(n for names, _ in _FORMS for n in names))


def cutout_request(params: Mapping[str, str]) -> dict:
    """Parse imgserv cutout parameters into a JSON-able request for :func:`cut` (400 on bad input)."""
    given = {k: v for k, v in params.items() if k in CUTOUT_PARAMETERS and v not in (None, "")}
    for names, form in _FORMS:
        if all(n in given for n in names):
            values = {n: _number(n, given[n]) for n in names}
            break
    else:
        forms = "; ".join(",".join(names) for names, _ in _FORMS)
        raise bad_request(f"a cutout needs one of these parameter sets: {forms}; got {', '.join(sorted(given)) or 'none'}")
    if form == "pixel":
        w, h = _pixels("width", values["width"]), _pixels("height", values["height"])
        return {"shape": "pixel", "x": values["x"], "y": values["y"], "width": w, "height": h}
    if form == "box":
        x1, x2 = sorted((values["x1"], values["x2"]))
        y1, y2 = sorted((values["y1"], values["y2"]))
        return {"shape": "box", "x1": int(math.floor(x1)), "y1": int(math.floor(y1)), "x2": int(math.floor(x2)), "y2": int(math.floor(y2))}
    ra, dec = check_position(values["ra"], values["dec"])
    if form == "arcmin":  # deltaRa/deltaDec are the box's full width and height in arcmin
        w, h = 60.0 * _positive("deltaRa", values["deltaRa"]), 60.0 * _positive("deltaDec", values["deltaDec"])
        return {"shape": "sky", "ra": ra, "dec": dec, "width": w, "height": h, "unit": "arcsec"}
    if form == "arcsec":
        w, h = _positive("widthAng", values["widthAng"]), _positive("heightAng", values["heightAng"])
        return {"shape": "sky", "ra": ra, "dec": dec, "width": w, "height": h, "unit": "arcsec"}
    w, h = _pixels("widthPix", values["widthPix"]), _pixels("heightPix", values["heightPix"])
    return {"shape": "sky", "ra": ra, "dec": dec, "width": w, "height": h, "unit": "pix"}


def _number(name: str, raw) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise bad_request(f"invalid {name}: {raw!r} (must be a number)") from None
    if not math.isfinite(value):
        raise bad_request(f"invalid {name}: {raw!r} (must be finite)")
    return value


def _positive(name: str, value: float) -> float:
    if value <= 0:
        raise bad_request(f"invalid {name}: {value:g} (must be > 0)")
    return value


def _pixels(name: str, value: float) -> int:
    """A size in whole pixels (rounded), at least one."""
    n = int(round(_positive(name, value)))
    if n < 1:
        raise bad_request(f"invalid {name}: {value:g} (must be at least 1 pixel)")
    return n
