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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..catalog import Principal
    from .store import UserStore


@dataclass(frozen=True)
class OwnedKind:
    """One kind of thing a user owns: how many an identity has, and how they are removed."""

    name: str
    count: Callable[[Owned, Principal], int]
    remove: Callable[[Owned, Principal], None]


@dataclass(frozen=True)
class Owned:
    """The things of one identity across the archive's stores, counted and removed by ``KINDS``.

    Its collaborators: the user store, the jobs (``count``/``remove_owned`` of a principal), the
    directives, the engine pool (``engine(principal)``, ``discard``) and the catalog (``mydb_path``).
    """

    store: UserStore
    jobs: Any
    directives: Any
    engines: Any
    catalog: Any
    hats: Any = None  # the HATS imports (``jobs.hats_import.HatsImports``): a user's catalogs and their private mount
    history: Any = None  # the query history (``core.history.History``)

    def remove(self, principal: Principal) -> None:
        """Remove everything of one identity, kind by kind."""
        for kind in KINDS:
            kind.remove(self, principal)

    def counts(self, principal: Principal) -> dict[str, int]:
        """How many things of each kind an identity has (what deleting it must bring to zero)."""
        return {kind.name: kind.count(self, principal) for kind in KINDS}

    def _remove_files(self, principal: Principal) -> None:
        """MyDB and the temp dir go once the user's engines have closed: engines still in use (a
        result being streamed) are interrupted, and DuckDB keeps a file open until its engine closes."""
        key = self.engines.engine(principal).key
        self.engines.discard(key, cleanup=lambda: self._delete_files(principal))

    def _delete_files(self, principal: Principal) -> None:
        for path in self._mydb_files(principal):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.engines.engine(principal).temp_dir, ignore_errors=True)  # tmp/<home>: a safe file name

    def _mydb_files(self, principal: Principal) -> list:
        mydb = self.catalog.mydb_path(principal)
        return [mydb, *mydb.parent.glob(mydb.name + ".*")]  # the WAL and DuckDB's other side files

    def _count_files(self, principal: Principal) -> int:
        return sum(f.exists() for f in self._mydb_files(principal)) + self.engines.engine(principal).temp_dir.exists()


KINDS: tuple[OwnedKind, ...] = (
    # First: with the account go the password and the tokens, so no new request gets in.
    OwnedKind("account", lambda o, p: o.store.owned_count(p), lambda o, p: o.store.delete_user(p.name, uid=p.ident)),
    OwnedKind("jobs", lambda o, p: o.jobs.count(p), lambda o, p: o.jobs.remove_owned(p)),
    OwnedKind("directives", lambda o, p: o.directives.count(p), lambda o, p: o.directives.remove_owned(p)),
    OwnedKind("mydb and temp files", Owned._count_files, Owned._remove_files),
    OwnedKind("hats catalogs", lambda o, p: o.hats.count(p) if o.hats else 0, lambda o, p: o.hats and o.hats.remove_owned(p)),
    # Last: the jobs removed above end (canceled), and an ended job is handed to the history.
    OwnedKind("query history", lambda o, p: o.history.count(p) if o.history else 0, lambda o, p: o.history and o.history.clear(p)),
)
