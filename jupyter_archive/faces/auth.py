"""Log in with a password and get an archive token (``{base}archive/auth``), shaped like Keystone v3.

SciServer's ``Authentication.login`` posts ``{"auth":{"identity":{"password":{"user":
{"name","password"}}}}}`` to its ``AuthenticationURL`` and reads the token from the
``X-Subject-Token`` header of a 200; ``getKeystoneUserWithToken`` then GETs
``{AuthenticationURL}/{token}`` with no credentials at all and reads
``token.user.name`` and ``token.user.id``. Both therefore work without prior auth and
without XSRF cookies. Errors are Keystone's ``{"error": {"code", "title", "message"}}``.

``PUT users/{name}/password`` sets a password: an admin for anyone, a user for
themself (with their current password).
"""

from __future__ import annotations

import asyncio
import functools
from http.client import responses

from jupyter_server.auth.decorator import allow_unauthenticated

from ..core import times
from ..core.errors import ArchiveError, not_found, permission
from .base import ArchiveHandler, endpoint

SUBJECT_HEADER = "X-Subject-Token"

# One message for an unknown user, a wrong password and a user without one, so that a
# failed login does not tell which user names exist.
LOGIN_REFUSED = "The request you have made requires authentication: wrong user name or password."


def token_json(info: dict) -> dict:
    """A token as Keystone's ``GET /v3/auth/tokens`` shows it (the token text itself is never in it;
    times in ISO 8601 UTC with microseconds)."""
    role = "admin" if info["admin"] else "user"
    return {
        "token": {
            "user": {"id": info["name"], "name": info["name"], "domain": {"id": "default", "name": "Default"}},
            "roles": [{"id": role, "name": role}],
            "issued_at": times.iso(info["created"], "microseconds"),
            "expires_at": times.iso(info["expires"], "microseconds"),  # None: a token made by the CLI, without expiry
        }
    }


class AuthHandler(ArchiveHandler):
    """Base of the auth handlers: Keystone's error shape."""

    face = "auth"

    def error_body(self, err: ArchiveError):
        return err.status, {"error": {"code": err.status, "title": responses.get(err.status, "Error"), "message": err.message}}

    async def in_background(self, fn, *args, **kwargs):
        # Password hashing is slow on purpose (about 0.2 s): keep it off the quick-query pool.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))

    async def send_token(self, token: str) -> None:
        info = await self.call(self.archive.users.token_info, token)
        if info is None:
            raise not_found("Could not find token: it is unknown or has expired.")
        self.send_json(token_json(info))


class CookielessHandler(AuthHandler):
    """Token endpoints: scripts call them without cookies, so there is no XSRF check."""

    def check_xsrf_cookie(self) -> None:
        # The answers are tokens in headers, never cookies: a forged cross-site login
        # gains the forger nothing, and knowing a token is what a logout needs.
        return None


class TokensHandler(CookielessHandler):
    """``POST /tokens``: log in with a password; ``GET /tokens`` with ``X-Subject-Token``: check a token."""

    @allow_unauthenticated
    async def post(self):
        name, password = self._credentials(self.json_body())
        lifetime = self.archive_app.token_lifetime or None
        done = await self.in_background(self.archive.users.login, name, password, lifetime=lifetime, client=self.request.remote_ip or "")
        if done is None:
            raise ArchiveError("unauthorized", LOGIN_REFUSED, 401)
        token, info = done
        self.set_header(SUBJECT_HEADER, token)
        self.send_json(token_json(info))

    @allow_unauthenticated
    async def get(self):
        await self.send_token(self.request.headers.get(SUBJECT_HEADER, ""))

    @staticmethod
    def _credentials(body: dict) -> tuple[str, str]:
        try:
            user = body["auth"]["identity"]["password"]["user"]
            name = user.get("name") or user.get("id")
            password = user["password"]
        except (KeyError, TypeError, AttributeError):
            raise ArchiveError(
                "bad_request",
                'expected {"auth": {"identity": {"password": {"user": {"name": ..., "password": ...}}}}}',
            ) from None
        if not isinstance(name, str) or not name or not isinstance(password, str):
            raise ArchiveError("bad_request", "the user name and password must be strings")
        return name, password


class TokenHandler(CookielessHandler):
    """``GET /tokens/{token}``: whose token it is (no credentials needed); ``DELETE``: log out."""

    @allow_unauthenticated
    async def get(self, token: str):
        # Reachable without credentials because SciScript sends none here; holding the
        # token is the credential, and the answer shows only that token's user.
        await self.send_token(token)

    @allow_unauthenticated
    async def delete(self, token: str):
        if not await self.call(self.archive.users.revoke_token, token):
            raise not_found("Could not find token: it is unknown or has expired.")
        self.set_status(204)
        self.finish()


class PasswordHandler(AuthHandler):
    """``PUT /users/{name}/password`` ``{"password", "currentPassword"}``: set a password."""

    @endpoint()
    async def put(self, name: str):
        body = self.json_body()
        me = self.principal
        if not me.admin:
            if me.name != name:
                raise permission("only an admin may set another user's password")
            # A stolen token alone must not be enough to take the account over.
            current = body.get("currentPassword")
            if not isinstance(current, str) or await self.in_background(self.archive.users.verify_password, name, current, client=self.request.remote_ip or "") is None:
                raise permission("currentPassword is missing or wrong")
        if await self.call(self.archive.users.record, name) is None:
            raise not_found(f"unknown user {name!r}", user=name)
        await self.in_background(self.archive.users.set_password, name, body.get("password"))
        self.set_status(204)
        self.finish()


def auth_handlers() -> list[tuple[str, type]]:
    return [
        (r"(?i:archive/auth/tokens)/?", TokensHandler),
        # SciScript always adds "/" to its AuthenticationURL, so a base ending in "/" gives "//token".
        (r"(?i:archive/auth/tokens)/+(?P<token>[^/]+)/?", TokenHandler),
        (r"(?i:archive/auth/users)/(?P<name>[^/]+)/(?i:password)/?", PasswordHandler),
    ]
