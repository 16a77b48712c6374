"""The image service through the real server: LSST metaserv images and imgserv on the demo's images.

Cutouts are checked pixel for pixel against astropy's Cutout2D on the same file, and their
WCS by a round trip: the asked sky position lands where the original WCS puts it.
"""

from __future__ import annotations

import asyncio
import io
import json
import urllib.parse

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.wcs import WCS

from tests.support import body_json
from tests.support.faces import PLANES, image_file, reference

# The archive makes PNG and JPEG without matplotlib, which it does not depend on.
pytestmark = pytest.mark.usefixtures("no_matplotlib")

NO_AUTH = {"Authorization": ""}
IMG = ("archive", "dax", "image", "v0", "L2", "DEMO", "calexp", "1000")


def meta(fetch, *parts, **kw):
    return fetch("archive", "dax", "meta", "v0", "image", *parts, **kw)


def read_fits(body: bytes) -> fits.HDUList:
    return fits.open(io.BytesIO(body))


def assert_error(resp, status, kind=None):
    assert resp.code == status, resp.body
    err = body_json(resp)
    assert set(err) >= {"exception", "message"}, err
    assert err["message"] and "Traceback" not in err["message"]
    if kind:
        assert err["exception"] == kind, err
    return err


# -- metaserv ------------------------------------------------------------------------------------------


async def test_metaserv_tree(fetch):
    assert body_json(await meta(fetch)) == {"results": ["L2"]}
    out = body_json(await meta(fetch, "L2"))
    assert out["results"] == ["DEMO"] and out["more"] is False
    assert body_json(await meta(fetch, "l2", "demo"))["results"] == ["calexp", "deepCoadd"]


async def test_metaserv_lists_images_as_urls_paged_and_filtered(fetch):
    out = body_json(await meta(fetch, "L2", "DEMO", "calexp"))
    assert out["ids"] == ["1000", "1001", "1002"]
    assert all(u.endswith(f"/archive/dax/image/v0/L2/DEMO/calexp/{i}") for u, i in zip(out["results"], out["ids"]))
    assert out["results"][0].startswith("http")
    page = body_json(await meta(fetch, "L2", "DEMO", "calexp", params={"start": "1", "count": "1"}))
    assert page["ids"] == ["1001"] and page["more"] is True
    after = body_json(await meta(fetch, "L2", "DEMO", "calexp", params={"createdAfter": "2024-03-01T12:00:00Z"}))
    assert after["ids"] == ["1001", "1002"]
    before = body_json(await meta(fetch, "L2", "DEMO", "calexp", params={"createdBefore": "2024-03-03"}))
    assert before["ids"] == ["1000", "1001"]
    assert body_json(await meta(fetch, "L2", "DEMO", "calexp", params={"owner": "archive"}))["ids"] == out["ids"]
    assert body_json(await meta(fetch, "L2", "DEMO", "calexp", params={"owner": "nobody"}))["ids"] == []


async def test_which_images_cover_a_position(fetch, archive_data_dir):
    _, wcs = reference(archive_data_dir, "calexp", "1001")
    ra, dec = (float(v) for v in wcs.pixel_to_world_values(100, 400))
    out = body_json(await meta(fetch, "L2", "DEMO", "calexp", params={"ra": str(ra), "dec": str(dec)}))
    assert out["ids"] == ["1001"]
    # the coadd overlaps calexp 1000 only
    ra, dec = (float(v) for v in reference(archive_data_dir, "calexp", "1000")[1].pixel_to_world_values(300, 300))
    assert body_json(await meta(fetch, "L2", "DEMO", "deepCoadd", params={"ra": str(ra), "dec": str(dec)}))["ids"] == ["2000"]
    assert body_json(await meta(fetch, "L2", "DEMO", "calexp", params={"ra": "200", "dec": "-30"}))["ids"] == []


