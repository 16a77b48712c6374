"""The IVOA validator on the TAP face: ``stilts taplint`` must report 0 errors and 0 warnings.

taplint sends no token (like TOPCAT), so the server runs with anonymous access to public
contexts. The LOC stage needs an ObsLocTAP table we do not serve, so it is skipped.
"""

from __future__ import annotations

import asyncio
import re

import pytest


@pytest.fixture
def archive_config():
    return {"allow_anonymous": True}


async def test_taplint_reports_no_errors_and_no_warnings(jp_serverapp, http_server_client, jp_http_port, jp_base_url):
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}archive/tap"
    # the server runs on this test's loop: taplint must run beside it, not block it
    proc = await asyncio.create_subprocess_exec(
        "stilts", "taplint", f"tapurl={url}", "stages=-LOC", "report=EWF", "maxrepeat=10", "truncate=400",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    text = out.decode("utf-8", "replace")
    totals = re.search(r"Totals: Errors: (\d+); Warnings: (\d+); Failures: (\d+)", text)
    assert totals, text[-3000:]
    problems = [line for line in text.splitlines() if re.match(r"[EWF]-", line)]
    assert totals.groups() == ("0", "0", "0"), "\n".join(problems)
    # every stage ran, uploads and async included
    for stage in ("TMV", "TMS", "TMC", "CAP", "QGE", "QPO", "QAS", "UWS", "MDQ", "UPL", "EXA"):
        assert f"Section {stage}" in text


@pytest.mark.parametrize("sync", ["true", "false"])
async def test_stilts_tapquery_with_an_upload(jp_serverapp, http_server_client, jp_http_port, jp_base_url, demo_db, tmp_path, sync):
    """TOPCAT's engine as a client: a sync or async (UWS) query joining an uploaded table."""
    first = demo_db.sql("SELECT objid, ra, dec FROM PhotoObj ORDER BY objid LIMIT 3").fetchall()
    up = tmp_path / "up.csv"
    up.write_text("id,ra,dec\n" + "".join(f"{i},{r[1]!r},{r[2]!r}\n" for i, r in enumerate(first, start=1)))
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}archive/tap"
    adql = ("SELECT u.id, p.objid FROM TAP_UPLOAD.up AS u JOIN demo.PhotoObj AS p "
            "ON CONTAINS(POINT('ICRS', p.ra, p.dec), CIRCLE('ICRS', u.ra, u.dec, 1.0/3600)) = 1 ORDER BY u.id")
    proc = await asyncio.create_subprocess_exec(
        "stilts", "tapquery", f"tapurl={url}", f"adql={adql}", f"sync={sync}", "nupload=1", f"upload1={up}",
        "ufmt1=csv", "upname1=up", "ofmt=csv", "omode=out",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    lines = out.decode().strip().splitlines()
    assert lines[0] == "id,objid" and lines[1:] == [f"{i},{r[0]}" for i, r in enumerate(first, start=1)]
