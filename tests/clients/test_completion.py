"""Completion of %%archive cells through a real kernel (complete_request), and of the QueryEditor, from the real server."""

from __future__ import annotations

import os

import pytest
from jupyter_client.manager import start_new_kernel

from jupyter_archive.widgets import QueryEditor


@pytest.fixture(scope="module")
def kernel(live_server):
    """A real IPython kernel with the extension loaded, finding the live server from its environment."""
    env = {**os.environ, "JUPYTER_ARCHIVE_URL": live_server.url, "JUPYTER_ARCHIVE_TOKEN": live_server.token}
    manager, kc = start_new_kernel(kernel_name="python3", env=env)
    reply = kc.execute_interactive("%load_ext jupyter_archive", timeout=60)
    assert reply["content"]["status"] == "ok"
    yield kc
    kc.stop_channels()
    manager.shutdown_kernel(now=True)


def _complete(kc, cell: str) -> tuple[str, list[str]]:
    """(the text the kernel replaces, its matches) for a cell whose cursor is marked ``|``."""
    cursor = cell.index("|")
    code = cell.replace("|", "")
    reply = kc.complete(code, cursor, reply=True, timeout=60)["content"]
    assert reply["status"] == "ok" and reply["cursor_end"] == cursor
    return code[reply["cursor_start"]:cursor], reply["matches"]


def test_tables_of_the_cells_context_as_its_language_names_them(kernel):
    assert _complete(kernel, "%%archive\nSELECT * FROM Ph|") == ("Ph", ["PhotoObj"])
    assert _complete(kernel, "%%archive --lang adql\nSELECT * FROM |")[1] == ["demo.PhotoObj", "demo.SpecObj"]
    assert _complete(kernel, "%%archive -l adql -c DEMO\nSELECT * FROM demo.S|") == ("S", ["SpecObj"])


def test_columns_after_an_alias_and_in_the_select_list(kernel, client):
    photo = [c["name"] for c in client.schema("PhotoObj").to_dict("records")]
    spec = client.schema("SpecObj")["name"].tolist()
    cell = "%%archive --lang adql\nSELECT p.|, s.z\nFROM demo.PhotoObj AS p JOIN demo.SpecObj AS s ON s.objid = p.objid"
    assert _complete(kernel, cell) == ("", photo)
    assert _complete(kernel, cell.replace("s.z", "s.c|").replace("p.|", "p.ra")) == ("c", [c for c in spec if c.startswith("c")])
    typed, matches = _complete(kernel, "%%archive\nSELECT TOP 5 objid, e|\nFROM PhotoObj WHERE r < 18")
    assert typed == "e" and [m for m in matches if m in photo] == [c for c in photo if c.startswith("e")] != []
    assert "exp" in matches  # and the functions beginning so, in the case typed


def test_functions_of_the_language(kernel):
    _, adql = _complete(kernel, "%%archive --lang adql\nSELECT * FROM demo.PhotoObj WHERE 1 = CONTAINS(POINT(ra, dec), CI|")
    assert adql == ["CIRCLE"]
    _, sql = _complete(kernel, "%%archive\nSELECT co| FROM PhotoObj")
    assert {"count", "coalesce", "cos"} <= set(sql) and "coord1" not in sql


def test_other_cells_keep_pythons_completion(kernel):
    # Without Jedi (seconds to warm up on a kernel that loaded pandas): IPython's own Python matcher.
    kernel.execute_interactive("%config IPCompleter.use_jedi = False", timeout=60)
    assert _complete(kernel, "impo|") == ("impo", ["import"])
    assert "PhotoObj" not in _complete(kernel, "x = 1\nSELECT * FROM Ph|")[1]


def test_the_query_editor_offers_the_same(client):
    editor = QueryEditor(client, language="adql")
    assert [m.text for m in editor.complete("SELECT s.| FROM demo.SpecObj s".replace("|", ""), 9).matches] == \
        client.schema("SpecObj")["name"].tolist()
    editor.sql.value = "SELECT TOP 3 objid FROM demo.Pho"
    assert editor.suggestions.options == ("PhotoObj",) and editor.suggestions.layout.display is None
    editor.suggestions.value = "PhotoObj"  # picking a suggestion puts it in
    assert editor.sql.value == "SELECT TOP 3 objid FROM demo.PhotoObj"
    assert editor.run()["objid"].size == 3
    editor.sql.value = "SELECT TOP 3 objid FROM "
    assert editor.suggestions.options == () and editor.suggestions.layout.display == "none"


def test_a_new_table_is_offered_once_the_kept_metadata_is_revalidated(client):
    def tables():
        return [m.text for m in client.complete("SELECT * FROM ", context="MyDB").matches]

    assert "CompletionNew" not in tables()
    client.query("CREATE TABLE CompletionNew AS SELECT 1 AS one", context="MyDB")
    try:
        client.described("MyDB", max_age=0)  # as when the kept copy is older than max_age
        assert "CompletionNew" in tables()
        assert [m.text for m in client.complete("SELECT CompletionNew.o", context="MyDB").matches] == ["one"]
    finally:
        client.drop("CompletionNew")
