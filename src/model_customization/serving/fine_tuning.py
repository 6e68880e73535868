"""Fine-tuning jobs through the OpenAI-compatible endpoint: OpenAI's job requests run as local jobs (the orchestrator's
queue and worker, exactly as start_job), and every job in the ledger is shown in OpenAI's job shape.

The base model: an OpenAI model name a script asks for (gpt-4o-mini-2024-07-18) is mapped to a local base through
a table, MODEL_CUSTOMIZATION_OPENAI_BASE_MODELS (a JSON object, in the environment or the config file's [env]),
over a default that maps OpenAI's fine-tunable models to the embedded model; a local base (the embedded model, a
model folder) may be named directly. The job's first event says which base was used and why.

OpenAI's hyperparameters are translated: n_epochs -> epochs, batch_size -> batch_size, learning_rate_multiplier ->
learning_rate (LOCAL_LEARNING_RATE times it), DPO's beta -> dpo_beta, seed -> seed; "auto" keeps the local default.
Any other key of LocalHyperparameters (lora_rank, max_seq_length ...) may be given in the same object.

Pause and resume: a local job is paused by stopping its worker with its checkpoint kept (the ledger says cancelled,
the job's API details say paused) and resumed from that checkpoint (start_job(resume=...)).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from model_customization.errors import NotFoundError, UserError
from model_customization.operations.serving import CreateFineTuningJobRequest
from model_customization.workspace import Workspace

BASE_MODELS_ENV = "MODEL_CUSTOMIZATION_OPENAI_BASE_MODELS"
LOCAL_LEARNING_RATE = 1e-3  # LocalHyperparameters' default: what learning_rate_multiplier 1 means here
DETAILS_KEY = "openai_api"
ORGANIZATION = "local"
# OpenAI's fine-tunable models (and their short names) -> the embedded model, unless the table says otherwise.
OPENAI_FINE_TUNABLE = (
    "gpt-4o-mini-2024-07-18", "gpt-4o-mini", "gpt-4o-2024-08-06", "gpt-4o", "gpt-4.1-2025-04-14", "gpt-4.1",
    "gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", "gpt-4.1-nano-2025-04-14", "gpt-4.1-nano", "gpt-3.5-turbo-0125",
    "gpt-3.5-turbo-1106", "gpt-3.5-turbo", "o4-mini-2025-04-16", "o4-mini", "davinci-002", "babbage-002",
)  # fmt: skip


def base_model_table() -> dict[str, str]:
    from model_customization.providers.local.models import EMBEDDED_MODEL

    table = {name: EMBEDDED_MODEL for name in OPENAI_FINE_TUNABLE}
    raw = os.environ.get(BASE_MODELS_ENV, "").strip()
    if raw:
        try:
            configured = json.loads(raw)
        except ValueError:
            configured = None
        if not isinstance(configured, dict) or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in configured.items()):
            raise UserError(f'{BASE_MODELS_ENV} must be a JSON object of model name -> local base, e.g. {{"gpt-4o-mini-2024-07-18": "SmolLM2-135M-Instruct"}}.')
        table.update(configured)
    return table


def local_base_for(requested: str) -> tuple[str, str]:
    """(the local base model, how it was chosen) for the model a job asks for."""
    from model_customization.providers.local.models import check_base_model

    table = base_model_table()
    if requested in table:
        base = check_base_model(table[requested])
        configured = requested in json.loads(os.environ.get(BASE_MODELS_ENV, "").strip() or "{}")
        source = BASE_MODELS_ENV if configured else f"the default table (set {BASE_MODELS_ENV} to change it)"
        return base, f"{requested} is trained as the local base {base}, mapped by {source}"
    try:
        base = check_base_model(requested)
    except UserError:
        known = ", ".join(sorted(table))
        error = UserError(f"model {requested!r} is neither in the base-model table ({known}) nor a local base model. Add it to {BASE_MODELS_ENV}, or name a local base.")
        error.param = "model"  # type: ignore[attr-defined]
        error.code = "model_not_available"  # type: ignore[attr-defined]
        raise error from None
    return base, f"{requested} is a local base model, trained as it is"


def _hyperparameters(method: str, given: dict[str, Any], seed: int | None) -> dict[str, Any]:
    from model_customization.providers.local.hyperparameters import LocalHyperparameters

    local: dict[str, Any] = {}
    for key, value in given.items():
        if value == "auto" or value is None:
            continue
        if key == "n_epochs":
            local["epochs"] = value
        elif key == "learning_rate_multiplier":
            if not isinstance(value, (int, float)) or value <= 0:
                raise _param_error(f"learning_rate_multiplier must be a number above 0 or 'auto' (got {value!r}).", "method.hyperparameters.learning_rate_multiplier")
            local["learning_rate"] = LOCAL_LEARNING_RATE * value
        elif key == "beta" and method == "dpo":
            local["dpo_beta"] = value
        elif key in LocalHyperparameters.model_fields:
            local[key] = value
        else:
            raise _param_error(f"hyperparameter {key!r} is not used here; OpenAI's n_epochs, batch_size, learning_rate_multiplier (and beta for dpo) are, and so are the local ones ({', '.join(LocalHyperparameters.model_fields)}).", f"method.{method}.hyperparameters")
    if seed is not None:
        local["seed"] = seed
    return local


def _param_error(message: str, param: str) -> UserError:
    error = UserError(message)
    error.param = param  # type: ignore[attr-defined]
    return error


def create_job(ws: Workspace, request: CreateFineTuningJobRequest) -> dict[str, Any]:
    from model_customization.datasets.build import read_split, store_examples
    from model_customization.jobs.orchestrator import start_job

    kind = request.method.type if request.method else "supervised"
    if kind == "reinforcement":
        raise _param_error("method reinforcement is not served here; use supervised or dpo.", "method.type")
    method = "dpo" if kind == "dpo" else "sft"
    given = dict(request.hyperparameters or {})
    if request.method is not None:
        given.update(((request.method.dpo if method == "dpo" else request.method.supervised) or {}).get("hyperparameters") or {})
    base, mapping = local_base_for(request.model)
    training = _training_file(ws, request.training_file, "training_file", method)
    dataset_id = training["dataset_id"]
    if request.validation_file:
        validation = _training_file(ws, request.validation_file, "validation_file", method)
        examples = [("train", e) for e in read_split(ws, training["dataset_id"], "train")]
        examples += [("validation", e) for e in read_split(ws, validation["dataset_id"], "train")]
        dataset_id, _, _ = store_examples(
            ws, examples, name=f"{training['filename']} + {validation['filename']}", method=method,
            card_fields=_joined_card(training, validation, len(examples)),
        )  # fmt: skip
    status = start_job(ws, dataset_id, provider="local", base_model=base, method=method, hyperparameters=_hyperparameters(method, given, request.seed))
    from model_customization.providers.base import merge_details

    merge_details(ws, status["job_id"], **{DETAILS_KEY: {
        "model": request.model, "training_file": request.training_file, "validation_file": request.validation_file,
        "suffix": request.suffix, "metadata": request.metadata, "method": kind, "created_event": f"Created fine-tuning job: {mapping}.",
        "hyperparameters": given,
    }})  # fmt: skip
    return job_view(ws, _job(ws, status["job_id"]))


def _joined_card(training: dict[str, Any], validation: dict[str, Any], count: int) -> dict[str, Any]:
    return {
        "conversations_read": count, "formats": {"openai_upload": count}, "dropped": {}, "duplicates_removed": {"exact": 0, "near": 0},
        "redactions": {}, "unreadable": {"count": 0, "first": []},
        "sources": [{"path": f"POST /v1/files: {f['filename']} ({f['id']})", "sha256": f["dataset_id"]} for f in (training, validation)],
        "options": {"source": "POST /v1/fine_tuning/jobs", "train": training["id"], "validation": validation["id"]},
    }  # fmt: skip


def _training_file(ws: Workspace, file_id: str, param: str, method: str) -> dict[str, Any]:
    from model_customization.serving.files import get_file

    try:
        record = get_file(ws, file_id)
    except NotFoundError as error:
        raise _param_error(f"{param} {file_id!r} was not found: upload it with POST /v1/files (purpose fine-tune) first. ({error})", param) from None
    if record["method"] != method:
        wanted = "preference pairs (input, preferred_output, non_preferred_output)" if method == "dpo" else "chat examples (messages)"
        raise _param_error(f"{param} {file_id} holds {'preference pairs' if record['method'] == 'dpo' else 'chat examples'}, but this job's method needs {wanted}.", param)
    return record


# --- reading jobs ------------------------------------------------------------------------------------------------
def _job(ws: Workspace, job_id: str) -> dict[str, Any]:
    job = ws.store.jobs.get(job_id)
    if not job:
        raise NotFoundError(f"No fine-tuning job {job_id!r}. GET /v1/fine_tuning/jobs lists them.")
    return job


def _api(job: dict[str, Any]) -> dict[str, Any]:
    return (job.get("details") or {}).get(DETAILS_KEY) or {}


def _status(job: dict[str, Any]) -> str:
    if _api(job).get("paused") and job["status"] == "cancelled":
        return "paused"
    return {"validating": "validating_files"}.get(job["status"], job["status"])


def job_view(ws: Workspace, job: dict[str, Any]) -> dict[str, Any]:
    """A ledger job in OpenAI's FineTuningJob shape."""
    api = _api(job)
    hp = job.get("hyperparameters") or {}
    status = _status(job)
    shown_hp = {"n_epochs": hp.get("epochs", "auto"), "batch_size": hp.get("batch_size", "auto"),
                "learning_rate_multiplier": round(hp["learning_rate"] / LOCAL_LEARNING_RATE, 6) if "learning_rate" in hp else "auto"}  # fmt: skip
    kind = api.get("method") or ("dpo" if job["method"] == "dpo" else "supervised")
    method_hp = {**shown_hp, "beta": hp.get("dpo_beta", "auto")} if kind == "dpo" else shown_hp
    eta = job.get("eta_seconds")
    return {
        "id": job["id"],
        "object": "fine_tuning.job",
        "created_at": int(job["created_at"]),
        "error": {"code": "job_failed", "message": job["error"] or "the job failed", "param": None} if status == "failed" else None,
        "fine_tuned_model": job["model_id"] if status == "succeeded" else None,
        "finished_at": int(job["finished_at"]) if job.get("finished_at") and status != "paused" else None,
        "hyperparameters": shown_hp,
        "model": api.get("model") or job["base_model"],
        "organization_id": ORGANIZATION,
        "result_files": [],
        "status": status,
        "trained_tokens": _trained_tokens(ws, job) if status == "succeeded" else None,
        "training_file": api.get("training_file") or job["dataset_id"],
        "validation_file": api.get("validation_file"),
        "seed": int(hp.get("seed", 0)),
        "estimated_finish": int(time.time() + eta) if eta and status == "running" else None,
        "method": {"type": kind, kind: {"hyperparameters": method_hp}},
        "metadata": api.get("metadata"),
        "integrations": None,
        "user_provided_suffix": api.get("suffix"),
    }


