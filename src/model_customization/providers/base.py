"""The one interface every hosted training provider implements, and the ledger helpers they share.

A provider is one small class (like a plugin in simonw/llm): it knows its own API, its own status words and its own
training format. The orchestrator does the rest the same way for all of them: availability before any spending,
the quote and the spending guard, the idempotency key, recording the job. The local provider keeps its own worker
path (jobs/orchestrator.py); the cloud ones plug in here.

Order of calls for a new job, and what each may do:
  check_available   no spending, no upload: refuse early (missing key, closed organisation, retired base model)
  parse_hyperparameters / quote
                    pure, or read-only calls
  find_existing     a job already created under this idempotency key (a retried start_job after a lost reply)
  submit            uploads and creates the remote job; returns its id and details
  refresh           brings status, metrics, events and the tuned model into the ledger
  cancel / pause / resume
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from model_customization.errors import UserError
from model_customization.jobs.ledger import TERMINAL_STATUSES
from model_customization.workspace import Workspace

# Our status words. A provider status outside its STATUS_MAP is stored verbatim as the job's status (never a crash).
OUR_STATUSES = ("validating", "queued", "running", "paused", "succeeded", "failed", "cancelled")


def idempotency_key(dataset_id: str, base_model: str, method: str, hyperparameters: dict[str, Any]) -> str:
    """The default key: the same dataset, model, method and hyperparameters mean the same job."""
    canonical = json.dumps([dataset_id, base_model, method, hyperparameters], sort_keys=True, separators=(",", ":"))
    return "mc-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


class CloudProvider(ABC):
    name: ClassVar[str]
    STATUS_MAP: ClassVar[dict[str, str]]  # provider status word -> ours

    @abstractmethod
    def check_available(self, ws: Workspace, base_model: str | None, method: str) -> str:
        """Raise UserError (saying what to do) when a job cannot be created; return the canonical base model.

        Must not upload or create anything. base_model None means the provider's default (or discovered) base.
        """

    @abstractmethod
    def parse_hyperparameters(self, method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
        """Validate and normalise; UserError naming the bad field and its allowed range."""

    @abstractmethod
    def quote(self, ws: Workspace, dataset_id: str, base_model: str, method: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """What the job will cost: a dict with at least estimated_cost_usd (float, or None when the price is unknown)."""

    @abstractmethod
    def find_existing(self, ws: Workspace, key: str) -> dict[str, Any] | None:
        """A remote job created with this idempotency key, as submit's return value, or None."""

    @abstractmethod
    def submit(self, ws: Workspace, job: dict[str, Any]) -> dict[str, Any]:
        """Upload what is needed and create the remote job; returns {"remote_id", "remote_status", "details"}.

        `job` is the ledger row (id, dataset_id, base_model, method, hyperparameters, idempotency_key, details with
        the caller's provider options such as suffix, seed, metadata). Events may be added with ws.ledger.add_event.
        """

    @abstractmethod
    def refresh(self, ws: Workspace, job: dict[str, Any]) -> None:
        """Poll the provider and write status, progress, metrics, events and, on success, the tuned model."""

    @abstractmethod
    def cancel(self, ws: Workspace, job: dict[str, Any]) -> None:
        """Ask the provider to stop the job; the caller refreshes afterwards."""

    def pause(self, ws: Workspace, job: dict[str, Any]) -> None:
        raise UserError(f"{self.name} jobs cannot be paused; cancel_job stops one.")

    def resume(self, ws: Workspace, job: dict[str, Any]) -> None:
        raise UserError(f"{self.name} jobs cannot be resumed after a pause.")


