"""Exact token counts offline: OpenAI's encodings through bpe-openai (it ships the BPE files tiktoken would
download), and the local model's own tokenizer for local jobs."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from model_customization.errors import UserError

# Chat formatting overhead as OpenAI counts it for chat models: a few tokens around every message and three
# that prime the reply (the constants of OpenAI's own counting recipe for gpt-3.5/4-family chat formats).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3
_CHUNK_CHARS = 200_000  # bpe-openai refuses one input of more than 200k tokens; count long texts in pieces


def encoding_name_for(model: str) -> str:
    """o200k for the gpt-4o / gpt-4.1 / o-series families, cl100k for gpt-4 and gpt-3.5."""
    name = model.lower()
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")):
        return "o200k_base"
    if name.startswith(("gpt-4", "gpt-3.5", "gpt-35", "babbage-002", "davinci-002")):
        return "cl100k_base"
    raise UserError(f"No tokenizer known for OpenAI model {model!r}. Use a gpt-4.1, gpt-4o or gpt-3.5-turbo model name.")


@lru_cache(maxsize=4)
def _encoding(name: str):
    import bpe_openai

    return bpe_openai.get_encoding(name)


# Counts of texts already counted, per encoding: system prompts, tool definitions and tool outputs repeat a lot in
# chat data, and looking a text up costs far less than encoding it again. Bounded by the characters it holds.
_CACHE_MAX_CHARS = 16_000_000
_cache: dict[str, dict[str, int]] = {}
_cache_chars = 0


def count_text(text: str, encoding: str) -> int:
    global _cache_chars
    cache = _cache.get(encoding)
    if cache is None:
        cache = _cache[encoding] = {}
    else:
        known = cache.get(text)
        if known is not None:
            return known
    total = _count_text(text, encoding)
    if _cache_chars + len(text) > _CACHE_MAX_CHARS:
        for counts in _cache.values():
            counts.clear()
        _cache_chars = 0
    cache[text] = total
    _cache_chars += len(text)
    return total


def _count_text(text: str, encoding: str) -> int:
    enc = _encoding(encoding)
    total, start = 0, 0
    while start < len(text):
        end = start + _CHUNK_CHARS
        if end < len(text):
            # Cut just before a whitespace run so no word is split (a split word would count as extra tokens).
            cut = text.rfind(" ", start, end)
            end = cut if cut > start else end
        total += len(enc.encode_ordinary(text[start:end]))
        start = end
    return total


def _message_text(message: dict[str, Any]) -> str:
    parts = [str(message.get("role", "")), message.get("content") or ""]
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        parts += [str(function.get("name", "")), str(function.get("arguments", ""))]
    return "\n".join(p if isinstance(p, str) else str(p) for p in parts)


def count_chat_tokens(messages: list[dict[str, Any]], encoding: str, tools: list[dict[str, Any]] | None = None) -> int:
    """Tokens of one chat example as OpenAI's recipe counts them (tool definitions counted as their JSON text)."""
    import json

    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_text(_message_text(message), encoding)
        if message.get("name"):
            total += TOKENS_PER_NAME
    if tools:
        total += count_text(json.dumps(tools, separators=(",", ":")), encoding)
    return total


def count_assistant_tokens(messages: list[dict[str, Any]], encoding: str) -> int:
    return sum(count_text(_message_text(m), encoding) for m in messages if m.get("role") == "assistant")


def measure_chat_rows(rows: Any, encoding: str, check: Any = None) -> tuple[list[Any], dict[str, int], dict[str, list[int]]]:
    """One pass over (split, line, row): each row is validated and, when it has no error, counted with `encoding`;
    no row is kept. check(split, line, row, tokens) returns more findings for a counted row (a provider's limits).

    Returns (findings, counts per split, tokens per split); the validation findings come first, then check's."""
    from model_customization.datasets.render import is_preference
    from model_customization.datasets.validate import RowValidator

    validator = RowValidator()
    measured: list[Any] = []
    tokens: dict[str, list[int]] = {}
    for split, line, row in rows:
        if not validator.add(split, line, row):
            continue
        messages = list(row["input"]["messages"]) + list(row["preferred_output"]) + list(row["non_preferred_output"]) if is_preference(row) else list(row["messages"])
        n = count_chat_tokens(messages, encoding, (row.get("input") or row).get("tools"))
        tokens.setdefault(split, []).append(n)
        if check is not None:
            measured.extend(check(split, line, row, n))
    findings, counts = validator.finish()
    return findings + measured, counts, tokens
