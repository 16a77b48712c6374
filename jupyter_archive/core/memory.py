"""The server process's memory: given back once engines close, and capped.

Most of what an idle server holds beyond its code is freed memory kept for reuse (DuckDB's
buffers go when its engines close: ``execution.lifecycle.EngineLifecycle``'s idle watch). What one
query may take is bounded by DuckDB's ``memory_limit`` for its buffers and by the process's cap
(``cap_memory``) for everything else.
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource

import pyarrow as pa


def release_memory() -> None:
    """Give memory freed by closed engines and finished results back to the system: Arrow's pool
    and the C allocator keep what was freed for reuse, which at rest is only held."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


#: glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_allocator(arenas: int = 2, mmap_threshold: int = 1 << 20) -> None:
    """Make the C allocators give large blocks back when they are freed: for a server process, called once
    at start. Exports free many-MB buffers batch after batch on several threads; by default glibc raises
    its mmap threshold after the first such free and keeps later ones in per-thread arenas (up to 8 per
    core), which stayed resident: about 45 MB more at the peak of a 5,000,000-row export here.

    DuckDB's own allocator (jemalloc) keeps the address space of what it freed (``retain``): after one query
    that reached the process's memory cap (``cap_memory``) it stayed counted against the cap, and every later
    allocation of Python or Arrow failed. Read once, when DuckDB is first loaded: a process that has loaded it
    already keeps its setting."""
    os.environ.setdefault("DUCKDB_JE_MALLOC_CONF", "retain:false")
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, arenas)
        _LIBC.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)  # a fixed threshold: no longer raised by frees


def cap_memory(limit: int | None) -> None:
    """Let this process allocate at most ``limit`` bytes (its data size: heap and private mappings); None: no
    cap. DuckDB's ``memory_limit`` bounds its buffers, not the values an expression makes: a query such as
    ``SELECT repeat('x', 60000) || ... || repeat('x', 60000) FROM big`` grows by gigabytes within one vector
    of rows, past anything a watchdog could interrupt, until the kernel kills the process (and with it every
    user's queries and jobs). Capped, the allocation fails instead: DuckDB ends that query with an
    out-of-memory error and frees what it made. Processes started from this one inherit the cap (Dask workers
    keep it; kernels are given back the limit before it: ``uncap_memory``)."""
    before, hard = resource.getrlimit(resource.RLIMIT_DATA)
    _BEFORE_CAP.setdefault("soft", before)
    soft = _BEFORE_CAP["soft"] if limit is None else limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def uncap_memory(pid: int | None) -> None:
    """Give process ``pid``, started by this one and so capped as it is, the limit this process had before
    ``cap_memory``: a user's kernel may hold what the machine allows, as it would outside the archive."""
    if pid is None or "soft" not in _BEFORE_CAP:
        return
    try:
        _, hard = resource.prlimit(pid, resource.RLIMIT_DATA)
        resource.prlimit(pid, resource.RLIMIT_DATA, (_BEFORE_CAP["soft"], hard))
    except (OSError, ValueError):  # gone already, or not ours
        pass


_BEFORE_CAP: dict[str, int] = {}  # the process's own soft limit, before its first cap


def memory_size() -> int:
    """Bytes of memory this process can have: the machine's, or its container's (cgroup) limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def data_size() -> int:
    """Bytes this process has allocated now, as its memory cap counts them (VmData)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def settle_long_lived(times: int = 3) -> None:
    """Keep the cyclic garbage collector's full passes off what a server holds for its life: for a server
    process, called once at start. The survivors of its first ``times`` full collections (the modules, settings
    and engines a warm server holds; the first queries of each face import much) move to the permanent
    generation (``gc.freeze``), so later full passes scan only what requests made since. Each full pass over
    ~150,000 objects stalled every request for 100-200 ms, two or three times in 8 s of point lookups: most of
    their p99. What is frozen is still freed when its last reference goes; only a reference cycle among those
    first survivors would stay (requests leave none: a point lookup's objects go by reference counting)."""
    if _SETTLING:
        return  # once per process (tests start many servers in one)
    left = [times]

    def after_full_pass(phase: str, info: dict) -> None:
        if phase == "stop" and info["generation"] == 2 and left[0] > 0:
            left[0] -= 1
            gc.freeze()

    gc.collect()  # garbage is never frozen: it would stay
    gc.freeze()  # what the start made
    gc.callbacks.append(after_full_pass)
    _SETTLING.append(after_full_pass)


_SETTLING: list = []


def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # glibc only  # noqa: B018
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()
