"""Seeded HATS catalogs for the benchmarks (issue 17): the HATS demo's generator (``core/demo_hats.py``) at a
benchmark's size, written once by lsdb under ``data/``, never committed; and a seeded upload to cross-match.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from jupyter_archive.core.demo_hats import SEED, sky_frame, write_catalogs

from .common import DATA_ROOT


def hats_catalog(rows: int, partition_rows: int = 300_000) -> Path:
    """The folder holding the seeded catalog ``stars`` of ``rows`` rows and its 10 arcsec margin ``stars_10arcs``, made once
    (``hats-sorted-``: each partition's rows in ``_healpix_29`` order, as hats-import and the generator now write them)."""
    root = DATA_ROOT / f"hats-sorted-{rows}"
    done = root / ".complete"
    if not done.exists():
        t = time.perf_counter()
        shutil.rmtree(root, ignore_errors=True)
        write_catalogs(root, rows, partition_rows=partition_rows)
        done.write_text("ok")
        print(f"# HATS catalog: {rows:,} rows written in {time.perf_counter() - t:.1f} s ({root})")
    return root


def upload(rows: int, catalog: int, seed: int = SEED + 1):
    """``rows`` positions to cross-match: half within 0.3 arcsec of rows of ``sky_frame(catalog)``, half anywhere."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    stars = sky_frame(catalog)
    near = rows // 2
    pick = rng.choice(len(stars), near, replace=False)
    offset = rng.uniform(0, 0.3 / 3600, near)
    angle = rng.uniform(0, 2 * np.pi, near)
    dec0 = stars["dec"].to_numpy()[pick]
    ra = np.concatenate([stars["ra"].to_numpy()[pick] + offset * np.cos(angle) / np.cos(np.radians(dec0)), rng.uniform(0, 360, rows - near)]) % 360
    dec = np.concatenate([dec0 + offset * np.sin(angle), np.degrees(np.arcsin(rng.uniform(-1, 1, rows - near)))])
    return pd.DataFrame({"id": np.arange(rows, dtype=np.int64), "ra": ra, "dec": np.clip(dec, -90, 90)})
