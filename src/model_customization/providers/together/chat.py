"""One chat completion from a Together model (base or tuned): what prompt_model and the evaluation judge use.

Together's chat completions API is OpenAI-compatible; we call it through the official `together` SDK, the same
client (key, retries, error types) the fine-tuning calls use, rather than the openai SDK pointed at Together's base
URL: one dependency, one set of error messages, and no chance of OPENAI_* settings leaking into Together calls.
"""

from __future__ import annotations

import time
from typing import Any

from model_customization.errors import NotFoundError, UserError
from model_customization.providers.together.client import refusal, sdk, together_client
from model_customization.workspace import Workspace

ROLES = ("system", "user", "assistant", "tool")
_MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")  # stored examples also carry e.g. `weight`


def _clean(message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    if role not in ROLES:
        raise UserError(f"Message role {role!r} is not one of {', '.join(ROLES)}.")
    cleaned = {key: message[key] for key in _MESSAGE_KEYS if message.get(key) is not None}
    if "content" not in cleaned and not cleaned.get("tool_calls"):
        cleaned["content"] = ""
    return cleaned


def chat(
    ws: Workspace, model: str, messages: list[dict[str, Any]], *, max_tokens: int, temperature: float, seed: int | None,
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The model's reply: model, text, prompt_tokens, completion_tokens, seconds, stop_reason (Together's finish_reason).
    `tools` (function tools) go as the request's `tools`; the calls the model makes come back as tool_calls."""
    together = sdk()  # a missing SDK is a UserError naming the extra

    if not messages:
        raise UserError("Give at least one message, e.g. [{\"role\": \"user\", \"content\": \"...\"}].")
    request: dict[str, Any] = {"model": model, "messages": [_clean(m) for m in messages], "max_tokens": max_tokens, "temperature": temperature}
    if seed is not None:
        request["seed"] = seed
    if tools:
        request["tools"] = tools
    client = together_client()
    started = time.perf_counter()
    try:
        completion = client.chat.completions.create(**request)
    except together.NotFoundError:
        raise NotFoundError(f"Together has no model {model!r} for this key. Serverless models are named like 'meta-llama/Llama-3.3-70B-Instruct-Turbo'; a tuned model is its output name (models://index).") from None
    except together.APIError as error:
        raise refusal(f"get a reply from {model}", error) from None
    seconds = time.perf_counter() - started
    if not completion.choices:
        raise UserError(f"{model} returned no answer; try again.")
    choice = completion.choices[0]
    text = (choice.message.content if choice.message is not None else None) or ""
    usage = completion.usage
    answer = {
        "model": completion.model or model,
        "text": text,
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "seconds": round(seconds, 3),
        "stop_reason": choice.finish_reason,
    }
    calls = [
        {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": call.function.arguments}}
        for call in (getattr(choice.message, "tool_calls", None) or [])
        if getattr(call, "function", None) is not None
    ]
    if calls:
        answer["tool_calls"] = calls
    return answer
