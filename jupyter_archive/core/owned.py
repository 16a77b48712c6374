"""What a user owns, kind by kind, and how each kind goes when the user is deleted.

Everything a user can own is owned by their *identity* (``Principal.ident``): a user deleted
and made again under the same name is a new identity, so a thing this list forgot could still
never reach the new user. Deleting a user walks ``KINDS`` in order, so that the space is
given back too. A new kind of owned thing is added here; the user lifecycle tests make one of
every kind, delete the user, and check that nothing of theirs is left in the data dir.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .archive import Archive
    from .catalog import Principal


@dataclass(frozen=True)
class OwnedKind:
    """One kind of thing a user owns: how many an identity has, and how they are removed."""

    name: str
    count: Callable[[Archive, Principal], int]
    remove: Callable[[Archive, Principal], None]


def _remove_files(archive: Archive, principal: Principal) -> None:
    """MyDB and the temp dir go once the user's engines have closed: engines still in use (a
    result being streamed) are interrupted, and DuckDB keeps a file open until its engine closes."""
    key = archive.engines.engine(principal).key
    archive.engines.discard(key, cleanup=lambda: _delete_files(archive, principal))


def _delete_files(archive: Archive, principal: Principal) -> None:
    for path in _mydb_files(archive, principal):
        path.unlink(missing_ok=True)
    shutil.rmtree(archive.engines.engine(principal).temp_dir, ignore_errors=True)  # tmp/<home>: a safe file name


def _mydb_files(archive: Archive, principal: Principal) -> list:
    mydb = archive.catalog.mydb_path(principal)
    return [mydb, *mydb.parent.glob(mydb.name + ".*")]  # the WAL and DuckDB's other side files


KINDS: tuple[OwnedKind, ...] = (
    # First: with the account go the password and the tokens, so no new request gets in.
    OwnedKind("account", lambda a, p: a.users.owned_count(p), lambda a, p: a.users.delete_user(p.name, uid=p.ident)),
    OwnedKind("jobs", lambda a, p: a.jobs.count(p), lambda a, p: a.jobs.remove_owned(p)),
    OwnedKind("directives", lambda a, p: a.directives.count(p), lambda a, p: a.directives.remove_owned(p)),
    OwnedKind(
        "mydb and temp files",
        lambda a, p: sum(f.exists() for f in _mydb_files(a, p)) + a.engines.engine(p).temp_dir.exists(),
        _remove_files,
    ),
)


def remove_owned(archive: Archive, principal: Principal) -> None:
    """Remove everything of one identity, kind by kind."""
    for kind in KINDS:
        kind.remove(archive, principal)


def owned_counts(archive: Archive, principal: Principal) -> dict[str, int]:
    """How many things of each kind an identity has (what deleting it must bring to zero)."""
    return {kind.name: kind.count(archive, principal) for kind in KINDS}