def _trained_tokens(ws: Workspace, job: dict[str, Any]) -> int | None:
    quote = ((job.get("details") or {}).get("quote") or {})
    value = quote.get("trained_tokens") or quote.get("billed_tokens")
    return int(value) if isinstance(value, (int, float)) else None


def get_job(ws: Workspace, job_id: str) -> dict[str, Any]:
    from model_customization.jobs.orchestrator import check_job

    _job(ws, job_id)
    check_job(ws, job_id)  # dispatches the queue and refreshes a cloud job, as check_job does everywhere
    return job_view(ws, _job(ws, job_id))


def list_jobs(ws: Workspace, *, after: str | None = None, limit: int = 20, metadata: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], bool]:
    """(jobs newest first, has_more), those after the job `after`; with metadata, the jobs whose metadata has it."""
    from model_customization.jobs.orchestrator import dispatch

    if not 1 <= limit <= 1000:
        raise _param_error(f"limit must be between 1 and 1000 (got {limit}).", "limit")
    dispatch(ws)
    rows = sorted(ws.store.jobs.all(), key=lambda r: (r["created_at"], r["id"]), reverse=True)
    if metadata:
        rows = [r for r in rows if all((_api(r).get("metadata") or {}).get(k) == v for k, v in metadata.items())]
    if after is not None:
        position = next((i for i, r in enumerate(rows) if r["id"] == after), None)
        if position is None:
            raise _param_error(f"after={after!r} is not a job here; give the id of the last job of the previous page.", "after")
        rows = rows[position + 1 :]
    return [job_view(ws, r) for r in rows[:limit]], len(rows) > limit