# --- helpers every provider uses to write into the ledger --------------------------------------------------------
def apply_remote_status(ws: Workspace, job: dict[str, Any], provider: CloudProvider, remote_status: str, *, error: str | None = None, **values: Any) -> str:
    """Record the provider's status (verbatim) and ours; a terminal status is written once. Returns our status."""
    ours = provider.STATUS_MAP.get(remote_status, remote_status)
    if remote_status not in provider.STATUS_MAP and remote_status != job.get("remote_status"):
        ws.ledger.add_event(job["id"], f"{provider.name} reported status {remote_status!r}, which this version does not know; kept as is", "warning")
    if ours in TERMINAL_STATUSES:
        if ws.ledger.finish_job(job["id"], ours, remote_status=remote_status, error=error, **values):
            ws.ledger.add_event(job["id"], f"{provider.name} job {ours}" + (f": {error}" if error else ""), "error" if ours == "failed" else "info")
    elif job["status"] not in TERMINAL_STATUSES:
        if ours != job["status"]:
            ws.ledger.add_event(job["id"], f"status {ours} ({provider.name}: {remote_status})")
        started = {"started_at": time.time()} if ours == "running" and not job.get("started_at") else {}
        ws.ledger.update_job(job["id"], status=ours, remote_status=remote_status, error=error, **started, **values)
    return ours


def register_tuned_model(ws: Workspace, job: dict[str, Any], provider: str, model_id: str, details: dict[str, Any] | None = None) -> None:
    """Put a provider's tuned model in the registry with its lineage (job, dataset, base), once."""
    if not ws.ledger.get_model(model_id):
        ws.ledger.add_model(
            {
                "id": model_id,
                "provider": provider,
                "kind": "tuned",
                "base_model": job["base_model"],
                "path": None,
                "job_id": job["id"],
                "dataset_id": job["dataset_id"],
                "details": details,
            }
        )
    ws.ledger.update_job(job["id"], model_id=model_id)


def merge_details(ws: Workspace, job_id: str, **values: Any) -> dict[str, Any]:
    """Update some keys of a job's provider details (sync cursors, file ids) and return the whole."""
    current = dict((ws.ledger.get_job(job_id) or {}).get("details") or {})
    current.update(values)
    ws.ledger.update_job(job_id, details=current)
    return current


def record_metrics(ws: Workspace, job_id: str, rows: list[dict[str, Any]]) -> int:
    """Add metric rows (step, epoch, train_loss, validation_loss) for steps not recorded yet; returns how many."""
    seen = {m["step"] for m in ws.ledger.metrics(job_id)}
    added = 0
    for row in sorted(rows, key=lambda r: r["step"]):
        if row["step"] in seen:
            continue
        seen.add(row["step"])
        ws.ledger.add_metric(
            job_id,
            step=int(row["step"]),
            epoch=float(row.get("epoch") or 0.0),
            train_loss=row.get("train_loss"),
            validation_loss=row.get("validation_loss"),
            learning_rate=row.get("learning_rate"),
        )
        added += 1
    if rows:
        last = max(rows, key=lambda r: r["step"])
        progress = {"step": int(last["step"])}
        if last.get("train_loss") is not None:
            progress["train_loss"] = last["train_loss"]
        if last.get("validation_loss") is not None:
            progress["validation_loss"] = last["validation_loss"]
        if last.get("epoch") is not None:
            progress["epoch"] = float(last["epoch"])
        ws.ledger.update_job(job_id, **progress)
    return added


_REGISTRY: dict[str, type[CloudProvider]] = {}


def register_provider(cls: type[CloudProvider]) -> type[CloudProvider]:
    _REGISTRY[cls.name] = cls
    return cls


def cloud_provider(name: str) -> CloudProvider:
    """The provider object for a job's provider name (imported on first use: the SDKs are not loaded at start-up)."""
    if name not in _REGISTRY:
        import importlib

        module = {"openai": "model_customization.providers.openai.training", "bedrock": "model_customization.providers.bedrock.training"}.get(name)
        if module is None:
            raise UserError(f"Unknown provider {name!r}. Use local, openai or bedrock.")
        importlib.import_module(module)
    return _REGISTRY[name]()
