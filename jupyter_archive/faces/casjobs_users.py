"""CasJobs users (``{base}archive/casjobs/users/{id}``): the account and MyDB of a user.

``PUT`` (admin) makes the user and their MyDB, with an optional body ``{"UserId",
"FullName", "Email", "TableName", "Password"}`` (SciServer's login portal sends none);
``GET`` shows a user to themself or to an admin, with the ``WebServicesId`` that
SciScript's ``getSchemaName`` turns into ``wsid_<n>``; ``DELETE`` (admin) removes the
user and everything they own (``core/users/owned.py``). Someone else's user is 404, as someone
else's job is: a non-admin cannot tell which users exist. Every success is exactly 200.
"""

from __future__ import annotations

from ..core.errors import ArchiveError, not_found, permission
from .base import endpoint
from .casjobs import CasJobsHandler, web_services_id

# Body fields PUT takes; TableName is accepted and ignored (S5 lists it without saying
# what it does, and no known client sends it).
TEXT_FIELDS = ("UserId", "FullName", "Email", "TableName", "Password")


class UserHandler(CasJobsHandler):
    """``GET|PUT|DELETE /users/{id}``."""

    def user_json(self, info: dict) -> dict:
        """A user exactly as CasJobs' GET /users/{id} shows it."""
        wsid = web_services_id(info["name"])
        return {
            "UserId": info["name"],
            "FullName": info["full_name"],
            "Email": info["email"],
            "MyDBHost": self.request.host_name,  # MyDB lives in this server
            "MyDBName": f"MYDB_{wsid}",
            "WebServicesId": wsid,
        }

    def require_admin(self, what: str) -> None:
        if not self.principal.admin:
            raise permission(f"{what} needs the admin role")

    @endpoint()
    async def get(self, user_id: str):
        me = self.principal
        info = await self.call(self.archive.users.record, user_id) if (me.admin or me.name == user_id) else None
        if info is None:
            raise not_found(f"unknown user {user_id!r}", user=user_id)
        self.send_json(self.user_json(info))

    @endpoint()
    async def put(self, user_id: str):
        self.require_admin("creating a user")
        fields = {}
        for name in TEXT_FIELDS:
            value = self.body_field(name)
            if value is not None and not isinstance(value, str):
                raise ArchiveError("bad_request", f"{name} must be a string")
            fields[name] = value
        if fields["UserId"] and fields["UserId"] != user_id:
            raise ArchiveError("bad_request", f"UserId {fields['UserId']!r} in the body differs from {user_id!r} in the URL")
        principal = await self.call(
            self.archive.users.create, user_id, full_name=fields["FullName"], email=fields["Email"], password=fields["Password"]
        )
        info = await self.call(self.archive.users.record, principal.name)
        self.send_json(self.user_json(info))

    @endpoint()
    async def delete(self, user_id: str):
        self.require_admin("deleting a user")
        if user_id == self.principal.name:
            # An admin locking themself out (and dropping their own MyDB) is never what was meant.
            raise ArchiveError("conflict", "you cannot delete your own user", 409)
        await self.call(self.archive.users.delete, user_id)
        self.send_json(True)


def casjobs_user_handlers() -> list[tuple[str, type]]:
    return [(r"(?i:archive/casjobs/users)/(?P<user_id>[^/]+)/?", UserHandler)]
