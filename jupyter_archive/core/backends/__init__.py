"""Storage backends: DuckDB (the embedded engine) and file directories ingested into it."""
