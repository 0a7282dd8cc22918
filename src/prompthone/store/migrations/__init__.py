"""Alembic migrations of the run store, shipped in the package and run in-process by `prompthone.store.migrate`."""
