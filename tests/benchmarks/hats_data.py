"""Seeded HATS catalogs for the benchmarks (issue 17): written once by lsdb under ``data/``, never committed.

The sky is the one of ``/work/shared/reference/scale.md``: 70 % of the rows uniform on the sphere, 30 % in a
band along the equator (dec ~ N(0, 4 deg)); columns objid, ra, dec, g, r, i, flags. The upload is 40,000
positions, half of them within 0.3 arcsec of a catalog row, half anywhere.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from .common import DATA_ROOT

SEED = 17


def sky(rows: int, seed: int = SEED):
    """``rows`` seeded rows as a pandas DataFrame."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    band = int(rows * 0.3)
    uniform = rows - band
    ra = np.concatenate([rng.uniform(0, 360, uniform), rng.uniform(0, 360, band)])
    dec = np.concatenate([np.degrees(np.arcsin(rng.uniform(-1, 1, uniform))), np.clip(rng.normal(0, 4, band), -89.9, 89.9)])
    return pd.DataFrame({
        "objid": np.arange(1, rows + 1, dtype=np.int64),
        "ra": ra,
        "dec": dec,
        "g": rng.normal(20, 1.5, rows).astype(np.float32),
        "r": rng.normal(19.5, 1.5, rows).astype(np.float32),
        "i": rng.normal(19, 1.5, rows).astype(np.float32),
        "flags": rng.integers(0, 16, rows, dtype=np.int32),
    })


def hats_catalog(rows: int, partition_rows: int = 300_000) -> Path:
    """The folder holding the seeded catalog ``stars`` of ``rows`` rows (and its 10 arcsec margin), made once."""
    import lsdb

    root = DATA_ROOT / f"hats-{rows}"
    done = root / ".complete"
    if not done.exists():
        t = time.perf_counter()
        shutil.rmtree(root, ignore_errors=True)
        catalog = lsdb.from_dataframe(sky(rows), ra_column="ra", dec_column="dec", lowest_order=2, highest_order=8,
                                      partition_rows=partition_rows, margin_threshold=10)
        catalog.write_catalog(root / "stars", catalog_name="stars", row_group_kwargs={"num_rows": 10_000}, progress_bar=False)
        done.write_text("ok")
        print(f"# HATS catalog: {rows:,} rows written in {time.perf_counter() - t:.1f} s ({root})")
    return root


def upload(rows: int, catalog: int, seed: int = SEED + 1):
    """``rows`` positions to cross-match: half within 0.3 arcsec of rows of ``sky(catalog)``, half anywhere."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    stars = sky(catalog)
    near = rows // 2
    pick = rng.choice(len(stars), near, replace=False)
    offset = rng.uniform(0, 0.3 / 3600, near)
    angle = rng.uniform(0, 2 * np.pi, near)
    dec0 = stars["dec"].to_numpy()[pick]
    ra = np.concatenate([stars["ra"].to_numpy()[pick] + offset * np.cos(angle) / np.cos(np.radians(dec0)), rng.uniform(0, 360, rows - near)]) % 360
    dec = np.concatenate([dec0 + offset * np.sin(angle), np.degrees(np.arcsin(rng.uniform(-1, 1, rows - near)))])
    return pd.DataFrame({"id": np.arange(rows, dtype=np.int64), "ra": ra, "dec": np.clip(dec, -90, 90)})