async def test_one_image_information(fetch, archive_data_dir):
    info = body_json(await meta(fetch, "L2", "DEMO", "calexp", "1000"))["result"]
    path = image_file(archive_data_dir)
    _, wcs = reference(archive_data_dir)
    assert info["url"].endswith("/archive/dax/image/v0/L2/DEMO/calexp/1000")
    assert info["owner"] == "archive" and info["size"] == path.stat().st_size
    assert (info["width"], info["height"]) == (512, 512) and info["planes"] == ["data", "mask", "variance"]
    ra, dec = wcs.pixel_to_world_values(255.5, 255.5)
    assert info["ra"] == pytest.approx(float(ra), abs=1e-9) and info["dec"] == pytest.approx(float(dec), abs=1e-9)
    np.testing.assert_allclose(info["footprint"], wcs.calc_footprint(axes=(512, 512)), atol=1e-9)
    assert info["created"] == "2024-03-01T04:10:00Z" and info["did"] == "L2/DEMO/calexp/1000"


@pytest.mark.parametrize(
    "parts, status",
    [(("L9",), 404), (("L2", "NOPE"), 404), (("L2", "DEMO", "raw"), 404), (("L2", "DEMO", "calexp", "9"), 404)],
)
async def test_metaserv_unknown_things_are_404(fetch, parts, status):
    assert_error(await meta(fetch, *parts), status, "NotFound")


async def test_metaserv_bad_filters_are_400(fetch):
    assert_error(await meta(fetch, "L2", "DEMO", "calexp", params={"createdAfter": "yesterday"}), 400, "ValueError")
    assert_error(await meta(fetch, "L2", "DEMO", "calexp", params={"ra": "x", "dec": "1"}), 400, "ValueError")
    assert_error(await meta(fetch, "L2", "DEMO", "calexp", params={"ra": "151"}), 400, "ValueError")
    assert_error(await meta(fetch, "L2", "DEMO", "calexp", params={"start": "-1"}), 400, "ValueError")


# -- imgserv: whole images -----------------------------------------------------------------------------


async def test_imgserv_lists_images(fetch):
    urls = body_json(await fetch(*IMG[:-1]))
    assert [u.rsplit("/", 1)[1] for u in urls] == ["1000", "1001", "1002"]
    assert body_json(await fetch("archive", "dax", "image")) == {"results": ["v0"]}


async def test_full_image_has_all_planes(fetch, archive_data_dir):
    resp = await fetch(*IMG)
    assert resp.code == 200 and resp.headers["Content-Type"] == "image/fits"
    assert "attachment" in resp.headers["Content-Disposition"]
    planes, _ = reference(archive_data_dir)
    with read_fits(resp.body) as hdul:
        hdul.verify("exception")  # valid FITS, as astropy checks it
        assert [h.name for h in hdul[1:]] == ["IMAGE", "MASK", "VARIANCE"]
        for plane, name in PLANES.items():
            np.testing.assert_array_equal(hdul[name].data, planes[plane])


@pytest.mark.parametrize("plane", ["data", "mask", "variance"])
async def test_one_plane(fetch, archive_data_dir, plane):
    resp = await fetch(*IMG, params={"plane": plane})
    planes, wcs = reference(archive_data_dir)
    with read_fits(resp.body) as hdul:
        assert len(hdul) == 1
        np.testing.assert_array_equal(hdul[0].data, planes[plane])
        np.testing.assert_allclose(WCS(hdul[0].header).wcs.crval, wcs.wcs.crval)


async def test_two_planes_by_repeating_plane(fetch):
    resp = await fetch(*IMG, params=[("plane", "data"), ("plane", "mask")])
    with read_fits(resp.body) as hdul:
        assert [h.name for h in hdul[1:]] == ["IMAGE", "MASK"]
    resp = await fetch(*IMG, params={"plane": "variance,data"})
    with read_fits(resp.body) as hdul:
        assert [h.name for h in hdul[1:]] == ["VARIANCE", "IMAGE"]


# -- imgserv: cutouts --------------------------------------------------------------------------------


def _sky(wcs, x, y):
    return tuple(float(v) for v in wcs.pixel_to_world_values(x, y))


CUTOUTS = [
    ("pixel", {"x": "100", "y": "200", "width": "30", "height": "20"}, lambda w: ((100, 200), (20, 30))),
    ("pixel at edge", {"x": "3", "y": "508", "width": "40", "height": "40"}, lambda w: ((3, 508), (40, 40))),
    ("arcmin", {"deltaRa": "1.5", "deltaDec": "1"}, lambda w: ("sky", (1 * u.arcmin, 1.5 * u.arcmin))),
    ("arcsec", {"widthAng": "50", "heightAng": "70"}, lambda w: ("sky", (70 * u.arcsec, 50 * u.arcsec))),
    ("pixels around", {"widthPix": "25", "heightPix": "15"}, lambda w: ("sky", (15, 25))),
]


