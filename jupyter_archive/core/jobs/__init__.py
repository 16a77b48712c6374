"""The one job system (moved here from core/jobs.py and its neighbours; split into modules next)."""

from .runner import (
    ACTIVE,
    ANONYMOUS_OWNER,
    FINAL,
    RESTART_MESSAGE,
    STATES,
    Job,
    JobCanceled,
    JobContext,
    JobRunner,
    JobStore,
)

__all__ = ["ACTIVE", "ANONYMOUS_OWNER", "FINAL", "RESTART_MESSAGE", "STATES", "Job", "JobCanceled", "JobContext", "JobRunner", "JobStore"]
