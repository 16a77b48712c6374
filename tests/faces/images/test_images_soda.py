"""IVOA SODA sync through the real server: cutouts of the demo's images by CIRCLE, RANGE and POLYGON."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.wcs import WCS

from tests.support.faces import reference

# The archive makes PNG and JPEG without matplotlib, which it does not depend on.
pytestmark = pytest.mark.usefixtures("no_matplotlib")

ID = "L2/DEMO/calexp/1000"


def soda(fetch, params, **kw):
    return fetch("archive", "soda", "sync", params=params, **kw)


def assert_soda_error(resp, status, word):
    assert resp.code == status, resp.body
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = resp.body.decode()
    assert text.startswith(f"{word}: ") and "Traceback" not in text
    return text


async def test_circle_is_cutout2d_of_its_square(fetch, archive_data_dir):
    planes, wcs = reference(archive_data_dir)
    ra, dec = (float(v) for v in wcs.pixel_to_world_values(200.4, 310.2))
    resp = await soda(fetch, {"ID": ID, "CIRCLE": f"{ra} {dec} 0.01"})
    assert resp.code == 200 and resp.headers["Content-Type"] == "application/fits"
    want = Cutout2D(planes["data"], SkyCoord(ra, dec, unit="deg"), 0.02 * u.deg, wcs=wcs, mode="trim")
    with fits.open(io.BytesIO(resp.body)) as hdul:
        assert len(hdul) == 1
        np.testing.assert_array_equal(hdul[0].data, want.data)
        cx, cy = WCS(hdul[0].header).world_to_pixel_values(ra, dec)
    assert abs(cx - (200.4 - want.xmin_original)) < 0.01 and abs(cy - (310.2 - want.ymin_original)) < 0.01
    # POS=CIRCLE is the same stencil; parameter names are case-insensitive
    again = await soda(fetch, {"id": ID, "pos": f"CIRCLE {ra} {dec} 0.01"})
    assert again.body == resp.body


async def test_range_and_polygon_cut_their_bounding_box(fetch, archive_data_dir):
    planes, wcs = reference(archive_data_dir)
    corners = [tuple(float(v) for v in wcs.pixel_to_world_values(x, y)) for x, y in ((100, 50), (180, 50), (180, 120), (100, 120))]
    ras, decs = [c[0] for c in corners], [c[1] for c in corners]
    resp = await soda(fetch, {"ID": ID, "POS": f"RANGE {min(ras)} {max(ras)} {min(decs)} {max(decs)}"})
    with fits.open(io.BytesIO(resp.body)) as hdul:
        np.testing.assert_array_equal(hdul[0].data, planes["data"][50:121, 100:181])
    poly = " ".join(f"{ra} {dec}" for ra, dec in corners)
    resp = await soda(fetch, {"ID": ID, "POLYGON": poly, "CUTOUTDETAIL": "MaskedImage"})
    with fits.open(io.BytesIO(resp.body)) as hdul:
        assert [h.name for h in hdul[1:]] == ["IMAGE", "MASK", "VARIANCE"]
        np.testing.assert_array_equal(hdul["MASK"].data, planes["mask"][50:121, 100:181])
    # an open range covers the whole image
    resp = await soda(fetch, {"ID": ID, "POS": "RANGE -Inf +Inf -Inf +Inf"})
    with fits.open(io.BytesIO(resp.body)) as hdul:
        np.testing.assert_array_equal(hdul[0].data, planes["data"])


async def test_each_id_and_stencil_is_one_cutout(fetch, archive_data_dir):
    _, wcs = reference(archive_data_dir)
    ra, dec = (float(v) for v in wcs.pixel_to_world_values(300, 300))
    params = [("ID", ID), ("ID", "L2/DEMO/deepCoadd/2000"), ("CIRCLE", f"{ra} {dec} 0.005"), ("CIRCLE", f"{ra} {dec} 0.002")]
    resp = await soda(fetch, params)
    assert resp.code == 200, resp.body
    with fits.open(io.BytesIO(resp.body)) as hdul:
        assert [h.name for h in hdul[1:]] == ["IMAGE1", "IMAGE2", "IMAGE3", "IMAGE4"]
        assert [h.header["SODAID"] for h in hdul[1:]] == [ID, ID, "L2/DEMO/deepCoadd/2000", "L2/DEMO/deepCoadd/2000"]


async def test_no_overlap_is_204(fetch):
    resp = await soda(fetch, {"ID": ID, "CIRCLE": "200 -40 0.01"})
    assert resp.code == 204 and not resp.body


@pytest.mark.parametrize(
    "params, status, word",
    [
        ({"CIRCLE": "151 1 0.01"}, 400, "UsageError"),
        ({"ID": "L2/DEMO/calexp/999", "CIRCLE": "151 1 0.01"}, 404, "NotFoundFault"),
        ({"ID": "nonsense"}, 404, "NotFoundFault"),
        ({"ID": ID, "CIRCLE": "151 1"}, 400, "UsageError"),
        ({"ID": ID, "CIRCLE": "151 1 -2"}, 400, "UsageError"),
        ({"ID": ID, "POS": "BOX 1 2 3 4"}, 400, "UsageError"),
        ({"ID": ID, "POS": "RANGE 152 151 0 1"}, 400, "UsageError"),
        ({"ID": ID, "POLYGON": "151 1 152 1"}, 400, "UsageError"),
        ({"ID": ID, "BAND": "1e-7 2e-7"}, 400, "UsageError"),
        ({"ID": ID, "CUTOUTDETAIL": "Everything"}, 400, "UsageError"),
        ({"ID": ID, "RESPONSEFORMAT": "image/png"}, 400, "UsageError"),
    ],
)
async def test_errors_are_dali_text(fetch, params, status, word):
    assert_soda_error(await soda(fetch, params), status, word)


async def test_soda_needs_credentials(fetch):
    assert_soda_error(await soda(fetch, {"ID": ID, "CIRCLE": "151 1 0.01"}, headers={"Authorization": ""}), 403, "AuthorizationFault")


async def test_soda_capabilities(fetch):
    resp = await fetch("archive", "soda", "capabilities")
    text = resp.body.decode()
    assert resp.code == 200 and 'standardID="ivo://ivoa.net/std/SODA#sync-1.0"' in text and "/archive/soda/sync</accessURL>" in text
