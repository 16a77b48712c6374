"""Which format answers a request: Accept with q-values and wildcards, format=, what a face offers,
and Quasar's CSV parameters in Accept."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pytest

from jupyter_archive.core.errors import ArchiveError
from jupyter_archive.core.formats import MEDIA_TYPES, by_name, negotiate

from tests.support.formats import ALL, encode


# --- negotiation --------------------------------------------------------------------------------


def test_negotiate_defaults_and_wildcards():
    for accept in (None, "", "*/*", "text/*", "*/*;q=0.1"):
        assert negotiate(accept).name == "csv"
    assert negotiate(None, default="votable").name == "votable"
    assert negotiate("*/*", default="json").name == "json"
    assert negotiate("application/*").name == "json"
    assert negotiate("text/csv;q=0, */*").name != "csv"


def test_negotiate_q_values():
    assert negotiate("text/csv;q=0.2, application/x-votable+xml;q=0.9").name == "votable"
    assert negotiate("text/csv;q=0.9, application/x-votable+xml;q=0.2").name == "csv"
    assert negotiate("image/png, application/fits;q=0.5").name == "fits"
    f = negotiate("application/x-votable+xml;serialization=TABLEDATA")
    assert (f.name, f.options["serialization"]) == ("votable", "tabledata")
    assert negotiate("text/xml;content=x-votable").name == "votable"
    assert negotiate("text/xml").name == "xml"
    assert negotiate("application/json;boundary=NL").name == "ldjson"
    assert negotiate("application/x-ldjson").name == "ldjson"
    assert negotiate("application/json+array").name == "json-array-casjobs"
    assert negotiate("application/vnd.archive.table+json").name == "json-table"
    assert negotiate("text/plain").media_type.startswith("text/plain")
    assert negotiate("application/ldjson;mode=readable").name == "ldjson"
    assert negotiate("text/csv;disposition=attachment").options["disposition"] == "attachment"
    for mt, (name, _) in MEDIA_TYPES.items():
        assert negotiate(mt, allowed=set(ALL)).name == name
    # the names LSST DAX gives formats, in any case; CasJobs' DataSet
    assert negotiate("application/votable").name == "votable" and negotiate("application/VOTable").media_type == "application/VOTable"
    assert negotiate("application/FITSTABLE").name == "fits" and negotiate("text/tsv").name == "tsv"
    assert negotiate("application/x-dataset").name == "dataset"


def test_html_is_offered_only_where_a_face_offers_it():
    # browsers ask for text/html first: a face that did not promise a page answers them with data
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert negotiate(browser).name == "xml" and negotiate("text/html, */*;q=0.1", default="json").name == "json"
    with pytest.raises(ArchiveError) as exc:
        negotiate("text/html")
    assert exc.value.status == 406 and "text/html" not in exc.value.details["supported"]
    assert negotiate(browser, allowed={"html", "json"}).name == "html"


def test_format_param_wins():
    assert negotiate("text/csv", "votable/binary2").options["serialization"] == "binary2"
    assert negotiate("text/csv", "votable").name == "votable"
    assert negotiate("application/json", "fits").name == "fits"
    assert negotiate(None, "application/x-votable+xml;serialization=binary").options["serialization"] == "binary"
    assert negotiate("application/json", "csv").name == "csv"
    assert negotiate("text/csv", "parquet").media_type == "application/vnd.apache.parquet"


def test_not_acceptable():
    for accept, param, allowed in [("image/png", None, None), (None, "foo", None), ("application/fits", None, {"csv"}),
                                   ("text/csv", "fits", {"csv", "json"}), ("text/csv;q=0", None, {"csv"})]:
        with pytest.raises(ArchiveError) as exc:
            negotiate(accept, param, allowed=allowed)
        assert exc.value.code == "not_acceptable" and exc.value.status == 406
        assert "text/csv" in exc.value.message
    for bad in ['text/csv;columnDelimiter="ab"', "text/csv;quoteChar=", "application/x-votable+xml;serialization=x",
                'text/csv;columnDelimiter="|";quoteChar="|"']:
        with pytest.raises(ArchiveError) as exc:
            negotiate(bad)
        assert exc.value.status == 406
    with pytest.raises(ArchiveError):
        by_name("csv", nonsense=1)


QUASAR_AMP = 'text/csv; columnDelimiter="|"&rowDelimiter=";"&quoteChar="\'"&escapeChar="\\"'
QUASAR_SEMI = "text/csv;columnDelimiter='|';rowDelimiter=\"\\n\";quoteChar=\"'\";escapeChar=\"\\\\\""


@pytest.mark.parametrize("accept", [QUASAR_AMP, QUASAR_SEMI])
def test_quasar_csv_parameters(accept):
    fmt = negotiate(accept)
    rd = ";" if accept == QUASAR_AMP else "\n"
    assert fmt.options == {"delimiter": "|", "row_delimiter": rd, "quote_char": "'", "escape_char": "\\"}
    t = pa.table({"id": [2**53 + 1, 2], "s": ["it's a|b\\c", "x"]})
    data = encode(fmt, t).decode()
    assert data == f"id|s{rd}9007199254740993|'it\\'s a|b\\\\c'{rd}2|'x'{rd}"
    df = pd.read_csv(io.StringIO(data), sep="|", lineterminator=rd if rd != "\n" else None, quotechar="'",
                     escapechar="\\", doublequote=False)
    assert df["id"].tolist() == [2**53 + 1, 2] and df["s"].tolist() == ["it's a|b\\c", "x"]
