"""A seeded HATS catalog written by lsdb, for tests of the ``hats`` mount type (built once per session).

The sky: 70 % of rows uniform on the sphere, 30 % in a band near dec 0 (so partitions come at
mixed orders), and a few rows placed on purpose at the poles and either side of RA = 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HATS_ROWS = 200_000
HATS_SEED = 17


def sky_frame(rows: int = HATS_ROWS, seed: int = HATS_SEED):
    """The catalog's rows as a pandas frame: objid, ra, dec, g, r, flags."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_band = rows * 3 // 10
    n_uni = rows - n_band - 400
    ra = np.concatenate([rng.uniform(0, 360, n_uni), rng.uniform(0, 360, n_band),
                         rng.uniform(0, 0.5, 100), rng.uniform(359.5, 360, 100), rng.uniform(0, 360, 200)])  # fmt: skip
    dec = np.concatenate([np.degrees(np.arcsin(rng.uniform(-1, 1, n_uni))), np.clip(rng.normal(0, 4, n_band), -89, 89),
                          rng.uniform(-0.5, 0.5, 200), np.concatenate([rng.uniform(89.5, 90, 100), rng.uniform(-90, -89.5, 100)])])  # fmt: skip
    ra = np.mod(ra, 360.0)
    return pd.DataFrame(
        {
            "objid": np.arange(1, rows + 1, dtype=np.int64),
            "ra": ra,
            "dec": dec,
            "g": np.round(rng.normal(19, 1.5, rows), 3),
            "r": np.round(rng.normal(18.5, 1.5, rows), 3),
            "flags": rng.integers(0, 16, rows).astype(np.int32),
        }
    )


def write_catalogs(root: Path, *, rows: int = HATS_ROWS, partition_rows: int = 6_000) -> None:
    """Write the seeded catalog under ``root`` as ``stars`` (with its 10 arcsec margin ``stars_10arcs``)
    and, the same rows with partition folders (``npix_suffix="/"``), as ``stars_dirs``."""
    import lsdb

    cat = lsdb.from_dataframe(
        sky_frame(rows), catalog_name="stars", ra_column="ra", dec_column="dec", lowest_order=1, highest_order=6,
        partition_rows=partition_rows, margin_threshold=10,
    )  # fmt: skip
    quiet = {"as_collection": False, "progress_bar": False, "row_group_kwargs": {"num_rows": 2_000}}
    cat.write_catalog(root / "stars", **quiet)
    cat.margin.write_catalog(root / "stars_10arcs", progress_bar=False)
    cat.write_catalog(root / "stars_dirs", catalog_name="stars_dirs", npix_suffix="/", **quiet)
