"""What an answer cost: the provider's token prices for chat (inference), so an evaluation can report cost per model.

Prices change, so the table is dated and an operator can override or extend it with the environment variable
MODEL_CUSTOMIZATION_CHAT_PRICES, a JSON object of model name -> [USD per million input tokens, USD per million output
tokens] (e.g. {"claude-sonnet-5": [3, 15]}). A model found in neither has an unknown cost (None), which a report says
rather than guessing. Local models cost nothing to call (they run on this machine): 0.
"""

from __future__ import annotations

import json
import os

from model_customization.errors import UserError
from model_customization.providers.registry import find_provider

PRICES_ENV = "MODEL_CUSTOMIZATION_CHAT_PRICES"
CHAT_PRICES_READ_ON = "2025-11-01"
CHAT_PRICES_SOURCE = "openai.com/api/pricing and claude.com/pricing (standard tier, per 1M tokens)"

# (input, output) USD per million tokens. Fine-tuned OpenAI models ("ft:<base>:...") are billed at their own rates.
CHAT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "ft:gpt-4o": (3.75, 15.00),
    "ft:gpt-4o-mini": (0.30, 1.20),
    "ft:gpt-4.1": (3.00, 12.00),
    "ft:gpt-4.1-mini": (0.80, 3.20),
    "ft:gpt-4.1-nano": (0.20, 0.80),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-opus-4-5": (5.00, 25.00),
    "claude-3-5-haiku": (0.80, 4.00),
}


def _operator_prices() -> dict[str, tuple[float, float]]:
    raw = os.environ.get(PRICES_ENV, "").strip()
    if not raw:
        return {}
    try:
        table = json.loads(raw)
        if not isinstance(table, dict):
            raise ValueError("not an object")
        return {str(name): (float(pair[0]), float(pair[1])) for name, pair in table.items()}
    except (ValueError, TypeError, IndexError, KeyError):
        raise UserError(
            f"{PRICES_ENV} must be a JSON object of model -> [USD per million input tokens, USD per million output tokens], "
            'e.g. {"claude-sonnet-5": [3, 15]}.'
        ) from None


def chat_price(provider: str, model: str) -> tuple[float, float] | None:
    """(input, output) USD per million tokens for `model`, or None when we do not know it."""
    answering = find_provider(provider)
    if answering is not None and not answering.paid:
        return (0.0, 0.0)
    operator = _operator_prices()
    if model in operator:
        return operator[model]
    own_table = getattr(answering, "chat_price", None)  # a provider with its own price table (a configured endpoint)
    own = own_table(model) if callable(own_table) else None
    if own is not None:
        return own
    name = model.split("bedrock:", 1)[-1]
    candidates = [name]
    if name.startswith("ft:"):  # ft:gpt-4o-mini-2024-07-18:org::id -> its base family
        base = name[3:].split(":", 1)[0]
        candidates += [f"ft:{base}", "ft:" + _family(base)]
    else:
        candidates.append(_family(name))
    for candidate in candidates:
        if candidate in operator:
            return operator[candidate]
        if candidate in CHAT_PRICES:
            return CHAT_PRICES[candidate]
    return None


def _family(name: str) -> str:
    """A dated snapshot's family: gpt-4o-mini-2024-07-18 -> gpt-4o-mini, claude-haiku-4-5-20251001 -> claude-haiku-4-5."""
    parts = name.split("-")
    while parts and parts[-1].isdigit() and len(parts[-1]) >= 2 and (len(parts[-1]) in (2, 4, 8)):
        parts.pop()
    return "-".join(parts)


def answer_cost_usd(provider: str, model: str, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
    """What one answer cost in USD, or None when the price or the token counts are unknown."""
    price = chat_price(provider, model)
    if price is None or prompt_tokens is None or completion_tokens is None:
        return None
    return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000, 8)
