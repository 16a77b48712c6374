"""Astropy table columns as Arrow arrays: what reading FITS and VOTable files shares (uploads, TAP
uploads, directories of FITS files), so a column reads the same wherever the file came from."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def to_arrow(col) -> pa.Array:
    """One astropy column (or slice) as Arrow: native byte order, masked -> null, vectors -> lists."""
    arr = np.ma.asarray(col)
    mask = np.ma.getmaskarray(arr)
    data = np.ma.getdata(arr)
    if data.dtype.kind == "O":  # VOTable strings and variable-length arrays: Python objects
        out = []
        for v, m in zip(data, mask if mask.ndim == 1 else mask.any(axis=tuple(range(1, mask.ndim)))):
            if m or v is None:
                out.append(None)
            elif isinstance(v, bytes):
                out.append(v.decode("utf-8", "replace"))
            elif isinstance(v, np.ndarray):
                out.append(np.ma.filled(v.astype(v.dtype.newbyteorder("=")), 0).tolist() if v.dtype.kind != "O" else v.tolist())
            else:
                out.append(v.item() if isinstance(v, np.generic) else v)
        return pa.array(out)
    if not data.dtype.isnative:  # FITS is big-endian; Arrow wants native order
        data = data.astype(data.dtype.newbyteorder("="))
    if data.dtype.kind == "S":
        data = np.char.decode(data, "utf-8", "replace")
    if data.ndim == 1:
        return pa.array(data, mask=mask if mask.any() else None)
    width = int(np.prod(data.shape[1:]))
    flat_mask = mask.reshape(-1) if mask.any() else None
    return pa.FixedSizeListArray.from_arrays(pa.array(data.reshape(-1), mask=flat_mask), width)
