"""The Job: what every long thing is (long query, Quasar large query, TAP async, dataset reset,
directive run, async cutout), its states and the moves between them, and when it is destroyed.

Faces only rename states (CasJobs numbers, UWS phases, SAS and Kasabi words).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

STATES = ("pending", "scheduled", "queued", "running", "canceling", "completed", "failed", "canceled")
FINAL = frozenset({"completed", "failed", "canceled"})
ACTIVE = frozenset({"running", "canceling"})
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"queued", "scheduled", "canceled"}),
    "scheduled": frozenset({"queued", "canceled"}),
    "queued": frozenset({"running", "canceled"}),
    "running": frozenset({"completed", "failed", "canceling"}),
    "canceling": frozenset({"canceled", "failed", "completed"}),
}
RESTART_MESSAGE = "interrupted by server restart"
#: The owner of anonymous jobs (TAP async without a token, when anonymous access is on):
#: no user can be named so (``users.valid_user_name``).
ANONYMOUS_OWNER = "anonymous"
# The times a job keeps, and the words an error about one uses.
TIME_FIELDS = {"submitted": "submitted", "scheduled": "start time", "started": "started", "ended": "ended",
               "destruction": "destruction"}  # fmt: skip

# The columns of a job, as stored.
COLUMNS = (
    "id", "owner", "kind", "face", "request", "state", "submitted", "scheduled", "started", "ended",
    "progress", "rows", "error_code", "error_message", "results", "destruction", "owner_uid",
)  # fmt: skip


@dataclass
class Job:
    """A long-running unit of work owned by one user."""

    id: int
    owner: str
    kind: str  # query | directive | reset | cutout | async
    state: str
    submitted: float
    face: str = "native"
    request: dict = field(default_factory=dict)
    scheduled: float | None = None  # earliest start (unix seconds)
    started: float | None = None
    ended: float | None = None
    progress: float = 0.0  # 0..1
    rows: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    results: dict = field(default_factory=dict)
    destruction: float | None = None  # when the job is removed, whatever its state (UWS destruction)
    owner_uid: str | None = None  # the owner's identity (``Principal.ident``): what the job belongs to

    @property
    def final(self) -> bool:
        return self.state in FINAL

    @property
    def anonymous(self) -> bool:
        """Whether an anonymous caller made the job (it has no user)."""
        return self.owner == ANONYMOUS_OWNER

    @property
    def summary(self) -> str:
        """What the job does, in a line: its query, or its kind and what it works on
        (for faces whose job documents have room for a query only)."""
        query = self.request.get("query")
        if isinstance(query, str) and query:
            return query
        what = self.request.get("image") or self.request.get("context") or self.request.get("dataset") or ""
        return f"{self.kind} {what}".strip()

    def to_json(self) -> dict:
        out = {k: getattr(self, k) for k in COLUMNS if k not in ("error_code", "error_message", "owner_uid")}
        out["error"] = {"code": self.error_code, "message": self.error_message} if self.error_message else None
        out["elapsed"] = (
            (self.ended or time.time()) - self.started if self.started else None
        )
        return out

    @classmethod
    def from_row(cls, row: tuple) -> Job:
        d = dict(zip(COLUMNS, row, strict=True))
        d["request"] = json.loads(d["request"] or "{}")
        d["results"] = json.loads(d["results"] or "{}")
        return cls(**d)


class JobCanceled(Exception):
    """Raised inside a job's work when the job was asked to stop."""


def destruction_time(job: Job, retention: float | None) -> float | None:
    """When a job is removed, whatever its state: its own destruction time, else ``retention``
    seconds after it ended (while it has not ended: after it was submitted, the earliest it can
    be); None: it is kept (no retention).

    The one rule: the runner's expiry and every face that shows a destruction time use it
    (``Jobs.destruction``). A retention never stops work: the runner waits for such a job to end."""
    if job.destruction is not None:
        return job.destruction
    return (job.ended or job.submitted) + retention if retention else None
