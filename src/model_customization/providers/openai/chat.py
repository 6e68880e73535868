"""One chat completion from an OpenAI (or OpenAI-compatible) model: what prompt_model and the evaluation judge use.

The answer length is capped with `max_completion_tokens` on OpenAI's platform (its newer models refuse
`max_tokens`) and with `max_tokens` on an OpenAI-compatible server (vLLM, Ollama, llama.cpp), where the older name is
the one every server understands.
"""

from __future__ import annotations

import time
from typing import Any

from model_customization.errors import NotFoundError, UserError
from model_customization.providers.openai.client import is_openai_platform, openai_client, refusal
from model_customization.providers.openai.endpoints import OPENAI, Endpoint
from model_customization.workspace import Workspace

ROLES = ("system", "developer", "user", "assistant", "tool")
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
    ws: Workspace, model: str, messages: list[dict[str, Any]], *, max_tokens: int, temperature: float, seed: int | None, endpoint: Endpoint = OPENAI,
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The model's reply to a conversation (which may open with a system message): model, text, prompt_tokens,
    completion_tokens, seconds, and stop_reason (OpenAI's finish_reason). `tools` (function tools) are sent as the
    request's `tools`; the calls the model makes come back as tool_calls [{id, type, function: {name, arguments}}].

    On an endpoint with deployments (Azure) the request names the model's deployment when the config file maps one."""
    import openai

    if not messages:
        raise UserError("Give at least one message, e.g. [{\"role\": \"user\", \"content\": \"...\"}].")
    if max_tokens < 1:
        raise UserError(f"max_tokens must be at least 1 (got {max_tokens}).")
    sent = endpoint.chat_model(model)
    request: dict[str, Any] = {"model": sent, "messages": [_clean(m) for m in messages], "temperature": temperature}
    # OpenAI's platform and Azure's v1 API take max_completion_tokens (their newer models refuse max_tokens); other
    # compatible servers understand the older name.
    newer = is_openai_platform(endpoint) or endpoint.max_completion_tokens
    request["max_completion_tokens" if newer else "max_tokens"] = max_tokens
    if seed is not None:
        request["seed"] = seed
    if tools:
        request["tools"] = tools
    client = openai_client(endpoint)
    started = time.perf_counter()
    try:
        completion = client.chat.completions.create(**request)
    except openai.NotFoundError:
        if endpoint.uses_deployments:
            raise NotFoundError(
                f"{endpoint.title} has no deployment {sent!r}. Azure answers through deployments: deploy the model (Azure portal, or "
                f"az cognitiveservices account deployment create --model-name {model} --model-format OpenAI ...) and prompt "
                f"'{endpoint.name}:<deployment name>', or map it in the config file: [openai_compatible.{endpoint.name}.deployments] "
                f"\"{model}\" = \"<deployment name>\"."
            ) from None
        raise NotFoundError(f"{endpoint.title} has no model {sent!r} for this key. The resource models://index lists tuned models; base models are named like '{endpoint.default_base_model or 'gpt-4.1-mini'}'.") from None
    except openai.APIError as error:
        raise refusal(f"get a reply from {model}", error, endpoint) from None
    seconds = time.perf_counter() - started
    if not completion.choices:
        raise UserError(f"{model} returned no answer; try again.")
    choice = completion.choices[0]
    message = choice.message
    text = message.content if message.content is not None else (getattr(message, "refusal", None) or "")
    usage = completion.usage
    answer = {
        "model": completion.model or model,
        "text": text,
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "seconds": round(seconds, 3),
        "stop_reason": choice.finish_reason,  # stop | length (cut at max_tokens) | content_filter | tool_calls
    }
    calls = [
        {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": call.function.arguments}}
        for call in message.tool_calls or []
        if getattr(call, "function", None) is not None  # custom tools (free text) are not function calls
    ]
    if calls:
        answer["tool_calls"] = calls
    return answer
