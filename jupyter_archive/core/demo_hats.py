"""The HATS demo catalog: a seeded sky of stars written by lsdb, mounted as ``SKY`` (TAP ``sky.stars``).

Off by default (``ArchiveApp.hats_demo_rows = 0``). When asked for, it is written once, in a child
process (lsdb, Dask and pandas are not kept by the server), under ``<data_dir>/hats-demo``, with
its 10 arcsec margin catalog, and rebuilt only when the row count asked for changes. The same
generator makes the test suite's catalog.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

SEED = 17


def sky_frame(rows: int, seed: int = SEED):
    """The catalog's rows as a pandas frame (objid, ra, dec, g, r, flags): 70 % uniform on the sphere,
    30 % in a band near dec 0 (so partitions come at mixed orders), and a few hundred placed on purpose
    at the poles and either side of RA = 0."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    edge = min(400, rows // 10)
    n_band = (rows - edge) * 3 // 10
    n_uni = rows - edge - n_band
    q = edge // 4
    ra = np.concatenate([rng.uniform(0, 360, n_uni), rng.uniform(0, 360, n_band), rng.uniform(0, 0.5, q),
                         rng.uniform(359.5, 360, q), rng.uniform(0, 360, edge - 2 * q)])  # fmt: skip
    dec = np.concatenate([np.degrees(np.arcsin(rng.uniform(-1, 1, n_uni))), np.clip(rng.normal(0, 4, n_band), -89, 89),
                          rng.uniform(-0.5, 0.5, 2 * q), rng.uniform(89.5, 90, (edge - 2 * q) // 2),
                          rng.uniform(-90, -89.5, edge - 2 * q - (edge - 2 * q) // 2)])  # fmt: skip
    return pd.DataFrame(
        {
            "objid": np.arange(1, rows + 1, dtype=np.int64),
            "ra": np.mod(ra, 360.0),
            "dec": dec,
            "g": np.round(rng.normal(19, 1.5, rows), 3),
            "r": np.round(rng.normal(18.5, 1.5, rows), 3),
            "flags": rng.integers(0, 16, rows).astype(np.int32),
        }
    )


def write_catalogs(root: Path, rows: int, *, partition_rows: int = 50_000, dirs: bool = False) -> None:
    """Write the seeded catalog under ``root`` as ``stars`` with its 10 arcsec margin ``stars_10arcs``
    (and with ``dirs``, the same rows with partition folders, ``npix_suffix="/"``, as ``stars_dirs``)."""
    import lsdb
    from hats.pixel_math.spatial_index import compute_spatial_index

    frame = sky_frame(rows)
    # Rows in spatial-index order, as hats-import writes them (lsdb keeps the frame's order within a
    # partition): a partition's row groups then span narrow ranges of ``_healpix_29``, which a cone's skips.
    frame = frame.iloc[np.argsort(compute_spatial_index(frame["ra"].to_numpy(), frame["dec"].to_numpy()), kind="stable")]
    cat = lsdb.from_dataframe(
        frame, catalog_name="stars", ra_column="ra", dec_column="dec", lowest_order=1, highest_order=8,
        partition_rows=partition_rows, margin_threshold=10,
    )  # fmt: skip
    quiet = {"as_collection": False, "progress_bar": False, "row_group_kwargs": {"num_rows": 10_000}}
    cat.write_catalog(Path(root) / "stars", **quiet)
    cat.margin.write_catalog(Path(root) / "stars_10arcs", progress_bar=False)
    if dirs:
        cat.write_catalog(Path(root) / "stars_dirs", catalog_name="stars_dirs", npix_suffix="/", **quiet)


def _rows_written(root: Path) -> int | None:
    try:
        lines = (root / "stars" / "properties").read_text().splitlines()
    except OSError:
        return None
    found = [line.split("=", 1)[1].strip() for line in lines if line.startswith("hats_nrows=")]
    return int(found[0]) if found and found[0].isdigit() else None


def ensure_hats_demo_apart(data_dir: Path, rows: int) -> Path:
    """The demo catalogs' folder under ``data_dir``, written first (in a child process) if missing or of another size."""
    root = Path(data_dir) / "hats-demo"
    if _rows_written(root) == int(rows):
        return root
    building = root.with_name("hats-demo.building")
    shutil.rmtree(building, ignore_errors=True)
    code = "import sys; from pathlib import Path; from jupyter_archive.core.demo_hats import write_catalogs; write_catalogs(Path(sys.argv[1]), int(sys.argv[2]))"
    package_root = str(Path(__file__).parents[2])  # the child imports this very package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-c", code, str(building), str(int(rows))], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        raise ValueError(f"building the HATS demo catalog failed: {(done.stderr.strip().splitlines() or ['no message'])[-1]}")
    shutil.rmtree(root, ignore_errors=True)
    building.rename(root)  # a reader sees the old catalogs or the new ones, never a half-written one
    return root
