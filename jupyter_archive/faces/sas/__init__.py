"""The SAS Data Loader face (``{base}archive/sas``): directives and the jobs that run them.

Resources carry HATEOAS ``links`` (``rel``, ``method``, ``href``, ``uri``, ``type``): ``href``
is the absolute path on this server (base URL included), ``uri`` the path relative to the
face's root, as SAS's ``/SASDataLoader/rest`` resources do. Lists are
``vnd.sas.collection`` (version 2) pages; every failure is a ``vnd.sas.error`` (version 2).
Status codes follow the Data Loader document: POST answers 200 with ``Location``, DELETE
204; a missing resource is 404 (not the document's 500: errors are data here).
"""

from __future__ import annotations

from .directives import DirectiveHandler, DirectivesHandler, MissingHandler, RootHandler
from .jobs import JobErrorHandler, JobHandler, JobLogHandler, JobResultsHandler, JobsHandler, JobStateHandler


def sas_handlers() -> list[tuple[str, type]]:
    return [
        (r"archive/sas/?", RootHandler),
        (r"archive/sas/directives/?", DirectivesHandler),
        (r"archive/sas/directives/(?P<directive_id>[^/]+)/?", DirectiveHandler),
        (r"archive/sas/jobs/?", JobsHandler),
        (r"archive/sas/jobs/(?P<job_id>[^/]+)/?", JobHandler),
        (r"archive/sas/jobs/(?P<job_id>[^/]+)/state/?", JobStateHandler),
        (r"archive/sas/jobs/(?P<job_id>[^/]+)/log/?", JobLogHandler),
        (r"archive/sas/jobs/(?P<job_id>[^/]+)/error/?", JobErrorHandler),
        (r"archive/sas/jobs/(?P<job_id>[^/]+)/results/?", JobResultsHandler),
        (r"archive/sas/(?P<rest>.*)", MissingHandler),
    ]