@pytest.mark.parametrize("name, params, expect", CUTOUTS, ids=[c[0] for c in CUTOUTS])
async def test_cutouts_match_cutout2d(fetch, archive_data_dir, name, params, expect):
    planes, wcs = reference(archive_data_dir)
    ra, dec = _sky(wcs, 321.3, 123.7)
    position, size = expect(wcs)
    if position == "sky":
        params = {**params, "ra": repr(ra), "dec": repr(dec)}
        position = SkyCoord(ra, dec, unit="deg")
    resp = await fetch(*IMG, "cutout", params=params)
    assert resp.code == 200, resp.body
    want = Cutout2D(planes["data"], position, size, wcs=wcs, mode="trim")
    with read_fits(resp.body) as hdul:
        assert [h.name for h in hdul[1:]] == ["IMAGE", "MASK", "VARIANCE"]
        np.testing.assert_array_equal(hdul["IMAGE"].data, want.data)
        for plane in ("mask", "variance"):
            np.testing.assert_array_equal(hdul[PLANES[plane]].data, planes[plane][want.slices_original])
        got = WCS(hdul["IMAGE"].header)
        assert (-hdul["IMAGE"].header["LTV1"], -hdul["IMAGE"].header["LTV2"]) == (want.xmin_original, want.ymin_original)
    # WCS round trip: a sky position lands on the cutout pixel the original WCS says, within 0.01 px
    for x, y in ((want.xmin_original + 2.25, want.ymin_original + 3.5), (321.3, 123.7)):
        sra, sdec = _sky(wcs, x, y)
        cx, cy = got.world_to_pixel_values(sra, sdec)
        assert abs(cx - (x - want.xmin_original)) < 0.01 and abs(cy - (y - want.ymin_original)) < 0.01


async def test_cutout_by_corners_is_that_box(fetch, archive_data_dir):
    planes, wcs = reference(archive_data_dir)
    resp = await fetch(*IMG, "cutout", params={"x1": "10", "y1": "20", "x2": "49", "y2": "34", "plane": "variance"})
    with read_fits(resp.body) as hdul:
        np.testing.assert_array_equal(hdul[0].data, planes["variance"][20:35, 10:50])
        got = WCS(hdul[0].header)
    cx, cy = got.world_to_pixel_values(*_sky(wcs, 30.4, 27.9))
    assert abs(cx - 20.4) < 0.01 and abs(cy - 7.9) < 0.01


@pytest.mark.parametrize("fmt, accept", [("png", "image/png"), ("jpeg", "image/jpeg")])
async def test_png_and_jpeg_have_the_asked_size(fetch, fmt, accept):
    from PIL import Image as PILImage

    resp = await fetch(*IMG, "cutout", params={"x": "200", "y": "200", "width": "64", "height": "48"}, headers={"Accept": accept})
    assert resp.code == 200 and resp.headers["Content-Type"] == accept
    picture = PILImage.open(io.BytesIO(resp.body))
    assert picture.format == fmt.upper() and picture.size == (64, 48) and picture.mode == "L"
    assert len(set(np.asarray(picture).ravel().tolist())) > 10  # stretched, not flat
    resp = await fetch(*IMG, params={"format": fmt, "plane": "mask"})
    mask = PILImage.open(io.BytesIO(resp.body))
    assert mask.size == (512, 512)


@pytest.mark.parametrize(
    "params, status, kind",
    [
        ({"x": "5000", "y": "5000", "width": "10", "height": "10"}, 400, "NoOverlap"),
        ({"ra": "200", "dec": "-40", "widthPix": "10", "heightPix": "10"}, 400, "NoOverlap"),
        ({"x": "5", "y": "5"}, 400, "ValueError"),
        ({}, 400, "ValueError"),
        ({"x": "a", "y": "5", "width": "10", "height": "10"}, 400, "ValueError"),
        ({"x": "5", "y": "5", "width": "0", "height": "10"}, 400, "ValueError"),
        ({"ra": "151", "dec": "95", "widthAng": "10", "heightAng": "10"}, 400, "ValueError"),
        ({"x": "5", "y": "5", "width": "10", "height": "10", "plane": "flux"}, 400, "ValueError"),
        ({"x": "5", "y": "5", "width": "10", "height": "10", "format": "gif"}, 406, "NotAcceptable"),
    ],
)
async def test_cutout_errors_are_clear(fetch, params, status, kind):
    assert_error(await fetch(*IMG, "cutout", params=params), status, kind)


