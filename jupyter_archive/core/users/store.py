"""Archive users, their passwords and access tokens, kept in the archive state (SQLite).

Tokens are random 256-bit strings shown once at creation; only their SHA-256 is stored
(a fast hash is enough for high-entropy secrets, unlike passwords).

Passwords are stored as salted scrypt hashes (``hashlib.scrypt``, stdlib): the core then
needs no third-party hashing library (argon2-cffi is only here because jupyter_server
brings it, and the core must not lean on Jupyter's dependencies). The stored text names
its parameters, ``scrypt$n$r$p$salt$hash``, so they can be raised later and old hashes
are upgraded at the next successful login.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from ..catalog import Principal
from ..errors import ArchiveError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    admin INTEGER NOT NULL DEFAULT 0,
    full_name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    password_hash TEXT,
    uid TEXT
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    label TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    expires REAL
);
"""


# scrypt cost: one of OWASP's equivalent settings (16 MiB, p=5), about 0.2 s a hash here;
# 16 MiB per login keeps a burst of logins from eating the server's memory.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 5
_SCRYPT_MAXMEM = 256 * 1024 * 1024
MAX_PASSWORD_BYTES = 4096


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32)


def hash_password(password: str) -> str:
    """A salted scrypt hash of a password, as stored: ``scrypt$n$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches a stored hash (constant-time compare)."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, base64.b64decode(digest))


def _needs_rehash(stored: str) -> bool:
    return not stored.startswith(f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$")


@functools.cache
def _dummy_hash() -> str:
    # Checked against when the user is unknown or has no password, so that a failed login
    # costs the same either way and its timing does not tell which users exist. Made on
    # first use: importing the core should not cost a scrypt hash.
    return hash_password(secrets.token_urlsafe(16))


def valid_password(password) -> str:
    """The password if it can be stored; refuses empty, non-text or absurdly long ones."""
    if not isinstance(password, str) or not password:
        raise ArchiveError("bad_request", "the password must be a non-empty string")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ArchiveError("bad_request", f"the password is too long (at most {MAX_PASSWORD_BYTES} bytes)")
    return password


def valid_user_name(name: str) -> str:
    name = (name or "").strip()
    # "." and ".." would name folders (the user's temp dir) outside their own.
    if not name or len(name) > 128 or any(c in name for c in "/\\\x00") or name.lower() == "anonymous" or name in (".", ".."):
        raise ArchiveError("bad_request", f"invalid user name {name!r}")
    return name


class UserStore:
    """Users, password hashes and tokens in ``state.sqlite`` of the data dir; safe to use from many threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Bumped when this store makes, raises or deletes a user or revokes a token, so that callers may keep
        # principals in memory while it stays the same (Users does, and so does ``principal_for_token``).
        self.version = 0
        # Token hash -> (principal, expires, version, read at): every request with an X-Auth-Token asks, on the event
        # loop, and a query under ``_lock`` (which the workers take too) was a quarter of the loop's time with 50 users.
        self._tokens: dict[str, tuple[Principal, float | None, int, float]] = {}
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(users)")}
        if "password_hash" not in cols:  # state files made before passwords existed
            self._db.execute("ALTER TABLE users ADD COLUMN password_hash TEXT")
        if "uid" not in cols:  # state files made before identities: each user keeps its name as uid
            self._db.execute("ALTER TABLE users ADD COLUMN uid TEXT")
        self._db.execute("UPDATE users SET uid = name WHERE uid IS NULL")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def ensure_user(self, name: str, *, admin: bool = False) -> Principal:
        """The user named so, made now if there is none (with a new identity); ``admin`` raises
        the role, never lowers it. Only explicit acts call this: an admin making a user, the
        token command, the Jupyter owner or a JupyterHub user on first sight."""
        name = valid_user_name(name)
        known = self.principal(name)
        if known is not None and (known.admin or not admin):
            return known
        with self._lock:
            self._db.execute(
                "INSERT INTO users(name, admin, created, uid) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET admin = max(admin, excluded.admin)",
                (name, int(admin), time.time(), uuid.uuid4().hex),
            )
            self.version += 1
        return self.principal(name)

    def principal(self, name: str) -> Principal | None:
        """The principal of an existing user, or None: looking a user up never makes one."""
        with self._lock:
            row = self._db.execute("SELECT name, admin, uid FROM users WHERE name = ?", (name,)).fetchone()
        return None if row is None else Principal(row[0], admin=bool(row[1]), uid=row[2])

    def is_current(self, principal: Principal) -> bool:
        """Whether this identity still exists (its user was not deleted, or made again since)."""
        current = self.principal(principal.name)
        return current is not None and current.ident == principal.ident

    def create_token(self, name: str, *, admin: bool = False, label: str = "", lifetime: float | None = None) -> str:
        """Make a new token for ``name`` (creating the user); returns the token text, shown once."""
        return self.token_for(self.ensure_user(name, admin=admin), label=label, lifetime=lifetime)

    def token_for(self, principal: Principal, *, label: str = "", lifetime: float | None = None) -> str:
        """A new token of an existing identity; refused if that identity was deleted meanwhile."""
        token = secrets.token_urlsafe(32)
        expires = time.time() + lifetime if lifetime else None
        with self._lock:
            # One statement: a user deleted (or made again) since ``principal`` was looked up gets no token.
            cur = self._db.execute(
                "INSERT INTO tokens(token_hash, user_name, label, created, expires) "
                "SELECT ?, name, ?, ?, ? FROM users WHERE name = ? AND uid = ?",
                (_hash(token), label, time.time(), expires, principal.name, principal.ident),
            )
        if cur.rowcount != 1:
            raise ArchiveError("not_found", f"unknown user {principal.name!r}", 404)
        return token

    #: Seconds a token's principal is taken from memory. Changes made through this store show at once (``version``);
    #: the token command of another process only makes users and tokens or raises a role: a raise shows within this.
    token_ttl = 5.0

    def principal_for_token(self, token: str) -> Principal | None:
        """The principal a valid, unexpired token stands for; None for any other."""
        if not token:
            return None
        key, now = _hash(token.strip()), time.time()
        hit = self._tokens.get(key)
        if hit is not None and hit[2] == self.version and now - hit[3] < self.token_ttl:
            principal, expires = hit[0], hit[1]
        else:
            with self._lock:
                version = self.version  # with the read, under the lock: a write after it makes the entry stale
                row = self._db.execute(
                    "SELECT u.name, u.admin, t.expires, u.uid FROM tokens t JOIN users u ON u.name = t.user_name WHERE t.token_hash = ?",
                    (key,),
                ).fetchone()
            if row is None:
                return None
            principal, expires = Principal(row[0], admin=bool(row[1]), uid=row[3]), row[2]
            if len(self._tokens) >= 4096:  # bounded: only tokens that were valid are kept
                self._tokens.clear()
            self._tokens[key] = (principal, expires, version, now)
        return None if expires is not None and expires < now else principal

    def token_info(self, token: str) -> dict | None:
        """Who a valid token belongs to and when it was made and expires; None if invalid or expired."""
        if not token:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT u.name, u.admin, t.created, t.expires FROM tokens t JOIN users u ON u.name = t.user_name WHERE t.token_hash = ?",
                (_hash(token.strip()),),
            ).fetchone()
        if row is None or (row[3] is not None and row[3] < time.time()):
            return None
        return {"name": row[0], "admin": bool(row[1]), "created": row[2], "expires": row[3]}

    def revoke_token(self, token: str) -> bool:
        """Forget one token (logout); True if it existed."""
        with self._lock:
            cur = self._db.execute("DELETE FROM tokens WHERE token_hash = ?", (_hash((token or "").strip()),))
            self.version += 1
        return cur.rowcount > 0

    def revoke_tokens(self, name: str) -> int:
        with self._lock:
            cur = self._db.execute("DELETE FROM tokens WHERE user_name = ?", (name,))
            self.version += 1
        return cur.rowcount

    def purge_expired_tokens(self) -> int:
        with self._lock:
            cur = self._db.execute("DELETE FROM tokens WHERE expires IS NOT NULL AND expires < ?", (time.time(),))
        return cur.rowcount

    # -- passwords ----------------------------------------------------------------------------
    def set_password(self, name: str, password: str) -> None:
        """Store a new salted hash of the user's password (the user must exist)."""
        stored = hash_password(valid_password(password))
        with self._lock:
            cur = self._db.execute("UPDATE users SET password_hash = ? WHERE name = ?", (stored, name))
        if cur.rowcount == 0:
            raise ArchiveError("not_found", f"unknown user {name!r}", 404)

    def verify_password(self, name: str, password: str) -> Principal | None:
        """The user if ``password`` is theirs; None for a wrong password, unknown user or none set.

        Costs one scrypt hash whatever the outcome, so timing does not reveal who exists.
        """
        if not isinstance(name, str) or not isinstance(password, str) or len(password.encode()) > MAX_PASSWORD_BYTES:
            return None
        with self._lock:
            row = self._db.execute("SELECT name, admin, password_hash, uid FROM users WHERE name = ?", (name,)).fetchone()
        stored = row[2] if row is not None and row[2] else None
        ok = check_password(password, stored or _dummy_hash())
        if not ok or stored is None:
            return None
        if _needs_rehash(stored):
            self.set_password(row[0], password)
        return Principal(row[0], admin=bool(row[1]), uid=row[3])

    def login(self, name: str, password: str, *, lifetime: float | None) -> tuple[str, dict] | None:
        """Check a password and make a token for it: ``(token, token_info)``, or None if refused."""
        principal = self.verify_password(name, password)
        if principal is None:
            return None
        self.purge_expired_tokens()
        try:
            token = self.token_for(principal, label="login", lifetime=lifetime)
        except ArchiveError:
            return None  # deleted between the password check and now
        return token, self.token_info(token)

    # -- users --------------------------------------------------------------------------------
    def user(self, name: str) -> dict | None:
        """A user's record (no secrets): name, admin, full_name, email, created, has_password."""
        with self._lock:
            row = self._db.execute(
                "SELECT name, admin, full_name, email, created, password_hash IS NOT NULL FROM users WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            return None
        return {
            "name": row[0], "admin": bool(row[1]), "full_name": row[2], "email": row[3], "created": row[4],
            "has_password": bool(row[5]),
        }  # fmt: skip

    def update_user(self, name: str, *, full_name: str | None = None, email: str | None = None) -> None:
        """Change a user's full name and e-mail (None leaves a field as it is)."""
        with self._lock:
            if full_name is not None:
                self._db.execute("UPDATE users SET full_name = ? WHERE name = ?", (str(full_name), name))
            if email is not None:
                self._db.execute("UPDATE users SET email = ? WHERE name = ?", (str(email), name))

    def delete_user(self, name: str, *, uid: str | None = None) -> bool:
        """Forget a user (only the identity ``uid``, when given), their password and (by cascade)
        all their tokens; True if there was such a user."""
        with self._lock:
            if uid is None:
                cur = self._db.execute("DELETE FROM users WHERE name = ?", (name,))
            else:
                cur = self._db.execute("DELETE FROM users WHERE name = ? AND uid = ?", (name, uid))
            self.version += 1
        return cur.rowcount > 0

    def owned_count(self, principal: Principal) -> int:
        """The account of an identity and its tokens: 0 once it is deleted."""
        with self._lock:
            row = self._db.execute(
                "SELECT count(*) + (SELECT count(*) FROM tokens WHERE user_name = u.name) FROM users u WHERE name = ? AND uid = ?",
                (principal.name, principal.ident),
            ).fetchone()
        return row[0] if row else 0

    def users(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT name, admin, created FROM users ORDER BY name").fetchall()
        return [{"name": r[0], "admin": bool(r[1]), "created": r[2]} for r in rows]
