"""JobProgress: a live view of one archive job (any face's): bar, state, elapsed time, rows, cancel."""

from __future__ import annotations

import html
import threading

import ipywidgets as w

from ..client import ArchiveClient, ArchiveError, Job

STATE_STYLE = {"completed": "success", "failed": "danger", "canceled": "warning", "canceling": "warning"}


def elapsed_text(seconds: float | None) -> str:
    """``75.2`` -> ``1:15``; ``None`` -> ``-``."""
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class JobProgress(w.VBox):
    """A job's progress bar that follows the job until it ends, with a cancel button.

    ``JobProgress(42)`` or ``JobProgress(job)``; ``watch=True`` polls the server in a background
    thread (the kernel stays free); ``refresh()`` reads the job once.
    """

    def __init__(self, job: Job | int | str, client: ArchiveClient | None = None, watch: bool = True, **kwargs):
        self.client = client or (job.client if isinstance(job, Job) else ArchiveClient())
        self.job = job if isinstance(job, Job) else self.client.job(job)
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, description=f"job {self.job.id}",
                                   layout=w.Layout(width="320px"))
        self.status = w.HTML()
        self.cancel_button = w.Button(description="Cancel", icon="stop", button_style="warning",
                                      tooltip="ask the archive to stop this job")
        self.cancel_button.on_click(self._cancel)
        self.message = w.HTML()
        super().__init__([w.HBox([self.bar, self.status, self.cancel_button]), self.message], **kwargs)
        self._thread: threading.Thread | None = None
        self.show(self.job)
        if watch and not self.job.done:
            self.watch()

    def show(self, job: Job) -> None:
        """Put a job's state on the widget."""
        self.job = job
        self.bar.value = 1.0 if job.state == "completed" else float(job.progress or 0.0)
        self.bar.bar_style = STATE_STYLE.get(job.state, "info")
        rows = "" if job.rows is None else f" · {job.rows:,} rows"
        self.status.value = f"<b>{job.state}</b> · {elapsed_text(job.elapsed)}{rows}"
        self.cancel_button.disabled = job.done
        if job.state == "failed" and job.error:
            self.message.value = f'<span style="color:#b00">{html.escape(job.error.get("message") or "failed")}</span>'
        else:
            self.message.value = ""

    def refresh(self, wait: float | None = None) -> Job:
        """Read the job from the server (holding up to ``wait`` seconds for its end) and show it."""
        try:
            self.show(self.job.refresh(wait=wait))
        except ArchiveError as e:
            self.message.value = f'<span style="color:#b00">{html.escape(str(e))}</span>'
            raise
        return self.job

    def watch(self, interval: float = 0.5) -> None:
        """Follow the job in a background thread until it ends."""
        if self._thread and self._thread.is_alive():
            return

        def run():
            try:
                while not self.job.done:
                    self.refresh(wait=interval)
            except ArchiveError:
                pass  # shown in the message line by refresh()

        self._thread = threading.Thread(target=run, name=f"archive-job-{self.job.id}", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> Job:
        """Wait for the watching thread (the job's end)."""
        if self._thread:
            self._thread.join(timeout)
        return self.job

    def _cancel(self, _button=None) -> None:
        try:
            self.show(self.job.cancel())
        except ArchiveError as e:
            self.message.value = f'<span style="color:#b00">{html.escape(str(e))}</span>'
