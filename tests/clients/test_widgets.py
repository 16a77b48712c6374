"""The notebook widgets at state level, without a browser: a recording comm stands in for the front end,
buttons are clicked, and the tests check what reached the archive and what the widget shows."""

from __future__ import annotations

import comm
import pytest
from comm.base_comm import BaseComm

from jupyter_archive.widgets import JobProgress, QueryEditor, TableBrowser

from tests.support import DEMO_ROWS


class RecordingComm(BaseComm):
    """A comm that keeps the messages a browser would receive."""

    def __init__(self, *args, **kwargs):
        self.sent: list[tuple[str, dict]] = []
        super().__init__(*args, **kwargs)

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        self.sent.append((msg_type, data or {}))


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch):
    monkeypatch.setattr(comm, "create_comm", RecordingComm)


def sent_state(widget) -> dict:
    """The state the front end has been told, merged over all messages."""
    state: dict = {}
    for _kind, data in widget.comm.sent:
        state.update(data.get("state") or {})
    return state


def test_query_editor_runs_and_shows_rows(client):
    ed = QueryEditor(client, query="SELECT TOP 5 objid, ra, r FROM PhotoObj ORDER BY objid", language="tsql")
    assert "DEMO" in ed.context.options and ed.context.value == "DEMO"
    ed.run_button.click()
    assert list(ed.result.columns) == ["objid", "ra", "r"] and len(ed.result) == 5
    assert ed.error.value == "" and ed.info.value.startswith("5 rows")
    shown = ed.output.outputs[0]["data"]
    assert "text/html" in shown and str(ed.result["objid"][0]) in shown["text/html"]
    assert sent_state(ed.info)["value"] == ed.info.value  # the front end was told


def test_query_editor_shows_errors_inline(client):
    ed = QueryEditor(client, query="SELECT nope FROM PhotoObj")
    ed.run_button.click()
    assert ed.result is None and ed.output.outputs == ()
    assert "Query failed" in ed.error.value and "nope" in ed.error.value and "Traceback" not in ed.error.value
    ed.language.value = "adql"
    ed.sql.value = "SELEC 1"
    ed.run_button.click()
    assert "line 1" in ed.error.value


def test_query_editor_submits_a_job_into_mydb(client):
    ed = QueryEditor(client, query="SELECT objid, r FROM PhotoObj WHERE r < 18 ORDER BY r LIMIT 12")
    ed.into.value = "mydb.EditorBright"
    ed.submit_button.click()
    assert ed.job is not None and isinstance(ed.progress, JobProgress)
    assert ed.output.outputs[0]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] == ed.progress.model_id
    job = ed.progress.join(60)
    assert job.state == "completed" and ed.progress.bar.value == 1.0
    assert client.query("SELECT count(*) AS n FROM EditorBright", context="MyDB")["n"][0] == 12


def test_job_progress_follows_a_job_and_cancels(client):
    job = client.submit("SELECT 1 AS x", start_time="2099-01-01T00:00:00Z")
    w = JobProgress(job.id, client=client, watch=False)
    assert "scheduled" in w.status.value and w.cancel_button.disabled is False
    w.cancel_button.click()
    assert client.job(job.id).state == "canceled"  # the HTTP effect
    assert "canceled" in w.status.value and w.cancel_button.disabled and w.bar.bar_style == "warning"
    assert sent_state(w.cancel_button)["disabled"] is True


def test_job_progress_watches_until_done_and_shows_rows(client):
    job = client.submit("SELECT objid FROM PhotoObj LIMIT 321")
    w = JobProgress(job, watch=True)
    done = w.join(60)
    assert done.state == "completed" and w.bar.value == 1.0 and w.bar.bar_style == "success"
    assert "321 rows" in w.status.value and "completed" in w.status.value
    assert sent_state(w.bar)["value"] == 1.0


