"""Fine-tuning jobs on an OpenAI-compatible endpoint (the work behind provider.OpenAICompatibleProvider): upload the
splits, create the job, follow it into the ledger. One class for every endpoint (api.openai.com, Azure OpenAI v1,
those in the config file); where their APIs differ, the Endpoint says so (endpoints.py).

What OpenAI reports goes into the ledger as it arrives: its status word (one we do not know is kept verbatim),
its events (messages become job events; metrics events become metric rows), checkpoints, and at the end the result
file's metrics, the tuned model with its lineage and the billed tokens priced from datasets/quote.py.

Idempotency: the job's key goes into the remote job's metadata (`mc_idempotency_key`, with our job id as
`mc_job_id`), so a retried start finds the job by a metadata query instead of creating a second one. Job creation
runs with the SDK's retries off for the same reason: after a lost reply we look for the job before asking again.
Azure's job list takes no metadata filter (its v1 spec: only after and limit), so there the newest jobs are read
and their metadata compared, MAX_JOBS_SCANNED deep.

OpenAI lists events, jobs and checkpoints newest first; `after` pages towards older items. New events are
therefore read from the newest down to the last one already recorded (its id is kept in the job's details).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from model_customization.datasets.quote import openai_terms
from model_customization.errors import NotFoundError, UserError
from model_customization.providers.base import (
    apply_remote_status,
    idempotency_key,
    merge_details,
    record_metrics,
    register_tuned_model,
)
from model_customization.providers.openai.availability import (
    FINE_TUNING_CLOSES_ON,
    INACTIVE_CLOSED_ON,
    NEVER_FINE_TUNED_CLOSED_ON,
    check_openai_available,
    underlying_base,
)
from model_customization.providers.openai.client import (
    api_message,
    is_openai_platform,
    openai_client,
    refusal,
    retry_delay,
    retryable_errors,
)
from model_customization.providers.openai.endpoints import OPENAI, Endpoint
from model_customization.providers.openai.files import UploadResult, ensure_uploaded, render_split
from model_customization.providers.openai.hyperparameters import METHOD_TYPES, parse_openai_hyperparameters
from model_customization.providers.send_once import NoReply, send_at_most_once
from model_customization.providers.openai.provider import DEFAULT_BASE_MODEL, OpenAIProvider
from model_customization.workspace import Workspace
from model_customization.timestamps import iso_or_none

KEY_METADATA = "mc_idempotency_key"
JOB_METADATA = "mc_job_id"
MAX_METADATA_PAIRS = 16  # OpenAI's limit; two are ours
MAX_CREATE_ATTEMPTS = 4
MAX_JOBS_SCANNED = 1_000  # a server that ignores the metadata filter is searched this far back
EVENTS_PAGE_SIZE = 100
MAX_EVENT_PAGES = 50
EVENT_LEVELS = {"info": "info", "warn": "warning", "error": "error"}
POLL_TIMEOUT_SECONDS = 20.0  # one status request; a hung connection fails this soon and the poll is retried


def canonical_model(base_model: str) -> str:
    """OpenAI's dated snapshot for a family name we know the price of (gpt-4.1-mini -> gpt-4.1-mini-2025-04-14)."""
    if base_model.startswith("ft:"):
        return base_model
    try:
        return openai_terms(base_model).snapshot
    except UserError:
        return base_model  # a model we have no price for: OpenAI still decides whether it exists


def _priced_model(base_model: str) -> str | None:
    try:
        openai_terms(underlying_base(base_model))
    except UserError:
        return None
    return underlying_base(base_model)


def _today() -> Any:
    return datetime.now(timezone.utc).date()


