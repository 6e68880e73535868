"""The checkpoints of a local job as models: `<job_id>@step-<N>` (or `<ft-model-id>@step-<N>`) names one.

A local job saves a resumable checkpoint every `checkpoint_interval_steps` optimizer steps and at each epoch end
(train.py keeps the newest two, and removes them once the final adapter is saved). Each holds the trainable LoRA
weights under the names the PEFT-wrapped model gives them, so a checkpoint becomes a model by wrapping the base the
same way training did (train.lora_config from the job's hyperparameters) and copying the weights in.

Nothing here imports torch at module level; only `load_checkpoint_model` does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_customization.errors import NotFoundError, UserError
from model_customization.workspace import Workspace

# "<job or ft- model id>@step-<N>"; the step may carry the zero padding of the folder name (step-0000040).
_CHECKPOINT_NAME = re.compile(r"^(?P<owner>[A-Za-z0-9][A-Za-z0-9_.:-]*)@step-(?P<step>[0-9]{1,12})$")


@dataclass(frozen=True)
class LocalCheckpoint:
    job_id: str
    step: int
    folder: Path  # <jobs_dir>/<job_id>/checkpoints/step-NNNNNNN

    @property
    def model_id(self) -> str:
        return checkpoint_model_id(self.job_id, self.step)

    @property
    def weights(self) -> Path:
        return self.folder / "adapter.safetensors"


def checkpoint_model_id(job_id: str, step: int) -> str:
    return f"{job_id}@step-{step}"


def is_checkpoint_name(name: str) -> bool:
    return bool(_CHECKPOINT_NAME.match(name.strip()))


def _step_of(folder: Path) -> int | None:
    suffix = folder.name.removeprefix("step-")
    return int(suffix) if folder.name.startswith("step-") and suffix.isdigit() else None


def _complete_folders(ws: Workspace, job_id: str) -> list[tuple[int, Path]]:
    """(step, folder) of the job's whole checkpoints, oldest first (a folder appears by atomic rename)."""
    from model_customization.providers.local.train import checkpoints_dir

    found = []
    folder = checkpoints_dir(ws, job_id)
    for candidate in folder.glob("step-*") if folder.is_dir() else []:
        step = _step_of(candidate)
        if step is not None and (candidate / "state.json").is_file() and (candidate / "adapter.safetensors").is_file():
            found.append((step, candidate))
    return sorted(found)


def list_checkpoints(ws: Workspace, job_id: str) -> list[dict[str, Any]]:
    """The checkpoints a local job has on disk now, oldest first, each with the model name that prompts it.

    Each entry: step, model (`<job_id>@step-<N>`), epoch (fractional, from the checkpoint), train_loss at that step
    and the latest validation_loss up to it (from the job's metrics), has_best_adapter, path, saved_at (unix time).
    """
    job = ws.store.jobs.get(job_id)
    if not job:
        raise NotFoundError(f"Job {job_id!r} not found. list_jobs lists the jobs.")
    if job["provider"] != "local":
        raise UserError(
            f"Job {job_id} ran on {job['provider']}; its checkpoints are the provider's (the CLI's `job checkpoints` lists "
            "OpenAI's). Only local jobs keep checkpoint folders."
        )
    metrics = ws.store.jobs.metrics(job_id)
    entries = []
    for step, folder in _complete_folders(ws, job_id):
        try:
            state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            state = {}
        train_loss = next((m["train_loss"] for m in reversed(metrics) if m["step"] == step and m["train_loss"] is not None), None)
        validation = [m["validation_loss"] for m in metrics if m["step"] <= step and m["validation_loss"] is not None]
        entries.append(
            {
                "step": step,
                "model": checkpoint_model_id(job_id, step),
                "epoch": state.get("epoch"),
                "batch_index": state.get("batch_index"),
                "train_loss": train_loss,
                "validation_loss": validation[-1] if validation else None,
                "has_best_adapter": (folder / "best_adapter.safetensors").is_file(),
                "path": str(folder),
                "saved_at": folder.stat().st_mtime,
            }
        )
    return entries


