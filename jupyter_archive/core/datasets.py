"""Dataset-wide jobs (Kasabi's word for a writable database): reset empties one."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .archive import Archive
    from .jobs import Job, JobContext


def reset_dataset(archive: Archive, job: Job, ctx: JobContext) -> dict:
    """The work of a ``reset`` job."""
    raise NotImplementedError
