"""QueryEditor: pick a context and a language, write SQL, run it or submit it as a job."""

from __future__ import annotations

import html

import ipywidgets as w

from ..client import ArchiveClient, ArchiveError
from ..core.completion import Completions
from ..core.languages import DEFAULT_LANGUAGE, LANGUAGES
from .job_progress import JobProgress


def error_html(err: Exception) -> str:
    """An error as a readable block (the server's message, never a traceback)."""
    return (f'<div style="color:#b00;border-left:3px solid #b00;padding-left:6px">'
            f"<b>Query failed</b>: {html.escape(str(err))}</div>")


class QueryEditor(w.VBox):
    """A small SQL editor: context and language pickers, Run and Submit-as-job, results below.

    After Run, ``result`` is the DataFrame shown; after Submit, ``job`` is the Job followed.
    As the text is typed, ``suggestions`` lists what may complete the word at its end (tables,
    columns, functions: ``complete()``, as the ``%%archive`` magic completes); picking one puts it in.
    """

    def __init__(self, client: ArchiveClient | None = None, query: str = "", context: str | None = None,
                 language: str = DEFAULT_LANGUAGE, limit: int = 1000, **kwargs):
        self.client = client or ArchiveClient()
        self.limit = limit
        names = [c["name"] for c in self.client.contexts()]
        self.context = w.Dropdown(options=names, value=context if context in names else (self.client.context if self.client.context in names else names[0]),
                                  description="Context")
        self.language = w.Dropdown(options=LANGUAGES, value=language, description="Language")
        self.sql = w.Textarea(value=query, placeholder="SELECT ...", layout=w.Layout(width="100%", height="8em"))
        self.suggestions = w.Select(options=[], rows=5, description="Complete", layout=w.Layout(display="none"))
        self.into = w.Text(placeholder="mydb.Table (jobs only)", description="Into")
        self.run_button = w.Button(description="Run", icon="play", button_style="primary")
        self.submit_button = w.Button(description="Submit as job", icon="clock")
        self.run_button.on_click(self.run)
        self.submit_button.on_click(self.submit)
        for box in (self.sql, self.context, self.language):
            box.observe(self._suggest, "value")
        self.suggestions.observe(lambda change: change.new and self.accept(change.new), "value")
        self.error = w.HTML()
        self.info = w.HTML()
        self.output = w.Output()
        self.result = None
        self.job = None
        self.progress: JobProgress | None = None
        controls = w.HBox([self.context, self.language])
        buttons = w.HBox([self.run_button, self.submit_button, self.into])
        super().__init__([controls, self.sql, self.suggestions, buttons, self.error, self.info, self.output], **kwargs)

    def complete(self, code: str | None = None, cursor: int | None = None) -> Completions:
        """What may be typed at ``cursor`` (default: the end) of ``code`` (default: the editor's text),
        in the editor's context and language."""
        code = self.sql.value if code is None else code
        return self.client.complete(code, cursor, self.context.value, language=self.language.value)

    def accept(self, word: str) -> None:
        """Put ``word`` in place of the word being typed at the end of the text."""
        text = self.sql.value
        self.sql.value = text[:self.complete(text).start] + word

    def _suggest(self, _change=None) -> None:
        text = self.sql.value
        try:
            found = self.complete(text)
        except ArchiveError:  # the server is away: no suggestions, and the editor keeps working
            found = Completions(len(text), ())
        typed = text[found.start:]
        # Offered once a word is begun (or after "name."), not after every space.
        words = [m.text for m in found.matches if m.text != typed][:20] if typed or text.endswith(".") else []
        self.suggestions.options = words
        self.suggestions.layout.display = None if words else "none"

    def _args(self) -> dict:
        return {"context": self.context.value, "language": self.language.value}

    def run(self, _button=None):
        """Run the query now and show its rows (at most ``limit``); one that goes on as a job past the server's
        quick time limit is followed with a progress bar (``follow``) to its rows."""
        self.error.value = ""
        self.output.clear_output()
        try:
            df = self.client.query(self.sql.value, limit=self.limit, progress=self.follow, **self._args())
        except ArchiveError as e:
            self.error.value = error_html(e)
            return None
        self.result = df
        more = " (truncated: submit it as a job for all rows)" if df.attrs.get("truncated") else ""
        self.info.value = f"{len(df):,} rows × {len(df.columns)} columns{more}"
        self.output.append_display_data(df)
        return df

    def follow(self, job):
        """Show the progress of ``job`` (a query gone on as a job) below; returns what shows it as it moves on."""
        self.job = job
        self.info.value = f"running as job {job.id} (past the quick time limit)"
        self.progress = JobProgress(job, client=self.client, watch=False)
        self.output.append_display_data(self.progress)
        return self.progress.show

    def submit(self, _button=None):
        """Submit the query as a job (into the table named in ``Into``, if any) and follow it."""
        self.error.value = ""
        self.output.clear_output()
        try:
            self.job = self.client.submit(self.sql.value, into=self.into.value.strip() or None, **self._args())
        except ArchiveError as e:
            self.error.value = error_html(e)
            return None
        self.info.value = f"submitted job {self.job.id}"
        self.progress = JobProgress(self.job, client=self.client)
        self.output.append_display_data(self.progress)
        return self.job
