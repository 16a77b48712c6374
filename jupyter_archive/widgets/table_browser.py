"""TableBrowser: contexts -> tables -> columns (types, units), and a server-paged, sortable preview,
also as a sky plot or a histogram (plots.py)."""

from __future__ import annotations

import html

import ipywidgets as w

from ..client import ArchiveClient, ArchiveError
from . import plots

NO_SORT = "(table order)"
ONE_COLOUR = "(one colour)"
VIEWS = [("Table", "table"), ("Sky plot", "sky"), ("Histogram", "histogram")]


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
    pages as fast as a small one. The ``view`` buttons show the rows as a sky plot (RA/Dec, coloured
    by a column) or a histogram of a column instead, drawn from all its rows when it has at most
    ``plot_limit``, else from a uniform random sample of ``plot_limit`` rows the server draws (one
    request; the plot says which); ``plotted`` holds the numbers drawn (a ``plots.SkyPlot`` or
    ``plots.Histogram``).
    """

    def __init__(self, client: ArchiveClient | None = None, context: str | None = None, table: str | None = None,
                 page_size: int = 20, plot_limit: int = plots.PLOT_LIMIT, **kwargs):
        self.client = client or ArchiveClient()
        self.page_size = page_size
        self.plot_limit = plot_limit
        self.offset = 0
        self.total: int | None = None
        self.page = None  # the DataFrame shown
        self.schema = None
        self.plotted: plots.SkyPlot | plots.Histogram | None = None
        self._sample: tuple[tuple, object] | None = None  # (what was asked, the rows) the plots draw
        self._pick: dict[str, str] = {}  # the column picked in each plot view
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
        self.view = w.ToggleButtons(options=VIEWS, value="table", description="Show")
        self.plot_column = w.Dropdown(options=[], description="Column")
        self.plot = w.HTML()
        self.view.observe(lambda _c: self.draw(), names="value")
        self.plot_column.observe(self._picked, names="value")
        self.prev_button.on_click(lambda _b: self.go(self.offset - self.page_size))
        self.next_button.on_click(lambda _b: self.go(self.offset + self.page_size))
        self.context.observe(lambda _c: self._load_tables(), names="value")
        self.table.observe(lambda _c: self._load_table(), names="value")
        self.sort.observe(lambda _c: self._resorted(), names="value")
        self.descending.observe(lambda _c: self._resorted(), names="value")
        self._pages = w.HBox([self.prev_button, self.next_button, self.position])
        nav = w.HBox([self.sort, self.descending, self._pages, self.plot_column])
        super().__init__([w.HBox([self.context, self.table]), self.columns, self.view, nav, self.error, self.preview, self.plot],
                         **kwargs)
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
            self.total, self.page, self.schema = None, None, None
            self.draw()
            return
        schema = self.schema = self.client.schema(self.table.value, self.context.value)
        self.total = schema.attrs.get("rows")
        self.columns.value = columns_html(schema)
        with self.sort.hold_trait_notifications():
            self.sort.options = [NO_SORT, *schema["name"]]
            self.sort.value = NO_SORT
        self.go(0)
        self.draw()

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

    def _resorted(self) -> None:
        self.go(0)
        self.draw()

    def _picked(self, change) -> None:
        if change["new"] is not None and not self._filling:
            self._pick[self.view.value] = change["new"]
            self.draw()

    _filling = False

    def _fill_pick(self, description: str, options: list[str], fallback: str | None) -> None:
        want = self._pick.get(self.view.value)
        self._filling = True
        try:
            self.plot_column.description = description
            self.plot_column.options = options
            self.plot_column.value = want if want in options else (fallback if fallback in options else options[0] if options else None)
        finally:
            self._filling = False

    def draw(self):
        """Show the view chosen: the table, or a plot of its rows: all of them in the chosen order when
        the table has at most ``plot_limit``, else a random sample of ``plot_limit`` drawn by the server
        (fetched once per table); returns what was plotted."""
        plotting = self.view.value != "table"
        self.preview.layout.display = self._pages.layout.display = "none" if plotting else None
        self.plot.layout.display = self.plot_column.layout.display = None if plotting else "none"
        self.plotted = None
        if not plotting or not self.table.value:
            self.plot.value = ""
            return None
        sampled = self.total is None or self.total > self.plot_limit  # a sample has no order: a plot does not need one
        order = None if sampled or self.sort.value == NO_SORT else self.sort.value
        descending = self.descending.value and order is not None
        key = (self.context.value, self.table.value, order, descending, self.plot_limit)
        if self._sample is None or self._sample[0] != key:
            try:
                if sampled:
                    rows = self.client.rows(self.table.value, self.context.value, sample=self.plot_limit)
                else:
                    rows = self.client.rows(self.table.value, self.context.value, offset=0, limit=self.plot_limit,
                                            order=order, descending=descending)
            except ArchiveError as e:
                self.error.value = f'<span style="color:#b00">{html.escape(str(e))}</span>'
                return None
            self._sample = (key, rows)
        rows = self._sample[1]
        total = rows.attrs["sample"]["total"] if "sample" in rows.attrs else self.total
        note = plots.sample_note(len(rows), total, self.plot_limit, order, descending, sampled="sample" in rows.attrs)
        units = dict(zip(self.schema["name"], self.schema["unit"]))
        numeric = plots.numeric_columns(rows)
        pos = plots.radec_columns(self.schema)
        if self.view.value == "sky":
            self._fill_pick("Colour by", [ONE_COLOUR, *numeric], ONE_COLOUR)
            if pos is None:
                self.plot.value = "<i>No RA/Dec columns (UCD pos.eq.ra/pos.eq.dec, or named ra/dec) to plot.</i>"
                return None
            by = None if self.plot_column.value == ONE_COLOUR else self.plot_column.value
            self.plotted = plots.sky_plot(rows, *pos, by, note, units)
        else:
            # By default a measured quantity (a float, not the position), rather than an id.
            floats = [c for c in numeric if rows[c].dtype.kind not in "iu" and c not in (pos or ())]
            self._fill_pick("Column", numeric, floats[0] if floats else None)
            if self.plot_column.value is None:
                self.plot.value = "<i>No numeric column to draw.</i>"
                return None
            self.plotted = plots.histogram(rows, self.plot_column.value, note, units)
        self.plot.value = self.plotted.svg
        return self.plotted
