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