def job_events(ws: Workspace, job_id: str, *, after: str | None = None, limit: int = 20) -> tuple[list[dict[str, Any]], bool]:
    """(events newest first, has_more), as OpenAI lists them; `after` pages to older ones. The oldest is the job's
    creation, saying which local base it trains."""
    job = _job(ws, job_id)
    if not 1 <= limit <= 1000:
        raise _param_error(f"limit must be between 1 and 1000 (got {limit}).", "limit")
    created = _api(job).get("created_event") or f"Created fine-tuning job on {job['base_model']}."
    # (time, order written, event): the creation first, then the ledger's events and the metrics by their times
    timed: list[tuple[float, int, dict[str, Any]]] = [
        (job["created_at"], 0, {"id": f"ftevent-{job_id}-0", "object": "fine_tuning.job.event", "created_at": int(job["created_at"]), "level": "info", "message": created, "type": "message"})
    ]
    for row in ws.store.jobs.events(job_id, None):
        level = row["level"] if row["level"] in ("info", "warn", "error") else ("warn" if row["level"] == "warning" else "info")
        timed.append((row["at"], 1, {"id": f"ftevent-{job_id}-{row['id']}", "object": "fine_tuning.job.event", "created_at": int(row["at"]), "level": level, "message": row["message"], "type": "message"}))
    for metric in ws.store.jobs.metrics(job_id):
        data = {k: metric[k] for k in ("step", "train_loss", "validation_loss", "learning_rate") if metric.get(k) is not None}
        timed.append((metric["at"], 2, {"id": f"ftevent-{job_id}-m{metric['id']}", "object": "fine_tuning.job.event", "created_at": int(metric["at"]), "level": "info",
                                        "message": f"Step {metric['step']}: training loss={metric['train_loss']}", "type": "metrics", "data": data}))  # fmt: skip
    events = [event for _, _, event in sorted(timed, key=lambda t: (t[0], t[1]), reverse=True)]
    if after is not None:
        position = next((i for i, e in enumerate(events) if e["id"] == after), None)
        if position is None:
            raise _param_error(f"after={after!r} is not an event of {job_id}; give the id of the last event of the previous page.", "after")
        events = events[position + 1 :]
    return events[:limit], len(events) > limit


