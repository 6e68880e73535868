"""The local LoRA training loop, top to bottom: load, tokenize, batch, step, validate, checkpoint, save.

Runs inside the detached worker process (worker.py) and reports everything to the ledger: status, step/total,
epoch, train and validation loss, learning rate, tokens/s, ETA, events. On CPU it trains in float32 without gradient
checkpointing, the fast settings on these machines (bf16 matmuls and recomputation are both many times slower
there); on CUDA in bf16, optionally on a 4-bit (QLoRA) base.

Resuming is exact: each epoch's batch order is a function of (seed, epoch), and a checkpoint holds the LoRA
weights, optimizer, scheduler, torch RNG state and the position in the epoch, so a run resumed from a checkpoint
takes the same steps as one that never stopped.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from model_customization.datasets.build import read_split
from model_customization.errors import UserError
from model_customization.providers.local import objectives
from model_customization.providers.local.chat import require_chat_template
from model_customization.providers.local.hyperparameters import LocalHyperparameters, parse_hyperparameters
from model_customization.providers.local.models import ensure_base_model
from model_customization.storage import atomic_folder
from model_customization.workspace import Workspace

CHECKPOINTS_KEPT = 2  # whole (resumable) checkpoints; earlier epochs' ends keep only their adapter weights
EPOCH_END_MARKER = "epoch-end"
RESUME_ONLY_FILES = ("optimizer.pt", "scheduler.pt", "rng.pt", "best_adapter.safetensors")


@dataclass
class Position:
    """Where training stands; saved with every checkpoint."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch (0-based)
    batch_index: int = 0  # next batch within the epoch's batch list
    best_validation_loss: float | None = None
    validations_without_improvement: int = 0
    stopped_early: bool = False
    history: list[float] = field(default_factory=list)  # validation losses so far
    # GRPO: the best mean reward of the greedy answers to the validation cases, and the step whose adapter gave it.
    best_validation_reward: float | None = None
    best_step: int | None = None


def epoch_batches(items: list[Any], batch_size: int, seed: int, epoch: int, length) -> list[list[Any]]:
    """Shuffled batches of similar length (little compute goes to padding); the order depends on seed and epoch only."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = items[:]
    rng.shuffle(order)
    window = batch_size * 8
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=length)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


# On CPU, activation memory grows with the padded tokens of a forward pass. A cap of 512 keeps short examples
# batched and long ones alone: measured in BENCHMARKS.md against 1024 (faster on short chats, 0.44x instead of
# 0.32x of the baseline's memory) and one example per pass (slower on short chats).
CPU_TOKENS_PER_PASS = 512


def _micro_batches(batch: list[Any], length, most: int, token_budget: int | None) -> list[list[Any]]:
    """Split a batch into forward passes of at most `most` examples and, if given, `token_budget` padded tokens;
    the gradients of the passes add up to the batch's."""
    ordered = sorted(batch, key=length)
    passes: list[list[Any]] = []
    for item in ordered:
        current = passes[-1] if passes else None
        fits = current is not None and len(current) < most
        if fits and token_budget is not None:
            fits = (len(current) + 1) * length(item) <= token_budget  # sorted: this item is the longest so far
        if fits:
            current.append(item)
        else:
            passes.append([item])
    return passes


def checkpoints_dir(ws: Workspace, job_id: str) -> Path:
    return ws.settings.jobs_dir / job_id / "checkpoints"


def latest_checkpoint(ws: Workspace, job_id: str) -> Path | None:
    """The newest complete checkpoint (folders appear by atomic rename, so a listed one is whole)."""
    folder = checkpoints_dir(ws, job_id)
    done = sorted((p for p in folder.glob("step-*") if (p / "state.json").is_file() and (p / "optimizer.pt").is_file()), key=lambda p: int(p.name[5:]))
    return done[-1] if done else None


def _trainable(model: Any) -> dict[str, Any]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def _keep_epoch_adapters_only(folder: Path, *, keep_newest: int) -> None:
    """Prune checkpoints but the newest `keep_newest`: an epoch's end keeps its adapter weights (a few MB, so it can
    be evaluated as <job_id>@step-N) and loses what only resuming needs; any other checkpoint goes."""
    ordered = sorted(folder.glob("step-*"), key=lambda p: int(p.name[5:]))
    for old in ordered[: max(len(ordered) - keep_newest, 0)]:
        if (old / EPOCH_END_MARKER).is_file():
            for name in RESUME_ONLY_FILES:
                (old / name).unlink(missing_ok=True)
        else:
            shutil.rmtree(old, ignore_errors=True)