def resolve_checkpoint(ws: Workspace, name: str) -> LocalCheckpoint:
    """The checkpoint `<job_id>@step-<N>` or `<ft-model-id>@step-<N>` names; NotFoundError lists those that exist."""
    match = _CHECKPOINT_NAME.match(name.strip())
    if not match:
        raise UserError(f"{name!r} is not a checkpoint name; write it as <job_id>@step-<N> (e.g. job-1a2b3c@step-40).")
    owner, step = match["owner"], int(match["step"])
    job = ws.store.jobs.get(owner)
    if job is None:
        model = ws.store.models.get(owner)
        if model is None or not model.get("job_id"):
            raise NotFoundError(
                f"No job or tuned model {owner!r} (from {name!r}). A checkpoint is named <job_id>@step-<N>; list_jobs "
                "lists jobs, and check_job / `job checkpoints` shows a job's checkpoints."
            )
        job = ws.store.jobs.get(model["job_id"])
        if job is None:
            raise NotFoundError(f"Model {owner} names job {model['job_id']}, which is no longer in the ledger; its checkpoints cannot be found.")
    job_id = job["id"]
    if job["provider"] != "local":
        raise UserError(
            f"Job {job_id} ran on {job['provider']}; `@step-N` names checkpoints of local jobs. Prompt a provider's checkpoint "
            "by the model id the provider gives it (the CLI's `job checkpoints` lists OpenAI's)."
        )
    available = _complete_folders(ws, job_id)
    for found_step, folder in available:
        if found_step == step:
            return LocalCheckpoint(job_id, step, folder)
    if available:
        listed = ", ".join(checkpoint_model_id(job_id, s) for s, _ in available)
        hint = f"Checkpoints of {job_id} now: {listed}."
    else:
        hint = f"Job {job_id} ({job['status']}) has no checkpoint on disk."
    if job["status"] == "succeeded":
        hint += f" A finished job keeps only its final adapter ({job.get('model_id') or 'its model'}), so prompt that instead."
    else:
        hint += " A job keeps only its newest two checkpoints."
    raise NotFoundError(f"No checkpoint at step {step} of job {job_id}. {hint}")


def checkpoint_hyperparameters(ws: Workspace, checkpoint: LocalCheckpoint) -> Any:
    """The job's LocalHyperparameters: the LoRA layers (rank, targets) and the chat template it trained with."""
    from model_customization.providers.local.hyperparameters import parse_hyperparameters

    job = ws.store.jobs.get(checkpoint.job_id)
    if job is None:
        raise NotFoundError(f"Job {checkpoint.job_id} is no longer in the ledger.")
    return parse_hyperparameters(job["hyperparameters"])


def load_checkpoint_model(base_model: Any, hp: Any, checkpoint: LocalCheckpoint) -> Any:
    """`base_model` (float32) with the checkpoint's LoRA weights merged in, exactly as training had them at that step."""
    import torch
    from peft import get_peft_model
    from safetensors.torch import load_file

    from model_customization.providers.local.train import lora_config

    try:
        saved = load_file(checkpoint.weights)
    except FileNotFoundError as error:  # training rotated it away between resolving and loading
        raise NotFoundError(f"Checkpoint {checkpoint.model_id} was removed while loading (a job keeps only its newest two). Use a newer one.") from error
    # Wrapping draws random initial LoRA weights; keep the caller's random state as it was (they are overwritten).
    with torch.random.fork_rng(devices=[]):
        model = get_peft_model(base_model, lora_config(hp))
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if set(saved) != set(params):
        raise UserError(
            f"Checkpoint {checkpoint.model_id} does not fit the LoRA layers of job {checkpoint.job_id}'s hyperparameters "
            f"({len(saved)} saved tensors, {len(params)} expected); it cannot be loaded."
        )
    with torch.no_grad():
        for name, value in saved.items():
            params[name].copy_(value.to(params[name].dtype))
    return model.merge_and_unload()
