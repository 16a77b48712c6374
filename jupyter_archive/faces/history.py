"""The query history in the native API: ``GET {base}archive/api/history`` (``q``, ``offset``,
``limit``, ``all`` for an admin, as with jobs) and ``DELETE`` (the caller clears their own)."""

from __future__ import annotations

from ..core import params
from ..core.history import MAX_FILTER
from .base import endpoint
from .native import PAGE_SIZE, NativeHandler


class HistoryHandler(NativeHandler):
    """Every query the caller ran, from every face, newest first (``core.history``)."""

    @endpoint()
    async def get(self):
        offset, limit = self.page("offset", "limit", PAGE_SIZE)
        text = params.text("q", self.arg("q"), max_length=MAX_FILTER)
        entries, total = await self.call(
            self.archive.history.list, self.principal, text=text, all_users=self.bool_arg("all"), offset=offset, limit=limit
        )
        self.send_json({"history": entries, "total": total, "offset": offset, "limit": limit})

    @endpoint()
    async def delete(self):
        deleted = await self.call(self.archive.history.clear, self.principal)
        self.send_json({"deleted": deleted})


def history_handlers() -> list[tuple[str, type]]:
    return [(r"archive/api/history/?", HistoryHandler)]