# --- provider options (suffix, seed, metadata, integrations, use_validation) --------------------------------------
def _options(job: dict[str, Any]) -> dict[str, Any]:
    """The caller's provider options from the job's details, checked against OpenAI's limits before any upload."""
    raw = dict(((job.get("details") or {}).get("options")) or {})
    options: dict[str, Any] = {"use_validation": raw.get("use_validation", True)}
    if not isinstance(options["use_validation"], bool):
        raise UserError("use_validation must be true or false.")
    suffix = raw.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or not 1 <= len(suffix) <= 64):
        raise UserError(f"suffix must be 1 to 64 characters (it becomes part of the tuned model's name); got {suffix!r}.")
    options["suffix"] = suffix
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2_147_483_647):
        raise UserError(f"seed must be a whole number from 0 to 2147483647; got {seed!r}.")
    options["seed"] = seed
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise UserError("metadata must map strings to strings, e.g. {\"team\": \"support\"}.")
    reserved = sorted(k for k in metadata if k in (KEY_METADATA, JOB_METADATA))
    if reserved:
        raise UserError(f"metadata keys {reserved} are set by this product (idempotency key and job id); choose other names.")
    too_long = [k for k, v in metadata.items() if len(k) > 64 or len(v) > 512]
    if too_long:
        raise UserError(f"metadata keys may have at most 64 characters and values 512; too long: {too_long}.")
    if len(metadata) > MAX_METADATA_PAIRS - 2:
        raise UserError(f"OpenAI takes at most {MAX_METADATA_PAIRS} metadata pairs and this product uses 2; give at most {MAX_METADATA_PAIRS - 2}.")
    options["metadata"] = metadata
    integrations = raw.get("integrations")
    if integrations is not None:
        if not isinstance(integrations, list) or len(integrations) > 5:
            raise UserError("integrations must be a list of at most 5 objects, e.g. [{\"type\": \"wandb\", \"wandb\": {\"project\": \"my-project\"}}].")
        for item in integrations:
            if not isinstance(item, dict) or item.get("type") != "wandb" or not isinstance((item.get("wandb") or {}).get("project"), str):
                raise UserError(f"OpenAI supports one integration, Weights & Biases: {{\"type\": \"wandb\", \"wandb\": {{\"project\": \"...\"}}}}; got {item!r}.")
    options["integrations"] = integrations
    return options