async def test_unknown_image_and_plane(fetch):
    err = assert_error(await fetch("archive", "dax", "image", "v0", "L2", "DEMO", "calexp", "999"), 404, "NotFound")
    assert "999" in err["message"]
    assert_error(await fetch(*IMG, params={"plane": "weight"}), 400, "ValueError")
    assert_error(await fetch("archive", "dax", "image", "v0", "L2", "DEMO", "calexp", "1000", "nonsense"), 404, "NotFound")


async def test_images_need_credentials(fetch):
    assert_error(await fetch(*IMG, headers=NO_AUTH), 403, "PermissionError")
    assert_error(await meta(fetch, headers=NO_AUTH), 403, "PermissionError")


# -- imgserv: asynchronous requests through the job system ------------------------------------------------


async def wait_done(fetch, job_id: str) -> dict:
    for _ in range(400):  # bounded: a small cutout takes milliseconds
        status = body_json(await fetch("archive", "dax", "image", "v0", job_id, "status"))
        if status["status"] in ("completed", "failed", "canceled"):
            return status
        await asyncio.sleep(0.05)
    return status


async def test_async_cutout_is_a_job(fetch, archive_data_dir):
    planes, wcs = reference(archive_data_dir)
    params = {"x": "250", "y": "260", "width": "33", "height": "21"}
    resp = await fetch(*IMG, "cutout", method="POST", body=json.dumps(params))
    assert resp.code == 202, resp.body
    out = body_json(resp)
    job_id = out["id"]
    assert resp.headers["Location"] == out["status"] and out["status"].endswith(f"/image/v0/{job_id}/status")
    status = await wait_done(fetch, job_id)
    assert status["status"] == "completed" and status["progress"] == "100%" and status["startTime"]
    explain = body_json(await fetch("archive", "dax", "image", "v0", job_id, "explain"))
    assert "33x21" in explain["result"] and explain["pixels"] == 33 * 21
    urls = body_json(await fetch("archive", "dax", "image", "v0", job_id, "results"))
    assert len(urls) == 1 and urls[0].endswith(f"/image/v0/{job_id}/results/0")
    result = await fetch("archive", "dax", "image", "v0", job_id, "results", "0")
    assert result.headers["Content-Type"] == "image/fits"
    want = Cutout2D(planes["data"], (250, 260), (21, 33), wcs=wcs)
    with read_fits(result.body) as hdul:
        np.testing.assert_array_equal(hdul["IMAGE"].data, want.data)
    # one job system: the native API lists it
    jobs = body_json(await fetch("archive", "api", "jobs", params={"kind": "cutout"}))["jobs"]
    assert [str(j["id"]) for j in jobs] == [job_id] and jobs[0]["face"] == "dax" and jobs[0]["state"] == "completed"


