"""What the server process holds at rest: memory given back once engines close.

Most of what an idle server holds beyond its code is freed memory kept for reuse (DuckDB's
buffers go when its engines close: ``execution.engines.EngineLifecycle``'s idle watch).
"""

from __future__ import annotations

import ctypes

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


def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # glibc only  # noqa: B018
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()
