"""A reference for the gate: what OpenAI's cookbook "Data preparation and analysis for chat model fine-tuning" does.

Written for this project after the recipe that notebook describes (not copied from it): load every line with
json.loads, count the format errors it checks (data_type, missing_messages_list, message_missing_key,
message_unrecognized_key, unrecognized_role, missing_content, example_missing_assistant_message), then count tokens
per example the way its num_tokens_from_messages does (3 per message, 1 per name, 3 to prime the reply, and an
encode of every value of every message) and the assistant tokens again (num_assistant_tokens_from_messages), and
print the distributions it prints. tiktoken cannot download its files here, so bpe_openai's cl100k_base stands in
for tiktoken.get_encoding("cl100k_base"). Values that are not strings (tool_calls lists, weights), which the
notebook's code cannot encode, are encoded as their JSON text.

Usage: python benchmarks/baseline_cookbook.py FILE.jsonl
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np

MAX_TOKENS_PER_EXAMPLE = 16385
TARGET_EPOCHS = 3


def _encoding():
    import bpe_openai

    return bpe_openai.get_encoding("cl100k_base")


def _as_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def num_tokens_from_messages(encoding, messages, tokens_per_message=3, tokens_per_name=1) -> int:
    num_tokens = 0
    for message in messages:
        num_tokens += tokens_per_message
        for key, value in message.items():
            num_tokens += len(encoding.encode(_as_text(value)))
            if key == "name":
                num_tokens += tokens_per_name
    return num_tokens + 3


def num_assistant_tokens_from_messages(encoding, messages) -> int:
    return sum(len(encoding.encode(_as_text(m.get("content") or ""))) for m in messages if m.get("role") == "assistant")


def print_distribution(values, name: str, out) -> None:
    print(f"\n#### Distribution of {name}:", file=out)
    print(f"min / max: {min(values)}, {max(values)}", file=out)
    print(f"mean / median: {np.mean(values)}, {np.median(values)}", file=out)
    print(f"p5 / p95: {np.quantile(values, 0.1)}, {np.quantile(values, 0.9)}", file=out)


def format_errors(dataset) -> dict[str, int]:
    errors: dict[str, int] = defaultdict(int)
    for ex in dataset:
        if not isinstance(ex, dict):
            errors["data_type"] += 1
            continue
        messages = ex.get("messages", None)
        if not messages:
            errors["missing_messages_list"] += 1
            continue
        for message in messages:
            if "role" not in message or "content" not in message:
                errors["message_missing_key"] += 1
            if any(k not in ("role", "content", "name", "function_call", "weight") for k in message):
                errors["message_unrecognized_key"] += 1
            if message.get("role", None) not in ("system", "user", "assistant", "function"):
                errors["unrecognized_role"] += 1
            content = message.get("content", None)
            function_call = message.get("function_call", None)
            if (not content and not function_call) or not isinstance(content, str):
                errors["missing_content"] += 1
        if not any(message.get("role", None) == "assistant" for message in messages):
            errors["example_missing_assistant_message"] += 1
    return dict(errors)


def analyse(path: str, out=sys.stdout, encoding=None) -> dict:
    encoding = encoding or _encoding()
    with open(path, encoding="utf-8") as f:
        dataset = [json.loads(line) for line in f]
    errors = format_errors(dataset)
    print("Found errors:" if errors else "No errors found", errors or "", file=out)

    n_missing_system = n_missing_user = 0
    n_messages, convo_lens, assistant_message_lens = [], [], []
    for ex in dataset:
        messages = ex["messages"]
        if not any(m["role"] == "system" for m in messages):
            n_missing_system += 1
        if not any(m["role"] == "user" for m in messages):
            n_missing_user += 1
        n_messages.append(len(messages))
        convo_lens.append(num_tokens_from_messages(encoding, messages))
        assistant_message_lens.append(num_assistant_tokens_from_messages(encoding, messages))
    print("Num examples missing system message:", n_missing_system, file=out)
    print("Num examples missing user message:", n_missing_user, file=out)
    print_distribution(n_messages, "num_messages_per_example", out)
    print_distribution(convo_lens, "num_total_tokens_per_example", out)
    print_distribution(assistant_message_lens, "num_assistant_tokens_per_example", out)
    n_too_long = sum(length > MAX_TOKENS_PER_EXAMPLE for length in convo_lens)
    print(f"\n{n_too_long} examples may be over the {MAX_TOKENS_PER_EXAMPLE} token limit", file=out)
    billed = sum(min(MAX_TOKENS_PER_EXAMPLE, length) for length in convo_lens)
    print(f"~{billed} tokens charged per epoch; {TARGET_EPOCHS} epochs: ~{TARGET_EPOCHS * billed}", file=out)
    return {"examples": len(dataset), "errors": errors, "tokens": sum(convo_lens)}


if __name__ == "__main__":
    analyse(sys.argv[1])
