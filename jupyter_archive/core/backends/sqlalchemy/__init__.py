"""SQL servers (PostgreSQL, SQLite files) as archive mounts, reached through SQLAlchemy; queries are pushed down."""

from .backend import SqlBackend
