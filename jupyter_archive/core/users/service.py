"""Users as the archive hands them out (``archive.users``): principals for requests, tokens,
accounts made and deleted with their MyDB and everything they own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..catalog import MYDB_ALIAS
from ..errors import not_found
from ..lanes import cheap_read
from .store import valid_password
from .throttle import LoginThrottle

if TYPE_CHECKING:
    from ..catalog import Principal
    from .owned import Owned
    from .store import UserStore


class Users:
    """Who is asking and who owns what: principals by token or name, and the users' lifecycle.

    ``engines`` makes a new user's MyDB (``engine(principal, needs)``); ``owned`` removes what
    a deleted user had.
    """

    def __init__(self, store: UserStore, *, engines: Any, owned: Owned | None = None):
        self.store = store
        self.owned = owned  # given once the services it walks exist (the archive builds them after users)
        self._engines = engines
        # Admins by name, with the store's version they were read at: the Jupyter owner is
        # asked for on every request, and an admin changes only through this store (a user is
        # made or deleted here; the token command of another process can only make users or
        # raise their role). Other users are read each time, as that command may raise them.
        self._admins: dict[str, tuple[Principal, int]] = {}
        self.logins = LoginThrottle()

    def principal_for_token(self, token: str) -> Principal | None:
        return self.store.principal_for_token(token)

    def principal(self, name: str, *, admin: bool = False) -> Principal:
        """The user named so, made on first sight. Only explicit acts make users (the Jupyter
        owner or a JupyterHub user on first sight, an admin's ``create``, the token
        command); anything acting on a user a request names uses ``user`` instead."""
        version = self.store.version  # read first: a user deleted meanwhile makes the entry stale
        hit = self._admins.get(name)
        if hit is not None and hit[1] == version:
            return hit[0]
        principal = self.store.ensure_user(name, admin=admin)
        if principal.admin:
            self._admins[name] = (principal, version)
        return principal

    @cheap_read
    def user(self, name: str) -> Principal:
        """An existing user's principal; 404 if there is none (looking a user up never makes one)."""
        principal = self.store.principal(name) if isinstance(name, str) else None
        if principal is None:
            raise not_found(f"unknown user {name!r}", user=name)
        return principal

    def find(self, name: str) -> Principal | None:
        """An existing user's principal, or None."""
        return self.store.principal(name)

    def owner(self, name: str, uid: str | None = None) -> Principal:
        """The principal of a stored owner (a job's, a directive's); 404 once that user was
        deleted, even if a new user has the name since."""
        principal = self.store.principal(name)
        if principal is None or principal.ident != (uid or name):
            raise not_found(f"user {name!r} no longer exists", user=name)
        return principal

    def is_current(self, principal: Principal) -> bool:
        """Whether this identity still exists (its user was not deleted, or made again since)."""
        return self.store.is_current(principal)

    def create(
        self, name: str, *, full_name: str | None = None, email: str | None = None, password: str | None = None
    ) -> Principal:
        """Make a user (or update one) and their MyDB file: what an admin's CasJobs ``PUT /users`` does."""
        if password is not None:
            valid_password(password)  # refuse a bad password before anything is made
        principal = self.store.ensure_user(name)
        self.store.update_user(principal.name, full_name=full_name, email=email)
        if password is not None:
            self.store.set_password(principal.name, password)
        self._engines.engine(principal, {MYDB_ALIAS}).cursor().close()  # attaching MyDB read-write creates its file now
        return principal

    def delete(self, name: str) -> None:
        """Remove a user and everything they own (``owned.KINDS``: account and tokens first, so
        no new request gets in; running jobs are canceled, open work interrupted). A user made
        later under the same name is a new identity and starts with nothing."""
        self.owned.remove(self.user(name))

    # -- accounts and tokens, as the auth and users faces use them ----------------------------------
    @cheap_read
    def record(self, name: str) -> dict | None:
        """A user's record (no secrets), or None: see ``UserStore.user``."""
        return self.store.user(name)

    def list(self) -> list[dict]:
        """Every user's name, role and creation time, by name."""
        return self.store.users()

    def create_token(self, name: str, *, admin: bool = False, label: str = "", lifetime: float | None = None) -> str:
        """A new token for ``name`` (made a user if need be), shown once."""
        return self.store.create_token(name, admin=admin, label=label, lifetime=lifetime)

    @cheap_read
    def token_info(self, token: str) -> dict | None:
        return self.store.token_info(token)

    def login(self, name: str, password: str, *, lifetime: float | None, client: str = "") -> tuple[str, dict] | None:
        """A token for a right password; None for a wrong one; 429 when ``client`` has failed too often."""
        return self._throttled(name, client, lambda: self.store.login(name, password, lifetime=lifetime))

    def revoke_token(self, token: str) -> bool:
        return self.store.revoke_token(token)

    def verify_password(self, name: str, password: str, *, client: str = "") -> Principal | None:
        return self._throttled(name, client, lambda: self.store.verify_password(name, password))

    def _throttled(self, name: str, client: str, check):
        """``check()`` (a password check: None when refused) unless ``client`` has failed too often; a None counted."""
        self.logins.check(name, client)
        found = check()
        if found is None:
            self.logins.failed(name, client)
        return found

    def set_password(self, name: str, password: str) -> None:
        self.store.set_password(name, password)
