"""``sync``: one ADQL query, its rows in the asked format (VOTable BINARY2 by default)."""

from __future__ import annotations

from tornado import web

from ...core import formats
from ...core.execution import uploads as tap_uploads
from ..base import endpoint
from .dali import TapParamsHandler, tap_format


@web.stream_request_body
class SyncHandler(TapParamsHandler):
    """``GET|POST sync``: run one ADQL query and answer its rows."""

    @endpoint(anonymous=True)
    async def get(self):
        await self.sync()

    post = get

    async def sync(self) -> None:
        params, files = self.tap_params()
        request = self.query_request(params, files)
        try:
            fmt = tap_format(request["format"])
            info = formats.ResultInfo(table_name="result", query=request["query"], row_limit=request["row_limit"])
            await self.query_and_stream(
                fmt, info, self.archive.queries.query, self.principal, request["query"], "adql",
                row_limit=request["row_limit"], uploads=request["uploads"],
            )
        finally:
            tap_uploads.discard(request["uploads"])
