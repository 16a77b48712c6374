"""Where and how a compiled query runs: one planner, one ``run()`` for every path.

- ``engines``: ``Engine`` (one locked-down DuckDB instance), ``Lease``, ``Attachment``.
- ``pool``: ``EnginePool`` (``archive.engines``): every engine's lifecycle, ``EngineRef``.
- ``planner``: ``Plan``: decides once where compiled statements run.
- ``run``: ``Queries`` (``archive.queries``): compile (+ cache), query, read_table, run.
- ``result``: ``QueryResult``, ``execute`` on a cursor, ``engine_error``, the watchdog.
- ``pushdown``: running a plan on a SQL server; ``uploads``: TAP uploads (``UploadSet``).
"""
