"""Uploaded positions for cross-match tests, and the brute-force distance they are checked with."""

from __future__ import annotations

import numpy as np


def separation(ra1, dec1, ra2, dec2):
    """Great-circle distances in degrees (haversine), every pair: shape (len(ra1), len(ra2))."""
    a1, d1, a2, d2 = (np.radians(np.asarray(x, float)) for x in (ra1, dec1, ra2, dec2))
    h = np.sin((d2[None, :] - d1[:, None]) / 2) ** 2 + np.cos(d1[:, None]) * np.cos(d2[None, :]) * np.sin((a2[None, :] - a1[:, None]) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.minimum(1.0, h))))


def near_rows(ra, dec, n: int, radius: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` positions by rows of (ra, dec) chosen at random: half at a quarter of ``radius`` from their row, half at
    twice it, so no pair is near the boundary."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(ra), n)
    sep = np.where(np.arange(n) % 2 == 0, 0.25, 2.0) * radius
    angle = rng.uniform(0, 2 * np.pi, n)
    up_dec = np.clip(dec[pick] + sep * np.cos(angle), -90, 90)
    up_ra = (ra[pick] + sep * np.sin(angle) / np.maximum(np.cos(np.radians(up_dec)), 1e-6)) % 360
    return up_ra, up_dec
