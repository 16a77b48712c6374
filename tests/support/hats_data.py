"""The seeded HATS catalogs of the tests: the HATS demo's generator (core/demo_hats.py) at a test's size."""

from __future__ import annotations

from pathlib import Path

from jupyter_archive.core.demo_hats import write_catalogs as _write

HATS_ROWS = 200_000


def write_catalogs(root: Path) -> None:
    """``stars`` (about 70 partitions at orders 1 and 2), its margin ``stars_10arcs``, and ``stars_dirs`` (``Npix=n/`` folders)."""
    _write(root, HATS_ROWS, partition_rows=6_000, dirs=True)


def sky_archive(data_dir: Path, hats_root: Path, *more_mounts: dict):
    """A started core Archive (no demo) with the session's catalogs mounted as the public context ``SKY``
    (``/sky``), and ``more_mounts``; the caller closes it."""
    from jupyter_archive.core.archive import Archive
    from jupyter_archive.core.config import ArchiveConfig

    sky = {"path": "/sky", "type": "hats", "location": str(hats_root), "context": "SKY"}
    a = Archive(ArchiveConfig(data_dir=data_dir, demo=False, mounts=[sky, *more_mounts]))
    a.start()
    return a


NEAR_ROWS = 24_000


def write_near_catalog(root: Path) -> None:
    """``near``: a second small catalog with its 10 arcsec margin ``near_10arcs``, for catalog x catalog
    cross-matches with ``stars``: every 8th star moved by up to 8 arcsec (some across a partition's edge),
    partitioned at other orders than ``stars`` (finer in places, coarser in others)."""
    import lsdb
    import numpy as np
    import pandas as pd

    from jupyter_archive.core.demo_hats import sky_frame

    stars = sky_frame(HATS_ROWS).iloc[::8].head(NEAR_ROWS).reset_index(drop=True)
    rng = np.random.default_rng(29)
    step, angle = rng.uniform(0, 8 / 3600, len(stars)), rng.uniform(0, 2 * np.pi, len(stars))
    dec = np.clip(stars["dec"] + step * np.sin(angle), -90, 90)
    ra = np.mod(stars["ra"] + step * np.cos(angle) / np.maximum(np.cos(np.radians(dec)), 1e-6), 360)
    frame = stars.assign(objid=stars["objid"] + 10_000_000, ra=ra, dec=dec)[["objid", "ra", "dec", "g"]]
    # pairs of rows 0.5-4 arcsec apart either side of a meridian that bounds HEALPix's base cells (so of
    # any partitions) in the polar caps: a pair of near with itself across partitions, found only with margins
    n = 120
    at = rng.choice([0.0, 90.0, 180.0, 270.0], n)
    pdec = rng.uniform(45, 85, n) * rng.choice([-1, 1], n)
    half = rng.uniform(0.25, 2, n) / 3600 / np.cos(np.radians(pdec))
    edge = pd.DataFrame({"objid": np.arange(20_000_001, 20_000_001 + 2 * n), "ra": np.mod(np.concatenate([at - half, at + half]), 360),
                         "dec": np.concatenate([pdec, pdec]), "g": np.round(rng.normal(19, 1.5, 2 * n), 3)})  # fmt: skip
    frame = pd.concat([frame, edge], ignore_index=True)
    cat = lsdb.from_dataframe(frame, catalog_name="near", ra_column="ra", dec_column="dec", lowest_order=0, highest_order=6,
                              partition_rows=1_500, margin_threshold=10)  # fmt: skip
    cat.write_catalog(Path(root) / "near", as_collection=False, progress_bar=False)
    cat.margin.write_catalog(Path(root) / "near_10arcs", progress_bar=False)
