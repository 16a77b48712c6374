"""Archive users and their access tokens, kept in the archive state (SQLite).

Tokens are random 256-bit strings shown once at creation; only their SHA-256 is stored
(a fast hash is enough for high-entropy secrets, unlike passwords).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from pathlib import Path

from .catalog import Principal
from .errors import ArchiveError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    admin INTEGER NOT NULL DEFAULT 0,
    full_name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    label TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    expires REAL
);
"""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def valid_user_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 128 or any(c in name for c in "/\\\x00") or name.lower() == "anonymous":
        raise ArchiveError("bad_request", f"invalid user name {name!r}")
    return name


class UserStore:
    """Users and tokens in ``state.sqlite`` of the data dir; safe to use from many threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def ensure_user(self, name: str, *, admin: bool = False) -> Principal:
        name = valid_user_name(name)
        with self._lock:
            self._db.execute(
                "INSERT INTO users(name, admin, created) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET admin = max(admin, excluded.admin)",
                (name, int(admin), time.time()),
            )
            row = self._db.execute("SELECT admin FROM users WHERE name = ?", (name,)).fetchone()
        return Principal(name, admin=bool(row[0]))

    def create_token(self, name: str, *, admin: bool = False, label: str = "", lifetime: float | None = None) -> str:
        """Make a new token for ``name`` (creating the user); returns the token text, shown once."""
        self.ensure_user(name, admin=admin)
        token = secrets.token_urlsafe(32)
        expires = time.time() + lifetime if lifetime else None
        with self._lock:
            self._db.execute(
                "INSERT INTO tokens(token_hash, user_name, label, created, expires) VALUES (?, ?, ?, ?, ?)",
                (_hash(token), name, label, time.time(), expires),
            )
        return token

    def principal_for_token(self, token: str) -> Principal | None:
        if not token:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT u.name, u.admin, t.expires FROM tokens t JOIN users u ON u.name = t.user_name WHERE t.token_hash = ?",
                (_hash(token.strip()),),
            ).fetchone()
        if row is None or (row[2] is not None and row[2] < time.time()):
            return None
        return Principal(row[0], admin=bool(row[1]))

    def revoke_tokens(self, name: str) -> int:
        with self._lock:
            cur = self._db.execute("DELETE FROM tokens WHERE user_name = ?", (name,))
        return cur.rowcount

    def users(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT name, admin, created FROM users ORDER BY name").fetchall()
        return [{"name": r[0], "admin": bool(r[1]), "created": r[2]} for r in rows]
