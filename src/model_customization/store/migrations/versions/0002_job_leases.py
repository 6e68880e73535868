"""Leases on local jobs, so several servers can share one ledger.

worker_host: the machine (host id) whose dispatcher reserved the job and whose worker runs it; a server can check a
worker's process only on its own machine. lease_expires_at: until when that worker (or the dispatcher that reserved
the job) holds it; the worker renews it while it runs, and a job whose lease ran out on another machine is taken over.

Revision ID: 0002_job_leases
Revises: 0001_baseline
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_job_leases"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("worker_host", sa.String, nullable=True))
    op.add_column("jobs", sa.Column("lease_expires_at", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:  # SQLite drops columns through a table copy
        batch.drop_column("lease_expires_at")
        batch.drop_column("worker_host")
