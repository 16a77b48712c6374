"""Reading back the HTML tables the archive writes (stdlib parser only)."""

from __future__ import annotations

from html.parser import HTMLParser


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.cell: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(self.cell)
            self.cell = None


def html_cells(page: str) -> list[list[str]]:
    """The rows of the tables of an HTML page, each a list of its cells' text (th and td)."""
    parser = _Cells()
    parser.feed(page)
    parser.close()
    return parser.rows
