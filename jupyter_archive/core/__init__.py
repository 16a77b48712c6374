"""The archive itself, as services (``archive.Archive`` builds them); no tornado or Jupyter imports.

The layers and where things go: docs/architecture.md."""
