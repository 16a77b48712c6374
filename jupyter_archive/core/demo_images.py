"""The demo archive's images: a few deterministic survey frames of demo catalog fields.

:func:`ensure_demo_images` writes ``<demo dir>/images/<kind>/<id>.fits`` beside
``demo.duckdb``: three ``calexp`` frames and one ``deepCoadd`` (slightly rotated), each
512 x 512 pixels of 2 arcsec on a TAN WCS, with three planes: ``IMAGE`` (background-
subtracted counts), ``MASK`` (int32 bits, :data:`MASK_BITS`) and ``VARIANCE``. The stars and
galaxies of ``PhotoObj`` inside each field are drawn at their catalog positions with fluxes
from their r magnitudes (stars as Gaussian PSFs, galaxies wider); the noise is drawn from
the variance plane. Everything comes from ``numpy.random.default_rng`` seeded per frame, so
the same catalog gives the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

#: Bump whenever the images change, so existing demo images are rebuilt.
IMAGES_VERSION = "1"
SIZE = 512
PIXEL_ARCSEC = 2.0
ZERO_POINT = 28.0  # r magnitude of 1 count
SKY = 120.0  # counts per pixel (subtracted from IMAGE, kept in VARIANCE)
READ_NOISE = 5.0
SATURATION = 60_000.0
MASK_BITS = {"BAD": 0, "SAT": 1, "INTRP": 2, "CR": 3, "EDGE": 4, "DETECTED": 5}

# (kind, id, ra offset, dec offset from the demo field's lower corner (deg), rotation deg, depth factor, date)
_FRAMES = (
    ("calexp", "1000", 1.0, 1.0, 0.0, 1.0, "2024-03-01T04:10:00"),
    ("calexp", "1001", 5.0, 5.0, 0.0, 1.0, "2024-03-02T04:20:00"),
    ("calexp", "1002", 8.5, 8.5, 0.0, 1.0, "2024-03-03T04:30:00"),
    ("deepCoadd", "2000", 1.05, 1.05, 10.0, 4.0, "2024-06-01T00:00:00"),
)


def images_dir(demo_db: Path) -> Path:
    return Path(demo_db).parent / "images"


def ensure_demo_images(demo_db: Path, field: tuple[float, float, float, float] | None = None) -> Path:
    """Make sure the demo images of ``demo_db`` exist and match it; return their folder.

    They are rebuilt when missing or made from another catalog (its ``archive_meta.info``)
    or another :data:`IMAGES_VERSION`; the new folder is built beside the old and swapped in.
    """
    from .backends import metadata as md

    demo_db = Path(demo_db)
    out = images_dir(demo_db)
    info = md.read_info_of(demo_db)  # DuckDB is not opened when the images are current
    stamp = {"version": IMAGES_VERSION, "catalog": {k: info.get(k) for k in ("generator_version", "rows", "seed", "field")}}
    marker = out / ".demo-images.json"
    if marker.exists() and _read_json(marker) == stamp:
        return out
    with md.open_read_only(demo_db) as (con, alias):
        if field is None:
            field = tuple(float(v) for v in (info.get("field") or "150.0,160.0,0.0,10.0").split(","))
        frames = [_frame_objects(con, alias, f, field) for f in _FRAMES]
    with md.build_lock(out.with_name("images.build")):
        if marker.exists() and _read_json(marker) == stamp:
            return out
        tmp = Path(tempfile.mkdtemp(prefix=".images-", dir=out.parent))
        try:
            for frame, objects in zip(_FRAMES, frames):
                _write_frame(tmp, frame, field, objects)
            (tmp / ".demo-images.json").write_text(json.dumps(stamp))
            old = out.with_name(f".images-old-{os.getpid()}")
            if out.exists():
                os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _centre(frame, field) -> tuple[float, float]:
    _, _, dra, ddec, *_ = frame
    ra_min, ra_max, dec_min, dec_max = field
    return min(ra_min + dra, ra_max), min(dec_min + ddec, dec_max)


def _frame_objects(con, alias: str, frame, field) -> np.ndarray:
    """(ra, dec, r, type) of the catalog objects near a frame, in objid order."""
    ra0, dec0 = _centre(frame, field)
    half = SIZE * PIXEL_ARCSEC / 3600.0  # generous: rotated corners and object wings
    dra = half / max(0.05, np.cos(np.radians(dec0)))
    rows = con.execute(
        f"SELECT ra, dec, r, type FROM {alias}.main.PhotoObj WHERE dec BETWEEN ? AND ? AND ra BETWEEN ? AND ? ORDER BY objid",
        [dec0 - half, dec0 + half, ra0 - dra, ra0 + dra],
    ).fetchall()
    return np.array(rows, dtype=float).reshape(-1, 4)


def frame_wcs(frame, field):
    """The TAN WCS of a demo frame."""
    from astropy.wcs import WCS

    ra0, dec0 = _centre(frame, field)
    rot = np.radians(frame[4])
    scale = PIXEL_ARCSEC / 3600.0
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra0, dec0]
    wcs.wcs.crpix = [SIZE / 2 + 0.5, SIZE / 2 + 0.5]
    wcs.wcs.cd = scale * np.array([[-np.cos(rot), np.sin(rot)], [np.sin(rot), np.cos(rot)]])
    wcs.wcs.radesys = "ICRS"
    return wcs


def _write_frame(folder: Path, frame, field, objects: np.ndarray) -> None:
    from astropy.io import fits

    kind, image_id, _, _, _, depth, date = frame
    wcs = frame_wcs(frame, field)
    rng = np.random.default_rng([int(image_id), 42])
    model = np.zeros((SIZE, SIZE), np.float64)
    if len(objects):
        x, y = wcs.all_world2pix(objects[:, 0], objects[:, 1], 0)
        flux = depth * 10.0 ** (-0.4 * (objects[:, 2] - ZERO_POINT))
        # Stars: seeing of ~1.6 px sigma; galaxies: wider, by magnitude (bright ones bigger).
        sigma = np.where(objects[:, 3] == 3, 1.6 + np.clip(22.0 - objects[:, 2], 0.5, 6.0), 1.6)
        for xi, yi, fi, si in zip(x, y, flux, sigma):
            _add_gaussian(model, xi, yi, fi, si)
    sky = SKY * depth
    variance = sky + model + READ_NOISE**2
    image = model + rng.standard_normal(model.shape) * np.sqrt(variance)
    mask = np.zeros(model.shape, np.int32)
    mask[model + sky > SATURATION * depth] |= 1 << MASK_BITS["SAT"]
    mask[model > 3.0 * np.sqrt(sky)] |= 1 << MASK_BITS["DETECTED"]
    edge = np.zeros(model.shape, bool)
    edge[:4, :], edge[-4:, :], edge[:, :4], edge[:, -4:] = True, True, True, True
    mask[edge] |= 1 << MASK_BITS["EDGE"]
    if kind == "calexp":
        bad_col = int(rng.integers(32, SIZE - 32))
        mask[:, bad_col] |= 1 << MASK_BITS["BAD"]
        image[:, bad_col] = 0.0
        hits = rng.integers(0, SIZE, (12, 2))
        mask[hits[:, 1], hits[:, 0]] |= 1 << MASK_BITS["CR"]
        image[hits[:, 1], hits[:, 0]] += 5_000.0
    header = wcs.to_header()
    primary = fits.PrimaryHDU()
    for key, value in (("IMAGEID", image_id), ("KIND", kind), ("FILTER", "r"), ("DATE", date), ("OWNER", "archive"),
                       ("ORIGIN", "jupyter_archive demo"), ("ZEROPT", ZERO_POINT)):  # fmt: skip
        primary.header[key] = value
    for name, bit in MASK_BITS.items():
        primary.header[f"MP_{name}"[:8]] = bit  # FITS keywords have 8 characters at most
    hdus = [primary]
    for name, data in (("IMAGE", image.astype(np.float32)), ("MASK", mask), ("VARIANCE", variance.astype(np.float32))):
        hdu = fits.ImageHDU(data, header=header, name=name)
        if name != "MASK":
            hdu.header["BUNIT"] = "count" if name == "IMAGE" else "count2"
        hdus.append(hdu)
    (folder / kind).mkdir(parents=True, exist_ok=True)
    fits.HDUList(hdus).writeto(folder / kind / f"{image_id}.fits", output_verify="silentfix")


def _add_gaussian(model: np.ndarray, x: float, y: float, flux: float, sigma: float) -> None:
    r = int(np.ceil(5 * sigma))
    x0, x1 = max(0, int(x) - r), min(model.shape[1], int(x) + r + 2)
    y0, y1 = max(0, int(y) - r), min(model.shape[0], int(y) + r + 2)
    if x0 >= x1 or y0 >= y1:
        return
    gx = np.exp(-0.5 * ((np.arange(x0, x1) - x) / sigma) ** 2)
    gy = np.exp(-0.5 * ((np.arange(y0, y1) - y) / sigma) ** 2)
    model[y0:y1, x0:x1] += flux / (2 * np.pi * sigma**2) * np.outer(gy, gx)
