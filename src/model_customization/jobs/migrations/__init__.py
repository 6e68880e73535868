"""Alembic migrations of the ledger; `Ledger` runs them on open (see jobs/ledger.py, `upgrade_schema`)."""
