"""GRPO validation: the mean reward of the greedy answers to the validation cases, at the steps the job checks them.

Revision ID: 0005_grpo_validation_reward
Revises: 0004_grpo_metrics
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_grpo_validation_reward"
down_revision = "0004_grpo_metrics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # As in 0004: only when missing (a ledger created by a newer create_all and stamped back already has it).
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("job_metrics")}
    if "validation_reward" not in present:
        op.add_column("job_metrics", sa.Column("validation_reward", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_metrics") as batch:
        batch.drop_column("validation_reward")
