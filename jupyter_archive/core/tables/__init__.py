"""Writing tables: reading uploads (``sources``), the one transaction that writes a table with
its metadata and HEALPix index (``write``), and the service the archive hands out as
``archive.tables`` (``service``)."""
