"""The ledger: the one place where datasets, jobs, their events and metrics, models and evaluations are recorded.

SQLAlchemy Core over SQLite (WAL mode, so the server, the CLI and detached training workers read and write at the same
time) or PostgreSQL (a postgresql:// store URL; several servers, on one machine or several, may share it). The schema
is kept by Alembic migrations (jobs/migrations/), run when a Ledger opens. Large payloads (dataset examples, adapters,
per-case evaluation outputs) live as files under the data home; the ledger holds their paths and summaries.

Local jobs are handed out with leases: a dispatcher reserves a queued job atomically (one UPDATE ... WHERE status is
queued and nobody holds it), its worker claims it the same way and renews the lease while it runs, so each job runs
in exactly one worker however many servers dispatch, and a job whose worker vanished can be taken over.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
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
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from model_customization.errors import UserError

# The newest migration in jobs/migrations/versions; a ledger already there opens without importing Alembic.
HEAD_REVISION = "0002_job_leases"
DEFAULT_LEASE_SECONDS = 60.0  # a worker renews its job's lease every third of this
HOST_ID_ENV = "MODEL_CUSTOMIZATION_HOST_ID"  # names this machine in leases (default: its host name)

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
ACTIVE_LOCAL_STATUSES = ("queued", "running")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def normalize_store_url(url: str) -> str:
    """The SQLAlchemy URL for a store URL: postgresql:// and postgres:// mean PostgreSQL through psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<a store URL that is not a database URL>"


def _scrub(message: str, url: str) -> str:
    # A driver's error text may quote the connection string; whatever it quotes, the password must not get out.
    try:
        password = make_url(url).password
    except ArgumentError:
        return "(details withheld: the store URL could not be parsed)"
    if password:
        from urllib.parse import quote

        for form in {str(password), quote(str(password), safe=""), quote(str(password))}:
            message = message.replace(form, "***")
    return message


def this_host() -> str:
    """The name this machine goes by in job leases: $MODEL_CUSTOMIZATION_HOST_ID, else the host name."""
    return os.environ.get(HOST_ID_ENV) or socket.gethostname()


