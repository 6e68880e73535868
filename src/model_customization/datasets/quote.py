"""What a job on a dataset will cost before it starts: epochs, billed tokens, dollars, time.

Prices and limits are a dated table: providers change them, so every quote says when its prices were read, and
an unknown model is an error rather than a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import Any

from model_customization.errors import UserError

PRICES_READ_ON = "2025-06-01"
PRICES_SOURCE = "openai.com/api/pricing (fine-tuning training prices, per 1M tokens)"


@dataclass(frozen=True)
class OpenAIModelTerms:
    snapshot: str
    training_usd_per_million: float
    example_token_limit: int


# Training price per million tokens and the maximum tokens of one training example, as read on PRICES_READ_ON.
OPENAI_MODELS = {
    "gpt-4.1": OpenAIModelTerms("gpt-4.1-2025-04-14", 25.00, 65_536),
    "gpt-4.1-mini": OpenAIModelTerms("gpt-4.1-mini-2025-04-14", 5.00, 65_536),
    "gpt-4.1-nano": OpenAIModelTerms("gpt-4.1-nano-2025-04-14", 1.50, 65_536),
    "gpt-4o": OpenAIModelTerms("gpt-4o-2024-08-06", 25.00, 65_536),
    "gpt-4o-mini": OpenAIModelTerms("gpt-4o-mini-2024-07-18", 3.00, 65_536),
    "gpt-3.5-turbo": OpenAIModelTerms("gpt-3.5-turbo-0125", 8.00, 16_385),
}

# OpenAI's default epoch rule: aim at 3 epochs, but keep the examples seen between 100 and 25,000.
TARGET_EPOCHS, MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES, MIN_DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS = 3, 100, 25_000, 1, 25

# Real (non-padding) tokens per second of a LoRA job on the embedded model, measured on a 2-core x86 CPU
# (the demo run of 2026-11-22: 161 tokens/s averaged over its 30 steps). Used until this data home has finished
# local jobs of its own to learn from.
DEFAULT_LOCAL_TOKENS_PER_SECOND = 160.0


def openai_terms(model: str) -> OpenAIModelTerms:
    for name in sorted(OPENAI_MODELS, key=len, reverse=True):  # the longest matching family wins (4o-mini before 4o)
        terms = OPENAI_MODELS[name]
        if model == name or model == terms.snapshot or model.startswith(name + "-20"):
            return terms
    raise UserError(f"No price known for OpenAI model {model!r}. Known: {', '.join(t.snapshot for t in OPENAI_MODELS.values())}.")


def default_epochs(n_train: int) -> int:
    if n_train <= 0:
        return TARGET_EPOCHS
    if n_train * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_train)
    if n_train * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_train)
    return TARGET_EPOCHS


def quote_openai(model: str, train_token_counts: list[int], epochs: int | None) -> dict[str, Any]:
    terms = openai_terms(model)
    chosen = epochs or default_epochs(len(train_token_counts))
    billed_per_epoch = sum(min(terms.example_token_limit, n) for n in train_token_counts)
    billed = billed_per_epoch * chosen
    return {
        "provider": "openai",
        "model": terms.snapshot,
        "epochs": chosen,
        "epochs_rule": "given" if epochs else "OpenAI default (3, kept within 100-25,000 examples seen)",
        "tokens_per_epoch": billed_per_epoch,
        "billed_tokens": billed,
        "usd_per_million_tokens": terms.training_usd_per_million,
        "estimated_cost_usd": round(billed * terms.training_usd_per_million / 1_000_000, 4),
        "prices_read_on": PRICES_READ_ON,
        "prices_source": PRICES_SOURCE,
    }


def local_tokens_per_second(history: list[float]) -> tuple[float, str]:
    if history:
        return median(history), f"median of {len(history)} finished local jobs in this data home"
    return DEFAULT_LOCAL_TOKENS_PER_SECOND, "default measured on a 2-core CPU (no finished local job here yet)"


def quote_local(base_model: str, train_token_counts: list[int], max_seq_length: int, epochs: int, history: list[float]) -> dict[str, Any]:
    per_epoch = sum(min(max_seq_length, n) for n in train_token_counts)
    speed, basis = local_tokens_per_second(history)
    return {
        "provider": "local",
        "model": base_model,
        "epochs": epochs,
        "tokens_per_epoch": per_epoch,
        "trained_tokens": per_epoch * epochs,
        "estimated_cost_usd": 0.0,
        "tokens_per_second": round(speed, 1),
        "speed_basis": basis,
        "estimated_seconds": round(per_epoch * epochs / speed, 1),
    }
