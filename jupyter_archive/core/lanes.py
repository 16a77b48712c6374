"""Lanes: which archive calls are cheap reads (metadata, job status, listings), and one user's share of a pool.

A cheap read runs on the archive's own pool for them (``Archive.reads``), so it never waits
behind queries, exports or uploads, which share the query pool (``Archive.executor``). A
service marks such a method with ``@cheap_read``; a face's one ``call`` picks the pool from the
mark. Mark only what reads state and ends quickly whatever the data's size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

READS = "reads"
F = TypeVar("F", bound=Callable)


def cheap_read(fn: F) -> F:
    """Mark a method as a cheap read: it runs on the reads lane."""
    fn.lane = READS  # type: ignore[attr-defined]
    return fn


def user_share(workers: int, per_user: int) -> int:
    """How many of ``workers`` one user may hold at once: ``per_user`` (at most all), or by default (0) every worker
    but one, so that another user always finds one free (quick workers: ``Admission``; jobs: ``JobRunner``)."""
    return min(per_user, workers) if per_user > 0 else max(1, workers - 1)
