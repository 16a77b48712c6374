"""What every face shares (handler.py)."""

from .handler import AUTH_HEADER, FORWARD_PREFIX, FORWARD_SECRET, FORWARDED_ADMIN, FORWARDED_BASE, FORWARDED_HOST
from .handler import FORWARDED_PROTO, FORWARDED_USER, ArchiveHandler, HttpError, LimitedBody, endpoint, log_message_id