async def test_async_whole_plane_as_png_by_form(fetch):
    resp = await fetch(*IMG, method="POST", body="plane=mask&format=png", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.code == 202, resp.body
    job_id = body_json(resp)["id"]
    assert (await wait_done(fetch, job_id))["status"] == "completed"
    result = await fetch("archive", "dax", "image", "v0", job_id, "results", "0")
    assert result.headers["Content-Type"] == "image/png" and result.body[:8] == b"\x89PNG\r\n\x1a\n"


async def test_listing_with_a_plane_gives_urls_of_that_plane(fetch, http_server_client, jp_auth_header, archive_data_dir):
    urls = body_json(await fetch(*IMG[:-1], params={"plane": "mask", "start": "1", "count": "1"}))
    assert len(urls) == 1 and urls[0].endswith("/image/v0/L2/DEMO/calexp/1001?plane=mask")
    url = urllib.parse.urlsplit(urls[0])
    image = await http_server_client.fetch(f"{url.path}?{url.query}", headers=jp_auth_header)  # the URL as given
    with read_fits(image.body) as hdul:
        np.testing.assert_array_equal(hdul[0].data, reference(archive_data_dir, "calexp", "1001")[0]["mask"])
    assert_error(await fetch(*IMG[:-1], params={"plane": "fog"}), 400, "ValueError")


@pytest.mark.parametrize("how", ["query", "semicolons", "json"])
async def test_async_retrieval_of_the_images_of_a_kind(fetch, raw, archive_data_dir, how):
    """The document's I5 (``GET** /image/v0/L2/DR7/coadd``): POST retrieves the listed images as a job."""
    path = "archive/dax/image/v0/L2/DEMO/calexp"
    if how == "query":
        resp = await raw(path, "start=1&count=2&plane=mask&plane=variance", method="POST", body="")
    elif how == "semicolons":
        resp = await raw(path, "start=1;count=2;plane=mask,variance", method="POST", body="")
    else:
        resp = await raw(path, method="POST", body=json.dumps({"start": 1, "count": 2, "plane": ["mask", "variance"]}))
    assert resp.code == 202, resp.body
    out = body_json(resp)
    job_id = out["id"]
    assert resp.headers["Location"] == out["status"]
    assert (await wait_done(fetch, job_id))["status"] == "completed"
    explain = body_json(await fetch("archive", "dax", "image", "v0", job_id, "explain"))
    assert explain["images"] == 2 and explain["pixels"] == 2 * 512 * 512 and "2 images" in explain["result"]
    urls = body_json(await fetch("archive", "dax", "image", "v0", job_id, "results"))
    assert [u.rsplit("/", 2)[1:] for u in urls] == [["results", "0"], ["results", "1"]]
    for n, image_id in enumerate(["1001", "1002"]):
        result = await fetch("archive", "dax", "image", "v0", job_id, "results", str(n))
        assert result.code == 200 and result.headers["Content-Type"] == "image/fits"
        assert image_id in result.headers["Content-Disposition"]
        planes, _ = reference(archive_data_dir, "calexp", image_id)
        with read_fits(result.body) as hdul:
            np.testing.assert_array_equal(hdul["MASK"].data, planes["mask"])
            np.testing.assert_array_equal(hdul["VARIANCE"].data, planes["variance"])
            assert "IMAGE" not in hdul
    assert_error(await fetch("archive", "dax", "image", "v0", job_id, "results", "2"), 404, "NotFound")


async def test_async_retrieval_of_a_kind_as_png_and_its_errors(fetch, raw):
    path = "archive/dax/image/v0/L2/DEMO/deepCoadd"
    post = lambda query, path=path, **kw: raw(path, query, method="POST", body="", **kw)
    resp = await post("format=png")
    assert resp.code == 202, resp.body
    job_id = body_json(resp)["id"]
    assert (await wait_done(fetch, job_id))["status"] == "completed"
    (url,) = body_json(await fetch("archive", "dax", "image", "v0", job_id, "results"))
    png = await fetch("archive", "dax", "image", "v0", job_id, "results", "0")
    assert url.endswith("/results/0") and png.body[:8] == b"\x89PNG\r\n\x1a\n"
    assert_error(await post("plane=fog"), 400, "ValueError")
    assert_error(await post("start=5"), 404, "NotFound")  # past the last image: nothing to retrieve
    assert_error(await post("", path="archive/dax/image/v0/L2/DEMO/raw"), 404, "NotFound")
    assert_error(await post("", headers={"Authorization": ""}), 403)


async def test_async_errors(fetch, archive):
    # bad cutouts are refused when submitted, not failed later
    assert_error(await fetch(*IMG, "cutout", method="POST", body=json.dumps({"x": "9999", "y": "1", "width": "5", "height": "5"})), 400, "NoOverlap")
    assert_error(await fetch("archive", "dax", "image", "v0", "987654", "status"), 404, "NotFound")
    assert_error(await fetch("archive", "dax", "image", "v0", "987654", "results"), 404, "NotFound")
    # a query job is not a cutout request
    job = archive.jobs.submit_query(archive.users.principal("someone"), "SELECT 1", context="DEMO")
    assert_error(await fetch("archive", "dax", "image", "v0", str(job.id), "status"), 404, "NotFound")
