"""Who is asking, and the URLs by which they reach the archive.

A request is made by a Jupyter user (Jupyter's own auth: token or cookie), or by an archive
user sending ``X-Auth-Token``; anonymous requests reach public, read-only contexts only when
``ArchiveApp.allow_anonymous`` is on. Requests authenticated by header skip the XSRF check
(the header cannot be forged cross-site).

A request may also come through another server on this archive's data dir (faces/proxy.py):
it carries the secret this process keeps in the data dir (core/ownership.py), the caller's
host, scheme and base URL (for the links in answers) and, for a caller that server's Jupyter
login vouches for, the archive user's name. Without the right secret none of it is believed.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from jupyter_server.auth.decorator import allow_unauthenticated

from ...core.catalog import ANONYMOUS, Principal
from ...core.errors import ArchiveError

AUTH_HEADER = "X-Auth-Token"
# What a forwarding server on the same data dir says (faces/proxy.py), believed only with the secret.
FORWARD_PREFIX = "x-archive-forward-"
FORWARD_SECRET = "X-Archive-Forward-Secret"
FORWARDED_USER = "X-Archive-Forward-User"
FORWARDED_ADMIN = "X-Archive-Forward-Admin"
FORWARDED_HOST = "X-Archive-Forward-Host"
FORWARDED_PROTO = "X-Archive-Forward-Proto"
FORWARDED_BASE = "X-Archive-Forward-Base"


def endpoint(*, anonymous: bool = False):
    """Mark a handler method as an archive endpoint.

    Jupyter's own check is replaced (``allow_unauthenticated``) by ours, which also accepts
    archive tokens; ``anonymous`` lets unauthenticated callers in when the archive allows it.
    """

    def wrap(method: Callable):
        @functools.wraps(method)
        async def inner(self: Callers, *args, **kwargs):
            if self._finished:
                return None  # answered while the body arrived (LimitedBody's 413)
            self.principal = self.authenticate(anonymous)
            return await method(self, *args, **kwargs)

        return allow_unauthenticated(inner)

    return wrap


class Callers:
    """Part of ``ArchiveHandler``: the principal of a request, and the archive's URLs as its caller sees them."""

    principal: Principal = ANONYMOUS

    def authenticate(self, anonymous_ok: bool) -> Principal:
        """Who is asking (``anonymous_ok``: anonymous callers let in when the archive allows them)."""
        forwarded = self._forwarded_user()
        token = self.request.headers.get(AUTH_HEADER)
        if token:
            p = self.archive.users.principal_for_token(token)
            if p is None:
                raise ArchiveError("unauthorized", "invalid or expired X-Auth-Token", 401)
            return p
        if forwarded is not None:
            return self.archive_app.principal_for_forwarded_user(*forwarded)
        user = self.current_user
        if user is not None:
            return self.archive_app.principal_for_jupyter_user(user)
        if anonymous_ok and self.archive.config.allow_anonymous:
            return ANONYMOUS
        raise ArchiveError(
            "permission", "authentication required: log in to Jupyter, pass its token, or send an X-Auth-Token header", 403
        )

    def _forwarded_user(self) -> tuple[str, bool] | None:
        """For a request forwarded by another server on this data dir: take its word for the
        caller's address and return the archive user (name, admin) it vouches for, if any."""
        headers = self.request.headers
        secret = headers.get(FORWARD_SECRET)
        if secret is None and not any(name.lower().startswith(FORWARD_PREFIX) for name in headers):
            return None
        own = self.archive.lock.secret
        if not (secret and own and hmac.compare_digest(secret.encode(), own.encode())):
            raise ArchiveError("unauthorized", "wrong forwarding secret: only a server on this archive's data dir forwards requests", 401)
        self.request.host = headers.get(FORWARDED_HOST) or self.request.host
        if headers.get(FORWARDED_PROTO) in ("http", "https"):
            self.request.protocol = headers[FORWARDED_PROTO]
        base = headers.get(FORWARDED_BASE) or ""
        if base.startswith("/") and base.endswith("/"):
            self._forwarded_base = base
        user = headers.get(FORWARDED_USER)
        return None if user is None else (unquote(user), headers.get(FORWARDED_ADMIN) == "1")

    @property
    def base_url(self) -> str:
        """The base URL the caller used (the forwarding server's, for a forwarded request)."""
        return getattr(self, "_forwarded_base", None) or super().base_url

    def archive_url(self, *parts: Any, absolute: bool = False) -> str:
        """``{base}archive/<parts>`` as the caller reaches it (a forwarded request: through the
        forwarding server), with its scheme and host when ``absolute``. Parts are joined as
        given: a face quotes those that need it."""
        path = self.base_url.rstrip("/") + "/archive/" + "/".join(str(p) for p in parts)
        return f"{self.request.protocol}://{self.request.host}{path}" if absolute else path

    def check_xsrf_cookie(self) -> None:
        # Header-authenticated and anonymous requests carry no cookie to forge; a forwarding
        # server checked its own caller's (and the secret is checked at authentication).
        if self.request.headers.get(AUTH_HEADER) or self.request.headers.get(FORWARD_SECRET):
            return None
        if hasattr(self, "_jupyter_current_user") and self._jupyter_current_user is None:
            return None
        return super().check_xsrf_cookie()
