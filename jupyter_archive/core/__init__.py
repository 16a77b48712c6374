"""The archive itself: catalog, SQL pipeline, engines, formats. No tornado or Jupyter imports."""
