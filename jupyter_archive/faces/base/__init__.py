"""What every face shares: who is asking, one error path, one parameter layer (paging
included), one URL builder, streamed answers and bounded request bodies.

``ArchiveHandler`` (handler.py) is made of the parts in callers.py, errors.py, parameters.py
and streaming.py; ``LimitedBody`` (bodies.py) is for handlers that read their own bodies.
"""

from .bodies import LimitedBody
from .callers import AUTH_HEADER, FORWARD_PREFIX, FORWARD_SECRET, FORWARDED_ADMIN, FORWARDED_BASE, FORWARDED_HOST
from .callers import FORWARDED_PROTO, FORWARDED_USER, endpoint
from .errors import HttpError, log_message_id
from .handler import ArchiveHandler
from .streaming import PLAIN_TEXT
