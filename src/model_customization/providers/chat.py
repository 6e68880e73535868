"""One way to get an answer from any model: local (base or tuned), OpenAI, Anthropic or Bedrock.

`resolve_chat_model` decides which provider a model name means; `chat` sends the conversation there and returns the
same shape whoever answered: {model, text, prompt_tokens, completion_tokens, seconds, provider, stop_reason}.

How a name is read, first match wins:
  "openai:…", "anthropic:…", "bedrock:…", "local:…"   that provider, the rest is the model
  a model in the registry (ledger)                     the provider it was registered with (tuned models)
  "ft:…"                                               OpenAI (its fine-tuned model ids)
  "claude-…"                                           Anthropic
  "gpt-…", "chatgpt-…", "o1", "o3…", "o4…"             OpenAI
  "arn:aws:bedrock:…", Bedrock model ids such as "anthropic.claude-3-haiku-20240307-v1:0" or "us.amazon.nova-lite-v1:0"
                                                       Bedrock
  anything else                                        local: the embedded model, a tuned ft-… id, a model folder

Provider modules are imported when first used, so no SDK is loaded at server start-up.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from model_customization.errors import UserError
from model_customization.workspace import Workspace

PROVIDERS = ("local", "openai", "anthropic", "bedrock")
CLOUD_PROVIDERS = ("openai", "anthropic", "bedrock")

_OPENAI_NAME = re.compile(r"^(?:gpt-|chatgpt-|o[134](?:$|-))")
# Bedrock foundation-model and inference-profile ids: an optional geography, a vendor, a dot, the model.
_BEDROCK_NAME = re.compile(
    r"^(?:(?:us|eu|apac|us-gov|jp|au|ca|global)\.)?(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|qwen|openai|writer)\.[a-z0-9][\w.:-]*$"
)


def resolve_chat_model(ws: Workspace, model: str) -> tuple[str, str]:
    """(provider, model name for that provider) for what a caller typed; see the module docstring for the rules."""
    name = (model or "").strip()
    if not name:
        raise UserError("No model given. Name a local model (SmolLM2-135M-Instruct, a tuned ft-… id, a folder) or a cloud model such as claude-sonnet-5 or gpt-4o-mini.")
    for provider in PROVIDERS:
        if name.startswith(provider + ":"):
            rest = name[len(provider) + 1 :].strip()
            if not rest:
                raise UserError(f"{name!r} names the provider but no model; write it as {provider}:<model>.")
            return provider, rest
    row = ws.ledger.get_model(name)
    if row:
        if row["provider"] not in PROVIDERS:
            raise UserError(f"Model {name!r} is registered for provider {row['provider']!r}, which cannot be prompted here; providers: {', '.join(PROVIDERS)}.")
        return row["provider"], name
    if name.startswith("ft:"):
        return "openai", name
    if name.startswith("claude-"):
        return "anthropic", name
    if _OPENAI_NAME.match(name):
        return "openai", name
    if name.startswith("arn:aws:bedrock:") or _BEDROCK_NAME.match(name):
        return "bedrock", name
    return "local", name


def chat(
    ws: Workspace,
    model: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int = 256,
    temperature: float = 0.0,
    seed: int = 0,
) -> dict[str, Any]:
    """One answer from whichever provider `model` names (cloud calls cost money and need that provider's key)."""
    provider, name = resolve_chat_model(ws, model)
    return chat_with_provider(ws, provider, name, messages, max_tokens=max_tokens, temperature=temperature, seed=seed)


def chat_with_provider(
    ws: Workspace,
    provider: str,
    name: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int = 256,
    temperature: float = 0.0,
    seed: int = 0,
) -> dict[str, Any]:
    """`chat` once the provider is known (the evaluation resolves each model once, then calls this per case)."""
    if not messages:
        raise UserError("Nothing to answer: give a prompt or at least one message.")
    if max_tokens < 1:
        raise UserError(f"max_tokens must be at least 1 (got {max_tokens}).")
    if not 0 <= temperature <= 2:
        raise UserError(f"temperature must be between 0 and 2 (got {temperature}); 0 means the most repeatable answer.")
    if provider == "local":
        from model_customization.providers.local.inference import generate

        result = generate(ws, name, messages, max_tokens=max_tokens, temperature=temperature, seed=seed)
        # generate stops at the end-of-turn token; using every token allowed means the answer was cut.
        stop_reason = "length" if result["completion_tokens"] >= max_tokens else "stop"
        return {**result, "provider": "local", "stop_reason": result.get("stop_reason", stop_reason)}
    if provider not in CLOUD_PROVIDERS:
        raise UserError(f"Unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}.")
    module = _provider_chat_module(provider)
    result = module.chat(ws, name, tool_results_as_user_text(messages), max_tokens=max_tokens, temperature=temperature, seed=seed)
    return {**result, "provider": provider, "stop_reason": result.get("stop_reason")}


def check_chat_model(ws: Workspace, model: str) -> tuple[str, str]:
    """Resolve a model and refuse, before anything is generated or paid for, one that certainly cannot answer.

    Local models must exist; Anthropic needs its key. OpenAI and Bedrock check their own credentials on the first
    call. Returns (provider, name) like resolve_chat_model; a local name comes back canonical (ft-… id or absolute path).
    """
    provider, name = resolve_chat_model(ws, model)
    if provider == "local":
        from model_customization.providers.local.inference import resolve_model

        return provider, resolve_model(ws, name).model_id
    if provider == "anthropic":
        from model_customization.providers.anthropic.client import api_key

        api_key()
    return provider, name


def tool_results_as_user_text(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool results in plain text form (no tool_call_id, as evaluation prompts carry them) become user turns.

    Without the call id no cloud API accepts them as tool messages, and the model should still see what the tool
    returned. Tool messages that keep their id are left for the provider to send natively.
    """
    converted = []
    for message in messages:
        if message.get("role") == "tool" and not message.get("tool_call_id"):
            content = message.get("content") or ""
            converted.append({"role": "user", "content": f"<tool_result>\n{content}\n</tool_result>"})
        else:
            converted.append(message)
    return converted


def _provider_chat_module(provider: str) -> Any:
    module_name = f"model_customization.providers.{provider}.chat"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise UserError(f"Prompting {provider} models is not available in this installation ({module_name} is missing).") from error
        if error.name in ("openai", "anthropic", "boto3", "botocore"):
            raise UserError(f"The {error.name} package is not installed; install it (pip install {error.name}) to use {provider} models.") from error
        raise
