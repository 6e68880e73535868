"""GRPO metrics per step: the mean and spread of the sampled answers' rewards, and the KL to the reference.

Revision ID: 0004_grpo_metrics
Revises: 0003_home_relative_paths
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_grpo_metrics"
down_revision = "0003_home_relative_paths"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("job_metrics", sa.Column("reward_mean", sa.Float, nullable=True))
    op.add_column("job_metrics", sa.Column("reward_std", sa.Float, nullable=True))
    op.add_column("job_metrics", sa.Column("kl", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_metrics") as batch:  # SQLite drops columns through a table copy
        batch.drop_column("kl")
        batch.drop_column("reward_std")
        batch.drop_column("reward_mean")
