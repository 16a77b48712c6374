"""Fixtures of the TAP face's tests."""

from __future__ import annotations

import pytest
import pyvo
import requests


@pytest.fixture
def tap_session(jp_serverapp, http_server_client, jp_http_port, jp_base_url, jp_auth_header):
    """(TAP base URL, requests session carrying the server's token) for pyvo.

    ``http_server_client`` is what makes the test server listen on ``jp_http_port``."""
    s = requests.Session()
    s.headers.update(jp_auth_header)
    yield f"http://127.0.0.1:{jp_http_port}{jp_base_url}archive/tap", s
    s.close()


@pytest.fixture
def tap_service(tap_session):
    """A pyvo TAPService on the archive's TAP face, signed in as the server's user."""
    url, session = tap_session
    return pyvo.dal.TAPService(url, session=session)
