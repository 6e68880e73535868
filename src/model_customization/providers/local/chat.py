"""Chat examples to token ids with a loss mask that covers assistant tokens only.

The model's own chat template renders the conversation. Each message's tokens are found by rendering growing
prefixes of the conversation and taking the difference, which works for any template where a longer conversation
starts with the rendering of a shorter one (ChatML, Llama, Mistral and most others). An assistant message counts
towards the loss (with its end-of-turn marker) unless its `weight` is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model_customization.errors import UserError


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # -100 where the loss is not computed
    truncated: bool

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != -100)


def _render(tokenizer: Any, messages: list[dict[str, Any]], add_generation_prompt: bool = False) -> str:
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    return tokenizer.apply_chat_template(clean, tokenize=False, add_generation_prompt=add_generation_prompt)


def require_chat_template(tokenizer: Any, model_name: str) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{model_name} has no chat template in its tokenizer; a chat model is needed for local fine-tuning.")


def tokenize_chat(tokenizer: Any, messages: list[dict[str, Any]], max_length: int) -> TokenizedExample:
    """Token ids and labels for one conversation (messages with role, content and optional weight)."""
    input_ids: list[int] = []
    labels: list[int] = []
    rendered = ""
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            prompt = _render(tokenizer, messages[:index], add_generation_prompt=True) if index else ""
            full = _render(tokenizer, messages[: index + 1])
            segments = [(prompt[len(rendered):], False), (full[len(prompt):], message.get("weight", 1) != 0)]
        else:
            full = _render(tokenizer, messages[: index + 1])
            segments = [(full[len(rendered):], False)]
        if not full.startswith(rendered):
            raise UserError("The model's chat template does not render conversations prefix by prefix; cannot mask the loss.")
        for text, trained in segments:
            if not text:
                continue
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            input_ids.extend(ids)
            labels.extend(ids if trained else [-100] * len(ids))
        rendered = full
    truncated = len(input_ids) > max_length
    return TokenizedExample(input_ids[:max_length], labels[:max_length], truncated)


def prompt_ids(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    """Token ids of a conversation followed by the assistant generation prompt (for inference)."""
    return tokenizer(_render(tokenizer, messages, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
