"""The one job system: every long thing (long query, Quasar large query, TAP async, dataset reset,
directive run, async cutout) is a Job here.

- ``model``: the Job, its states and moves, JobCanceled, the anonymous owner, the destruction rule
- ``store``: JobStore, jobs and their logs in SQLite
- ``runner``: JobRunner (the dispatcher and its pool) and JobContext (what a job's work sees)
- ``service``: Jobs (``archive.jobs``), jobs as a user sees them; job kinds register with it
- ``results``: ResultStore, the rows of query jobs that are not MyDB tables
- ``query``: the query (and directive) job kind
- ``reset``: Datasets (``archive.datasets``) and the reset job kind
- ``directives``: DirectiveStore (``archive.directives``), saved queries that run as jobs

The cutout job kind lives with the images and registers itself with ``Jobs.register_kind``.
"""

from .model import ACTIVE, ANONYMOUS_OWNER, FINAL, STATES, Job, JobCanceled

__all__ = ["ACTIVE", "ANONYMOUS_OWNER", "FINAL", "STATES", "Job", "JobCanceled"]
