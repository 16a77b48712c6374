"""Images found in a ``files`` mount: planes by order, non-images left out, an ``images`` index table."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from tests.support import body_json

# The archive makes PNG and JPEG without matplotlib, which it does not depend on.
pytestmark = pytest.mark.usefixtures("no_matplotlib")


def _wcs(ra, dec):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [20.5, 15.5]
    w.wcs.cdelt = [-1 / 3600, 1 / 3600]
    return w


@pytest.fixture
def survey(tmp_path):
    """A folder with two images (one unnamed, planes by order), a table, a WCS-less image and an index."""
    root = tmp_path / "survey"
    (root / "raw").mkdir(parents=True)
    (root / "declared").mkdir()
    data = np.arange(30 * 40, dtype=np.float32).reshape(30, 40)
    header = _wcs(30.0, -5.0).to_header()
    fits.HDUList([fits.PrimaryHDU(data, header=header), fits.ImageHDU(np.ones((30, 40), np.int32)),
                  fits.ImageHDU(data * 2)]).writeto(root / "raw" / "77.fits")  # fmt: skip
    fits.PrimaryHDU(data).writeto(root / "raw" / "nowcs.fits")
    Table({"a": [1, 2]}).write(root / "stars.fits")
    fits.PrimaryHDU(data, header=_wcs(31.0, -5.0).to_header()).writeto(root / "declared" / "d.fits")
    (root / "images.csv").write_text("id,kind,path,footprint\nD1,special,declared/d.fits,31.1 -5.1 30.9 -5.1 30.9 -4.9 31.1 -4.9\n")
    return root, data


@pytest.fixture
def archive_config(survey):
    return {"mounts": [{"path": "/survey", "type": "files", "location": str(survey[0]), "context": "SURVEY"}]}


async def test_files_mount_images(fetch, survey):
    _, data = survey
    meta = ("archive", "dax", "meta", "v0", "image", "L2")
    assert body_json(await fetch(*meta))["results"] == ["SURVEY"]
    assert body_json(await fetch(*meta, "SURVEY"))["results"] == ["raw", "special"]
    assert body_json(await fetch(*meta, "SURVEY", "raw"))["ids"] == ["77"]
    info = body_json(await fetch(*meta, "SURVEY", "raw", "77"))["result"]
    assert info["planes"] == ["data", "mask", "variance"] and (info["width"], info["height"]) == (40, 30)
    resp = await fetch("archive", "dax", "image", "v0", "L2", "SURVEY", "raw", "77", "cutout",
                       params={"x1": "2", "y1": "3", "x2": "5", "y2": "9", "plane": "variance"})  # fmt: skip
    with fits.open(io.BytesIO(resp.body)) as hdul:
        np.testing.assert_array_equal(hdul[0].data, (data * 2)[3:10, 2:6])
    # the table still is a table of the mount
    tables = body_json(await fetch("archive", "api", "contexts", "SURVEY", "tables"))
    assert "stars" in str(tables)


async def test_index_table_declares_images_and_footprints(fetch):
    meta = ("archive", "dax", "meta", "v0", "image", "L2", "SURVEY", "special")
    out = body_json(await fetch(*meta))
    assert out["ids"] == ["D1"]
    info = body_json(await fetch(*meta, "D1"))["result"]
    assert info["footprint"] == [[31.1, -5.1], [30.9, -5.1], [30.9, -4.9], [31.1, -4.9]]
    # coverage uses the declared footprint
    assert body_json(await fetch(*meta, params={"ra": "31.09", "dec": "-4.95"}))["ids"] == ["D1"]
    assert body_json(await fetch(*meta, params={"ra": "31.2", "dec": "-4.95"}))["ids"] == []
    soda = await fetch("archive", "soda", "sync", params={"ID": "L2/SURVEY/special/D1", "CIRCLE": "31 -5 0.001"})
    assert soda.code == 200 and fits.open(io.BytesIO(soda.body))[0].data.shape == (7, 7)  # 7.2 arcsec at 1 arcsec a pixel
