"""One answer from a Claude model through the Messages API (POST /v1/messages), in the router's common shape.

What the conversion does, and why:
  - system messages, wherever they stand, are joined into the request's `system` (the API has no system role);
  - tool results in plain text become user turns, assistant tool calls become text (we send no tool definitions);
  - empty turns are dropped and neighbouring turns of the same role merged: the API wants non-empty turns that
    alternate user/assistant and begin with a user turn;
  - temperature: the SDK (2.x) sends API version 2026-10-21, which has no sampling parameters and refuses a request
    carrying one. So 0 (our default, "as repeatable as the provider allows") sends nothing and any other value is
    refused here with a clear message rather than by the API. The API has no seed either; it is ignored.
"""

from __future__ import annotations

import time
from typing import Any

from model_customization.datasets.examples import render_tool_calls
from model_customization.errors import TransientError, UserError, retry_after_seconds
from model_customization.providers.anthropic.client import MAX_RETRIES, anthropic_client, base_url, scrub
from model_customization.providers.chat import tool_results_as_user_text
from model_customization.workspace import Workspace

# Anthropic's stop reasons in the small vocabulary every provider's answer uses; others are kept verbatim.
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "refusal",
    "tool_use": "tool_calls",
}


def to_messages_request(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, str]]]:
    """(system, turns) for the Messages API from a chat in our (OpenAI-like) shape; UserError when it cannot be sent."""
    system_parts: list[str] = []
    turns: list[dict[str, str]] = []
    for index, message in enumerate(tool_results_as_user_text(messages), start=1):
        role = message.get("role")
        text = _text_of(message, index)
        if role == "system":
            if text.strip():
                system_parts.append(text.strip())
            continue
        if role == "tool":  # still carrying a tool_call_id: we send no tools, so the model reads it as text
            role, text = "user", f"<tool_result>\n{text}\n</tool_result>"
        if role not in ("user", "assistant"):
            raise UserError(f"Message {index} has role {role!r}; use system, user, assistant or tool.")
        if not text.strip():
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n\n" + text
        else:
            turns.append({"role": role, "content": text})
    if not turns:
        raise UserError("Nothing to answer: give at least one user message with text (system messages alone are not a conversation).")
    if turns[0]["role"] != "user":
        raise UserError("A conversation for a Claude model must begin with a user message (after any system messages); this one begins with an assistant turn.")
    if turns[-1]["role"] == "assistant":
        # A final assistant turn asks the model to continue it; the API refuses one ending in whitespace.
        turns[-1]["content"] = turns[-1]["content"].rstrip()
    return ("\n\n".join(system_parts) or None), turns


def chat(
    ws: Workspace,
    model: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int = 256,
    temperature: float = 0.0,
    seed: int = 0,
) -> dict[str, Any]:
    """{model, text, prompt_tokens, completion_tokens, seconds, stop_reason} from Claude `model` (costs API credit)."""
    del ws, seed  # nothing is stored; the Messages API has no seed
    if max_tokens < 1:
        raise UserError(f"max_tokens must be at least 1 (got {max_tokens}).")
    if temperature != 0:
        raise UserError(
            f"Claude models take no temperature: the Anthropic API version this product uses (2026-10-21) has no "
            f"sampling parameters and refuses requests that set one. Leave temperature at 0 for {model} (got {temperature})."
        )
    system, turns = to_messages_request(messages)
    client = anthropic_client()
    import anthropic

    request: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": turns}
    if system:
        request["system"] = system
    started = time.perf_counter()
    try:
        response = client.messages.create(**request)
    except anthropic.APIError as error:
        message = scrub(_explain(error, model))
        status = getattr(error, "status_code", None)
        if isinstance(error, anthropic.APIConnectionError) or status in (408, 429) or (status or 0) >= 500:
            response = getattr(error, "response", None)
            raise TransientError(message, retry_after=retry_after_seconds(getattr(response, "headers", None))) from None
        raise UserError(message) from None
    seconds = time.perf_counter() - started
    usage = response.usage
    # The input the request was billed for is spread over three counters when prompt caching applies.
    prompt_tokens = usage.input_tokens + (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    return {
        "model": response.model,
        "text": "".join(block.text for block in response.content if block.type == "text").strip(),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": usage.output_tokens,
        "seconds": round(seconds, 3),
        "stop_reason": STOP_REASONS.get(response.stop_reason or "", response.stop_reason),
    }


def _text_of(message: dict[str, Any], index: int) -> str:
    content = message.get("content")
    if message.get("tool_calls"):
        return render_tool_calls(message)
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style parts: only text can be sent on
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise UserError(f"Message {index} has a content part of type {kind!r}; only text can be sent to Claude here.")
        return "\n".join(parts)
    raise UserError(f"Message {index} has content of type {type(content).__name__}; give text.")


def _explain(error: Exception, model: str) -> str:
    """Anthropic's own message, with what to do next."""
    import anthropic

    if isinstance(error, anthropic.APITimeoutError):
        return f"The Anthropic API did not answer in time (model {model}). Try again, or ask for fewer max_tokens."
    if isinstance(error, anthropic.APIConnectionError):
        return f"Could not reach the Anthropic API at {base_url() or 'https://api.anthropic.com'}: check the network, or ANTHROPIC_BASE_URL if it is set."
    if not isinstance(error, anthropic.APIStatusError):
        return f"The Anthropic API call failed: {error}"
    status = error.status_code
    said = f"{status} {error.type or 'error'}: {error.api_message or error.message}"
    if status == 401:
        return f"Anthropic refused the API key ({said}). Check ANTHROPIC_API_KEY: it must be a current key from the Claude Console."
    if status == 403:
        return f"Anthropic denied this request ({said}). The key's organisation or workspace may not have access to {model}."
    if status == 404:
        return f"Anthropic does not know model {model!r} ({said}). Use a current Claude model id such as claude-sonnet-5 or claude-haiku-4-5."
    if status == 429:
        return f"Anthropic's rate limit was still exceeded after {MAX_RETRIES} retries ({said}). Wait a minute and try again, or send fewer requests (evaluate with a smaller limit)."
    if status >= 500:
        return f"The Anthropic API is overloaded or failing ({said}), still after {MAX_RETRIES} retries. Try again in a few minutes."
    return f"Anthropic rejected the request for {model} ({said})."
