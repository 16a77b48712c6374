"""The access log and request metrics of the archive's handlers: as Jupyter's, with a success's line formed
only when debug logging is on (faces/base/handler.py, ArchiveHandler._log)."""

from __future__ import annotations

import json
import logging
import re

from jupyter_server.prometheus.metrics import HTTP_REQUEST_DURATION_SECONDS


def _counts() -> dict[tuple[str, str, str], float]:
    """(method, handler, status) -> the number of requests Jupyter's duration histogram has seen."""
    out = {}
    for metric in HTTP_REQUEST_DURATION_SECONDS.collect():
        for s in metric.samples:
            if s.name.endswith("_count"):
                out[(s.labels["method"], s.labels["handler"], s.labels["status_code"])] = s.value
    return out


async def query(fetch, text):
    return await fetch("archive", "api", "query", method="POST", body=json.dumps({"query": text, "context": "DEMO"}))


async def test_successes_are_timed_and_logged_only_at_debug_level_and_failures_always(fetch, jp_serverapp, caplog):
    key = ("POST", "jupyter_archive.faces.native.QueryHandler", "200")
    before = _counts().get(key, 0)
    caplog.set_level(logging.DEBUG)
    app_log = jp_serverapp.log
    level = app_log.level
    try:
        app_log.setLevel(logging.INFO)
        for _ in range(3):
            assert (await query(fetch, "SELECT 1 AS one")).code == 200
        assert _counts()[key] == before + 3  # Jupyter's Prometheus histogram still counts every success
        assert not [r for r in caplog.records if "/archive/api/query" in r.getMessage()]
        bad = await query(fetch, "SELEC nonsense")
        assert bad.code == 400
        assert _counts()[("POST", key[1], "400")] >= 1
        warned = [r for r in caplog.records if "/archive/api/query" in r.getMessage()]
        assert [r.levelno for r in warned] == [logging.WARNING] and warned[0].getMessage().startswith("400 POST ")

        caplog.clear()
        app_log.setLevel(logging.DEBUG)
        assert (await query(fetch, "SELECT 2 AS two")).code == 200
        lines = [r.getMessage() for r in caplog.records if "/archive/api/query" in r.getMessage()]
        assert len(lines) == 1 and re.match(r"200 POST \S*/archive/api/query \(\S+@127\.0\.0\.1\) [\d.]+ms$", lines[0]), lines
        assert _counts()[key] == before + 4
    finally:
        app_log.setLevel(level)


async def test_answers_carry_jupyters_content_security_policy_for_their_base_url(fetch, jp_base_url):
    # Formed once per handler class and base URL (ArchiveHandler.content_security_policy), as Jupyter forms it per request
    want = f"frame-ancestors 'self'; report-uri {jp_base_url.rstrip('/')}/api/security/csp-report; default-src 'none'"
    for _ in range(2):
        assert (await query(fetch, "SELECT 1 AS one")).headers["Content-Security-Policy"] == want
    r = await fetch("archive", "api", "contexts", "NOPE", "tables", raise_error=False)
    assert r.code == 404 and r.headers["Content-Security-Policy"] == want
