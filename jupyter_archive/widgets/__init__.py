"""Notebook widgets over ArchiveClient: QueryEditor, JobProgress, TableBrowser, CutoutViewer (ipywidgets).

Each is usable alone (``display(TableBrowser())``) and the ``%%archive`` magic shows them.
They talk to the archive only through an :class:`~jupyter_archive.client.ArchiveClient`.
"""

from .cutout_viewer import CutoutViewer
from .job_progress import JobProgress
from .query_editor import QueryEditor
from .table_browser import TableBrowser

__all__ = ["CutoutViewer", "JobProgress", "QueryEditor", "TableBrowser"]
