"""``sync``: one ADQL query, its rows in the asked format (VOTable BINARY2 by default). One still running when the
quick time limit passes goes on as a TAP async job (the same run; its request is what ``async`` keeps of the same
parameters), and the answer is DALI's error naming the job's URL, ``tap/async/{id}``."""

from __future__ import annotations

from tornado import web

from ...core import formats
from ...core.execution import uploads as tap_uploads
from ..base import endpoint
from .dali import TapParamsHandler, tap_format


@web.stream_request_body
class SyncHandler(TapParamsHandler):
    """``GET|POST sync``: run one ADQL query and answer its rows (past the quick time limit: the error naming its job)."""

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
            job = {"format": request["format"], "tap": request["tap"], "uploads": []}  # as an async job keeps them
            await self.quick_query(
                fmt, info, self.principal, request["query"], "adql", job=job, row_limit=request["row_limit"], uploads=request["uploads"]
            )
        finally:
            tap_uploads.discard(request["uploads"])