def job_checkpoints(ws: Workspace, job_id: str, *, after: str | None = None, limit: int = 10) -> tuple[list[dict[str, Any]], bool]:
    """(checkpoints newest first, has_more): each a model name chat completions accepts (<job_id>@step-<N>)."""
    from model_customization.providers.registry import get_provider

    job = _job(ws, job_id)
    provider = get_provider(job["provider"])
    if "checkpoints" not in provider.capabilities:
        return [], False
    found = provider.job_checkpoints(ws, job_id)["checkpoints"]
    shown = []
    for c in sorted(found, key=lambda c: c["step"], reverse=True):
        metrics = {"step": float(c["step"])}
        if c.get("train_loss") is not None:
            metrics["train_loss"] = float(c["train_loss"])
        if c.get("validation_loss") is not None:
            metrics["valid_loss"] = float(c["validation_loss"])
        shown.append({"id": f"ftckpt-{job_id}-{c['step']}", "object": "fine_tuning.job.checkpoint", "created_at": int(c.get("created_at") or job["created_at"]),
                      "fine_tuned_model_checkpoint": c["fine_tuned_model_checkpoint"], "fine_tuning_job_id": job_id, "step_number": int(c["step"]), "metrics": metrics})  # fmt: skip
    if after is not None:
        position = next((i for i, c in enumerate(shown) if c["id"] == after), None)
        if position is None:
            raise _param_error(f"after={after!r} is not a checkpoint of {job_id}.", "after")
        shown = shown[position + 1 :]
    return shown[:limit], len(shown) > limit


# --- controlling jobs ----------------------------------------------------------------------------------------------
def cancel_job(ws: Workspace, job_id: str) -> dict[str, Any]:
    from model_customization.jobs.orchestrator import cancel_job as cancel
    from model_customization.providers.base import merge_details

    job = _job(ws, job_id)
    if _status(job) == "paused":  # already stopped: it stays so, and is no longer resumable through the API
        merge_details(ws, job_id, **{DETAILS_KEY: {**_api(job), "paused": False}})
        ws.store.jobs.add_event(job_id, "cancelled while paused")
    else:
        cancel(ws, job_id)
    return job_view(ws, _job(ws, job_id))


def pause_job(ws: Workspace, job_id: str) -> dict[str, Any]:
    from model_customization.jobs.orchestrator import cancel_job as cancel
    from model_customization.jobs.orchestrator import pause_job as pause
    from model_customization.providers.base import merge_details
    from model_customization.providers.registry import get_provider

    job = _job(ws, job_id)
    if not get_provider(job["provider"]).runs_locally:
        pause(ws, job_id)
        return job_view(ws, _job(ws, job_id))
    if job["status"] not in ("queued", "running"):
        raise UserError(f"Job {job_id} is {_status(job)}; only a queued or running job can be paused.")
    merge_details(ws, job_id, **{DETAILS_KEY: {**_api(job), "paused": True}})
    cancel(ws, job_id)  # the worker stops; its checkpoint is kept for resume
    ws.store.jobs.add_event(job_id, "paused: the worker stopped with its checkpoint kept; POST .../resume continues from it")
    return job_view(ws, _job(ws, job_id))


def resume_job(ws: Workspace, job_id: str) -> dict[str, Any]:
    from model_customization.jobs.orchestrator import start_job
    from model_customization.providers.base import merge_details
    from model_customization.providers.registry import get_provider

    job = _job(ws, job_id)
    if not get_provider(job["provider"]).runs_locally:
        start_job(ws, resume=job_id)
        return job_view(ws, _job(ws, job_id))
    if _status(job) != "paused":
        raise UserError(f"Job {job_id} is {_status(job)}, not paused; only a paused job can be resumed.")
    start_job(ws, resume=job_id)
    merge_details(ws, job_id, **{DETAILS_KEY: {**_api(_job(ws, job_id)), "paused": False}})
    return job_view(ws, _job(ws, job_id))
