"""Archive: builds the archive's services and hands them out.

Every face and the Python client reach the archive through these services: ``catalog``
(the namespace), ``mounts``, ``engines``, ``queries``, ``jobs``, ``datasets``, ``directives``,
``users``, ``images``, ``tables``, ``history``, ``samples`` (random samples of rows), ``cluster`` (the Dask cluster, ``dask_scheduler``). Everything here is synchronous and thread-safe; faces call
it from two thread pools: ``executor`` for queries and writes, ``reads`` for cheap reads (``lanes``);
``admission`` says whose request takes a quick worker next.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import temp_area
from .catalog.mounts import Mounts
from .catalog.namespace import Namespace
from .config import ArchiveConfig
from .errors import ArchiveError
from .execution.cluster import Cluster
from .execution.lookups import Lookups
from .execution.pool import EnginePool
from .execution.run import Admission, Queries
from .execution.samples import Samples
from .execution.storage import Storage, default_reserve
from .history import History
from .images.cutout import CUTOUT_JOB
from .images.service import Images
from .jobs.directives import DirectiveStore
from .jobs.hats_import import KIND as HATS_IMPORT
from .jobs.hats_import import HatsImports
from .jobs.reset import Datasets
from .jobs.results import ResultStore
from .jobs.service import Jobs
from .jobs.store import JobStore
from .ownership import DataDirLock, describe_holder
from .tables.service import Tables
from .users.owned import Owned
from .users.service import Users
from .users.store import UserStore


class Archive:
    """The archive's services, built in dependency order and closed together; one per server process."""

    def __init__(self, config: ArchiveConfig, *, lock: DataDirLock | None = None):
        self.config = config
        self.data_dir = Path(config.data_dir)
        # The data dir's one owner: nothing is written in it before its lock is held.
        self.lock = lock or DataDirLock(self.data_dir)
        if not self.lock.acquire():
            raise ArchiveError("conflict", f"the data dir {self.data_dir} is in use by another process ({describe_holder(self.lock.holder())})", 409)
        temp_area.clear(self.data_dir)  # what a killed process left; the lock says no live one uses it
        self.catalog = Namespace(self.data_dir)
        user_store = UserStore(self.data_dir / "state.sqlite")
        # Two lanes (``lanes``): queries, exports and writes on the quick pool; cheap reads on their own,
        # so metadata and job status never wait behind queries.
        # A thread more per job worker: a quick query gone on as a job keeps its thread (jobs/continued.py).
        self.executor = ThreadPoolExecutor(max(1, config.quick_workers) + config.job_workers, thread_name_prefix="archive-quick")
        self.reads = ThreadPoolExecutor(max(1, config.read_workers), thread_name_prefix="archive-reads")
        # Whose request takes a quick worker next: each user's fair share, waiting without a thread.
        self.admission = Admission(config.quick_workers, config.quick_per_user, wait=config.quick_queue_time)
        # What writes may take of the disk: each user's MyDB its quota, and room always left on the disk.
        reserve = default_reserve(self.data_dir) if config.disk_reserve is None else config.disk_reserve
        self.storage = Storage(quota=config.mydb_quota, reserve=reserve)
        self.engines = EnginePool(
            self.catalog,
            self.data_dir,
            users=user_store.principal,  # the stored user of an engine's key (None once deleted)
            running_jobs=lambda uid: self.jobs.running_ids(uid),  # built below: asked only when an engine is held
            wait=config.quick_time_limit,
            threads=config.engine_threads,
            limits={"memory_limit": config.engine_memory_limit, "spill_limit": config.engine_spill_limit},
            connections=config.quick_workers + config.job_workers + 2,
            idle_seconds=config.engine_idle_seconds,  # idle engines close: their buffers are memory held at rest
            most_open=config.engines_open,  # and past this many, the least recently used: ~5 MB and 2 threads each
            resting=config.engines_resting,  # once unused this long
            storage=self.storage,
        )
        self.catalog.engines = self.engines  # the namespace reads MyDB and writable mounts through them
        self.mounts = Mounts(config, self.data_dir, self.catalog, self.engines)
        self.mounts.load()
        self.users = Users(user_store, engines=self.engines)
        self.queries = Queries(self.catalog, self.engines, row_limit=config.quick_row_limit, time_limit=config.quick_time_limit)
        if config.lookup_memory:
            self.queries.lookups = Lookups(config.lookup_memory, idle=config.engine_idle_seconds)
        self.results = ResultStore(self.data_dir / "results", room=self.storage.room, quota=config.results_quota,
                                   owned=lambda uid: self.jobs.store.ids_of(uid))  # fmt: skip
        self.jobs = Jobs(
            JobStore(self.data_dir / "jobs.sqlite"),
            self.results,
            users=self.users,
            queries=self.queries,
            allow_anonymous=config.allow_anonymous,
            workers=config.job_workers,
            per_user=config.jobs_per_user,
            waiting_per_user=config.jobs_waiting_per_user or None,
            retention=config.job_retention,
        )
        self.queries.jobs = self.jobs  # TAP uploads may name a job's result
        self.samples = Samples(self.catalog, self.queries, self.jobs)
        # Every quick query and every query job that ends, kept as long as jobs are (``history``).
        self.history = History(self.data_dir / "history.sqlite", per_user=config.history_per_user)
        self.queries.history = self.history.pending
        self.jobs.store.on_final = self.history.pending.append
        self.jobs.runner.sweeps.append(self.history.expire)
        self.datasets = Datasets(self.jobs, catalog=self.catalog, engines=self.engines)
        self.images = Images(self.catalog, mounts=self.mounts, jobs=self.jobs, data_dir=self.data_dir)
        self.jobs.register_kind(CUTOUT_JOB, self.images.cutouts.run, self.images.cutouts.forget)
        self.directives = DirectiveStore(self.data_dir / "directives.sqlite", jobs=self.jobs, users=self.users, queries=self.queries)
        # The Dask cluster for work spanning many partitions: nothing of dask is loaded until it is first used.
        self.cluster = Cluster(config.dask_scheduler, memory_limit=config.engine_memory_limit, min_rows=config.cluster_min_rows)
        self.queries.cluster = self.cluster  # built after the queries; jobs over many HATS partitions fan out on it
        self.hats_imports = HatsImports(jobs=self.jobs, queries=self.queries, catalog=self.catalog, mounts=self.mounts,
                                        cluster=self.cluster, data_dir=self.data_dir, room=self.storage.room,
                                        quota=config.hats_quota)  # fmt: skip
        self.jobs.register_kind(HATS_IMPORT, self.hats_imports.run)
        # What deleting a user removes: built last, as it walks the other services.
        self.users.owned = Owned(user_store, jobs=self.jobs, directives=self.directives, engines=self.engines, catalog=self.catalog,
                                 hats=self.hats_imports, history=self.history)  # fmt: skip
        self.tables = Tables(catalog=self.catalog, engines=self.engines, mydb_path=self.catalog.mydb_path, hats=self.hats_imports)

    def start(self) -> None:
        """Start background work (the job runner); call once the archive is set up."""
        self.jobs.start()

    def close(self) -> None:
        self.jobs.close()
        self.history.close()
        self.directives.close()
        self.mounts.close()
        self.engines.clear()
        self.cluster.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.reads.shutdown(wait=False, cancel_futures=True)
        self.users.store.close()
        self.lock.release()
