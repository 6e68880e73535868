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
    # Only the columns the table lacks: a ledger stamped at an older revision may already have them (one made by a
    # newer version's create_all and stamped back by hand, as a restore or a test does).
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("job_metrics")}
    for name in ("reward_mean", "reward_std", "kl"):
        if name not in present:
            op.add_column("job_metrics", sa.Column(name, sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_metrics") as batch:  # SQLite drops columns through a table copy
        batch.drop_column("kl")
        batch.drop_column("reward_std")
        batch.drop_column("reward_mean")