def _lock_key(name: str) -> int:
    # PostgreSQL advisory locks take a signed 64-bit key: derive a stable one from the lock's name.
    return int.from_bytes(hashlib.sha256(f"model-customization:{name}".encode()).digest()[:8], "big", signed=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (server, CLI) work while a worker writes; busy_timeout waits out short write locks. The
    # timeout comes first: switching a ledger to WAL takes a lock, and several processes may open it at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Ledger:
    def __init__(self, url: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        full_url = normalize_store_url(url)
        self.url = mask_url(full_url)  # safe to show; the engine keeps the real one
        self.lease_seconds = lease_seconds
        self._local_lock = threading.RLock()  # stands in for a file lock when the database is in memory
        try:
            if full_url.startswith("postgresql"):
                # pre_ping: a server that outlives a database restart gets fresh connections instead of errors.
                self.engine: Engine = create_engine(full_url, pool_pre_ping=True)
            else:
                self.engine = create_engine(full_url)
        except ImportError as error:
            raise UserError(
                f"The store {self.url} needs a database driver that is not installed ({error.name or error}). For PostgreSQL: "
                "pip install 'model-customization[postgres]' (psycopg 3)."
            ) from None
        except (ArgumentError, NoSuchModuleError) as error:
            raise UserError(
                f"The store URL {self.url} cannot be opened: {_scrub(str(error), full_url)}. Set MODEL_CUSTOMIZATION_STORE_URL "
                "to sqlite:////absolute/path/ledger.sqlite3 or postgresql://user:password@host:port/database."
            ) from None
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self.upgrade_schema()
        except DBAPIError as error:
            self.engine.dispose()
            reason = " ".join(_scrub(str(error.orig) if error.orig is not None else str(error), full_url).strip().splitlines())[:500]
            if self.dialect == "sqlite":
                advice = "Check that the folder exists and is writable, or set MODEL_CUSTOMIZATION_STORE_URL to another file."
            else:
                advice = "Check that the database server is running and that the URL (user, password, host, port, database) is right."
            raise UserError(f"Cannot open the ledger at {self.url}: {reason}. {advice}") from None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at; None for a new database or one made before migrations."""
        from sqlalchemy import inspect as inspect_schema

        with self.engine.connect() as conn:
            if not inspect_schema(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def upgrade_schema(self) -> None:
        """Bring the database to the newest schema (`alembic upgrade head`): creates a new ledger, migrates an older one.

        A ledger made before migrations existed (tables, no alembic_version) is adapted by the first revision
        without losing rows. Processes that open the same new or old ledger at once take turns: an advisory lock on
        PostgreSQL, a lock file beside the SQLite database.
        """
        # SQLite: even the first look takes the lock, since the first connection switches an old ledger to WAL,
        # which fails at once ("database is locked") while another process migrates it.
        if self.dialect != "sqlite" and self.schema_revision() == HEAD_REVISION:
            return  # the common case on a server: no Alembic import, no lock
        with self.exclusive("schema"):
            if self.schema_revision() == HEAD_REVISION:
                return
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            with self.engine.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """A lock named `name`, held for the block, shared by every process that opens this ledger: a session advisory
        lock on PostgreSQL (so servers on several machines take turns), a lock file beside a SQLite database."""
        if self.dialect == "postgresql":
            key = _lock_key(name)
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            return
        database = self.engine.url.database if self.dialect == "sqlite" else None
        if database and database != ":memory:" and not database.startswith("file:"):
            from model_customization.storage import file_lock

            with file_lock(Path(f"{database}.{name}.lock")):
                yield
            return
        with self._local_lock:
            yield

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

    def delete_dataset(self, dataset_id: str) -> bool:
        """Remove a dataset's row; False when there was none. Raises sqlalchemy's IntegrityError while a job names it
        (jobs.dataset_id is a foreign key: a model's lineage keeps its dataset)."""
        from sqlalchemy import delete

        with self.transaction() as conn:
            return conn.execute(delete(datasets).where(datasets.c.id == dataset_id)).rowcount > 0

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

    def events_after(self, job_id: str, after_id: int | None, limit: int) -> list[dict[str, Any]]:
        """A job's events in the order they were written (row id), those after `after_id`, at most `limit`."""
        query = select(job_events).where(job_events.c.job_id == job_id)
        if after_id is not None:
            query = query.where(job_events.c.id > after_id)
        return self._all(query.order_by(job_events.c.id).limit(limit))

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

    # leases (several servers on one ledger) ------------------------------------------------------------------
    def reserve_job(self, job_id: str, host: str | None = None) -> bool:
        """Take a queued job for this machine's dispatcher before it launches a worker; False if another dispatcher
        holds it, it has a worker, or it is no longer queued. One UPDATE, so two dispatchers never both win."""
        now = time.time()
        held = (jobs.c.lease_expires_at.is_not(None)) & (jobs.c.lease_expires_at >= now)
        query = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status == "queued", jobs.c.worker_pid.is_(None), ~held)
            .values(worker_host=host or this_host(), lease_expires_at=now + self.lease_seconds, updated_at=now)
            .returning(jobs.c.id)
        )
        with self.transaction() as conn:
            return conn.execute(query).first() is not None

    def attach_worker(self, job_id: str, pid: int, host: str | None = None) -> bool:
        """Record the process launched for a job this machine reserved (unless the worker already claimed it)."""
        now = time.time()
        query = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.worker_host == (host or this_host()), jobs.c.worker_pid.is_(None))
            .where(jobs.c.status.in_(ACTIVE_LOCAL_STATUSES))
            .values(worker_pid=pid, attempts=func.coalesce(jobs.c.attempts, 0) + 1, updated_at=now)
            .returning(jobs.c.id)
        )
        with self.transaction() as conn:
            attached = conn.execute(query).first() is not None
            if not attached:  # the worker claimed it first (with its own pid under a launcher): count the launch all the same
                query = update(jobs).where(jobs.c.id == job_id, jobs.c.worker_host == (host or this_host()), jobs.c.status.in_(ACTIVE_LOCAL_STATUSES))
                conn.execute(query.values(attempts=func.coalesce(jobs.c.attempts, 0) + 1))
        return attached

    def release_job(self, job_id: str, *, only_expired: bool = True) -> bool:
        """Give back a reservation whose worker never started (its dispatcher died): the job waits in the queue again."""
        now = time.time()
        query = update(jobs).where(jobs.c.id == job_id, jobs.c.status == "queued", jobs.c.worker_pid.is_(None))
        if only_expired:
            query = query.where(jobs.c.lease_expires_at < now)
        with self.transaction() as conn:
            return conn.execute(query.values(worker_host=None, lease_expires_at=None, updated_at=now).returning(jobs.c.id)).first() is not None

    def claim_job(self, job_id: str, pid: int, host: str | None = None) -> bool:
        """Mark a queued job running for this worker; False if it was cancelled or taken in the meantime.

        UPDATE ... WHERE status = 'queued' RETURNING: on SQLite writers take turns, on PostgreSQL a second claimer
        waits for the first one's row lock and then finds the job running; either way exactly one claim wins.
        """
        now = time.time()
        query = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status == "queued")
            .values(status="running", started_at=now, updated_at=now, worker_pid=pid, worker_host=host or this_host(), lease_expires_at=now + self.lease_seconds)
            .returning(jobs.c.id)
        )
        with self.transaction() as conn:
            return conn.execute(query).first() is not None

    def renew_lease(self, job_id: str, pid: int, host: str | None = None) -> bool:
        """Extend the lease of a job this worker holds; False when it holds it no longer."""
        now = time.time()
        query = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.worker_pid == pid, jobs.c.worker_host == (host or this_host()))
            .where(jobs.c.status.in_(ACTIVE_LOCAL_STATUSES))
            .values(lease_expires_at=now + self.lease_seconds)
            .returning(jobs.c.id)
        )
        with self.transaction() as conn:
            return conn.execute(query).first() is not None

    @contextmanager
    def lease_heartbeat(self, job_id: str, pid: int, on_lost: Callable[[dict[str, Any] | None], None] | None = None, interval: float | None = None) -> Iterator[None]:
        """Renew the job's lease from a background thread while the block runs (a worker wraps its training in this).

        Once the job has been running under this worker, finding it ended (cancelled from another machine) or held by
        another worker (taken over after a lease ran out) calls `on_lost(job)` once, so the worker can stop instead of
        training a job that is no longer its own. Database errors are retried at the next beat.
        """
        host = this_host()
        stop = threading.Event()
        pause = interval if interval is not None else self.lease_seconds / 3

        def beat() -> None:
            held_once = False  # the job has run under this worker: from then on, any other owner means it was lost
            while not stop.wait(pause):
                try:
                    renewed = self.renew_lease(job_id, pid, host)
                    job = self.get_job(job_id)
                except Exception:  # noqa: BLE001 - a database hiccup: the lease is long enough to try again
                    continue
                if renewed:
                    held_once = held_once or bool(job and job["status"] == "running")
                    continue
                if job is not None and job["status"] in TERMINAL_STATUSES and job["status"] != "cancelled":
                    return  # it ended (this worker finished it, or it failed): nothing more to hold
                cancelled = job is None or job["status"] == "cancelled"
                if cancelled or held_once:  # before its first claim the worker may simply not be attached yet
                    if on_lost:
                        on_lost(job)
                    return

        thread = threading.Thread(target=beat, name=f"lease-{job_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

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
