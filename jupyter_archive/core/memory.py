"""What the server process holds at rest: memory given back once engines close, and pandas,
which pyarrow would otherwise load (about 30 MB) for nothing.

Most of what an idle server holds beyond its code is freed memory kept for reuse (DuckDB's
buffers go when its engines close: ``execution.engines.EngineLifecycle``'s idle watch).
"""

from __future__ import annotations

import ctypes
import sys

import pyarrow as pa


def release_memory() -> None:
    """Give memory freed by closed engines and finished results back to the system: Arrow's pool
    and the C allocator keep what was freed for reuse, which at rest is only held."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def keep_pandas_unloaded() -> None:
    """Keep pyarrow from importing pandas only to ask whether a value is a pandas object.

    pyarrow imports pandas the first time it converts Python values (``pa.array``, ``pa.scalar``),
    to check for pandas objects; the archive never hands it any. That first check runs here while
    pandas cannot be imported, and pyarrow remembers the answer; an explicit conversion to pandas
    (``to_pandas``) still imports pandas when called. Nothing to do when pandas is loaded already.
    """
    if "pandas" in sys.modules:
        return
    sys.meta_path.insert(0, _NO_PANDAS)  # ``import pandas`` fails meanwhile
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(_NO_PANDAS)


class _NoPandas:
    """An import finder that refuses pandas."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "pandas":
            raise ModuleNotFoundError("pandas is kept unloaded in the archive server", name=name)
        return None


_NO_PANDAS = _NoPandas()


def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # glibc only  # noqa: B018
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()
