"""Mount types: directories of data files (``files``), the metadata convention of mounted DuckDB
files (``metadata``), SQL servers (``sqlalchemy``)."""
