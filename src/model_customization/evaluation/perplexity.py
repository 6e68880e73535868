"""How likely a local model finds the reference answers of a test split: summed token log-likelihoods and perplexity.

Each case is a conversation (the prompt) and the reference reply. The reply is rendered as the model's chat template
renders an assistant turn in training (providers/local/chat.tokenize_chat), so the scored tokens are exactly those a
job learns from for that turn: the reply's text and its end-of-turn marker. Earlier assistant turns of the prompt are
context only. Scores come from the same code path that computes the training loss (objectives._scored_logits), so
a test-split perplexity and a job's validation loss measure the same thing: exp(validation loss) on the same data
equals the perplexity.

Perplexity over a set of cases weighs tokens equally: exp(sum of NLL / sum of scored tokens).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from model_customization.datasets.examples import to_plain_chat
from model_customization.errors import UserError
from model_customization.evaluation.suites import case_tools
from model_customization.providers.local.chat import tokenize_chat
from model_customization.providers.local.inference import _load, resolve_model
from model_customization.providers.local.objectives import _scored_logits
from model_customization.workspace import Workspace

Case = tuple[Sequence[Mapping[str, Any]], str]


def _case_messages(case: Any) -> list[dict[str, Any]]:
    """The conversation to tokenize: the prompt as context (weight 0) and the reference as the one scored turn."""
    if isinstance(case, Mapping):
        prompt, reference = case.get("prompt"), case.get("reference")
    else:
        prompt, reference = case
    if reference is None:
        raise UserError("A perplexity case needs a reference reply to score; this one has none (suite cases without a reference cannot be scored).")
    if not prompt:
        raise UserError("A perplexity case needs prompt messages before the reference reply.")
    context = [{**m, "weight": 0} if m["role"] == "assistant" else {k: v for k, v in m.items() if k != "weight"} for m in to_plain_chat(list(prompt))]
    return [*context, {"role": "assistant", "content": str(reference)}]


def reference_log_likelihoods(
    ws: Workspace,
    model: str,
    cases: Sequence[Case] | Sequence[Mapping[str, Any]],
    batch_size: int = 8,
    *,
    max_length: int | None = None,
) -> list[dict[str, Any]]:
    """For each case (prompt messages, reference text): {"reference_tokens": n, "nll": summed natural-log NLL, "truncated"}.

    `model` is any local model name (base, ft-…, <job_id>@step-<N>, a folder); it is loaded through the inference
    cache. Cases are scored `batch_size` at a time, right-padded with an attention mask (exact for causal models).
    max_length: tokens kept per case (default: the model's context length); a case cut short is marked truncated
    and scores only the reference tokens that remain.
    """
    if batch_size < 1:
        raise UserError(f"batch_size must be at least 1 (got {batch_size}).")
    if not cases:
        return []
    import torch

    loaded, tokenizer = _load(ws, resolve_model(ws, model))
    limit = max_length or getattr(loaded.config, "max_position_embeddings", None) or 1_000_000
    examples = [tokenize_chat(tokenizer, _case_messages(case), limit, case_tools(case) if isinstance(case, Mapping) else None) for case in cases]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = str(next(loaded.parameters()).device)

    results: list[dict[str, Any]] = []
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            batch = examples[start : start + batch_size]
            # Each example must score at least one position, or it would vanish from the row indices below.
            scorable = [e for e in batch if any(label != -100 for label in e.labels[1:])]
            sums = torch.zeros(len(scorable), dtype=torch.float64)
            if scorable:
                logits, targets, rows = _scored_logits(loaded, scorable, pad_id, device)
                token_nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
                sums.index_add_(0, rows.cpu(), token_nll.double().cpu())
            by_example = iter(sums.tolist())
            for example in batch:
                scored = sum(1 for label in example.labels[1:] if label != -100)
                results.append({"reference_tokens": scored, "nll": next(by_example) if scored else 0.0, "truncated": example.truncated})
    return results


def perplexity(nlls: Sequence[Mapping[str, Any]]) -> float:
    """exp(total NLL / total reference tokens) over cases from reference_log_likelihoods (tokens weigh equally)."""
    tokens = sum(int(item["reference_tokens"]) for item in nlls)
    if tokens == 0:
        raise UserError("No reference tokens were scored, so there is no perplexity; give cases with a reference reply.")
    return math.exp(math.fsum(float(item["nll"]) for item in nlls) / tokens)
