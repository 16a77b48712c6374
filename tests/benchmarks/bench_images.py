"""Cutout latency through HTTP against astropy's Cutout2D on the same file, in one run (issue 6).

Run on demand: ``python -m tests.benchmarks.bench_images [--cutouts 100] [--size 64]``.
Prints p50/p95 of 100 FITS cutouts (all three planes, by ra/dec and size in pixels) made by
imgserv through HTTP, and of Cutout2D on the same memory-mapped file in this process
(cutting all three planes and writing the same FITS, and cutting the data plane alone).
Target: HTTP p50 within 5 ms of the library's.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.wcs import WCS

from .common import Server, demo_data, percentiles

IMAGE = "archive/dax/image/v0/L2/DEMO/calexp/1000"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--cutouts", type=int, default=100)
    ap.add_argument("--size", type=int, default=64, help="cutout width and height in pixels")
    ap.add_argument("--rows", type=int, default=100_000, help="rows of the demo PhotoObj (the images are drawn from it)")
    args = ap.parse_args(argv)

    data = demo_data(args.rows)
    path = data / "demo" / "images" / "calexp" / "1000.fits"
    hdul = fits.open(path, memmap=True)
    planes = [hdul[name].data for name in ("IMAGE", "MASK", "VARIANCE")]
    wcs = WCS(hdul["IMAGE"].header)
    rng = np.random.default_rng(6)
    xy = rng.uniform(args.size, 512 - args.size, (args.cutouts, 2))
    sky = [tuple(float(v) for v in wcs.pixel_to_world_values(x, y)) for x, y in xy]
    size = (args.size, args.size)

    def library(i, write=True):
        c = Cutout2D(planes[0], SkyCoord(*sky[i], unit="deg"), size, wcs=wcs, mode="trim")
        if not write:
            return c.data
        header = c.wcs.to_header()
        hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(p[c.slices_original] if k else c.data, header=header) for k, p in enumerate(planes)]
        buf = io.BytesIO()
        fits.HDUList(hdus).writeto(buf)
        return buf.getvalue()

    def timed(fn):
        for i in range(10):  # warm-up
            fn(i % args.cutouts)
        out = []
        for i in range(args.cutouts):
            t = time.perf_counter()
            fn(i)
            out.append((time.perf_counter() - t) * 1000)
        return percentiles(out)

    server = Server(data, f"--ArchiveApp.demo_rows={args.rows}")
    s = server.session
    try:
        def http(i):
            ra, dec = sky[i]
            r = s.get(server.url + IMAGE + "/cutout", params={"ra": repr(ra), "dec": repr(dec), "widthPix": args.size, "heightPix": args.size})
            assert r.status_code == 200 and r.headers["Content-Type"] == "image/fits", r.text[:300]
            return r.content

        # the same pixels both ways, before timing anything
        with fits.open(io.BytesIO(http(0))) as got:
            np.testing.assert_array_equal(got["IMAGE"].data, library(0, write=False))

        print(f"\n## {args.cutouts} cutouts of {args.size}x{args.size} px (3 planes, FITS) from a 512x512 demo calexp; p50 / p95 in ms")
        c50, c95 = timed(lambda i: library(i, write=False))
        w50, w95 = timed(library)
        h50, h95 = timed(http)
        print(f"Cutout2D (data plane only)        {c50:7.3f} / {c95:7.3f}")
        print(f"Cutout2D + 3 planes + FITS bytes  {w50:7.3f} / {w95:7.3f}")
        print(f"HTTP imgserv cutout               {h50:7.3f} / {h95:7.3f}")
        print(f"p50 HTTP - Cutout2D: {h50 - c50:+.3f} ms (target <= 5); HTTP - (Cutout2D + FITS): {h50 - w50:+.3f} ms")
    finally:
        server.stop()
        hdul.close()


if __name__ == "__main__":
    main()