def test_job_progress_shows_a_failure(client):
    job = client.submit("SELECT CAST('x' AS INTEGER) AS boom")
    w = JobProgress(job, watch=True)
    assert w.join(60).state == "failed"
    assert w.bar.bar_style == "danger" and "x" in w.message.value and w.cancel_button.disabled


def test_table_browser_columns_paging_and_sorting(client, demo_dir):
    import duckdb

    con = duckdb.connect(str(demo_dir / "demo.duckdb"), read_only=True)
    tb = TableBrowser(client, context="DEMO", page_size=10)
    assert set(tb.table.options) == {"PhotoObj", "SpecObj"}
    tb.table.value = "PhotoObj"
    assert "<td>ra</td>" in tb.columns.value and "<td>deg</td>" in tb.columns.value
    assert tb.total == DEMO_ROWS and tb.position.value == f"rows 1–10 of {DEMO_ROWS:,}"
    assert tb.prev_button.disabled and not tb.next_button.disabled
    tb.next_button.click()
    want = [r[0] for r in con.sql("SELECT objid FROM PhotoObj LIMIT 10 OFFSET 10").fetchall()]
    assert tb.page["objid"].tolist() == want and str(want[0]) in tb.preview.value
    tb.sort.value = "r"
    tb.descending.value = True
    assert tb.offset == 0
    tb.next_button.click()
    want = [r[0] for r in con.sql("SELECT objid FROM PhotoObj ORDER BY r DESC LIMIT 10 OFFSET 10").fetchall()]
    assert tb.page["objid"].tolist() == want
    tb.prev_button.click()
    assert tb.offset == 0 and len(tb.page) == 10
    con.close()


def test_table_browser_pages_a_ten_million_row_table_on_the_server(client):
    client.query("CREATE OR REPLACE TABLE Big AS SELECT range AS i, range % 7 AS k FROM range(10000000)", context="MyDB")
    tb = TableBrowser(client, context="MyDB", table="Big", page_size=25)
    assert tb.total == 10_000_000 and len(tb.page) == 25
    tb.go(9_999_990)  # the last page: only its rows cross the wire
    assert tb.page["i"].tolist() == list(range(9_999_990, 10_000_000))
    assert tb.position.value == "rows 9,999,991–10,000,000 of 10,000,000" and tb.next_button.disabled
    tb.sort.value = "i"
    tb.descending.value = True
    assert tb.page["i"].tolist()[:3] == [9_999_999, 9_999_998, 9_999_997]
    client.drop("Big")


def test_cutout_viewer_cuts_and_switches_planes(client):
    import io

    from PIL import Image

    from jupyter_archive.widgets import CutoutViewer

    first = client.images()[0]
    v = CutoutViewer(client, ra=first["ra"], dec=first["dec"], size=20.0)
    v.cut_button.click()
    assert v.error.value == "" and first["id"] in v.image_id.options and v.image_id.value
    png = v.image.value
    want = client.cutout(first["ra"], first["dec"], 20.0, image=v.image_id.value)
    pixels = (want[0].data if want[0].data is not None else want[1].data).shape
    assert Image.open(io.BytesIO(png)).size == (pixels[1], pixels[0])  # the PNG is the FITS cutout's size
    assert "data" in v.info.value
    v.plane.value = "variance"  # shows at once
    assert v.image.value != png and "variance" in v.info.value
    v.ra.value, v.dec.value = 0.0, -89.0
    v.cut_button.click()
    assert "no calexp image covers" in v.error.value and v.info.value == ""


def test_job_progress_for_a_job_another_face_submitted(client, live_server):
    import requests

    r = requests.put(live_server.url + "archive/casjobs/contexts/DEMO/jobs", json={"Query": "SELECT TOP 4 objid FROM PhotoObj"},
                     headers={"Authorization": f"token {live_server.token}", "Accept": "text/plain"}, timeout=30)
    w = JobProgress(int(r.text), client=client)  # a CasJobs job id, followed through the native API
    assert w.join(60).state == "completed" and "4 rows" in w.status.value
