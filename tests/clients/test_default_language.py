"""One default query language (``core.languages.DEFAULT_LANGUAGE``) for the native API, the client,
the magic and the widgets, and a CasJobs-style ``TOP n`` query works in it everywhere."""

from __future__ import annotations

import json
import re

from jupyter_archive.core.languages import DEFAULT_LANGUAGE
from jupyter_archive.widgets import QueryEditor

from tests.support import body_json

TOP3 = "SELECT TOP 3 objid FROM PhotoObj ORDER BY objid"
FIRST3 = "SELECT objid FROM PhotoObj ORDER BY objid LIMIT 3"


def compiled_languages(job) -> list[str]:
    """The languages the server's log of a job says its query was compiled in."""
    return re.findall(r"compiled (\w+):", "\n".join(job.log()))


async def test_native_api_without_a_language(fetch, demo_db):
    body = json.dumps({"query": TOP3, "context": "DEMO"})
    compiled = await fetch("archive", "api", "compile", method="POST", body=body)
    assert compiled.code == 200 and body_json(compiled)["language"] == DEFAULT_LANGUAGE
    resp = await fetch("archive", "api", "query", method="POST", body=body)
    assert resp.code == 200, resp.body
    assert [row[0] for row in body_json(resp)["data"]] == [r[0] for r in demo_db.sql(FIRST3).fetchall()]


def test_client(client):
    want = client.query(FIRST3)["objid"].tolist()
    assert client.query(TOP3)["objid"].tolist() == want
    assert client.compile(TOP3)["language"] == DEFAULT_LANGUAGE
    job = client.submit(TOP3).wait(60)
    assert compiled_languages(job) == [DEFAULT_LANGUAGE] and job.result()["objid"].tolist() == want


def test_magic(ip, client):
    ip.run_cell(f"%%archive -o rows\n{TOP3}")
    assert ip.user_ns["rows"]["objid"].tolist() == client.query(FIRST3)["objid"].tolist()
    ip.run_cell(f"%%archive --job -o job\n{TOP3}")
    job = ip.user_ns["job"].wait(60)
    assert compiled_languages(job) == [DEFAULT_LANGUAGE]


def test_query_editor(client):
    editor = QueryEditor(client, query=TOP3)
    assert editor.language.value == DEFAULT_LANGUAGE
    assert editor.run()["objid"].tolist() == client.query(FIRST3)["objid"].tolist()
    job = editor.submit().wait(60)
    assert compiled_languages(job) == [DEFAULT_LANGUAGE]
