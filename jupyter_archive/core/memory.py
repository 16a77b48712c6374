"""What the server process holds at rest: memory given back once engines close.

Most of what an idle server holds beyond its code is freed memory kept for reuse (DuckDB's
buffers go when its engines close: ``execution.engines.EngineLifecycle``'s idle watch).
"""

from __future__ import annotations

import ctypes
import gc

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
    """Make the C allocator give large blocks back when they are freed: for a server process, called once
    at start. Exports free many-MB buffers batch after batch on several threads; by default glibc raises
    its mmap threshold after the first such free and keeps later ones in per-thread arenas (up to 8 per
    core), which stayed resident: about 45 MB more at the peak of a 5,000,000-row export here."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, arenas)
        _LIBC.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)  # a fixed threshold: no longer raised by frees


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
