"""The access log of the archive's handlers: Jupyter's, with a success's line formed only when written."""

from __future__ import annotations

import functools
import logging


class SuccessLog:
    """Mixin of a Jupyter handler: ``_log`` (what tornado calls when a request ends).

    Jupyter's log function forms a line for every request (scrubbing the URI, naming the user,
    reaching the extension's logger through traitlets) and then drops a success's, logged at debug
    level; with its Prometheus histogram that was ~4% of the Python time of a point lookup under
    load. A success is timed into the same histogram, its line formed only when debug is on;
    every other reply goes through Jupyter's log function unchanged.
    """

    def _log(self) -> None:
        status = self.get_status()
        log_function = self.settings.get("log_function")
        keywords = getattr(log_function, "keywords", None)
        if status >= 300 or keywords is None or self.log.isEnabledFor(logging.DEBUG):
            return super()._log()
        if keywords.get("record_prometheus_metrics", True):
            _duration(self.request.method, type(self), status).observe(self.request.request_time())


@functools.lru_cache(maxsize=512)
def _duration(method: str, handler: type, status: int):
    """The Prometheus histogram Jupyter's log function records a request's time in, by its labels."""
    from jupyter_server.prometheus.metrics import HTTP_REQUEST_DURATION_SECONDS

    return HTTP_REQUEST_DURATION_SECONDS.labels(method=method, handler=f"{handler.__module__}.{handler.__name__}", status_code=status)
