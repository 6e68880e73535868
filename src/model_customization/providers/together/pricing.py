"""What a Together fine-tuning job costs, before anything is uploaded: a dated price table by model size.

Together bills fine-tuning by the tokens processed: n_epochs x the training file's tokens + n_evals x the validation
file's tokens (docs.together.ai/docs/fine-tuning-pricing, which sends the rates to together.ai/pricing). The rate
depends on the model's size bracket, the method (SFT or DPO) and LoRA or full training. The rates below are
together.ai/pricing's fine-tuning table as published in 2025 (USD per million tokens); they could not be re-read
from this machine (no web access) on 2026-12-06, so they carry that date and source, and a model whose size we cannot
tell from its name, or that is larger than the table's last bracket, has no price (None): the spending guard then
asks a person. Once the training file is on Together (a reused upload), Together's own estimate
(POST /fine-tunes/estimate-price, read-only and free) is asked as well and, when it answers, used instead.
"""

from __future__ import annotations

import re

PRICES_SOURCE = "together.ai/pricing, fine-tuning table (rates of 2025, USD per 1M tokens processed)"
PRICES_READ_ON = "2025 (not re-read on 2026-12-06: no web access from this machine)"

# (largest size in billions of parameters, {(method, lora): USD per million tokens})
PRICE_BRACKETS: tuple[tuple[float, dict[tuple[str, bool], float]], ...] = (
    (16.0, {("sft", True): 0.48, ("dpo", True): 1.20, ("sft", False): 0.54, ("dpo", False): 1.35}),
    (69.0, {("sft", True): 1.50, ("dpo", True): 3.75, ("sft", False): 1.65, ("dpo", False): 4.12}),
    (100.0, {("sft", True): 2.90, ("dpo", True): 7.25, ("sft", False): 3.20, ("dpo", False): 8.00}),
)
# "Meta-Llama-3.1-8B-Instruct-Reference" -> 8, "Qwen3-30B-A3B" -> 30 (a mixture of experts is priced by its total),
# "gemma-3-270m-it" -> 0.27, "SmolLM2-135M-Instruct" -> 0.135
_SIZE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)([BbMm])(?![A-Za-z])")


def model_size_billions(model: str) -> float | None:
    """The parameter count in billions that a model's name states, or None when it states none."""
    name = model.rsplit("/", 1)[-1]
    if re.search(r"-\d+E(?:-|$)", name):
        return None  # a mixture of experts named by its active size ("Llama-4-Scout-17B-16E"): its total is not stated
    for number, unit in _SIZE.findall(name.replace("_", "-")):
        value = float(number)
        return value if unit in "Bb" else value / 1000
    return None


def usd_per_million_tokens(model: str, method: str, lora: bool) -> float | None:
    """The table's rate for this model, method and training type, or None when unknown."""
    size = model_size_billions(model)
    if size is None:
        return None
    for largest, rates in PRICE_BRACKETS:
        if size <= largest:
            return rates.get((method, lora))
    return None
