"""TableBrowser: contexts -> tables -> columns (types, units), and a server-paged, sortable preview."""

from __future__ import annotations

import html

import ipywidgets as w

from ..client import ArchiveClient, ArchiveError

NO_SORT = "(table order)"


def columns_html(schema) -> str:
    """A table's columns as an HTML table: name, type, unit, UCD, description."""
    head = "".join(f"<th>{h}</th>" for h in ("column", "type", "unit", "ucd", "description"))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v)) if isinstance(v, str) else ''}</td>"
                         for v in (r["name"], r["datatype"], r["unit"], r["ucd"], r["description"])) + "</tr>"
        for r in schema.to_dict("records")
    )
    return f'<table class="archive-columns"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class TableBrowser(w.VBox):
    """Browse the archive: pick a context and a table, see its columns and page through its rows.

    Each page is one request for ``offset``/``limit`` rows, sorted by the server, so a huge table
    pages as fast as a small one.
    """

    def __init__(self, client: ArchiveClient | None = None, context: str | None = None, table: str | None = None,
                 page_size: int = 20, **kwargs):
        self.client = client or ArchiveClient()
        self.page_size = page_size
        self.offset = 0
        self.total: int | None = None
        self.page = None  # the DataFrame shown
        names = [c["name"] for c in self.client.contexts()]
        start = context if context in names else (self.client.context if self.client.context in names else names[0])
        self.context = w.Dropdown(options=names, value=start, description="Context")
        self.table = w.Select(options=[], description="Tables", rows=6)
        self.columns = w.HTML()
        self.sort = w.Dropdown(options=[NO_SORT], value=NO_SORT, description="Sort by")
        self.descending = w.Checkbox(value=False, description="descending", indent=False)
        self.prev_button = w.Button(description="Previous", icon="arrow-left")
        self.next_button = w.Button(description="Next", icon="arrow-right")
        self.position = w.Label()
        self.preview = w.HTML()
        self.error = w.HTML()
        self.prev_button.on_click(lambda _b: self.go(self.offset - self.page_size))
        self.next_button.on_click(lambda _b: self.go(self.offset + self.page_size))
        self.context.observe(lambda _c: self._load_tables(), names="value")
        self.table.observe(lambda _c: self._load_table(), names="value")
        self.sort.observe(lambda _c: self.go(0), names="value")
        self.descending.observe(lambda _c: self.go(0), names="value")
        nav = w.HBox([self.sort, self.descending, self.prev_button, self.next_button, self.position])
        super().__init__([w.HBox([self.context, self.table]), self.columns, nav, self.error, self.preview], **kwargs)
        self._load_tables()
        if table and table in self.table.options:
            self.table.value = table

    def _load_tables(self) -> None:
        try:
            names = [t["name"] for t in self.client.tables(self.context.value)] if self.context.value else []
        except ArchiveError as e:
            self.error.value = f'<span style="color:#b00">{html.escape(str(e))}</span>'
            names = []
        self.table.options = names
        self.table.value = names[0] if names else None
        if not names:
            self._load_table()

    def _load_table(self) -> None:
        self.error.value = ""
        if not self.table.value:
            self.columns.value = self.preview.value = ""
            self.position.value = ""
            self.total, self.page = None, None
            return
        schema = self.client.schema(self.table.value, self.context.value)
        self.total = schema.attrs.get("rows")
        self.columns.value = columns_html(schema)
        with self.sort.hold_trait_notifications():
            self.sort.options = [NO_SORT, *schema["name"]]
            self.sort.value = NO_SORT
        self.go(0)

    def go(self, offset: int):
        """Show the page of rows that starts at ``offset`` (kept within the table)."""
        if not self.table.value:
            return None
        offset = max(0, offset)
        if self.total is not None and offset >= self.total:
            offset = max(0, (self.total - 1) // self.page_size * self.page_size)
        order = None if self.sort.value == NO_SORT else self.sort.value
        try:
            page = self.client.rows(self.table.value, self.context.value, offset=offset, limit=self.page_size,
                                    order=order, descending=self.descending.value)
        except ArchiveError as e:
            self.error.value = f'<span style="color:#b00">{html.escape(str(e))}</span>'
            return None
        self.offset, self.page = offset, page
        page.index = range(offset + 1, offset + 1 + len(page))  # row numbers, as the user counts them
        self.preview.value = page.to_html(max_rows=self.page_size)
        end = offset + len(page)
        of = f" of {self.total:,}" if self.total is not None else ""
        self.position.value = f"rows {offset + 1 if len(page) else 0:,}–{end:,}{of}"
        self.prev_button.disabled = offset == 0
        self.next_button.disabled = len(page) < self.page_size or (self.total is not None and end >= self.total)
        return page