def _method(method: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    kind = METHOD_TYPES[method]
    return {"type": kind, kind: {"hyperparameters": dict(hyperparameters)}}


def _first_row_is_preference(ws: Workspace, dataset_id: str) -> bool | None:
    from model_customization.datasets.build import get_dataset

    path = Path(get_dataset(ws, dataset_id)["path"]) / "train.jsonl"
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                return '"preferred_output"' in line
    return None


def _upload_event(split: str, result: UploadResult, examples: int, title: str = "OpenAI") -> str:
    if result.how == "uploaded":
        return f"uploaded the {split} split ({examples} examples, {result.size:,} bytes) to {title} as {result.file_id}"
    source = "known to this data home" if result.how == "reused" else f"found in {title}'s file list"
    return f"reused {result.file_id} for the {split} split: the same content was uploaded before ({source})"


def _error_text(error: Any) -> str | None:
    if not error:
        return None
    code, message, param = (getattr(error, name, None) for name in ("code", "message", "param"))
    if not (code or message):
        return None
    text = f"{code}: {message}" if code else str(message)
    return text + (f" ({param})" if param else "")


def _timestamp(seconds: int | None) -> str | None:
    return iso_or_none(seconds, timespec="auto")


def _number(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _metric_row(data: dict[str, Any], n_epochs: int | None, total_steps: int | None) -> dict[str, Any] | None:
    step = _number(data.get("step"))
    if step is None:
        return None
    validation = _number(data.get("full_valid_loss"))
    row = {
        "step": int(step),
        "train_loss": _number(data.get("train_loss")),
        "validation_loss": validation if validation is not None else _number(data.get("valid_loss")),
    }
    if n_epochs and total_steps:
        row["epoch"] = round(step * n_epochs / total_steps, 4)
    return row


def _decode_result_file(raw: bytes) -> str | None:
    """The result CSV's text; OpenAI serves it base64-encoded, other servers may serve it plain."""
    candidates = [raw]
    try:
        candidates.append(base64.b64decode(raw))
    except (binascii.Error, ValueError):
        pass
    for candidate in candidates:
        try:
            text = candidate.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if text.lstrip().lower().startswith("step"):
            return text
    return None


def _page(listing: Any) -> tuple[list[Any], bool]:
    return list(listing.data), bool(listing.has_more)


class OpenAIJobs:
    """A fine-tuning job's life cycle at an endpoint, in the order providers/base.py gives (the provider delegates here)."""

    STATUS_MAP = OpenAIProvider.STATUS_MAP

    def __init__(self, endpoint: Endpoint = OPENAI) -> None:
        self.endpoint = endpoint
        self.name = endpoint.name  # apply_remote_status names the provider in its events
        self.title = endpoint.title

    # --- before any spending --------------------------------------------------------------------------------------
    def check_available(self, ws: Workspace, base_model: str | None, method: str) -> str:
        endpoint = self.endpoint
        if method not in METHOD_TYPES or method not in endpoint.methods:
            raise UserError(f"{self.title} jobs take method {' or '.join(repr(m) for m in endpoint.methods)}; got {method!r}.")
        client = openai_client(endpoint)  # a missing key is refused here, first
        platform = is_openai_platform(endpoint)
        model = base_model or endpoint.default_base_model or DEFAULT_BASE_MODEL
        if platform:
            model = canonical_model(model)
        elif endpoint.base_models is not None and model not in endpoint.base_models and canonical_model(model) in endpoint.base_models:
            model = canonical_model(model)  # gpt-4.1-mini -> the snapshot the endpoint lists
        check_openai_available(client, model, _today(), openai_platform=platform, endpoint=endpoint)
        return model

    def parse_hyperparameters(self, method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
        return parse_openai_hyperparameters(method, raw)

    def quote(self, ws: Workspace, dataset_id: str, base_model: str, method: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        from model_customization.datasets.inspect import inspect_dataset

        epochs = hyperparameters.get("n_epochs")
        epochs = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None
        if self.endpoint.name == OPENAI.name:
            priced = _priced_model(base_model)
            # An unpriced model is still validated and counted with o200k, the tokenizer of OpenAI's current models.
            report = inspect_dataset(ws, dataset_id=dataset_id, provider=self.name, model=priced or DEFAULT_BASE_MODEL, epochs=epochs)
        else:  # the endpoint's own limits and price table (inspect_dataset asks this provider)
            report = inspect_dataset(ws, dataset_id=dataset_id, provider=self.name, model=base_model, epochs=epochs)
            priced = base_model if report["quote"].get("estimated_cost_usd") is not None else None
        if not report["valid"]:
            errors = [f for f in report["findings"] if f["severity"] == "error"][:5]
            listed = "; ".join(f"{f['split']} line {f['line']}: {f['message']} ({f['code']})" for f in errors)
            raise UserError(
                f"Dataset {dataset_id} is not valid for {self.title} fine-tuning ({report['errors']} errors, first: {listed}). "
                "inspect_dataset lists every finding; rebuild the dataset without those examples."
            )
        preference = _first_row_is_preference(ws, dataset_id)
        if method == "dpo" and preference is False:
            raise UserError(f"Dataset {dataset_id} holds chat examples; a DPO job needs preference pairs. Use method 'sft', or build a dataset with method 'dpo'.")
        if method == "sft" and preference:
            raise UserError(f"Dataset {dataset_id} holds preference pairs; start the job with method 'dpo'.")
        quote = dict(report["quote"])
        quote["counts"] = report["counts"]
        if priced is None:
            quote.update(
                model=base_model,
                usd_per_million_tokens=None,
                estimated_cost_usd=None,
                note=quote.get("note") or f"No price is known for {base_model!r}: the token counts are estimates (o200k) and the cost is unknown.",
            )
        return quote

    # --- creating the job -------------------------------------------------------------------------------------------
    def find_existing(self, ws: Workspace, key: str) -> dict[str, Any] | None:
        import openai

        try:
            remote = self._find_by_key(openai_client(self.endpoint), key)
        except openai.APIError as error:
            raise refusal("list fine-tuning jobs (looking for one made with the same idempotency key)", error, self.endpoint) from None
        return self._as_submitted(remote) if remote is not None else None

    def submit(self, ws: Workspace, job: dict[str, Any]) -> dict[str, Any]:
        options = _options(job)  # refuse bad options before uploading anything
        method = job["method"]
        if method not in METHOD_TYPES:
            raise UserError(f"{self.title} jobs take method 'sft' or 'dpo'; got {method!r}.")
        client = openai_client(self.endpoint)
        dataset_id = job["dataset_id"]
        key = job.get("idempotency_key") or idempotency_key(dataset_id, job["base_model"], method, job["hyperparameters"] or {})
        job = {**job, "idempotency_key": key}

        train_bytes, train_examples = render_split(ws, dataset_id, "train")
        train = ensure_uploaded(ws, client, train_bytes, f"{dataset_id}-train", self.endpoint)
        ws.store.jobs.add_event(job["id"], _upload_event("train", train, train_examples, self.title))
        validation: UploadResult | None = None
        if options["use_validation"]:
            from model_customization.datasets.build import get_dataset

            if (get_dataset(ws, dataset_id).get("counts") or {}).get("validation", 0) > 0:
                validation_bytes, validation_examples = render_split(ws, dataset_id, "validation")
                validation = ensure_uploaded(ws, client, validation_bytes, f"{dataset_id}-validation", self.endpoint)
                ws.store.jobs.add_event(job["id"], _upload_event("validation", validation, validation_examples, self.title))

        request: dict[str, Any] = {
            "model": job["base_model"],
            "training_file": train.file_id,
            "method": _method(method, job["hyperparameters"] or {}),
            "metadata": {**options["metadata"], KEY_METADATA: key, JOB_METADATA: job["id"]},
        }
        if validation is not None:
            request["validation_file"] = validation.file_id
        for name in ("suffix", "seed", "integrations"):
            if options[name] is not None:
                request[name] = options[name]
        remote = self._create(ws, client, job, request)
        ws.store.jobs.add_event(job["id"], f"{self.title} job {remote.id} created ({remote.status})")
        return {
            "remote_id": remote.id,
            "remote_status": remote.status,
            "details": {"training_file": train.file_id, "validation_file": validation.file_id if validation else None},
        }

    def _create(self, ws: Workspace, client: Any, job: dict[str, Any], request: dict[str, Any]) -> Any:
        import openai

        creator = client.with_options(max_retries=0)  # a lost reply may hide a created job: look before asking again
        transient = retryable_errors()

        def send() -> Any:
            try:
                return creator.fine_tuning.jobs.create(**request)
            except transient:
                raise
            except openai.PermissionDeniedError as error:
                raise UserError(
                    f"{self.title} refused to create the fine-tuning job: {api_message(error, self.endpoint)}. {self.title} is closing self-serve fine-tuning "
                    f"(closed to organisations that never fine-tuned since {NEVER_FINE_TUNED_CLOSED_ON}, to those without inference on a "
                    f"fine-tuned model in the last 60 days since {INACTIVE_CLOSED_ON}, to everyone on {FINE_TUNING_CLOSES_ON}). "
                    "The uploaded files stay (delete_training_file removes them). Use provider 'local' instead."
                ) from None
            except openai.APIError as error:
                raise refusal("create the fine-tuning job", error, self.endpoint) from None

        def look() -> Any | None:
            try:
                return self._find_by_key(client, job["idempotency_key"])
            except transient:
                raise
            except openai.APIError as error:
                raise refusal("list fine-tuning jobs (looking for one made by the interrupted try)", error, self.endpoint) from None

        def failed_try(error: BaseException, wait: float) -> None:
            ws.store.jobs.add_event(job["id"], f"creating the {self.title} job failed ({api_message(error, self.endpoint)}); trying again in {wait:.1f}s", "warning")

        try:
            remote, found_earlier = send_at_most_once(send, look, attempts=MAX_CREATE_ATTEMPTS, transient=transient, delay=retry_delay, on_transient=failed_try)
        except NoReply as failure:
            raise UserError(
                f"Could not create the {self.title} job after {MAX_CREATE_ATTEMPTS} tries "
                f"({api_message(failure.last_error, self.endpoint) if failure.last_error else 'no reply'}). "
                "No duplicate was made: check_job or a repeated start_job finds the job if one of the tries arrived."
            ) from None
        if found_earlier:
            ws.store.jobs.add_event(job["id"], f"found {self.title} job {remote.id}, created by an earlier try whose reply was lost")
        return remote

    def _find_by_key(self, client: Any, key: str) -> Any | None:
        """The newest remote job created under this key that has not failed or been cancelled; SDK errors pass."""
        filtered = {"metadata": {KEY_METADATA: key}} if self.endpoint.metadata_filter else {}
        for scanned, remote in enumerate(client.fine_tuning.jobs.list(**filtered, limit=100)):
            if scanned >= MAX_JOBS_SCANNED:
                break
            if (remote.metadata or {}).get(KEY_METADATA) != key:
                continue  # a compatible server that ignores the metadata filter
            if remote.status in ("failed", "cancelled"):
                continue  # a start after a failure means: try again
            return remote
        return None

    @staticmethod
    def _as_submitted(remote: Any) -> dict[str, Any]:
        return {
            "remote_id": remote.id,
            "remote_status": remote.status,
            "details": {"training_file": remote.training_file, "validation_file": remote.validation_file},
        }

    # --- following the job ------------------------------------------------------------------------------------------
    def refresh(self, ws: Workspace, job: dict[str, Any]) -> None:
        import openai

        remote_id = job.get("remote_id")
        if not remote_id:
            raise UserError(f"Job {job['id']} has no {self.title} job id yet: it was not submitted.")
        # One quick SDK retry and a short timeout: a poll that still fails is retried by the orchestrator with
        # backoff, each retry a job event (jobs/orchestrator.py _refresh_cloud).
        client = openai_client(self.endpoint).with_options(max_retries=1, timeout=POLL_TIMEOUT_SECONDS)
        try:
            remote = client.fine_tuning.jobs.retrieve(remote_id)
        except openai.NotFoundError:
            raise NotFoundError(f"{self.title} has no job {remote_id} for this key (another organisation or project?). list_remote_jobs shows this key's jobs.") from None
        except openai.APIError as error:
            raise refusal(f"retrieve job {remote_id}", error, self.endpoint) from None

        details = dict(job.get("details") or {})
        n_epochs = self._resolved_epochs(remote)
        total_steps = job.get("total_steps")

        events, newest_event = self._new_events(client, remote_id, details.get("last_event_id"))
        # Every read happens before the first write: a poll that fails half-way records nothing, so the events it
        # had read are not recorded twice when the next poll reads them again.
        checkpoints = self._checkpoints(client, remote_id) if remote.status not in ("validating_files", "queued") else None
        rows: list[dict[str, Any]] = []
        for event in events:
            data = event.data if isinstance(getattr(event, "data", None), dict) else {}
            if getattr(event, "type", None) == "metrics" and data:
                total_steps = int(data.get("total_steps") or 0) or total_steps
                row = _metric_row(data, n_epochs, total_steps)
                if row:
                    rows.append(row)
            else:
                ws.store.jobs.add_event(job["id"], f"{self.title}: {event.message}", EVENT_LEVELS.get(event.level, "info"))
        if total_steps and total_steps != job.get("total_steps"):
            ws.store.jobs.update(job["id"], total_steps=int(total_steps))
        record_metrics(ws, job["id"], rows)

        values: dict[str, Any] = {
            "last_event_id": newest_event,
            "trained_tokens": remote.trained_tokens,
            "fine_tuned_model": remote.fine_tuned_model,
            "result_files": list(remote.result_files or []),
        }
        if n_epochs:
            values["n_epochs"] = n_epochs
        if checkpoints is not None:
            values["checkpoints"] = checkpoints
        details = merge_details(ws, job["id"], **values)

        progress: dict[str, Any] = {}
        estimated_finish = getattr(remote, "estimated_finish", None)
        if estimated_finish and remote.status == "running":
            progress["eta_seconds"] = max(0.0, float(estimated_finish) - time.time())
        if remote.status == "succeeded":
            self._finish_success(ws, client, job, remote, details, n_epochs, total_steps)
            progress["eta_seconds"] = 0.0
        current = ws.store.jobs.get(job["id"]) or job
        apply_remote_status(ws, current, self, remote.status, error=_error_text(getattr(remote, "error", None)), **progress)

    @staticmethod
    def _resolved_epochs(remote: Any) -> int | None:
        """The epochs OpenAI chose (it turns 'auto' into a number once the job runs)."""
        candidates = [getattr(remote, "hyperparameters", None)]
        method = getattr(remote, "method", None)
        if method is not None:
            for kind in ("supervised", "dpo"):
                candidates.insert(0, getattr(getattr(method, kind, None), "hyperparameters", None))
        for hyperparameters in candidates:
            value = getattr(hyperparameters, "n_epochs", None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None

    def _new_events(self, client: Any, remote_id: str, last_seen: str | None) -> tuple[list[Any], str | None]:
        """Events newer than last_seen, oldest first, and the id of the newest one."""
        import openai

        collected: list[Any] = []
        after: str | None = None
        try:
            for _ in range(MAX_EVENT_PAGES):
                data, has_more = _page(client.fine_tuning.jobs.list_events(remote_id, limit=EVENTS_PAGE_SIZE, **({"after": after} if after else {})))
                reached = False
                for event in data:  # newest first
                    if event.id == last_seen:
                        reached = True
                        break
                    collected.append(event)
                if reached or not has_more or not data:
                    break
                after = data[-1].id
        except openai.APIError as error:
            raise refusal(f"list the events of {remote_id}", error, self.endpoint) from None
        newest = collected[0].id if collected else last_seen
        return list(reversed(collected)), newest

    def _checkpoints(self, client: Any, remote_id: str) -> list[dict[str, Any]]:
        import openai

        try:
            found = [
                {
                    "id": checkpoint.id,
                    "fine_tuned_model_checkpoint": checkpoint.fine_tuned_model_checkpoint,
                    "step": checkpoint.step_number,
                    "metrics": checkpoint.metrics.model_dump(exclude_none=True) if checkpoint.metrics is not None else {},
                }
                for checkpoint in client.fine_tuning.jobs.checkpoints.list(remote_id, limit=100)  # the SDK pages through
            ]
        except openai.NotFoundError:
            raise NotFoundError(f"{self.title} has no job {remote_id} for this key.") from None
        except openai.APIError as error:
            raise refusal(f"list the checkpoints of {remote_id}", error, self.endpoint) from None
        return sorted(found, key=lambda c: c["step"])

    def _finish_success(self, ws: Workspace, client: Any, job: dict[str, Any], remote: Any, details: dict[str, Any], n_epochs: int | None, total_steps: int | None) -> None:
        if not details.get("result_metrics_read") and remote.result_files:
            rows = self._result_metrics(ws, client, job, remote.result_files[0], n_epochs, total_steps)
            if rows is not None:
                record_metrics(ws, job["id"], rows)
                merge_details(ws, job["id"], result_metrics_read=True)
        if remote.fine_tuned_model:
            register_tuned_model(
                ws,
                job,
                self.name,
                remote.fine_tuned_model,
                details={"remote_job_id": remote.id, "trained_tokens": remote.trained_tokens, "checkpoints": details.get("checkpoints") or []},
            )
        elif not details.get("warned_no_model"):
            ws.store.jobs.add_event(job["id"], f"{self.title} reports success but names no tuned model yet", "warning")
            merge_details(ws, job["id"], warned_no_model=True)
        if remote.trained_tokens and details.get("actual_cost_usd") is None:
            rate = self._training_rate(job["base_model"])
            if rate is None:
                ws.store.jobs.add_event(job["id"], f"{self.title} billed {remote.trained_tokens:,} trained tokens; no price per token is known for {job['base_model']}, so the cost is not recorded", "warning")
                merge_details(ws, job["id"], actual_cost_usd=False)
            else:
                actual = round(remote.trained_tokens * rate / 1_000_000, 4)
                ws.store.spending.set_actual(job["id"], actual)
                merge_details(ws, job["id"], actual_cost_usd=actual)
                ws.store.jobs.add_event(job["id"], f"{self.title} billed {remote.trained_tokens:,} trained tokens: ${actual:.4f} at ${rate}/1M")

    def _training_rate(self, base_model: str) -> float | None:
        """USD per million trained tokens: OpenAI's published table for OpenAI, else the endpoint's own price table."""
        if self.endpoint.name == OPENAI.name:
            priced = _priced_model(base_model)
            return openai_terms(priced).training_usd_per_million if priced else None
        price = self.endpoint.training_price(base_model)
        return price.usd_per_million_tokens if price else None

    def _result_metrics(self, ws: Workspace, client: Any, job: dict[str, Any], file_id: str, n_epochs: int | None, total_steps: int | None) -> list[dict[str, Any]] | None:
        import openai

        try:
            raw = client.files.content(file_id).content
        except openai.APIError as error:
            ws.store.jobs.add_event(job["id"], f"could not read the result file {file_id}: {api_message(error, self.endpoint)}; will try again on the next check", "warning")
            return None
        text = _decode_result_file(raw)
        if text is None:
            ws.store.jobs.add_event(job["id"], f"the result file {file_id} is not a metrics CSV; its metrics were skipped", "warning")
            return []
        steps_seen = 0
        rows = []
        for record in csv.DictReader(io.StringIO(text)):
            row = _metric_row({key.strip(): value for key, value in record.items() if key}, n_epochs, total_steps)
            if row:
                rows.append(row)
                steps_seen = max(steps_seen, row["step"])
        if rows and not total_steps and n_epochs:
            for row in rows:  # the CSV is complete: its last step is the total
                row["epoch"] = round(row["step"] * n_epochs / steps_seen, 4)
        return rows

    # --- control --------------------------------------------------------------------------------------------------
    def _control(self, ws: Workspace, job: dict[str, Any], action: str) -> None:
        import openai

        remote_id = job.get("remote_id")
        if not remote_id:
            raise UserError(f"Job {job['id']} has no {self.title} job id: nothing to {action}.")
        client = openai_client(self.endpoint)
        call = {"cancel": client.fine_tuning.jobs.cancel, "pause": client.fine_tuning.jobs.pause, "resume": client.fine_tuning.jobs.resume}[action]
        try:
            remote = call(remote_id)
        except openai.APIError as error:
            raise refusal(f"{action} {self.title} job {remote_id}", error, self.endpoint) from None
        ws.store.jobs.add_event(job["id"], f"asked {self.title} to {action} {remote_id}; it reports {remote.status!r}")

    def cancel(self, ws: Workspace, job: dict[str, Any]) -> None:
        self._control(ws, job, "cancel")

    def pause(self, ws: Workspace, job: dict[str, Any]) -> None:
        self._control(ws, job, "pause")

    def resume(self, ws: Workspace, job: dict[str, Any]) -> None:
        self._control(ws, job, "resume")


# --- domain functions for the tools and the CLI ---------------------------------------------------------------------
def _job_summary(remote: Any) -> dict[str, Any]:
    return {
        "id": remote.id,
        "status": remote.status,
        "model": remote.model,
        "fine_tuned_model": remote.fine_tuned_model,
        "created_at": _timestamp(remote.created_at),
        "finished_at": _timestamp(remote.finished_at),
        "trained_tokens": remote.trained_tokens,
        "error": _error_text(getattr(remote, "error", None)),
        "ledger_job_id": (remote.metadata or {}).get(JOB_METADATA),
    }


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= 100:
        raise UserError(f"limit must be between 1 and 100 (got {limit}).")


def _remote_job_id(ws: Workspace, job_id: str, endpoint: Endpoint = OPENAI) -> str:
    """Our job id (a job of this endpoint in the ledger) or the service's own ftjob-... id, as the service's id."""
    row = ws.store.jobs.get(job_id)
    if row is not None:
        if row["provider"] != endpoint.name or not row.get("remote_id"):
            mine = row["provider"] == endpoint.name
            raise UserError(f"Job {job_id} is a {row['provider']} job{' not yet submitted' if mine else ''}; this lists {endpoint.title} jobs.")
        return row["remote_id"]
    if job_id.startswith("ftjob-"):
        return job_id
    raise NotFoundError(f"No job {job_id!r}: give one of ours (list_jobs) or a {endpoint.title} id starting with 'ftjob-' (list_remote_jobs).")


def list_remote_jobs(ws: Workspace, limit: int = 20, after: str | None = None, endpoint: Endpoint = OPENAI) -> dict[str, Any]:
    """One page of this key's fine-tuning jobs on the endpoint, newest first, including jobs started elsewhere."""
    import openai

    _check_limit(limit)
    try:
        data, has_more = _page(openai_client(endpoint).fine_tuning.jobs.list(limit=limit, **({"after": after} if after else {})))
    except openai.APIError as error:
        raise refusal("list fine-tuning jobs", error, endpoint) from None
    jobs = [_job_summary(remote) for remote in data]
    return {"jobs": jobs, "has_more": has_more, "next_after": jobs[-1]["id"] if has_more and jobs else None}


def remote_events(ws: Workspace, job_id: str, limit: int = 20, after: str | None = None, endpoint: Endpoint | None = None) -> dict[str, Any]:
    """One page of a job's events as the service reports them, newest first."""
    import openai

    _check_limit(limit)
    endpoint = endpoint or _endpoint_of(ws, job_id)
    remote_id = _remote_job_id(ws, job_id, endpoint)
    try:
        data, has_more = _page(openai_client(endpoint).fine_tuning.jobs.list_events(remote_id, limit=limit, **({"after": after} if after else {})))
    except openai.NotFoundError:
        raise NotFoundError(f"{endpoint.title} has no job {remote_id} for this key.") from None
    except openai.APIError as error:
        raise refusal(f"list the events of {remote_id}", error, endpoint) from None
    events = [
        {
            "id": event.id,
            "created_at": _timestamp(event.created_at),
            "level": event.level,
            "type": getattr(event, "type", None),
            "message": event.message,
            "data": event.data if isinstance(getattr(event, "data", None), dict) else None,
        }
        for event in data
    ]
    return {"job_id": remote_id, "events": events, "has_more": has_more, "next_after": events[-1]["id"] if has_more and events else None}


def _endpoint_of(ws: Workspace, job_id: str) -> Endpoint:
    """The endpoint of one of our jobs (an OpenAI-compatible provider's), else OpenAI (a bare ftjob-... id)."""
    from model_customization.providers.openai.endpoints import endpoint as endpoint_named
    from model_customization.providers.openai.provider import OpenAICompatibleProvider
    from model_customization.providers.registry import find_provider

    row = ws.store.jobs.get(job_id)
    provider = find_provider(row["provider"]) if row else None
    return endpoint_named(provider.name) if isinstance(provider, OpenAICompatibleProvider) else OPENAI


def remote_checkpoints(ws: Workspace, job_id: str, endpoint: Endpoint | None = None) -> dict[str, Any]:
    """The checkpoints the service kept for a job (each usable as a model for prompt_model), by step."""
    endpoint = endpoint or _endpoint_of(ws, job_id)
    remote_id = _remote_job_id(ws, job_id, endpoint)
    return {"job_id": remote_id, "checkpoints": OpenAIJobs(endpoint)._checkpoints(openai_client(endpoint), remote_id)}
