"""Jobs: start (validate everything first, then record and launch), check, cancel, list.

Nothing reaches the ledger until every check has passed, so a refused job leaves no trace. A local job runs in a
detached worker; `check_job` notices a worker that died without reporting and marks its job failed.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timezone
from typing import Any

from model_customization.datasets.build import get_dataset
from model_customization.errors import NotFoundError, UserError
from model_customization.jobs.ledger import TERMINAL_STATUSES
from model_customization.jobs.processes import spawn_worker, stop_worker, worker_alive
from model_customization.providers.local.hyperparameters import parse_hyperparameters
from model_customization.providers.local.models import EMBEDDED_MODEL, check_base_model
from model_customization.workspace import Workspace

MIN_TRAIN_EXAMPLES = 10
PROVIDERS = ("local",)
METHODS = ("sft",)


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds") if timestamp else None


def start_job(
    ws: Workspace,
    dataset_id: str,
    *,
    provider: str = "local",
    base_model: str = EMBEDDED_MODEL,
    method: str = "sft",
    hyperparameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if provider not in PROVIDERS:
        raise UserError(f"Provider {provider!r} is not available. Use provider='local' (LoRA training on this machine).")
    if method not in METHODS:
        raise UserError(f"Method {method!r} is not supported for local jobs yet. Use method='sft'.")
    dataset = get_dataset(ws, dataset_id)
    if dataset["card"].get("method", "sft") != method:
        raise UserError(
            f"Dataset {dataset_id} holds {dataset['card'].get('method')} examples but the job's method is {method}. "
            "Build a supervised dataset (build_dataset_from_memory with method='sft') for local training."
        )
    n_train = dataset["counts"].get("train", 0)
    if n_train < MIN_TRAIN_EXAMPLES:
        raise UserError(
            f"Dataset {dataset_id} has {n_train} training examples; at least {MIN_TRAIN_EXAMPLES} are needed. "
            "Add more memory files and call build_dataset_from_memory again."
        )
    canonical_base = check_base_model(base_model)
    hp = parse_hyperparameters(hyperparameters)

    job_id = "job-" + secrets.token_hex(6)
    ws.ledger.add_job(
        {
            "id": job_id,
            "provider": provider,
            "base_model": canonical_base,
            "dataset_id": dataset_id,
            "method": method,
            "hyperparameters": hp.model_dump(),
            "status": "queued",
        }
    )
    try:
        pid = spawn_worker(ws.settings.home, job_id, ws.settings.jobs_dir / job_id / "worker.log")
    except OSError as error:
        ws.ledger.finish_job(job_id, "failed", error=f"could not start the worker: {error}")
        raise UserError(f"Could not start the training worker: {error}.") from error
    ws.ledger.update_job(job_id, worker_pid=pid)
    ws.ledger.add_event(job_id, f"worker process {pid} launched")
    return check_job(ws, job_id)


def _require_job(ws: Workspace, job_id: str) -> dict[str, Any]:
    job = ws.ledger.get_job(job_id)
    if not job:
        raise NotFoundError(f"Job {job_id!r} not found. Call list_jobs to see known jobs.")
    return job


def _notice_dead_worker(ws: Workspace, job: dict[str, Any]) -> dict[str, Any]:
    if job["status"] in TERMINAL_STATUSES or not job["worker_pid"]:
        return job
    if worker_alive(job["worker_pid"], job["id"]):
        return job
    # The worker may have finished between our read and the liveness check: read again before judging.
    fresh = ws.ledger.get_job(job["id"]) or job
    if fresh["status"] in TERMINAL_STATUSES:
        return fresh
    log = ws.settings.jobs_dir / job["id"] / "worker.log"
    message = f"the worker process {job['worker_pid']} ended without reporting a result (log: {log})"
    if ws.ledger.finish_job(job["id"], "failed", error=message):
        ws.ledger.add_event(job["id"], message, "error")
    return ws.ledger.get_job(job["id"]) or fresh


def summarize_job(ws: Workspace, job: dict[str, Any], events: int = 5) -> dict[str, Any]:
    return {
        "job_id": job["id"],
        "status": job["status"],
        "provider": job["provider"],
        "base_model": job["base_model"],
        "dataset_id": job["dataset_id"],
        "method": job["method"],
        "step": job["step"] or 0,
        "total_steps": job["total_steps"],
        "epoch": job["epoch"],
        "train_loss": job["train_loss"],
        "validation_loss": job["validation_loss"],
        "eta_seconds": None if job["status"] in TERMINAL_STATUSES else job["eta_seconds"],
        "error": job["error"],
        "model_id": job["model_id"],
        "created_at": _iso(job["created_at"]),
        "finished_at": _iso(job["finished_at"]),
        "hyperparameters": job["hyperparameters"],
        "events": [
            {"at": _iso(e["at"]), "level": e["level"], "message": e["message"]} for e in ws.ledger.events(job["id"], events)
        ],
        "resource_uri": f"jobs://{job['id']}",
    }


def check_job(ws: Workspace, job_id: str, events: int = 5) -> dict[str, Any]:
    job = _notice_dead_worker(ws, _require_job(ws, job_id))
    return summarize_job(ws, job, events)


def cancel_job(ws: Workspace, job_id: str) -> dict[str, Any]:
    job = _require_job(ws, job_id)
    if job["status"] in TERMINAL_STATUSES:
        raise UserError(f"Job {job_id} has already ended ({job['status']}); there is nothing to cancel. check_job shows its result.")
    # Record the cancellation first, so a worker finishing at this moment cannot mark the job succeeded after it.
    ws.ledger.finish_job(job_id, "cancelled")
    stopped = stop_worker(job["worker_pid"], job_id) if job["worker_pid"] else True
    ws.ledger.add_event(
        job_id,
        f"cancelled; worker process {job['worker_pid']} stopped" if stopped else f"cancelled, but worker process {job['worker_pid']} did not stop",
        "info" if stopped else "error",
    )
    return check_job(ws, job_id)


def list_jobs(ws: Workspace, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    rows = ws.ledger.list_jobs(status)[:limit]
    return [
        {
            "job_id": r["id"],
            "status": r["status"],
            "provider": r["provider"],
            "base_model": r["base_model"],
            "dataset_id": r["dataset_id"],
            "step": r["step"] or 0,
            "total_steps": r["total_steps"],
            "model_id": r["model_id"],
            "created_at": _iso(r["created_at"]),
        }
        for r in rows
    ]


def wait_for_job(ws: Workspace, job_id: str, timeout: float, poll: float = 1.0, on_poll=None) -> dict[str, Any]:
    """Poll until the job ends (for the CLI demo and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        summary = check_job(ws, job_id)
        if on_poll:
            on_poll(summary)
        if summary["status"] in TERMINAL_STATUSES or time.monotonic() > deadline:
            return summary
        time.sleep(poll)
