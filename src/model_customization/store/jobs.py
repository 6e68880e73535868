"""Jobs, with their events, their metrics and the leases that hand local jobs to exactly one worker.

Local jobs are handed out with leases: a dispatcher reserves a queued job atomically (one UPDATE ... WHERE status is
queued and nobody holds it), its worker claims it the same way and renews the lease while it runs, so each job runs
in exactly one worker however many servers dispatch, and a job whose worker vanished can be taken over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Update, delete, func, insert, select, update

from model_customization.store.repository import Repository
from model_customization.store.rows import JobEventRow, JobMetricRow, JobRow
from model_customization.store.schema import job_events, job_metrics, jobs
from model_customization.store.status import ACTIVE_LOCAL_STATUSES, TERMINAL_STATUSES, this_host


class JobRepository(Repository[JobRow]):
    table = jobs

    # jobs -----------------------------------------------------------------------------------------------------
    def add(self, row: Mapping[str, Any]) -> None:
        """Record a new job and its first event ("job created") in one transaction."""
        now = time.time()
        with self._store.transaction() as conn:
            conn.execute(insert(jobs).values(created_at=now, updated_at=now, step=0, **row))
            conn.execute(insert(job_events).values(job_id=row["id"], at=now, level="info", message="job created"))

    def all(self, status: str | None = None) -> list[JobRow]:
        """Every job (or those in one status), newest first."""
        query = select(jobs).order_by(jobs.c.created_at.desc())
        if status:
            query = query.where(jobs.c.status == status)
        return self._rows(query)

    def by_idempotency_key(self, provider: str, key: str) -> JobRow | None:
        """The newest job of this provider started with this key: a retried start finds it instead of starting again."""
        query = select(jobs).where(jobs.c.provider == provider, jobs.c.idempotency_key == key)
        return self._first(query.order_by(jobs.c.created_at.desc()))

    def update(self, job_id: str, **values: Any) -> None:
        self._update(job_id, {"updated_at": time.time(), **values})

    def finish(self, job_id: str, status: str, *, only_if_active: bool = True, **values: Any) -> bool:
        """Move a job to a terminal status once; returns False when it had already ended (e.g. cancelled)."""
        now = time.time()
        query = update(jobs).where(jobs.c.id == job_id)
        if only_if_active:
            query = query.where(jobs.c.status.not_in(TERMINAL_STATUSES))
        with self._store.transaction() as conn:
            changed = conn.execute(query.values(status=status, finished_at=now, updated_at=now, **values)).rowcount
        return bool(changed)

    # events ---------------------------------------------------------------------------------------------------
    def add_event(self, job_id: str, message: str, level: str = "info") -> None:
        self._insert({"job_id": job_id, "message": message, "level": level}, into=job_events, at=time.time())

    def events(self, job_id: str, limit: int | None = 20) -> list[JobEventRow]:
        """A job's latest events (all of them with limit None), oldest first."""
        query = select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id.desc()).limit(limit)
        return list(reversed(self._rows_of(JobEventRow, query)))

    def events_after(self, job_id: str, after_id: int | None, limit: int) -> list[JobEventRow]:
        """A job's events in the order they were written (row id), those after `after_id`, at most `limit`."""
        query = select(job_events).where(job_events.c.job_id == job_id)
        if after_id is not None:
            query = query.where(job_events.c.id > after_id)
        return self._rows_of(JobEventRow, query.order_by(job_events.c.id).limit(limit))

    # metrics --------------------------------------------------------------------------------------------------
    def add_metric(self, job_id: str, **values: Any) -> None:
        self._insert({"job_id": job_id, **values}, into=job_metrics, at=time.time())

    def record_step(self, job_id: str, metric: Mapping[str, Any], **job_values: Any) -> None:
        """One training step's metric row and the job's progress, in one transaction."""
        now = time.time()
        with self._store.transaction() as conn:
            conn.execute(insert(job_metrics).values(job_id=job_id, at=now, **metric))
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(updated_at=now, **job_values))

    def metrics(self, job_id: str) -> list[JobMetricRow]:
        return self._rows_of(JobMetricRow, select(job_metrics).where(job_metrics.c.job_id == job_id).order_by(job_metrics.c.id))

    def drop_metrics_after(self, job_id: str, step: int) -> None:
        """Forget the metrics of steps a resumed job will take again (those after its checkpoint)."""
        with self._store.transaction() as conn:
            conn.execute(delete(job_metrics).where(job_metrics.c.job_id == job_id, job_metrics.c.step > step))

    def speed_history(self, provider: str, base_model: str, limit: int = 10) -> list[float]:
        """Mean tokens/s of the latest succeeded jobs of a provider on a base model (for time estimates)."""
        query = (
            select(func.avg(job_metrics.c.tokens_per_second))
            .select_from(job_metrics.join(jobs, jobs.c.id == job_metrics.c.job_id))
            .where(jobs.c.provider == provider, jobs.c.base_model == base_model, jobs.c.status == "succeeded")
            .where(job_metrics.c.tokens_per_second.is_not(None))
            .group_by(jobs.c.id)
            .order_by(func.max(jobs.c.finished_at).desc())
            .limit(limit)
        )
        with self._store.engine.connect() as conn:
            return [float(v) for (v,) in conn.execute(query) if v]

    # leases (several servers on one store) --------------------------------------------------------------------
    def reserve(self, job_id: str, host: str | None = None) -> bool:
        """Take a queued job for this machine's dispatcher before it launches a worker; False if another dispatcher
        holds it, it has a worker, or it is no longer queued. One UPDATE, so two dispatchers never both win."""
        now = time.time()
        held = (jobs.c.lease_expires_at.is_not(None)) & (jobs.c.lease_expires_at >= now)
        query = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status == "queued", jobs.c.worker_pid.is_(None), ~held)
            .values(worker_host=host or this_host(), lease_expires_at=now + self._store.lease_seconds, updated_at=now)
        )
        return self._changed_one(query)

    def attach_worker(self, job_id: str, pid: int, host: str | None = None) -> bool:
        """Record the process launched for a job this machine reserved (unless the worker already claimed it)."""
        now = time.time()
        held_here = update(jobs).where(jobs.c.id == job_id, jobs.c.worker_host == (host or this_host()), jobs.c.status.in_(ACTIVE_LOCAL_STATUSES))
        one_more_launch = func.coalesce(jobs.c.attempts, 0) + 1
        with self._store.transaction() as conn:
            query = held_here.where(jobs.c.worker_pid.is_(None)).values(worker_pid=pid, attempts=one_more_launch, updated_at=now)
            attached = conn.execute(query.returning(jobs.c.id)).first() is not None
            if not attached:  # the worker claimed it first (with its own pid under a launcher): count the launch all the same
                conn.execute(held_here.values(attempts=one_more_launch))
        return attached

    def release(self, job_id: str, *, only_expired: bool = True) -> bool:
        """Give back a reservation whose worker never started (its dispatcher died): the job waits in the queue again."""
        now = time.time()
        query = update(jobs).where(jobs.c.id == job_id, jobs.c.status == "queued", jobs.c.worker_pid.is_(None))
        if only_expired:
            query = query.where(jobs.c.lease_expires_at < now)
        return self._changed_one(query.values(worker_host=None, lease_expires_at=None, updated_at=now))

    def claim(self, job_id: str, pid: int, host: str | None = None) -> bool:
        """Mark a queued job running for this worker; False if it was cancelled or taken in the meantime.

        UPDATE ... WHERE status = 'queued' RETURNING: on SQLite writers take turns, on PostgreSQL a second claimer
        waits for the first one's row lock and then finds the job running; either way exactly one claim wins.
        """
        now = time.time()
        query = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status == "queued")
            .values(status="running", started_at=now, updated_at=now, worker_pid=pid, worker_host=host or this_host(), lease_expires_at=now + self._store.lease_seconds)
        )
        return self._changed_one(query)

    def renew_lease(self, job_id: str, pid: int, host: str | None = None) -> bool:
        """Extend the lease of a job this worker holds; False when it holds it no longer."""
        query = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.worker_pid == pid, jobs.c.worker_host == (host or this_host()))
            .where(jobs.c.status.in_(ACTIVE_LOCAL_STATUSES))
            .values(lease_expires_at=time.time() + self._store.lease_seconds)
        )
        return self._changed_one(query)

    def _changed_one(self, query: Update) -> bool:
        # RETURNING rather than rowcount: the row that matched is the proof the conditional update won.
        with self._store.transaction() as conn:
            return conn.execute(query.returning(jobs.c.id)).first() is not None

    @contextmanager
    def lease_heartbeat(self, job_id: str, pid: int, on_lost: Callable[[JobRow | None], None] | None = None, interval: float | None = None) -> Iterator[None]:
        """Renew the job's lease from a background thread while the block runs (a worker wraps its training in this).

        Once the job has been running under this worker, finding it ended (cancelled from another machine) or held by
        another worker (taken over after a lease ran out) calls `on_lost(job)` once, so the worker can stop instead of
        training a job that is no longer its own. Database errors are retried at the next beat.
        """
        host = this_host()
        stop = threading.Event()
        pause = interval if interval is not None else self._store.lease_seconds / 3

        def beat() -> None:
            held_once = False  # the job has run under this worker: from then on, any other owner means it was lost
            while not stop.wait(pause):
                try:
                    renewed = self.renew_lease(job_id, pid, host)
                    job = self.get(job_id)
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
