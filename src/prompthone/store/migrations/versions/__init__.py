"""Alembic revisions of the run store (Alembic skips this file when it collects revisions)."""
