"""Curation building blocks for dataset builds, in one import: redaction, dedupe, filters, per-turn examples.

    redact_conversation(conv) -> (Conversation, Counter[kind])      redaction.py
    NearDuplicateFilter(threshold, num_perm, shingle), exact_key    dedupe.py
    ConversationFilter(...).reason(conv) -> str | None              filters.py
    split_into_turn_examples(example) -> list[example]              here
    weight_whole_conversation(example) -> example                   here

All of them are pure: they return new objects and never change their inputs.

Per-turn examples. A *learnable* assistant message is one `examples.example_problem` would train on: role assistant,
weight not 0, and some content or tool calls. `split_into_turn_examples` makes one example per learnable assistant
message: the conversation up to and including it, with every earlier assistant message set to weight 0 (it is
context, already learned by its own example), and the final message's weight left as it was. Assistant messages that
call tools are learnable messages too, so an agent step (call) and its final answer each get an example. An example
that would fail `example_problem` (e.g. an assistant message before any user message) is left out, so for a valid
input that starts with a user message the result has exactly one example per learnable assistant message.
"""

from __future__ import annotations

import copy
from typing import Any

from model_customization.datasets.dedupe import NearDuplicateFilter, example_text, exact_key, normalise_text
from model_customization.datasets.examples import example_problem
from model_customization.datasets.filters import REASONS, ConversationFilter, count_turns
from model_customization.datasets.redaction import KINDS, redact_conversation, redact_text


def is_learnable(message: dict[str, Any]) -> bool:
    return (
        message.get("role") == "assistant"
        and message.get("weight", 1) != 0
        and bool((message.get("content") or "").strip() or message.get("tool_calls"))
    )


def split_into_turn_examples(example: dict[str, Any]) -> list[dict[str, Any]]:
    """One example per learnable assistant message, ending with it; earlier assistant messages get weight 0."""
    messages = example.get("messages") or []
    out: list[dict[str, Any]] = []
    for end, last in enumerate(messages):
        if not is_learnable(last):
            continue
        prefix = copy.deepcopy(messages[: end + 1])
        for message in prefix[:-1]:
            if message.get("role") == "assistant":
                message["weight"] = 0
        item = {key: copy.deepcopy(value) for key, value in example.items() if key != "messages"}
        item["messages"] = prefix
        if example_problem(item) is None:
            out.append(item)
    return out


def weight_whole_conversation(example: dict[str, Any]) -> dict[str, Any]:
    """A copy with every assistant message weighted 1 explicitly, except those already weighted 0."""
    item = copy.deepcopy(example)
    for message in item.get("messages") or []:
        if message.get("role") == "assistant" and message.get("weight", 1) != 0:
            message["weight"] = 1
    return item


__all__ = [
    "KINDS",
    "REASONS",
    "ConversationFilter",
    "NearDuplicateFilter",
    "count_turns",
    "example_text",
    "exact_key",
    "is_learnable",
    "normalise_text",
    "redact_conversation",
    "redact_text",
    "split_into_turn_examples",
    "weight_whole_conversation",
]
