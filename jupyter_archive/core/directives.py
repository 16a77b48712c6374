"""Directives: saved, named, foldered query definitions that run as jobs (SAS Data Loader's word)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .archive import Archive


class DirectiveStore:
    """Directives of every user, kept in the archive state."""

    def __init__(self, archive: Archive):
        self.archive = archive

    def close(self) -> None:
        pass
