"""Generation with a local base model or a tuned one (base + LoRA adapter, merged for speed).

Loaded models are kept in a small in-process cache, so an evaluation or a series of prompts loads each once.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_customization.errors import NotFoundError, UserError
from model_customization.providers.local.models import check_base_model, ensure_base_model
from model_customization.workspace import Workspace

_CACHE_SIZE = 2
_cache: OrderedDict[tuple[str, str | None], tuple[Any, Any]] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass
class ResolvedModel:
    model_id: str  # what the caller asked for, canonicalised
    base_model: str
    adapter_dir: Path | None
    checkpoint: Any = None  # a LocalCheckpoint when the model is a local job's checkpoint (<job_id>@step-<N>)


def resolve_model(ws: Workspace, model: str) -> ResolvedModel:
    """A tuned model id (ft-...) from the registry, a local job's checkpoint (<job_id>@step-<N>), or a base model name/path."""
    from model_customization.providers.local.checkpoints import is_checkpoint_name, resolve_checkpoint

    if is_checkpoint_name(model):
        checkpoint = resolve_checkpoint(ws, model)
        job = ws.store.jobs.get(checkpoint.job_id)
        return ResolvedModel(checkpoint.model_id, job["base_model"], None, checkpoint)
    if model.startswith("ft-"):
        row = ws.store.models.get(model)
        if not row:
            raise NotFoundError(f"Model {model!r} not found. check_job shows the model_id of a finished job; list_jobs lists jobs.")
        adapter = Path(row["path"])
        if not (adapter / "adapter_config.json").is_file():
            raise UserError(f"The adapter of {model} is missing from {adapter}. Train it again with start_job.")
        return ResolvedModel(model, row["base_model"], adapter)
    return ResolvedModel(check_base_model(model), check_base_model(model), None)


def _load(ws: Workspace, resolved: ResolvedModel) -> tuple[Any, Any]:
    key = (resolved.base_model, str(resolved.adapter_dir) if resolved.adapter_dir else None)
    if resolved.checkpoint is not None:
        # One entry per checkpoint file: a job that starts over writes a step's folder anew.
        try:
            key = (resolved.base_model, f"{resolved.checkpoint.weights}@{resolved.checkpoint.weights.stat().st_mtime_ns}")
        except FileNotFoundError as error:
            raise NotFoundError(f"Checkpoint {resolved.model_id} was removed (a job keeps only its newest two). Use a newer one.") from error
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        # Loading bars and advisory warnings would clutter the CLI and the server's stderr.
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        base_dir = ensure_base_model(ws.settings, resolved.base_model)
        # An adapter trained with a given chat template carries its tokenizer; prompts must use that template.
        has_own_tokenizer = resolved.adapter_dir and (resolved.adapter_dir / "tokenizer_config.json").is_file()
        tokenizer = AutoTokenizer.from_pretrained(resolved.adapter_dir if has_own_tokenizer else base_dir)
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        if resolved.adapter_dir:
            from peft import PeftModel

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                model = PeftModel.from_pretrained(model, resolved.adapter_dir).merge_and_unload()
        if resolved.checkpoint is not None:
            from model_customization.providers.local.checkpoints import checkpoint_hyperparameters, load_checkpoint_model

            hyperparameters = checkpoint_hyperparameters(ws, resolved.checkpoint)
            if hyperparameters.chat_template:  # the template the job trains with renders its prompts
                tokenizer.chat_template = hyperparameters.chat_template
            model = load_checkpoint_model(model, hyperparameters, resolved.checkpoint)
        model.eval()
        _cache[key] = (model, tokenizer)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
        return model, tokenizer


def load_model(ws: Workspace, resolved: ResolvedModel) -> tuple[Any, Any]:
    """(model, tokenizer) for a resolved model, from the in-process cache (loaded on first use)."""
    return _load(ws, resolved)


