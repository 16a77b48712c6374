"""Where and how a compiled query runs: one planner, one ``run()`` for every path.

- ``engines``: what each key's engine attaches (``Specs``), opening a locked-down DuckDB
  instance, TAP_SCHEMA's in-memory engine, ``engine_error`` (DuckDB's errors as ``ArchiveError``).
- ``lifecycle``: every engine's lifecycle (``EngineLifecycle``): opened, replaced, closed when idle or too many.
- ``pool``: ``EnginePool`` (``archive.engines``): lends connections; ``Engine``, the ``Lease``
  of a connection it lends, ``EngineRef``; ``QueryResult`` (what a lease streams) and the
  watchdog of time limits.
- ``planner``: ``Plan``: decides once where compiled statements run.
- ``run``: ``Queries`` (``archive.queries``): compile (+ cache), query, read_table, run;
  ``execute`` on an engine's cursor; ``Admission`` (``archive.admission``): whose request
  takes a quick worker next, fairly across users.
- ``compiling``: ``compile_text`` (a text through the SQL pipeline for a principal),
  ``with_plan`` (the plan phase compile shows), ``table_read`` (a table's page), ``TextOptions``.
- ``pushdown``: running a plan on a SQL server; ``uploads``: TAP uploads (``UploadSet``).
- ``cluster``: the Dask cluster (``Cluster``, ``archive.cluster``) and ``fan_out``, a statement over many
  partitions run there; ``fanout``: splitting it into task and merge SQL; ``batch``: one task, on a worker.
"""
