"""Users: the store of accounts, passwords and tokens (``store``), the service the archive
hands out as ``archive.users`` (``service``), and what a user owns, removed with them (``owned``)."""
