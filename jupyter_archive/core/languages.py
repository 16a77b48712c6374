"""The query languages the archive accepts, and the one a query is in when its caller names none.

A module without imports: the client, the magic and the widgets (in a kernel) share these
names with the SQL pipeline (``core/sql/``, one spec per language) without loading it.
"""

LANGUAGES = ("sql", "tsql", "sql2", "mysql", "adql")

#: DuckDB's SQL, the engine's own: every function and type of the engine, nothing translated.
#: It also takes ``SELECT TOP n`` (read as ``LIMIT n``), so CasJobs-style queries run as written.
DEFAULT_LANGUAGE = "sql"
