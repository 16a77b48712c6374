"""What every face shares: who is asking, one error path, one parameter layer (paging
included), one URL builder, streamed answers and bounded request bodies.

``ArchiveHandler`` (handler.py) holds what runs on every request: the caller, the request's
parameters, the answer streamed, every face's quick query (``quick_query``: past the quick time
limit, a job); what runs only sometimes is apart: error replies (errors.py), typed values and
jobs (values.py), JSON, text and large results (answers.py), all mixed into the handler, and
``LimitedBody`` (bodies.py), for handlers that read their own bodies.
"""

from .bodies import LimitedBody
from .errors import HttpError, log_message_id
from .handler import AUTH_HEADER, FORWARD_PREFIX, FORWARD_SECRET, FORWARDED_ADMIN, FORWARDED_BASE, FORWARDED_HOST
from .handler import FORWARDED_PROTO, FORWARDED_USER, PLAIN_TEXT, ArchiveHandler, endpoint, jupyter_user
