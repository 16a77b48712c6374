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


def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # glibc only  # noqa: B018
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()