def _save_checkpoint(
    ws: Workspace, job_id: str, model: Any, optimizer: Any, scheduler: Any, position: Position, best: dict | None, *, epoch_end: bool = False
) -> Path:
    import torch
    from safetensors.torch import save_file

    folder = checkpoints_dir(ws, job_id)
    target = folder / f"step-{position.step:07d}"
    with atomic_folder(target) as staging:
        save_file({k: v.detach().cpu().contiguous() for k, v in _trainable(model).items()}, staging / "adapter.safetensors")
        if best is not None:
            save_file(best, staging / "best_adapter.safetensors")
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, staging / "rng.pt")
        (staging / "state.json").write_text(json.dumps(asdict(position), indent=2))
        if epoch_end:
            (staging / EPOCH_END_MARKER).write_text("")
    _keep_epoch_adapters_only(folder, keep_newest=CHECKPOINTS_KEPT)
    return target


def _restore_checkpoint(checkpoint: Path, model: Any, optimizer: Any, scheduler: Any) -> tuple[Position, dict | None]:
    import torch
    from safetensors.torch import load_file

    params = _trainable(model)
    saved = load_file(checkpoint / "adapter.safetensors")
    if set(saved) != set(params):
        raise UserError(f"Checkpoint {checkpoint} does not fit this model's LoRA layers; it was made with other settings.")
    with torch.no_grad():
        for name, value in saved.items():
            params[name].copy_(value)
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
    rng = torch.load(checkpoint / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    best_file = checkpoint / "best_adapter.safetensors"
    best = load_file(best_file) if best_file.is_file() else None
    return Position(**json.loads((checkpoint / "state.json").read_text())), best


def pick_device(hp: LocalHyperparameters) -> tuple[str, Any]:
    """(device, dtype): CPU trains in float32, CUDA in bf16 where the GPU supports it."""
    import torch

    want_cuda = hp.device == "cuda" or (hp.device == "auto" and torch.cuda.is_available())
    if hp.quantization == "4bit" and not want_cuda:
        raise UserError("quantization='4bit' (QLoRA) needs a CUDA GPU and none is visible. Use quantization='none' to train on CPU.")
    if not want_cuda:
        return "cpu", torch.float32
    if not torch.cuda.is_available():
        raise UserError("device='cuda' was asked for but no CUDA GPU is visible. Use device='auto' or 'cpu'.")
    return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32


def load_for_training(base_dir: Path, hp: LocalHyperparameters, device: str, dtype: Any) -> Any:
    """The base model with LoRA layers on hp.target_modules, on its device, ready to train."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype}
    if hp.quantization == "4bit":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as error:
            raise UserError("QLoRA needs bitsandbytes: pip install 'model-customization[cuda]' (or bitsandbytes).") from error
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
        )
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    model = AutoModelForCausalLM.from_pretrained(base_dir, **kwargs)
    model.config.use_cache = False
    if hp.quantization == "4bit":
        # Not peft's prepare_model_for_kbit_training: it upcasts every weight that is not 4-bit (embeddings, norms,
        # the output head) to float32, and as this loop runs without autocast, the residual stream, attention and
        # the head would then all run in float32 (twice the activation memory of bf16, no flash attention), which
        # is what QLoRA is meant to save. bf16 compute needs no upcast (the norms already normalise in float32);
        # what is left of it is freezing the base, and gradient checkpointing, set below as for plain LoRA.
        model.requires_grad_(False)
    else:
        model.to(device)
    if hp.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    linear_names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear) or "Linear" in type(module).__name__}
    missing = [t for t in hp.target_modules if t not in linear_names]
    if missing:
        raise UserError(f"target_modules {missing} are not linear layers of this model; its linear layers are: {sorted(linear_names)}.")
    return get_peft_model(model, lora_config(hp))


def lora_config(hp: LocalHyperparameters) -> Any:
    """The LoRA layers a job trains; loading a job's checkpoint as a model rebuilds them from here too."""
    from peft import LoraConfig

    return LoraConfig(r=hp.lora_rank, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout, target_modules=list(hp.target_modules), task_type="CAUSAL_LM")


def load_tokenizer(base_dir: Path, hp: LocalHyperparameters, base_name: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    if hp.chat_template:
        tokenizer.chat_template = hp.chat_template
    require_chat_template(tokenizer, base_name)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _continue_from(ws: Workspace, model: Any, model_id: str) -> None:
    """Start from a tuned model's adapter weights (continued training on new data)."""
    import torch
    from safetensors.torch import load_file

    row = ws.store.models.get(model_id)
    assert row is not None, model_id
    saved = load_file(Path(row["path"]) / "adapter_model.safetensors")
    params = _trainable(model)
    by_suffix = {name.replace(".default", ""): p for name, p in params.items()}
    loaded = 0
    with torch.no_grad():
        for name, value in saved.items():
            target = by_suffix.get(name)
            if target is None or target.shape != value.shape:
                raise UserError(f"The adapter of {model_id} does not fit this job's LoRA layers ({name}); use the same lora_rank and target_modules.")
            target.copy_(value)
            loaded += 1
    if loaded != len(params):
        raise UserError(f"The adapter of {model_id} covers {loaded} of this job's {len(params)} LoRA tensors; use the same lora_rank and target_modules.")


class _Silent:
    """The ledger as seen by the other processes of a multi-process run: only the first one reports."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def _distributed() -> tuple[int, int]:
    """(world size, rank) under `accelerate launch` / torchrun (which set WORLD_SIZE); (1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 1, 0
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return world, dist.get_rank()


def _sum_across_processes(model: Any, totals: list[float]) -> list[float]:
    """Add up the gradients and the running totals of all processes (LoRA gradients are a few MB)."""
    import torch
    import torch.distributed as dist

    for param in _trainable(model).values():
        if param.grad is None:  # a process that got no batch in this step still takes part
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad)
    packed = torch.tensor(totals, dtype=torch.float64, device=next(iter(_trainable(model).values())).device)
    dist.all_reduce(packed)
    return packed.tolist()


def claim_for_worker(jobs: Any, job_id: str) -> bool:
    """Claim the job for this worker process; when that fails, say why in the job's events and the worker's log, so
    that a worker that exits without training (status 0) is never a silent stop."""
    if jobs.claim(job_id, os.getpid()):
        return True
    job = jobs.get(job_id)
    if job is None:
        why = "the job is no longer in the ledger"
    elif job["status"] == "queued":
        why = "the job was queued but could not be claimed"
    else:
        why = f"the job is {job['status']}"
        if job["worker_pid"] and job["worker_pid"] != os.getpid():
            why += f", held by process {job['worker_pid']} on {job['worker_host']}"
    message = f"worker process {os.getpid()} exits without training: {why}"
    print(message, file=sys.stderr, flush=True)
    if job is not None:
        jobs.add_event(job_id, message, "warning")
    return False


def train_job(ws: Workspace, job_id: str) -> None:
    import torch
    from transformers import get_scheduler

    world, rank = _distributed()
    jobs: Any = ws.store.jobs
    job = jobs.get(job_id)
    assert job is not None, job_id
    hp = parse_hyperparameters(job["hyperparameters"])
    if job["method"] == "grpo":  # its own loop: it samples and scores answers instead of reading targets
        from model_customization.providers.local.grpo import train_grpo

        return train_grpo(ws, job_id)
    if rank == 0 and not claim_for_worker(jobs, job_id):
        return  # cancelled, or claimed by another worker, before this one got going: nothing to do
    if rank != 0:
        jobs = _Silent()
    device, dtype = pick_device(hp)
    jobs.add_event(job_id, f"worker started (pid {os.getpid()}, {device}, {str(dtype).removeprefix('torch.')}, {torch.get_num_threads()} threads" + (f", {world} processes)" if world > 1 else ")"))

    torch.manual_seed(hp.seed)
    base_dir = ensure_base_model(ws.settings, job["base_model"])
    jobs.add_event(job_id, f"loading base model from {base_dir}")
    tokenizer = load_tokenizer(base_dir, hp, job["base_model"])
    objective = objectives.for_method(job["method"], tokenizer, hp, device)

    def prepared(split: str) -> list[Any]:
        rows = read_split(ws, job["dataset_id"], split)
        items, truncated, skipped = objective.prepare(rows)
        if split == "train" and rows and not items:
            raise UserError(
                f"Every one of the {len(rows)} training examples exceeds max_seq_length={hp.max_seq_length} before its "
                "first trained token. Raise max_seq_length or build a dataset with shorter examples."
            )
        if split == "train" and rows and truncated == len(rows):
            raise UserError(
                f"All {len(rows)} training examples are longer than max_seq_length={hp.max_seq_length} tokens and would "
                "all be cut short. Raise max_seq_length (the job's hyperparameters) and start the job again."
            )
        if truncated:
            jobs.add_event(job_id, f"{truncated} {split} examples truncated to {hp.max_seq_length} tokens", "warning")
        if skipped:
            jobs.add_event(job_id, f"{skipped} {split} examples skipped: no trained token within {hp.max_seq_length} tokens", "warning")
        return items

    train_set, validation_set = prepared("train"), prepared("validation")

    model = load_for_training(base_dir, hp, device, dtype)
    if job.get("continue_from"):
        _continue_from(ws, model, job["continue_from"])
        jobs.add_event(job_id, f"starting from the adapter of {job['continue_from']}")
    if job["method"] in ("dpo", "kto"):
        jobs.add_event(job_id, f"scoring the {objective.unit} with the starting model (the {job['method'].upper()} reference)")
    if hasattr(objective, "describe"):
        jobs.add_event(job_id, objective.describe(train_set))
    objective.prepare_reference(model, train_set, hp.batch_size)
    objective.prepare_reference(model, validation_set, hp.batch_size)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    jobs.add_event(job_id, f"LoRA rank {hp.lora_rank} on {', '.join(hp.target_modules)}: {trainable:,} trainable parameters")

    batches_per_epoch = math.ceil(len(train_set) / hp.batch_size)
    micro_batch_size = hp.micro_batch_size or hp.batch_size
    batches_per_step = hp.gradient_accumulation_steps * world  # each process takes its share of a step's batches
    steps_per_epoch = math.ceil(batches_per_epoch / batches_per_step)
    total_steps = steps_per_epoch * hp.epochs
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=hp.learning_rate, weight_decay=0.0)
    schedule = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[hp.lr_scheduler]
    scheduler = get_scheduler(schedule, optimizer, num_warmup_steps=int(total_steps * hp.warmup_fraction), num_training_steps=total_steps)

    position, best = Position(), None
    checkpoint = latest_checkpoint(ws, job_id)
    if checkpoint is not None:
        position, best = _restore_checkpoint(checkpoint, model, optimizer, scheduler)
        jobs.drop_metrics_after(job_id, position.step)
        jobs.add_event(job_id, f"resumed from checkpoint at step {position.step} (epoch {position.epoch + 1}, batch {position.batch_index})")
    jobs.update(job_id, total_steps=total_steps, step=position.step, epoch=position.epoch + position.batch_index / batches_per_epoch)
    jobs.add_event(job_id, f"training {len(train_set)} {objective.unit}, {hp.epochs} epochs, {total_steps} steps on {device}")

    def validate() -> bool:
        """Record validation loss; True when early stopping says stop."""
        if not validation_set:
            return False
        loss = objective.validation_loss(model, validation_set, micro_batch_size)
        position.history.append(loss)
        jobs.add_metric(job_id, step=position.step, epoch=position.epoch + position.batch_index / batches_per_epoch, validation_loss=loss)
        jobs.update(job_id, validation_loss=loss)
        nonlocal best
        if position.best_validation_loss is None or loss < position.best_validation_loss:
            position.best_validation_loss = loss
            position.validations_without_improvement = 0
            if hp.early_stopping_patience:
                best = {k: v.detach().cpu().clone() for k, v in _trainable(model).items()}
        else:
            position.validations_without_improvement += 1
        return bool(hp.early_stopping_patience and position.validations_without_improvement >= hp.early_stopping_patience)

    model.train()
    started, steps_this_run = time.time(), 0
    train_loss = None
    while position.epoch < hp.epochs and not position.stopped_early:
        batches = epoch_batches(train_set, hp.batch_size, hp.seed, position.epoch, objective.length)
        while position.batch_index < len(batches):
            group = batches[position.batch_index : position.batch_index + batches_per_step]
            step_started = time.perf_counter()
            # Every batch weighs by its tokens (SFT) or pairs (DPO) in the whole step, so accumulating over batches
            # or processes gives the gradient of one big batch.
            step_weight = sum(objective.weight(b) for b in group)
            loss_sum, tokens = 0.0, 0
            for batch in group[rank::world]:
                for micro in _micro_batches(batch, objective.length, micro_batch_size, CPU_TOKENS_PER_PASS if device == "cpu" else None):
                    weight = objective.weight(micro)
                    loss, n_tokens = objective.loss(model, micro)
                    (loss * weight / step_weight).backward()
                    loss_sum += loss.item() * weight
                    tokens += n_tokens
            if world > 1:
                loss_sum, tokens = _sum_across_processes(model, [loss_sum, tokens])
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            position.step += 1
            position.batch_index += len(group)
            steps_this_run += 1
            train_loss = loss_sum / step_weight
            elapsed = time.time() - started
            fractional_epoch = position.epoch + position.batch_index / len(batches)
            jobs.record_step(
                job_id,
                {
                    "step": position.step,
                    "epoch": fractional_epoch,
                    "train_loss": train_loss,
                    "learning_rate": scheduler.get_last_lr()[0],
                    "tokens_per_second": tokens / (time.perf_counter() - step_started),
                },
                step=position.step,
                epoch=fractional_epoch,
                train_loss=train_loss,
                eta_seconds=elapsed / steps_this_run * (total_steps - position.step),
            )
            at_epoch_end = position.batch_index >= len(batches)
            if hp.eval_interval_steps and position.step % hp.eval_interval_steps == 0 and not at_epoch_end:
                position.stopped_early = validate()
                if position.stopped_early:
                    break
            if rank == 0 and position.step % hp.checkpoint_interval_steps == 0 and not at_epoch_end:
                _save_checkpoint(ws, job_id, model, optimizer, scheduler, position, best)
        if not position.stopped_early and position.batch_index >= len(batches):
            position.stopped_early = validate()
            message = f"epoch {position.epoch + 1}/{hp.epochs} done: train loss {train_loss:.4f}" if train_loss is not None else f"epoch {position.epoch + 1}/{hp.epochs} done"
            if position.history:
                message += f", validation loss {position.history[-1]:.4f}"
            jobs.add_event(job_id, message)
            position.epoch += 1
            position.batch_index = 0
        if position.stopped_early:
            jobs.add_event(job_id, f"early stopping at step {position.step}: {hp.early_stopping_patience} validations without improvement; keeping the best adapter (validation loss {position.best_validation_loss:.4f})")
        if rank == 0 and position.epoch < hp.epochs and not position.stopped_early:
            _save_checkpoint(ws, job_id, model, optimizer, scheduler, position, best, epoch_end=True)

    if position.stopped_early and best is not None:
        with torch.no_grad():
            for name, param in _trainable(model).items():
                param.copy_(best[name].to(param.device))
        jobs.update(job_id, validation_loss=position.best_validation_loss)  # the kept adapter's
    if rank != 0:
        return
    model_id = _save_adapter(ws, job, model, tokenizer, hp)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    jobs.add_event(job_id, f"peak memory of the worker: {peak_mb:.0f} MB")
    if jobs.finish(job_id, "succeeded", model_id=model_id, eta_seconds=0.0):
        jobs.add_event(job_id, f"succeeded in {time.time() - started:.0f} s: model {model_id}")
        # The adapter is final: resuming is over, but each earlier epoch's adapter stays comparable with it.
        _keep_epoch_adapters_only(checkpoints_dir(ws, job_id), keep_newest=0)


def _save_adapter(ws: Workspace, job: dict[str, Any], model: Any, tokenizer: Any, hp: LocalHyperparameters) -> str:
    """Write the adapter into a temporary folder and rename it, so a crash never leaves half an adapter behind."""
    job_id = job["id"]
    adapter_dir = ws.settings.jobs_dir / job_id / "adapter"
    with atomic_folder(adapter_dir) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        if hp.chat_template:
            tokenizer.save_pretrained(staging)  # the template the adapter was trained with travels with it
        (staging / "training.json").write_text(
            json.dumps(
                {"job_id": job_id, "base_model": job["base_model"], "dataset_id": job["dataset_id"], "method": job["method"], "hyperparameters": hp.model_dump()},
                indent=2,
            )
        )
    model_id = tuned_model_id(job_id)
    if ws.store.models.get(model_id) is None:
        ws.store.models.add(
            {"id": model_id, "provider": "local", "kind": "tuned", "base_model": job["base_model"], "path": str(adapter_dir), "job_id": job_id, "dataset_id": job["dataset_id"]}
        )
    return model_id


def tuned_model_id(job_id: str) -> str:
    return "ft-" + job_id.removeprefix("job-")

