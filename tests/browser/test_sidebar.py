"""The Archive sidebar in a real JupyterLab, in a real Chromium, on the demo archive (issue 8).

The tests run in file order on one page, as a user would go: open the panel and browse, preview
a table, put a query cell in a notebook and run it, submit a job from the notebook and watch it
complete in the panel, cancel a long job from the panel, use the palette, switch to the dark
theme, and finally check that the page logged no console errors. Screenshots of the panel are
saved in test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.support import ARTIFACTS, DEMO_ROWS

# How long to wait for things that start processes or run queries (generous: a loaded CI machine).
SLOW = 120_000
# A query that keeps the engine busy far longer than any test waits: cancelled from the panel.
LONG_QUERY = "SELECT count(*) AS n FROM range(10000000000000) a"
# The most rows the preview's plots draw; past it a random sample of this many (labextension/src/plot.ts).
PLOT_LIMIT = 10_000
assert DEMO_ROWS > PLOT_LIMIT  # so the demo table's plots are of a sample


def panel(page):
    return page.locator("#jp-archive-sidebar")


def row(page, key: str):
    return page.locator(f'.jp-ArchiveTree-row[data-key="{key}"]')


def job_row(page, job_id):
    return page.locator(f'.jp-ArchiveJob[data-job-id="{job_id}"]')


def run_command(page, command: str, args: dict | None = None):
    """Run a JupyterLab command, as its menu item or shortcut would."""
    page.evaluate("([c, a]) => window.jupyterapp.commands.execute(c, a)", [command, args or {}])


NOTEBOOK_JS = "Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.sessionContext && w.content.widgets)"


def cell_sources(page) -> list[str]:
    """The cells of the (one) open notebook, whichever main-area tab is current."""
    return page.evaluate(f"() => {NOTEBOOK_JS}.content.widgets.map(c => c.model.sharedModel.getSource())")


def add_cell(page, source: str):
    """Append a code cell with `source` to the current notebook and make it the active cell."""
    page.evaluate(
        """(src) => { const nb = window.jupyterapp.shell.currentWidget.content;
                      nb.activeCellIndex = nb.widgets.length - 1;
                      return window.jupyterapp.commands.execute('notebook:insert-cell-below').then(() => {
                        nb.activeCell.model.sharedModel.setSource(src); }); }""",
        source,
    )


def cell_output(page, index: int):
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea")


def test_panel_shows_contexts_tables_and_columns(page):
    page.locator('li[data-id="jp-archive-sidebar"]').click()
    expect(panel(page)).to_be_visible()
    expect(row(page, "DEMO")).to_be_visible()
    expect(row(page, "MyDB")).to_be_visible()
    row(page, "DEMO").locator(".jp-ArchiveTree-label").click()
    expect(row(page, "DEMO/PhotoObj")).to_be_visible()
    expect(row(page, "DEMO")).to_have_attribute("aria-expanded", "true")
    row(page, "DEMO/PhotoObj").locator(".jp-ArchiveTree-label").click()
    ra = row(page, "DEMO/PhotoObj/ra")
    expect(ra).to_be_visible()
    expect(ra.locator(".jp-ArchiveTree-detail")).to_contain_text("deg")
    expect(ra.locator(".jp-ArchiveTree-description")).not_to_be_empty()
    panel(page).screenshot(path=str(ARTIFACTS / "archive-panel.png"))

    # The filter keeps matching tables and columns, with the way to them open.
    page.fill(".jp-ArchivePanel-filter", "dec")
    expect(row(page, "DEMO/PhotoObj/dec")).to_be_visible()
    expect(row(page, "DEMO/PhotoObj/ra")).to_have_count(0)
    page.fill(".jp-ArchivePanel-filter", "")
    expect(row(page, "DEMO/PhotoObj/ra")).to_be_visible()
    row(page, "DEMO/PhotoObj").locator(".jp-ArchiveTree-label").click()  # close the columns again
    expect(row(page, "DEMO/PhotoObj/ra")).to_have_count(0)


def test_tree_is_keyboard_reachable(page):
    # A row focused otherwise than by a click or an arrow (a screen reader, a script) keeps the focus when the tree
    # renders again: opening MyDB renders it (the test before clicked DEMO/PhotoObj last, where the focus once went).
    row(page, "MyDB").focus()
    page.keyboard.press("Enter")
    expect(row(page, "MyDB")).to_have_attribute("aria-expanded", "true")
    expect(row(page, "MyDB")).to_be_focused()
    page.keyboard.press("Enter")
    expect(row(page, "MyDB")).to_have_attribute("aria-expanded", "false")
    row(page, "DEMO").focus()
    expect(row(page, "DEMO")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(row(page, "DEMO/PhotoObj")).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(row(page, "DEMO/PhotoObj")).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("ArrowLeft")
    expect(row(page, "DEMO/PhotoObj")).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("ArrowLeft")
    expect(row(page, "DEMO")).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("p")  # P previews the focused table
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="DEMO.PhotoObj")
    expect(tab).to_have_count(1)
    tab.locator(".lm-TabBar-tabCloseIcon").click()
    expect(tab).to_have_count(0)


def test_preview_from_context_menu_pages_rows(page):
    row(page, "DEMO/PhotoObj").click(button="right")
    page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile("^Preview$")).click()
    preview = page.locator(".jp-ArchivePreview:visible")
    expect(preview.locator(".jp-ArchivePreview-status")).to_have_text(f"Rows 1–100 of {DEMO_ROWS:,}")
    expect(preview.locator("th", has_text="objid")).to_have_count(1)
    expect(preview.locator("tbody tr")).to_have_count(100)
    preview.get_by_role("button", name="Next page").click()
    expect(preview.locator(".jp-ArchivePreview-status")).to_have_text(re.compile(r"Rows 101–200"))
    # Asking again (the line's Preview button) brings the open preview back, at its page.
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Launcher").click()
    row(page, "DEMO/PhotoObj").hover()
    row(page, "DEMO/PhotoObj").get_by_role("button", name="Preview PhotoObj").click()
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="DEMO.PhotoObj")).to_have_count(1)
    expect(page.locator(".jp-ArchivePreview:visible .jp-ArchivePreview-status")).to_have_text(re.compile(r"Rows 101–200"))

    # A header sorts on the server (from the first page); again, the other way.
    def first_r():
        col = preview.locator("th").all_inner_texts().index(preview.locator("th[aria-sort]:not([aria-sort=none])").inner_text())
        return float(preview.locator("tbody tr").first.locator("td").nth(col).inner_text())

    preview.get_by_role("button", name="Sort by r", exact=True).click()
    expect(preview.locator("th[aria-sort=ascending]")).to_have_count(1)
    expect(preview.locator(".jp-ArchivePreview-status")).to_have_text(re.compile(r"^Rows 1–100"))
    lowest = first_r()
    preview.get_by_role("button", name="Sort by r", exact=True).click()
    expect(preview.locator("th[aria-sort=descending]")).to_have_count(1)
    page.wait_for_function(
        "(low) => { const p = document.querySelector('.jp-ArchivePreview:not(.lm-mod-hidden)');"
        " const i = [...p.querySelectorAll('th')].findIndex(t => t.getAttribute('aria-sort') === 'descending');"
        " return Number(p.querySelector('tbody tr').children[i].textContent) > low; }",
        arg=lowest,
    )


def test_preview_draws_a_sky_plot_and_a_histogram(page, lab):
    # The preview left by the test above: DEMO.PhotoObj sorted by r, descending. The table has more rows
    # than a plot draws, so the plots draw a random sample of the whole table, whatever the sort.
    preview = page.locator(".jp-ArchivePreview:visible")
    preview.get_by_role("button", name="Show the rows on the sky (RA, Dec)").click()
    sky = preview.locator("svg.jp-ArchivePlot-sky")
    expect(sky.locator(".jp-ArchivePlot-points circle")).to_have_count(PLOT_LIMIT)
    note = f"random sample of {PLOT_LIMIT:,} of {DEMO_ROWS:,} rows"
    expect(sky.locator(".jp-ArchivePlot-note")).to_have_text(note)
    expect(preview.get_by_role("button", name="Next page")).to_be_hidden()
    # RA grows to the left: the x-axis labels fall from left to right.
    xs = sky.locator(".jp-ArchivePlot-xtick").evaluate_all("ts => ts.map(t => [Number(t.getAttribute('x')), Number(t.textContent)])")
    labels = [v for _x, v in sorted(xs)]
    assert len(labels) >= 3 and labels == sorted(labels, reverse=True)
    preview.screenshot(path=str(ARTIFACTS / "archive-preview-sky.png"))
    preview.get_by_label("Colour the points by", exact=True).select_option("g")
    expect(sky.locator(".jp-ArchivePlot-colourbar")).to_have_count(1)
    expect(preview.locator("svg.jp-ArchivePlot-sky .jp-ArchivePlot-points circle[style^='fill: rgb(']")).to_have_count(PLOT_LIMIT)
    preview.screenshot(path=str(ARTIFACTS / "archive-preview-sky-coloured.png"))

    preview.get_by_role("button", name="Show a histogram of a column").click()
    preview.get_by_label("Histogram of", exact=True).select_option("r")
    bars = preview.locator("svg.jp-ArchivePlot-histogram .jp-ArchivePlot-bars rect")
    expect(bars.first).to_be_visible()
    assert bars.count() > 5
    assert sum(int(n) for n in bars.evaluate_all("bs => bs.map(b => b.dataset.count)")) == PLOT_LIMIT
    expect(preview.locator("svg.jp-ArchivePlot-histogram .jp-ArchivePlot-note")).to_have_text(note)
    # Not the first rows of the sort (the faintest half): the sample reaches below the table's median r.
    median = lab.api("POST", "query", json={"query": "SELECT median(r) AS m FROM PhotoObj", "context": "DEMO"})["data"][0][0]
    ticks = preview.locator("svg.jp-ArchivePlot-histogram .jp-ArchivePlot-xtick").evaluate_all("ts => ts.map(t => Number(t.textContent))")
    assert len(ticks) >= 3 and min(ticks) < median, (ticks, median)
    preview.screenshot(path=str(ARTIFACTS / "archive-preview-histogram.png"))

    preview.get_by_role("button", name="Show the rows as a table").click()
    expect(preview.locator("tbody tr")).to_have_count(100)
    expect(preview.locator(".jp-ArchivePreview-status")).to_have_text(re.compile(r"^Rows 1–100"))


def test_query_in_notebook_inserts_a_cell_that_runs(page):
    row(page, "DEMO/PhotoObj").click(button="right")
    page.locator(".lm-Menu .lm-Menu-itemLabel", has_text="Query in notebook").click()
    expect(page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")).to_have_count(2)
    sources = cell_sources(page)
    assert sources == ["%load_ext jupyter_archive", "%%archive --context DEMO\nSELECT TOP 100 * FROM PhotoObj"]
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.ready.then(() => true)")
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'", timeout=SLOW
    )
    run_command(page, "notebook:run-all-cells")
    out = cell_output(page, 1)
    expect(out).to_contain_text("objid", timeout=SLOW)
    expect(out.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)


def test_job_submitted_from_notebook_completes_in_panel(page, lab):
    before = {j["id"] for j in lab.api("GET", "jobs")["jobs"]}
    row(page, "MyDB").locator(".jp-ArchiveTree-label").click()
    expect(row(page, "MyDB")).to_have_attribute("aria-expanded", "true")
    expect(row(page, "MyDB/Bright19")).to_have_count(0)
    add_cell(page, "%%archive --context DEMO --job --into mydb.Bright19\nSELECT objid, ra, dec, r FROM PhotoObj WHERE r < 19")
    run_command(page, "notebook:run-cell")
    # The panel polls: the new job shows up without a reload and reaches completed.
    new = page.locator(".jp-ArchiveJob").first
    expect(new).to_have_attribute("data-state", "completed", timeout=SLOW)
    job_id = int(new.get_attribute("data-job-id"))
    assert job_id not in before
    expect(new.locator(".jp-ArchiveJob-progress")).to_have_attribute("aria-valuenow", "100")
    # The table the job wrote shows up in the open MyDB without a reload.
    expect(row(page, "MyDB/Bright19")).to_be_visible()
    expect(new.locator(".jp-ArchiveJob-meta")).to_have_text(re.compile(r"^\d+(\.\d)? (ms|s) · [\d,]+ rows · native$"))
    new.locator(".jp-ArchiveJob-title").click()
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=f"Job {job_id}")
    expect(tab).to_have_count(1)
    expect(page.locator(".jp-ArchivePreview:visible th", has_text="objid")).to_have_count(1)


def test_cancel_and_delete_a_long_job_from_panel(page, lab):
    # Submitted through another face (CasJobs): the panel lists the user's jobs of every face.
    resp = lab.http.put(f"{lab.url}archive/casjobs/contexts/DEMO/jobs", json={"Query": LONG_QUERY}, timeout=30)
    resp.raise_for_status()
    job = {"id": int(resp.text)}
    item = job_row(page, job["id"])
    expect(item).to_have_attribute("data-state", "running", timeout=SLOW)
    expect(item.locator(".jp-ArchiveJob-meta")).to_contain_text("casjobs")
    # The bar follows the engine's progress while the job runs.
    page.wait_for_function(
        "(id) => Number(document.querySelector(`.jp-ArchiveJob[data-job-id='${id}'] [role=progressbar]`)"
        ".getAttribute('aria-valuenow')) > 0",
        arg=job["id"], timeout=SLOW,
    )
    item.get_by_role("button", name=f"Cancel job {job['id']}").click()
    expect(item).to_have_attribute("data-state", "canceled", timeout=SLOW)
    assert lab.api("GET", f"jobs/{job['id']}")["state"] == "canceled"
    panel(page).screenshot(path=str(ARTIFACTS / "archive-panel-jobs.png"))
    item.get_by_role("button", name=f"Delete job {job['id']}").click()
    expect(item).to_have_count(0)
    assert job["id"] not in {j["id"] for j in lab.api("GET", "jobs")["jobs"]}


def test_palette_commands(page):
    page.keyboard.press("Control+Shift+C")
    palette = page.locator(".lm-CommandPalette-input")
    expect(palette).to_be_focused()
    palette.fill("Archive: Show jobs")
    expect(page.locator(".lm-CommandPalette-item", has_text="Archive: Show jobs")).to_be_visible()
    palette.press("Enter")
    expect(page.locator(".jp-ArchiveJobs button:focus")).to_have_count(1)

    # "New query" queries the table selected in the tree (the one the notebook's job made).
    row(page, "MyDB/Bright19").locator(".jp-ArchiveTree-label").click()
    before = len(cell_sources(page))
    page.keyboard.press("Control+Shift+C")
    palette.fill("Archive: New query")
    expect(page.locator(".lm-CommandPalette-item", has_text="Archive: New query")).to_be_visible()
    palette.press("Enter")
    page.wait_for_function(f"() => {NOTEBOOK_JS}.content.widgets.length > {before}")
    assert cell_sources(page)[-1] == "%%archive --context MyDB\nSELECT TOP 100 * FROM Bright19"
    run_command(page, "notebook:run-cell")
    expect(cell_output(page, before)).to_contain_text("objid", timeout=SLOW)


def test_history_lists_runs_again_and_inserts(page, lab):
    """A query run through the API is in the panel's History; "Run again" previews its rows;
    "Insert" puts it as a %%archive cell below the notebook's active cell (issue 18)."""
    text = "SELECT objid, ra FROM PhotoObj ORDER BY objid LIMIT 7"
    lab.api("POST", "query", json={"query": text, "context": "DEMO"})
    run_command(page, "archive:show-jobs")  # the history refreshes with the jobs
    entry = panel(page).locator(".jp-ArchiveHistory-entry", has_text=text).first
    expect(entry.locator(".jp-ArchiveJob-meta")).to_contain_text("7 rows")
    expect(entry).to_have_attribute("data-outcome", "ok")
    entry.get_by_role("button", name="Run this query again and preview its rows").click()
    preview = page.locator(".jp-ArchivePreview:visible")
    expect(preview.locator("tbody tr")).to_have_count(7)
    expect(preview.locator("th", has_text="ra")).to_have_count(1)
    preview.get_by_role("button", name="Show a histogram of a column").click()  # the plot's rows: read again
    expect(preview.locator("svg.jp-ArchivePlot-histogram .jp-ArchivePlot-bars rect").first).to_be_visible()
    # listed twice: as first run and as run again; the plot's read is no new run
    assert [e["query"] for e in lab.api("GET", "history", params={"q": text})["history"]] == [text, text]
    page.evaluate(f"() => {{ {NOTEBOOK_JS}.content.activeCellIndex = 0; }}")
    before = cell_sources(page)
    entry.get_by_role("button", name="Insert this query as a %%archive cell in the notebook").click()
    page.wait_for_function(f"(n) => {NOTEBOOK_JS}.content.widgets.length > n", arg=len(before))
    assert cell_sources(page) == [before[0], f"%%archive --context DEMO\n{text}", *before[1:]]


def test_dark_theme_styles_the_panel(page):
    page.locator('li[data-id="jp-archive-sidebar"]').click() if not panel(page).is_visible() else None
    light = panel(page).evaluate("n => getComputedStyle(n).backgroundColor")
    run_command(page, "apputils:change-theme", {"theme": "JupyterLab Dark"})
    page.wait_for_selector("body[data-jp-theme-light='false']", state="attached")
    page.wait_for_function(
        "(light) => getComputedStyle(document.querySelector('#jp-archive-sidebar')).backgroundColor !== light", arg=light
    )
    panel(page).screenshot(path=str(ARTIFACTS / "archive-panel-dark.png"))
    run_command(page, "apputils:change-theme", {"theme": "JupyterLab Light"})
    page.wait_for_selector("body[data-jp-theme-light='true']", state="attached")


def test_no_console_errors(console):
    assert console.errors == []


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request, page):
    """Keeps what the page looked like when a test failed, next to the panel screenshots."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        page.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}.png"))
