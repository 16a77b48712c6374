"""Notebook widgets over ArchiveClient: QueryEditor, JobProgress, TableBrowser (ipywidgets).

Each is usable alone (``display(TableBrowser())``) and the ``%%archive`` magic shows them.
They talk to the archive only through an :class:`~jupyter_archive.client.ArchiveClient`.
"""

from .job_progress import JobProgress
from .query_editor import QueryEditor
from .table_browser import TableBrowser

__all__ = ["JobProgress", "QueryEditor", "TableBrowser"]
