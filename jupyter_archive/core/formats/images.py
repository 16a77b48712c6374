"""Cutouts and whole images as bytes: FITS (one plane, or all as extensions), PNG and JPEG;
:func:`image_format` picks one from a ``format`` value or an Accept header.

FITS keeps every pixel and the cutout's WCS; ``LTV1``/``LTV2`` give the offset of the
cutout in the original image (IRAF's physical coordinates, as LSST's afw writes them).
PNG and JPEG show one plane as 8-bit grey, stretched for the eye: data and variance with
zscale limits and an asinh stretch (astropy.visualization), the mask as set / not set;
row 0 of the picture is the top of the image (FITS counts rows from the bottom).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ArchiveError
from ..params import parse_accept
from .base import IMAGE, IMAGE_VALUES, Format, Writer

if TYPE_CHECKING:
    from ..images.cut import Cut

_EXTNAMES = {"data": "IMAGE", "mask": "MASK", "variance": "VARIANCE"}


def _header_text(cut: Cut) -> str:
    """The cards every HDU of a cutout shares (its WCS, offset and provenance), as FITS text."""
    header = cut.wcs.to_header()
    header["LTV1"] = (-cut.origin[0], "cutout x offset in the original image")
    header["LTV2"] = (-cut.origin[1], "cutout y offset in the original image")
    header["IMAGEID"] = cut.image.id
    header["KIND"] = cut.image.kind
    header["COLLECT"] = (cut.image.collection, "image collection")
    return header.tostring(endcard=False, padding=False)


def _card(key: str, value) -> str:
    """A fixed-format 80-character card for a logical, integer or short string value."""
    if isinstance(value, bool):
        text = f"{'T' if value else 'F':>20}"
    elif isinstance(value, int):
        text = f"{value:>20}"
    else:
        text = "'" + f"{str(value).replace(chr(39), chr(39) * 2):<8}" + "'"
    return f"{key:<8}= {text}"[:80].ljust(80)


def fits_bytes(cuts: list[Cut], names: list[str] | None = None) -> bytes:
    """FITS of cutouts: one plane of one cutout in the primary HDU; anything more as extensions
    (``IMAGE``, ``MASK``, ``VARIANCE``; with several cutouts each EXTNAME gets the cutout's number)."""
    texts = [_header_text(c) for c in cuts]
    parts = [(i, plane, data) for i, c in enumerate(cuts) for plane, data in c.planes.items()]
    if len(parts) == 1:
        i, plane, data = parts[0]
        return _hdu_bytes(data, [_card("EXTNAME", _EXTNAMES[plane])], texts[0], primary=True)
    out = [_hdu_bytes(None, [], "", primary=True)]
    for i, plane, data in parts:
        if len(cuts) == 1:
            cards = [_card("EXTNAME", _EXTNAMES[plane])]
        else:
            cards = [_card("EXTNAME", f"{_EXTNAMES[plane]}{i + 1}"), _card("EXTVER", i + 1)]
            if names:
                cards.append(_card("SODAID", names[i]))
        out.append(_hdu_bytes(data, cards, texts[i], primary=False))
    return b"".join(out)


# FITS BITPIX of the pixel types we write; others are converted first (unsigned -> wider signed).
_BITPIX = {np.dtype(np.uint8): 8, np.dtype(np.int16): 16, np.dtype(np.int32): 32, np.dtype(np.int64): 64,
           np.dtype(np.float32): -32, np.dtype(np.float64): -64}  # fmt: skip
_WIDER = {np.dtype(bool): np.uint8, np.dtype(np.int8): np.int16, np.dtype(np.uint16): np.int32, np.dtype(np.uint32): np.int64}


def _hdu_bytes(data, cards: list[str], shared: str, *, primary: bool) -> bytes:
    """One HDU written directly: mandatory cards, ``cards``, the ``shared`` header text, END,
    then big-endian pixels, each padded to 2880 bytes.

    astropy's HDUList.writeto builds, verifies and copies every HDU, which costs milliseconds
    per cutout; the WCS cards here are astropy's own text, only the layout is written by hand.
    """
    if data is not None:
        data = np.asarray(data)
        native = data.dtype.newbyteorder("=")
        if native in _WIDER:
            data, native = data.astype(_WIDER[native]), np.dtype(_WIDER[native])
        if native not in _BITPIX:
            data, native = data.astype(np.float64), np.dtype(np.float64)
    head = [_card("SIMPLE", True) if primary else _card("XTENSION", "IMAGE")]
    head.append(_card("BITPIX", _BITPIX[native] if data is not None else 8))
    head.append(_card("NAXIS", 0 if data is None else data.ndim))
    if data is not None:
        head += [_card(f"NAXIS{k}", n) for k, n in enumerate(reversed(data.shape), 1)]
    head += [_card("EXTEND", True)] if primary else [_card("PCOUNT", 0), _card("GCOUNT", 1)]
    text = "".join(head + cards) + shared + "END".ljust(80)
    body = (text + " " * (-len(text) % 2880)).encode("ascii")
    if data is None:
        return body
    pixels = np.ascontiguousarray(data, dtype=native.newbyteorder(">")).tobytes()
    return body + pixels + b"\0" * (-len(pixels) % 2880)


def picture_bytes(cut: Cut, fmt: str) -> bytes:
    """One plane (the first asked) as an 8-bit grey PNG or JPEG of the cutout's size."""
    from PIL import Image as PILImage

    plane, data = next(iter(cut.planes.items()))
    grey = stretch(np.asarray(data), plane)
    picture = PILImage.fromarray(np.ascontiguousarray(grey[::-1]), mode="L")
    buf = io.BytesIO()
    if fmt == "png":
        picture.save(buf, format="PNG", compress_level=1)
    else:
        picture.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def stretch(data: np.ndarray, plane: str) -> np.ndarray:
    """Pixels as uint8 for display: zscale + asinh for data and variance, set/not set for the mask.

    The interval and the stretch are astropy's; they are applied here rather than through
    ``ImageNormalize``, which needs matplotlib (not a dependency of the archive).
    """
    if plane == "mask":
        return np.where(data != 0, 255, 0).astype(np.uint8)
    from astropy.visualization import AsinhStretch, ZScaleInterval

    values = np.asarray(data, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, np.uint8)
    values = np.where(finite, values, np.nanmin(values[finite]))
    low, high = ZScaleInterval().get_limits(values)
    if not high > low:
        return np.zeros(values.shape, np.uint8)  # a flat image: nothing to stretch
    scaled = np.clip((values - low) / (high - low), 0.0, 1.0)
    return (AsinhStretch(0.1)(scaled, clip=True) * 255.0 + 0.5).astype(np.uint8)


def _picture(fmt: str):
    """The writer of a picture format: the first cutout's first plane."""
    return lambda cuts, names=None: picture_bytes(cuts[0], fmt)


FITS_IMAGE = Writer("fits", fits_bytes, "image/fits", {"image/fits": {}, "application/fits": {}, "image/x-fits": {}},
                    names={"fits": {}, "fit": {}}, family=IMAGE)
PNG = Writer("png", _picture("png"), "image/png", {"image/png": {}}, family=IMAGE)
JPEG = Writer("jpeg", _picture("jpeg"), "image/jpeg", {"image/jpeg": {}, "image/jpg": {}}, names={"jpeg": {}, "jpg": {}},
              family=IMAGE, extension="jpg")


# ---------------------------------------------------------------------------------------------
# Which image format a request asks for

_IMAGE_DEFAULT = "fits"
_IMAGE_WILDCARDS = ("*/*", "image/*", "application/*")  # each means the default


def image_format(value: str | None = None, accept: str | None = None) -> Format:
    """The image format a ``format`` value (a name or media type) or else an Accept header asks
    for; FITS when neither says. Accept ranges are tried by q, then in the order given."""
    if value:
        fmt = IMAGE_VALUES.get(value.strip().lower())
        if fmt is None:
            raise _no_image(f"unknown image format {value!r}")
        return fmt
    if not accept:
        return IMAGE_VALUES[_IMAGE_DEFAULT]
    ranked = []
    for pos, (mt, params) in enumerate(parse_accept(accept)):
        try:
            q = float(params.get("q", 1))
        except ValueError:
            q = 0.0
        ranked.append((-q, pos, mt))
    for _, _, mt in sorted(ranked):
        if mt in IMAGE_VALUES:
            return IMAGE_VALUES[mt]
        if mt in _IMAGE_WILDCARDS:
            return IMAGE_VALUES[_IMAGE_DEFAULT]
    raise _no_image(f"cannot answer Accept: {accept}")


def _no_image(message: str) -> ArchiveError:
    types = list(dict.fromkeys(fmt.media_type for fmt in IMAGE_VALUES.values()))
    return ArchiveError("not_acceptable", f"{message}; images come as {', '.join(types)}", 406, details={"supported": types})
