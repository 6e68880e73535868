"""The ledger's schema as it stood when migrations began (every table of the pre-Alembic versions).

Also brings a ledger made by one of those versions up to date: they created tables with `create_all` and added new
nullable columns in place, so such a ledger has these tables but may lack some columns, indexes or whole tables, and
has no alembic_version. Here a missing table is created and a missing column or index added; the rows stay as they are.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def baseline_metadata() -> sa.MetaData:
    """The tables as of this revision, frozen here (the live definitions in store/schema.py move on with later revisions)."""
    metadata = sa.MetaData()
    sa.Table(
        "datasets", metadata,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("card", sa.JSON, nullable=False),
    )
    sa.Table(
        "jobs", metadata,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("provider", sa.String, nullable=False),
        sa.Column("base_model", sa.Text, nullable=False),
        sa.Column("dataset_id", sa.String, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("method", sa.String, nullable=False),
        sa.Column("hyperparameters", sa.JSON, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("total_steps", sa.Integer),
        sa.Column("epoch", sa.Float),
        sa.Column("train_loss", sa.Float),
        sa.Column("validation_loss", sa.Float),
        sa.Column("eta_seconds", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("model_id", sa.String),
        sa.Column("worker_pid", sa.Integer),
        sa.Column("continue_from", sa.String),
        sa.Column("launcher", sa.Text),
        sa.Column("attempts", sa.Integer),
        sa.Column("queued_at", sa.Float),
        sa.Column("remote_id", sa.String),
        sa.Column("remote_status", sa.String),
        sa.Column("idempotency_key", sa.String, index=True),
        sa.Column("details", sa.JSON),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    sa.Table(
        "job_events", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String, sa.ForeignKey("jobs.id"), nullable=False, index=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("level", sa.String, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    sa.Table(
        "job_metrics", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String, sa.ForeignKey("jobs.id"), nullable=False, index=True),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("epoch", sa.Float, nullable=False),
        sa.Column("train_loss", sa.Float),
        sa.Column("validation_loss", sa.Float),
        sa.Column("learning_rate", sa.Float),
        sa.Column("tokens_per_second", sa.Float),
        sa.Column("at", sa.Float, nullable=False),
    )
    sa.Table(
        "models", metadata,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("provider", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("base_model", sa.Text, nullable=False),
        sa.Column("path", sa.Text),
        sa.Column("job_id", sa.String),
        sa.Column("dataset_id", sa.String),
        sa.Column("details", sa.JSON),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    sa.Table(
        "spend", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String, nullable=False, index=True),
        sa.Column("provider", sa.String, nullable=False),
        sa.Column("quoted_usd", sa.Float),
        sa.Column("committed_usd", sa.Float, nullable=False),
        sa.Column("actual_usd", sa.Float),
        sa.Column("approved_by", sa.String, nullable=False),
        sa.Column("at", sa.Float, nullable=False, index=True),
    )
    sa.Table(
        "provider_files", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String, nullable=False),
        sa.Column("sha256", sa.String, nullable=False, index=True),
        sa.Column("remote_id", sa.String, nullable=False),
        sa.Column("filename", sa.String),
        sa.Column("bytes", sa.Integer),
        sa.Column("at", sa.Float, nullable=False),
    )
    sa.Table(
        "evaluations", metadata,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("dataset_id", sa.String, nullable=False),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("plan", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("updated_at", sa.Float),
    )
    sa.Table(
        "evaluation_results", metadata,
        sa.Column("eval_id", sa.String, sa.ForeignKey("evaluations.id"), primary_key=True),
        sa.Column("case_index", sa.Integer, primary_key=True),
        sa.Column("unit", sa.String, primary_key=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    sa.Table(
        "deployments", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agent", sa.String, nullable=False, index=True),
        sa.Column("task", sa.String),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("replaces_id", sa.Integer),
        sa.Column("eval_id", sa.String),
        sa.Column("gate", sa.String),
        sa.Column("reason", sa.Text),
        sa.Column("actor", sa.String),
        sa.Column("details", sa.JSON),
        sa.Column("at", sa.Float, nullable=False),
    )
    sa.Table(
        "agent_suites", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agent", sa.String, nullable=False, index=True),
        sa.Column("task", sa.String),
        sa.Column("dataset_id", sa.String),
        sa.Column("split", sa.String),
        sa.Column("suite", sa.Text),
        sa.Column("cases", sa.Integer, nullable=False),
        sa.Column("cases_sha256", sa.String, nullable=False),
        sa.Column("actor", sa.String),
        sa.Column("at", sa.Float, nullable=False),
    )
    return metadata


def upgrade() -> None:
    bind = op.get_bind()
    present = sa.inspect(bind)
    existing_tables = set(present.get_table_names())
    for table in baseline_metadata().sorted_tables:
        if table.name not in existing_tables:
            table.create(bind)
            continue
        # A table from a pre-Alembic ledger: add what later versions of that era added in place.
        columns = {c["name"] for c in present.get_columns(table.name)}
        for column in table.columns:
            if column.name in columns:
                continue
            if not column.nullable:
                raise RuntimeError(
                    f"The ledger's table {table.name} lacks the required column {column.name}, which no earlier version "
                    "left out; it was not made by this product. Point MODEL_CUSTOMIZATION_STORE_URL at a new database."
                )
            op.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
        indexes = {index["name"] for index in present.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(bind)


def downgrade() -> None:
    for table in reversed(baseline_metadata().sorted_tables):
        op.drop_table(table.name)
