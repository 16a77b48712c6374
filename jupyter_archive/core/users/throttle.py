"""How many wrong passwords a client may try: for one user name, and in all.

A password check costs a scrypt hash (~0.2 s of CPU and 16 MiB) before it can say no, and
anyone may ask for one: 30 connections posting wrong passwords tried 12 a second, held both
cores and slowed every other user's queries five times. So failures are counted in buckets
that refill over a minute, per (user name, client) and per client; with one empty the next
check is refused with a 429 and Retry-After, without hashing. A user's right password from
another client still works: a guesser cannot lock them out.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

from ..errors import ArchiveError

#: Wrong passwords a client may try for one user name, and for all, in a minute.
PER_USER = 5
PER_CLIENT = 30
WINDOW = 60.0
#: Buckets kept at most (a guesser trying many names): the least recently used go first.
MOST_KEYS = 100_000


class LoginThrottle:
    """Failed password checks allowed per (name, client) and per client (see the module)."""

    def __init__(self, per_user: int = PER_USER, per_client: int = PER_CLIENT, window: float = WINDOW, clock=time.monotonic):
        self._limits = {"user": per_user, "client": per_client}
        self._window, self._clock = window, clock
        self._buckets: OrderedDict[tuple, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def _keys(self, name: str, client: str) -> list[tuple[tuple, int]]:
        return [(("user", name.casefold(), client), self._limits["user"]), (("client", client), self._limits["client"])]

    def _tokens(self, key: tuple, limit: int, now: float) -> float:
        tokens, at = self._buckets.get(key, (limit, now))
        return min(limit, tokens + (now - at) * limit / self._window)

    def check(self, name: str, client: str) -> None:
        """Refuse (429) a check that the client's failures have used up; otherwise let it be made."""
        with self._lock:
            now = self._clock()
            for key, limit in self._keys(name, client):
                tokens = self._tokens(key, limit, now)
                if tokens < 1:
                    wait = math.ceil((1 - tokens) * self._window / limit)
                    who = "this user name" if key[0] == "user" else "any user"
                    raise ArchiveError(
                        "too_many_requests",
                        f"too many wrong passwords from this client for {who}; retry in {wait} s",
                        429, details={"retry_after": wait},
                    )

    def failed(self, name: str, client: str) -> None:
        """Count a wrong password (or an unknown user: the same answer) against the client."""
        with self._lock:
            now = self._clock()
            for key, limit in self._keys(name, client):
                self._buckets[key] = (self._tokens(key, limit, now) - 1, now)
                self._buckets.move_to_end(key)
            while len(self._buckets) > MOST_KEYS:
                self._buckets.popitem(last=False)
