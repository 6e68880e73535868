"""The ledger: the one place where datasets, jobs, their events and metrics, models and evaluations are recorded.

SQLAlchemy Core over SQLite in WAL mode, so the server, the CLI and detached training workers can read and write
at the same time. Large payloads (dataset examples, adapters, per-case evaluation outputs) live as files under the
data home; the ledger holds their paths and summaries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

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

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (server, CLI) work while a worker writes; busy_timeout waits out short write locks.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Ledger:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Bring a ledger made by an older version up to date with the nullable columns added since.

        Full migrations (Alembic) come with the shared-deployment work; until then new columns are nullable and
        added in place, so an existing data home keeps working after an upgrade.
        """
        from sqlalchemy import inspect as inspect_schema, text

        present = {table: {c["name"] for c in inspect_schema(self.engine).get_columns(table)} for table in metadata.tables}
        with self.transaction() as conn:
            for table in metadata.sorted_tables:
                for column in table.columns:
                    if column.name not in present[table.name] and column.nullable:
                        kind = column.type.compile(dialect=self.engine.dialect)
                        conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}'))

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    # datasets -------------------------------------------------------------------------------------------------
    def add_dataset(self, row: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute(insert(datasets).values(**row))

    def get_dataset(self, dataset_id: str) -> dict[str, Any] | None:
        return self._one(datasets, dataset_id)

    def list_datasets(self) -> list[dict[str, Any]]:
        return self._all(select(datasets).order_by(datasets.c.created_at.desc()))

    # jobs -----------------------------------------------------------------------------------------------------
    def add_job(self, row: dict[str, Any]) -> None:
        now = time.time()
        with self.transaction() as conn:
            conn.execute(insert(jobs).values(created_at=now, updated_at=now, step=0, **row))
            conn.execute(insert(job_events).values(job_id=row["id"], at=now, level="info", message="job created"))

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        return self._one(jobs, job_id)

    def list_jobs(self, status: str | None = None) -> list[dict[str, Any]]:
        query = select(jobs).order_by(jobs.c.created_at.desc())
        if status:
            query = query.where(jobs.c.status == status)
        return self._all(query)

    def update_job(self, job_id: str, **values: Any) -> None:
        with self.transaction() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(updated_at=time.time(), **values))

    def claim_job(self, job_id: str, pid: int) -> bool:
        """Mark a queued job running for this worker; False if it was cancelled (or taken) in the meantime."""
        now = time.time()
        with self.transaction() as conn:
            query = update(jobs).where(jobs.c.id == job_id, jobs.c.status == "queued")
            changed = conn.execute(query.values(status="running", started_at=now, updated_at=now, worker_pid=pid)).rowcount
        return bool(changed)

    def finish_job(self, job_id: str, status: str, *, only_if_active: bool = True, **values: Any) -> bool:
        """Move a job to a terminal status once; returns False when it had already ended (e.g. cancelled)."""
        now = time.time()
        with self.transaction() as conn:
            query = update(jobs).where(jobs.c.id == job_id)
            if only_if_active:
                query = query.where(jobs.c.status.not_in(TERMINAL_STATUSES))
            changed = conn.execute(query.values(status=status, finished_at=now, updated_at=now, **values)).rowcount
        return bool(changed)

    def add_event(self, job_id: str, message: str, level: str = "info") -> None:
        with self.transaction() as conn:
            conn.execute(insert(job_events).values(job_id=job_id, at=time.time(), level=level, message=message))

    def events(self, job_id: str, limit: int | None = 20) -> list[dict[str, Any]]:
        query = select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id.desc()).limit(limit)
        return list(reversed(self._all(query)))

    def add_metric(self, job_id: str, **values: Any) -> None:
        with self.transaction() as conn:
            conn.execute(insert(job_metrics).values(job_id=job_id, at=time.time(), **values))

    def record_step(self, job_id: str, metric: dict[str, Any], **job_values: Any) -> None:
        """One training step's metric row and the job's progress, in one transaction."""
        now = time.time()
        with self.transaction() as conn:
            conn.execute(insert(job_metrics).values(job_id=job_id, at=now, **metric))
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(updated_at=now, **job_values))

    def local_speed_history(self, base_model: str, limit: int = 10) -> list[float]:
        """Mean tokens/s of the latest finished local jobs on this base model (for time estimates)."""
        from sqlalchemy import func

        query = (
            select(func.avg(job_metrics.c.tokens_per_second))
            .select_from(job_metrics.join(jobs, jobs.c.id == job_metrics.c.job_id))
            .where(jobs.c.provider == "local", jobs.c.base_model == base_model, jobs.c.status == "succeeded")
            .where(job_metrics.c.tokens_per_second.is_not(None))
            .group_by(jobs.c.id)
            .order_by(func.max(jobs.c.finished_at).desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [float(v) for (v,) in conn.execute(query) if v]

    def drop_metrics_after(self, job_id: str, step: int) -> None:
        """Forget the metrics of steps a resumed job will take again (those after its checkpoint)."""
        from sqlalchemy import delete

        with self.transaction() as conn:
            conn.execute(delete(job_metrics).where(job_metrics.c.job_id == job_id, job_metrics.c.step > step))

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        return self._all(select(job_metrics).where(job_metrics.c.job_id == job_id).order_by(job_metrics.c.id))

    # models ---------------------------------------------------------------------------------------------------
    def add_model(self, row: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute(insert(models).values(created_at=time.time(), **row))

    def get_model(self, model_id: str) -> dict[str, Any] | None:
        return self._one(models, model_id)

    def list_models(self) -> list[dict[str, Any]]:
        return self._all(select(models).order_by(models.c.created_at.desc()))

    def update_model(self, model_id: str, **values: Any) -> None:
        with self.transaction() as conn:
            conn.execute(update(models).where(models.c.id == model_id).values(**values))

    # cloud jobs -----------------------------------------------------------------------------------------------
    def job_by_idempotency_key(self, provider: str, key: str) -> dict[str, Any] | None:
        query = select(jobs).where(jobs.c.provider == provider, jobs.c.idempotency_key == key).order_by(jobs.c.created_at.desc())
        rows = self._all(query.limit(1))
        return rows[0] if rows else None

    def add_spend(self, row: dict[str, Any]) -> None:
        """Record a job's approved cost; a job approved again (a resubmission of the same row) keeps one row."""
        from sqlalchemy import delete

        with self.transaction() as conn:
            conn.execute(delete(spend).where(spend.c.job_id == row["job_id"]))
            conn.execute(insert(spend).values(at=time.time(), **row))

    def set_actual_spend(self, job_id: str, actual_usd: float) -> None:
        with self.transaction() as conn:
            conn.execute(update(spend).where(spend.c.job_id == job_id).values(actual_usd=actual_usd))

    def spend_since(self, since: float) -> float:
        """Dollars counted against the daily budget since a moment: the actual bill where known, else what was committed."""
        from sqlalchemy import func

        amount = func.coalesce(spend.c.actual_usd, spend.c.committed_usd)
        with self.engine.connect() as conn:
            return float(conn.execute(select(func.coalesce(func.sum(amount), 0.0)).where(spend.c.at >= since)).scalar_one())

    def spend_for_job(self, job_id: str) -> dict[str, Any] | None:
        rows = self._all(select(spend).where(spend.c.job_id == job_id).order_by(spend.c.id.desc()).limit(1))
        return rows[0] if rows else None

    def find_provider_file(self, provider: str, sha256: str) -> list[dict[str, Any]]:
        query = select(provider_files).where(provider_files.c.provider == provider, provider_files.c.sha256 == sha256)
        return self._all(query.order_by(provider_files.c.id.desc()))

    def add_provider_file(self, row: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute(insert(provider_files).values(at=time.time(), **row))

    def forget_provider_file(self, provider: str, remote_id: str) -> None:
        from sqlalchemy import delete

        with self.transaction() as conn:
            conn.execute(delete(provider_files).where(provider_files.c.provider == provider, provider_files.c.remote_id == remote_id))

    # evaluations ----------------------------------------------------------------------------------------------
    def add_evaluation(self, row: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute(insert(evaluations).values(created_at=time.time(), **row))

    def get_evaluation(self, eval_id: str) -> dict[str, Any] | None:
        return self._one(evaluations, eval_id)

    def update_evaluation(self, eval_id: str, **values: Any) -> None:
        with self.transaction() as conn:
            conn.execute(update(evaluations).where(evaluations.c.id == eval_id).values(updated_at=time.time(), **values))

    def add_evaluation_results(self, eval_id: str, results: list[tuple[int, str, dict[str, Any]]]) -> None:
        """Store finished pieces (case_index, unit, payload) in one transaction; a piece stored before is kept as it was."""
        if not results:
            return
        now = time.time()
        rows = [{"eval_id": eval_id, "case_index": case, "unit": unit, "payload": payload, "at": now} for case, unit, payload in results]
        with self.transaction() as conn:
            keys = select(evaluation_results.c.case_index, evaluation_results.c.unit).where(evaluation_results.c.eval_id == eval_id)
            stored = {(case, unit) for case, unit in conn.execute(keys)}
            fresh = [r for r in rows if (r["case_index"], r["unit"]) not in stored]
            if fresh:
                conn.execute(insert(evaluation_results), fresh)

    def evaluation_results(self, eval_id: str) -> list[dict[str, Any]]:
        """Every stored piece of an evaluation, in case order."""
        query = select(evaluation_results).where(evaluation_results.c.eval_id == eval_id).order_by(evaluation_results.c.case_index, evaluation_results.c.unit)
        return self._all(query)

    def list_evaluations(self) -> list[dict[str, Any]]:
        return self._all(select(evaluations).order_by(evaluations.c.created_at.desc()))

    # deployments ----------------------------------------------------------------------------------------------
    def add_deployment(self, row: dict[str, Any]) -> int:
        with self.transaction() as conn:
            return int(conn.execute(insert(deployments).values(at=time.time(), **row)).inserted_primary_key[0])

    def deployments_of(self, agent: str) -> list[dict[str, Any]]:
        """Every assignment change of an agent, oldest first."""
        return self._all(select(deployments).where(deployments.c.agent == agent).order_by(deployments.c.id))

    def list_agents(self) -> list[str]:
        with self.engine.connect() as conn:
            names = {a for (a,) in conn.execute(select(deployments.c.agent).distinct())}
            names |= {a for (a,) in conn.execute(select(agent_suites.c.agent).distinct())}
        return sorted(names)

    def add_agent_suite(self, row: dict[str, Any]) -> int:
        with self.transaction() as conn:
            return int(conn.execute(insert(agent_suites).values(at=time.time(), **row)).inserted_primary_key[0])

    def agent_suites_of(self, agent: str) -> list[dict[str, Any]]:
        """Every suite change of an agent, oldest first."""
        return self._all(select(agent_suites).where(agent_suites.c.agent == agent).order_by(agent_suites.c.id))

    # helpers --------------------------------------------------------------------------------------------------
    def _one(self, table: Table, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.id == key)).mappings().first()
        return dict(row) if row else None

    def _all(self, query: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
