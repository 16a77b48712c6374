"""One live owner per data dir: an OS lock held for the owning process's life.

Two processes using one data dir would fail each other's running jobs and fight over
DuckDB's file locks, so the data dir belongs to the process holding ``owner.lock`` (an
``flock``). The kernel drops the lock when its holder dies, however it dies, so a killed
owner's data dir is taken over at the next start, as a restart is.

Beside the lock, ``owner.json`` (readable by the OS user only) names the owner: its pid,
start time, the URL of its server once it listens, and a secret. Another server on the
same data dir reads it to reach the owner; the secret lets the owner trust that server's
word on who its caller is (both run as the same OS user, who can read this file anyway).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
from pathlib import Path

LOCK_NAME = "owner.lock"
NOTE_NAME = "owner.json"


class DataDirLock:
    """The lock on one data dir: try to take it, say who holds it, let it go."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self._fd: int | None = None
        self.held = False
        self.secret = ""
        self._note: dict = {}

    def acquire(self) -> bool:
        """Take the lock if nobody holds it (never waits); True when this process now owns the dir.

        The data dir is made if need be: the lock lives in it, and it is taken before
        anything else is written there.
        """
        if self.held:
            return True
        if self._fd is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Kept open between attempts: a later try (taking over from an owner that died) needs no new file.
            self._fd = os.open(self.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.held = True
        self.secret = secrets.token_urlsafe(32)
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self._note = {"pid": os.getpid(), "started": started, "url": None, "secret": self.secret}
        self._write_note()
        return True

    def announce(self, url: str) -> None:
        """Record the URL (base URL included) where the owner's server answers."""
        if self.held:
            self._note["url"] = url
            self._write_note()

    def holder(self) -> dict:
        """What ``owner.json`` says about the owner (empty when it is missing or unreadable).

        ``alive`` tells whether its pid is still a process: a note whose writer died
        (a lock taken but never announced by a process that was killed) is stale.
        """
        try:
            note = json.loads((self.data_dir / NOTE_NAME).read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(note, dict):
            return {}
        pid = note.get("pid")
        note["alive"] = isinstance(pid, int) and _pid_alive(pid)
        return note

    def release(self) -> None:
        """Give the data dir up (also done by the kernel when the process dies)."""
        if self._fd is None:
            return
        if self.held:
            # Removed while the lock is still held, so it can never be a newer owner's note.
            (self.data_dir / NOTE_NAME).unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self.held = False
        os.close(self._fd)
        self._fd = None

    def _write_note(self) -> None:
        # Written beside and renamed over, so a reader never sees half a note.
        tmp = self.data_dir / f"{NOTE_NAME}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self._note, f)
        os.replace(tmp, self.data_dir / NOTE_NAME)


def describe_holder(note: dict) -> str:
    """The owner as a message names it: ``pid 123, http://host:8888/``."""
    pid = note.get("pid", "unknown")
    url = note.get("url") or "no server URL yet"
    return f"pid {pid}, {url}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another OS user's process
    return True
