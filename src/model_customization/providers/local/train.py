"""The local LoRA training loop, top to bottom: load, tokenize, batch, step, evaluate, save.

Runs inside the detached worker process (worker.py) and reports everything to the ledger: status, step/total,
epoch, train and validation loss, ETA, events. On CPU it trains in float32 without gradient checkpointing, which
are the fast settings on these machines (bf16 matmuls and recomputation are both many times slower there).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from model_customization.datasets.build import read_split
from model_customization.datasets.examples import to_plain_chat
from model_customization.providers.local.chat import TokenizedExample, require_chat_template, tokenize_chat
from model_customization.providers.local.hyperparameters import parse_hyperparameters
from model_customization.providers.local.models import ensure_base_model
from model_customization.workspace import Workspace

LORA_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _batches(examples: list[TokenizedExample], batch_size: int, rng: random.Random) -> list[list[TokenizedExample]]:
    """Shuffled batches of similar length, so little compute goes to padding."""
    order = examples[:]
    rng.shuffle(order)
    window = batch_size * 8
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda e: len(e.input_ids))
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _collate(batch: list[TokenizedExample], pad_id: int):
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return ids, labels, mask


def _loss(model: Any, batch: list[TokenizedExample], pad_id: int):
    """Mean cross-entropy over the assistant tokens of the batch (not per-example means)."""
    import torch.nn.functional as F

    ids, labels, mask = _collate(batch, pad_id)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1, :]
    targets = labels[:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)


def _validation_loss(model: Any, examples: list[TokenizedExample], batch_size: int, pad_id: int) -> float | None:
    import torch

    if not examples:
        return None
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = examples[start : start + batch_size]
            n = sum(e.trained_tokens - (1 if e.labels[0] != -100 else 0) for e in batch)
            total += _loss(model, batch, pad_id).item() * n
            tokens += n
    model.train()
    return total / max(tokens, 1)


def train_job(ws: Workspace, job_id: str) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

    ledger = ws.ledger
    job = ledger.get_job(job_id)
    assert job is not None, job_id
    hp = parse_hyperparameters(job["hyperparameters"])
    if not ledger.claim_job(job_id, os.getpid()):
        return  # cancelled before the worker got going: nothing to do
    ledger.add_event(job_id, f"worker started (pid {os.getpid()}, {torch.get_num_threads()} threads)")

    random.seed(hp.seed)
    torch.manual_seed(hp.seed)
    base_dir = ensure_base_model(ws.settings, job["base_model"])
    ledger.add_event(job_id, f"loading base model from {base_dir}")
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    require_chat_template(tokenizer, job["base_model"])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model.config.use_cache = False
    model = get_peft_model(
        model,
        LoraConfig(
            r=hp.lora_rank,
            lora_alpha=hp.lora_alpha,
            lora_dropout=hp.lora_dropout,
            target_modules=LORA_TARGET_MODULES,
            task_type="CAUSAL_LM",
        ),
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ledger.add_event(job_id, f"LoRA rank {hp.lora_rank}: {trainable:,} trainable parameters")

    def tokenized(split: str) -> list[TokenizedExample]:
        rows = [tokenize_chat(tokenizer, to_plain_chat(e["messages"]), hp.max_seq_length) for e in read_split(ws, job["dataset_id"], split)]
        truncated = sum(r.truncated for r in rows)
        if truncated:
            ledger.add_event(job_id, f"{truncated} {split} examples truncated to {hp.max_seq_length} tokens", "warning")
        return [r for r in rows if r.trained_tokens > 0]

    train_set, validation_set = tokenized("train"), tokenized("validation")
    if not train_set:
        raise RuntimeError(f"no training example keeps an assistant token within max_seq_length={hp.max_seq_length}")

    steps_per_epoch = math.ceil(len(train_set) / hp.batch_size)
    total_steps = steps_per_epoch * hp.epochs
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=hp.learning_rate, weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * hp.warmup_fraction), total_steps)
    ledger.update_job(job_id, total_steps=total_steps, epoch=0.0)
    ledger.add_event(job_id, f"training {len(train_set)} examples, {hp.epochs} epochs, {total_steps} steps")

    rng = random.Random(hp.seed)
    model.train()
    step, started = 0, time.time()
    validation_loss = None
    for epoch in range(hp.epochs):
        for batch in _batches(train_set, hp.batch_size, rng):
            step_started = time.perf_counter()
            loss = _loss(model, batch, pad_id)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens_per_second = sum(len(e.input_ids) for e in batch) / (time.perf_counter() - step_started)
            elapsed = time.time() - started
            fractional_epoch = epoch + (step - epoch * steps_per_epoch) / steps_per_epoch
            ledger.record_step(
                job_id,
                {"step": step, "epoch": fractional_epoch, "train_loss": loss.item(), "learning_rate": scheduler.get_last_lr()[0], "tokens_per_second": tokens_per_second},
                step=step,
                epoch=fractional_epoch,
                train_loss=loss.item(),
                eta_seconds=elapsed / step * (total_steps - step),
            )
        validation_loss = _validation_loss(model, validation_set, hp.batch_size, pad_id)
        if validation_loss is not None:
            ledger.add_metric(job_id, step=step, epoch=float(epoch + 1), validation_loss=validation_loss)
            ledger.update_job(job_id, validation_loss=validation_loss)
        ledger.add_event(job_id, f"epoch {epoch + 1}/{hp.epochs} done: train loss {loss.item():.4f}" + (f", validation loss {validation_loss:.4f}" if validation_loss is not None else ""))

    # Save into a temporary folder and rename, so a crash never leaves a half-written adapter behind.
    job_dir = ws.settings.jobs_dir / job_id
    job_dir.mkdir(parents=True, exist_ok=True)
    adapter_dir = job_dir / "adapter"
    staging = Path(tempfile.mkdtemp(prefix=".adapter-", dir=job_dir))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        (staging / "training.json").write_text(
            json.dumps({"job_id": job_id, "base_model": job["base_model"], "dataset_id": job["dataset_id"], "hyperparameters": hp.model_dump()}, indent=2)
        )
        if adapter_dir.exists():
            shutil.rmtree(adapter_dir)
        os.replace(staging, adapter_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    model_id = tuned_model_id(job_id)
    ledger.add_model(
        {"id": model_id, "provider": "local", "kind": "tuned", "base_model": job["base_model"], "path": str(adapter_dir), "job_id": job_id, "dataset_id": job["dataset_id"]}
    )
    if ledger.finish_job(job_id, "succeeded", model_id=model_id, eta_seconds=0.0):
        ledger.add_event(job_id, f"succeeded in {time.time() - started:.0f} s: model {model_id}")


def tuned_model_id(job_id: str) -> str:
    return "ft-" + job_id.removeprefix("job-")
