"""ArchiveConfig: the settings of one archive (the server extension fills it from its traitlets)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ArchiveConfig:
    """Settings of one archive; the server extension fills it from traitlets."""

    data_dir: Path
    mounts: list[dict] = field(default_factory=list)
    demo: bool = True
    demo_rows: int = 100_000
    hats_demo_rows: int = 0  # rows of the HATS demo catalog mounted as SKY (0: none)
    quick_row_limit: int = 100_000
    quick_time_limit: float = 60.0
    quick_workers: int = 5  # a lone user runs 4 at once (quick_per_user), one stays free for others
    quick_per_user: int = 0  # quick requests one user runs at once (0: every quick worker but one)
    quick_queue_time: float = 30.0  # seconds a quick request waits for its turn before a 429
    read_workers: int = 4  # threads of the cheap-reads lane (metadata, job status, listings)
    engine_threads: int | None = None
    # Per engine (DuckDB's default is 80% of RAM for each). It bounds what DuckDB keeps of a table it read, so
    # the server's peak exporting 5,000,000 rows (< 500 MB); heavy queries spill to the temp area.
    engine_memory_limit: str | None = "160MB"
    engine_spill_limit: str | None = "10GB"  # disk one engine may spill to (DuckDB: 90% of the free disk)
    engine_idle_seconds: float | None = 60.0  # an engine nobody uses is closed after this (None: never)
    engines_open: int = 64  # engines kept open at most: past it the least recently used idle one closes (0: any number)
    engines_resting: float = 10.0  # seconds unused before an engine past engines_open may close (sooner, every request reopens one)
    lookup_memory: int = 256 << 20  # bytes of key indexes answering point lookups (0: none; execution/lookups.py)
    allow_anonymous: bool = False
    job_workers: int = 4
    jobs_per_user: int = 0  # jobs one user runs at once (0: every job worker but one)
    jobs_waiting_per_user: int = 1000  # jobs one user may have waiting to run (0: any number)
    job_retention: float | None = 7 * 24 * 3600
    upload_limit: int = 1 << 30  # bytes one table upload may have
    mydb_quota: int | None = 10**10  # bytes each user's MyDB may take (None: no quota; execution/storage.py)
    results_quota: int | None = 10**10  # bytes each user's stored job results may take (None: no quota; jobs/results.py)
    hats_quota: int | None = 10**10  # bytes each user's imported HATS catalogs may take (None: no quota; jobs/hats_import.py)
    disk_reserve: int | None = None  # bytes of free disk writes leave (None: 1 GiB, or 5% of a smaller disk; 0: none)
    history_per_user: int = 10_000  # entries of each user's query history kept, newest (0: any number; history.py)
    dask_scheduler: str = ""  # "" (in-process only), "local", "local:N" or "tcp://host:8786" (core/execution/cluster.py)
    cluster_min_rows: int = 10_000  # a cross-match job of fewer positions runs in-process (execution/planner.py)
    mount_roots: list[str] = field(default_factory=list)  # directories run-time mounts may use
