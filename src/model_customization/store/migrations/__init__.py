"""Alembic migrations of the store; `Store` runs them on open (see store/database.py, `upgrade_schema`)."""
