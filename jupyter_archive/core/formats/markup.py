"""XML (the .NET DataSet's row shape, without its schema) and HTML (a page holding one table).

XML: ``<NewDataSet>`` with one element per row, named by the result's table name, and one child
per non-NULL value, named by its column (names encoded as .NET's XmlConvert does), values in
their xs: lexical forms. HTML is opt-in: browsers ask for ``text/html`` first, so only a face
that offers a page (LSST DAX) answers them with one; the others keep answering with data.
"""

from __future__ import annotations

import html

from .base import Writer, field_meta, slices, text_row_bytes
from .text import encode_name, markup_rows, tagged, xml_attr, xml_text


def write_xml(schema, batches, info, opt):
    row = encode_name(info.table_name or "Table1")
    attr = ' truncated="true"' if info.truncated else ""
    yield f'<?xml version="1.0" encoding="utf-8"?>\n<NewDataSet{attr}>\n'.encode()
    # a NULL is an omitted element, as .NET writes it
    cells = [(lambda a, t=tagged(f"<{n}>", f"</{n}>"): t(xml_text(a)), "") for n in map(encode_name, schema.names)]
    render = lambda b: markup_rows(b, f"<{row}>", f"</{row}>\n", cells)
    yield from slices(batches, text_row_bytes(schema) * 2, render)
    yield b"</NewDataSet>\n"


def write_html(schema, batches, info, opt):
    """An HTML page holding the result as one table (a browsable answer, e.g. LSST metaserv's)."""
    title = html.escape(info.table_name or "result")
    heads = []
    for f in schema:
        meta = field_meta(f)
        hint = "; ".join(v for v in (meta.get("unit"), meta.get("description")) if v)
        heads.append(f"<th{' title=' + xml_attr(hint) if hint else ''}>{html.escape(f.name)}</th>")
    yield (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head><body>\n'
           f"<table>\n<caption>{title}</caption>\n<thead><tr>{''.join(heads)}</tr></thead>\n<tbody>\n").encode()
    cell = tagged("<td>", "</td>")
    cells = [(lambda a: cell(xml_text(a)), "<td></td>")] * len(schema)
    yield from slices(batches, text_row_bytes(schema) * 2, lambda b: markup_rows(b, "<tr>", "</tr>\n", cells))
    note = "<p>The row limit cut this result.</p>\n" if info.truncated else ""
    yield f"</tbody>\n</table>\n{note}</body></html>\n".encode()


XML = Writer("xml", write_xml, "text/xml; charset=utf-8", {"text/xml": {}, "application/xml": {}})
HTML = Writer("html", write_html, "text/html; charset=utf-8", {"text/html": {}}, opt_in=True)
