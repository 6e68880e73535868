"""The store's tables: the live schema that the repositories query (SQLAlchemy Core).

The database itself is shaped by the Alembic migrations in store/migrations/, which freeze each revision's tables on
their own; a change here needs a new revision there (and HEAD_REVISION in store/database.py moved to it).
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, ForeignKey, Integer, MetaData, String, Table, Text

metadata = MetaData()

datasets = Table(
    "datasets",
    metadata,
    Column("id", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("path", Text, nullable=False),
    Column("counts", JSON, nullable=False),  # examples per split
    Column("card", JSON, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String, primary_key=True),
    Column("provider", String, nullable=False),
    Column("base_model", Text, nullable=False),
    Column("dataset_id", String, ForeignKey("datasets.id"), nullable=False),
    Column("method", String, nullable=False),
    Column("hyperparameters", JSON, nullable=False),
    Column("status", String, nullable=False),
    Column("step", Integer, nullable=False, default=0),
    Column("total_steps", Integer),
    Column("epoch", Float),
    Column("train_loss", Float),
    Column("validation_loss", Float),
    Column("eta_seconds", Float),
    Column("error", Text),
    Column("model_id", String),
    Column("worker_pid", Integer),
    Column("continue_from", String),
    Column("launcher", Text),  # the command prefix that starts its worker, e.g. "accelerate launch --num_processes 2"
    Column("attempts", Integer),  # workers launched for this job (automatic resumes are limited)
    Column("queued_at", Float),  # when it (last) joined the queue: the queue runs in this order
    # Cloud jobs: the provider's own id and status word (kept verbatim, even one we do not know), the key that
    # makes a retried start find this job, and provider details (uploaded file ids, S3 URIs, sync cursors).
    Column("remote_id", String),
    Column("remote_status", String),
    Column("idempotency_key", String, index=True),
    Column("details", JSON),
    # Leases (several servers on one ledger): the machine whose worker runs the job, and until when it holds it.
    Column("worker_host", String),
    Column("lease_expires_at", Float),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("updated_at", Float, nullable=False),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String, ForeignKey("jobs.id"), nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("level", String, nullable=False),
    Column("message", Text, nullable=False),
)

job_metrics = Table(
    "job_metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String, ForeignKey("jobs.id"), nullable=False, index=True),
    Column("step", Integer, nullable=False),
    Column("epoch", Float, nullable=False),
    Column("train_loss", Float),
    Column("validation_loss", Float),
    Column("learning_rate", Float),
    Column("tokens_per_second", Float),  # real (non-padding) tokens through the model per second of this step
    # GRPO steps: the mean and spread of the sampled answers' rewards, and the mean KL to the reference per token.
    Column("reward_mean", Float),
    Column("reward_std", Float),
    Column("kl", Float),
    Column("validation_reward", Float),  # GRPO: mean reward of the greedy answers to the validation cases
    Column("at", Float, nullable=False),
)

models = Table(
    "models",
    metadata,
    Column("id", String, primary_key=True),
    Column("provider", String, nullable=False),
    Column("kind", String, nullable=False),  # base | tuned
    Column("base_model", Text, nullable=False),
    Column("path", Text),  # adapter folder for tuned local models
    Column("job_id", String),
    Column("dataset_id", String),
    Column("details", JSON),  # provider extras, e.g. a Bedrock model's ARN and its provisioned throughput
    Column("created_at", Float, nullable=False),
)

# Money committed to jobs: one row per paid job, written before the provider is asked to spend anything.
spend = Table(
    "spend",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String, nullable=False, index=True),
    Column("provider", String, nullable=False),
    Column("quoted_usd", Float),  # None: the provider's price is unknown to us
    Column("committed_usd", Float, nullable=False),  # what counts against the budgets: the quote or the confirmed ceiling
    Column("actual_usd", Float),  # from the provider's billed tokens once the job ends
    Column("approved_by", String, nullable=False),  # budget | argument | elicitation
    Column("at", Float, nullable=False, index=True),
)

# Training files uploaded to a provider, by content hash, so the same content is never uploaded twice.
provider_files = Table(
    "provider_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String, nullable=False),
    Column("sha256", String, nullable=False, index=True),
    Column("remote_id", String, nullable=False),
    Column("filename", String),
    Column("bytes", Integer),
    Column("at", Float, nullable=False),
)

evaluations = Table(
    "evaluations",
    metadata,
    Column("id", String, primary_key=True),
    Column("dataset_id", String, nullable=False),
    Column("models", JSON, nullable=False),
    Column("status", String, nullable=False),
    Column("summary", JSON, nullable=False),  # per-model metric means
    Column("path", Text, nullable=False),  # report folder (per-case outputs)
    Column("created_at", Float, nullable=False),
    Column("plan", JSON),  # what was asked (models, cases' source, options): enough to resume an interrupted run
    Column("error", Text),  # why a run stopped before the end (status interrupted)
    Column("updated_at", Float),
)

# Each finished piece of an evaluation (one model's answer to one case, one judge rating, one pairwise verdict),
# written as it comes, so that an interrupted evaluation resumes with only the missing pieces.
evaluation_results = Table(
    "evaluation_results",
    metadata,
    Column("eval_id", String, ForeignKey("evaluations.id"), primary_key=True),
    Column("case_index", Integer, primary_key=True),
    Column("unit", String, primary_key=True),  # answer:<model> | judge:<model> | pairwise:<candidate>
    Column("payload", JSON, nullable=False),
    Column("at", Float, nullable=False),
)

# Which model serves an agent (for one task tag, or by default when task is NULL): one row per change, newest last.
# The latest row of an (agent, task) pair is the live assignment; replaces_id points at the row it superseded, so a
# rollback can step back through earlier assignments.
deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent", String, nullable=False, index=True),
    Column("task", String),  # NULL: the agent's default model
    Column("model", Text, nullable=False),
    Column("action", String, nullable=False),  # deploy | rollback
    Column("replaces_id", Integer),
    Column("eval_id", String),  # the evaluation that let the change through the gate
    Column("gate", String),  # the gate in force: not_worse | better | off | first (nothing to compare with) | forced
    Column("reason", Text),  # why it was forced or rolled back
    Column("actor", String),  # who made the change (the server's OS user)
    Column("details", JSON),  # the comparison the gate read
    Column("at", Float, nullable=False),
)

# The cases an agent (or one of its tasks) is judged on: a deployment that replaces its model needs an evaluation of
# exactly these cases. One row per change, newest last; the latest row of an (agent, task) pair is in force.
agent_suites = Table(
    "agent_suites",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent", String, nullable=False, index=True),
    Column("task", String),  # NULL: every task of the agent that has no suite of its own
    Column("dataset_id", String),
    Column("split", String),
    Column("suite", Text),  # absolute path of a suite file
    Column("cases", Integer, nullable=False),
    Column("cases_sha256", String, nullable=False),  # of the cases when they were set (the file may change later)
    Column("actor", String),
    Column("at", Float, nullable=False),
)
