"""One way to get an answer from any model: local (base or tuned), OpenAI, Anthropic, Bedrock or a provider another
package registers.

`resolve_chat_model` (providers/registry.py) decides which provider a model name means, asking each provider whether
it claims the name; `chat` sends the conversation there and returns the same shape whoever answered: {model, text,
prompt_tokens, completion_tokens, seconds, provider, stop_reason}.

Provider modules are imported when first used, so no SDK is loaded at server start-up.
"""

from __future__ import annotations

from typing import Any

from model_customization.errors import UserError
from model_customization.providers.registry import get_provider, resolve_chat_model
from model_customization.workspace import Workspace

__all__ = ["chat", "chat_with_provider", "check_chat_model", "resolve_chat_model", "tool_results_as_user_text"]


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
    answering = get_provider(provider, "chat")
    # A model running here reads tool results as they are; remote APIs need them as text (see below).
    sent = messages if answering.runs_locally else tool_results_as_user_text(messages)
    try:
        result = answering.chat(ws, name, sent, max_tokens=max_tokens, temperature=temperature, seed=seed)
    except ModuleNotFoundError as error:
        package = (error.name or "").split(".")[0]
        if package in answering.sdk_packages:
            raise UserError(f"The {package} package is not installed; install it (pip install {package}) to use {answering.name} models.") from error
        raise
    return {**result, "provider": answering.name, "stop_reason": result.get("stop_reason")}


def check_chat_model(ws: Workspace, model: str) -> tuple[str, str]:
    """Resolve a model and refuse, before anything is generated or paid for, one that certainly cannot answer.

    Each provider checks what it can without spending (local models must exist; Anthropic needs its key; OpenAI and
    Bedrock check their credentials on the first call). Returns (provider, name) like resolve_chat_model; a local
    name comes back canonical (ft-… id or absolute path).
    """
    provider, name = resolve_chat_model(ws, model)
    return provider, get_provider(provider, "chat").check_chat_model(ws, name)


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