def context_tokens(model: Any) -> int | None:
    """How many tokens (prompt and answer) the model reads: its config's max_position_embeddings (8,192 for the
    embedded SmolLM2), or None when the config does not say."""
    value = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def generate(
    ws: Workspace,
    model: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int = 128,
    temperature: float = 0.0,
    seed: int = 0,
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One answer to a conversation; `tools` (OpenAI function tools) are shown to the model as chat.render_prompt shows them."""
    if not messages:
        raise UserError("Nothing to answer: give a prompt or at least one message.")
    if max_tokens < 1 or max_tokens > 4096:
        raise UserError(f"max_tokens must be between 1 and 4096 (got {max_tokens}).")
    if temperature < 0 or temperature > 2:
        raise UserError(f"temperature must be between 0 and 2 (got {temperature}); 0 means greedy.")
    resolved = resolve_model(ws, model)
    loaded, tokenizer = _load(ws, resolved)
    import torch

    from model_customization.providers.local.chat import prompt_ids

    ids = torch.tensor([prompt_ids(tokenizer, messages, tools)])
    context = context_tokens(loaded)
    if context is not None and ids.shape[1] >= context:
        # Past its context a model answers garbage, slowly: refused before generating anything.
        raise UserError(
            f"The prompt is {ids.shape[1]:,} tokens, but {resolved.model_id} reads at most {context:,} (its context), "
            "prompt and answer together. Shorten the prompt or the conversation (keep the last turns), or use a model with a longer context."
        )
    if context is not None:
        max_tokens = min(max_tokens, context - int(ids.shape[1]))  # the answer stops at the context's end (stop_reason length)
    options: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": tokenizer.eos_token_id}
    if temperature > 0:
        torch.manual_seed(seed)
        options.update(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
    else:
        options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    started = time.perf_counter()
    with torch.inference_mode():
        output = loaded.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **options)
    new_tokens = output[0, ids.shape[1]:]
    return {
        "model": resolved.model_id,
        "text": tokenizer.decode(new_tokens, skip_special_tokens=True).strip(),
        "prompt_tokens": int(ids.shape[1]),
        "completion_tokens": int(new_tokens.shape[0]),
        "seconds": round(time.perf_counter() - started, 3),
    }


def generate_greedy_batch(
    ws: Workspace, model: str, conversations: list[list[dict[str, Any]]], *, max_tokens: int = 64, batch_size: int = 8,
    tools: list[list[dict[str, Any]] | None] | None = None,
) -> list[dict[str, Any]]:
    """Greedy answers to many conversations, several at a time (left-padded): the evaluation path. `tools` holds each
    conversation's tools (None for one without), rendered as chat.render_prompt renders them.

    On CPU a batch of 8 costs little more than one sequence, because generating one token is bound by memory
    traffic and per-call overhead rather than arithmetic.
    """
    import torch

    from model_customization.providers.local.chat import prompt_ids

    resolved = resolve_model(ws, model)
    loaded, tokenizer = _load(ws, resolved)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: list[dict[str, Any]] = []
    tools = tools if tools is not None else [None] * len(conversations)
    if len(tools) != len(conversations):
        raise ValueError(f"{len(tools)} tool lists for {len(conversations)} conversations")
    for start in range(0, len(conversations), batch_size):
        prompts = [prompt_ids(tokenizer, c, t) for c, t in zip(conversations[start : start + batch_size], tools[start : start + batch_size], strict=True)]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt):] = torch.tensor(prompt)
            mask[row, width - len(prompt):] = 1
        started = time.perf_counter()
        with torch.inference_mode():
            output = loaded.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=max_tokens, do_sample=False,
                temperature=None, top_p=None, top_k=None, pad_token_id=pad_id,
            )
        seconds = (time.perf_counter() - started) / len(prompts)
        for row, prompt in enumerate(prompts):
            new_tokens = output[row, width:].tolist()
            if tokenizer.eos_token_id in new_tokens:
                new_tokens = new_tokens[: new_tokens.index(tokenizer.eos_token_id)]
            answers.append({
                "model": resolved.model_id,
                "text": tokenizer.decode(new_tokens, skip_special_tokens=True).strip(),
                "prompt_tokens": len(prompt),
                "completion_tokens": len(new_tokens),
                "seconds": round(seconds, 3),
            })
    return answers
