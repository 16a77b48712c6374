"""A seeded partitioned catalog and a real LocalCluster (2 workers, 1 thread each, loopback), once for this
package: the cluster's idle workers keep heartbeating, so it is closed once the package's tests are done."""

from __future__ import annotations

import pytest

from jupyter_archive.core.archive import Archive
from jupyter_archive.core.config import ArchiveConfig
from jupyter_archive.core.execution.cluster import Cluster
from tests.support.partitioned import write_catalog

ROWS = 200_000


@pytest.fixture(scope="session")
def catalog(tmp_path_factory) -> tuple[str, list[str]]:
    """(root, files): ROWS seeded rows in one file per HEALPix order-2 cell."""
    root = tmp_path_factory.mktemp("partitioned")
    return str(root), write_catalog(root, ROWS)


@pytest.fixture(scope="package")
def local_cluster():
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, memory_limit="2GB"
    )
    yield cluster
    cluster.close()


@pytest.fixture(scope="package")
def cluster(local_cluster):
    """The archive's ``Cluster`` holder connected to the session's LocalCluster (``dask_scheduler = tcp://...``)."""
    holder = Cluster(local_cluster.scheduler_address)
    yield holder
    holder.close()


MIN_ROWS = 100  # the tests' uploads are small: a cross-match of this many positions fans out (the default is 10,000)


@pytest.fixture(scope="module")
def sky(hats_root, local_cluster, tmp_path_factory):
    """An archive mounting the session's HATS catalogs as ``SKY`` with ``dask_scheduler`` on the package's LocalCluster."""
    a = Archive(ArchiveConfig(data_dir=tmp_path_factory.mktemp("hats-jobs"), demo=False, dask_scheduler=local_cluster.scheduler_address,
                              cluster_min_rows=MIN_ROWS,
                              mounts=[{"path": "/sky", "type": "hats", "location": str(hats_root), "context": "SKY"}]))  # fmt: skip
    a.start()
    yield a
    a.close()
