"""One way to get an answer from any model: local (base or tuned), OpenAI, Anthropic, Bedrock or a provider another
package registers.

`resolve_chat_model` (providers/registry.py) decides which provider a model name means, asking each provider whether
it claims the name; `chat` sends the conversation there and returns the same shape whoever answered: {model, text,
prompt_tokens, completion_tokens, seconds, provider, stop_reason}.

Provider modules are imported when first used, so no SDK is loaded at server start-up.
"""

from __future__ import annotations

from typing import Any

from model_customization.datasets.tool_text import with_tools_described
from model_customization.errors import UserError
from model_customization.jobs.spending import (
    NO_CONSENT,
    Allowance,
    Consent,
    approve_spend,
    authorize_chat_operation,
    chat_call_bound_usd,
    prompt_tokens_bound,
)
from model_customization.providers.registry import get_provider, is_paid, resolve_chat_model
from model_customization.workspace import Workspace

__all__ = ["chat", "chat_quote_usd", "chat_with_provider", "check_chat_spending", "check_chat_model", "resolve_chat_model", "tool_results_as_user_text"]


def chat(
    ws: Workspace,
    model: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int = 256,
    temperature: float = 0.0,
    seed: int = 0,
    consent: Consent = NO_CONSENT,
    allowance: Allowance | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One answer from whichever provider `model` names. A paid call draws from `allowance` (an operation of many
    calls approved as a whole) or, without one, is quoted, approved (the budgets, or `consent`) and counted alone.
    `tools` (OpenAI function tools) are offered to the model (see chat_with_provider)."""
    provider, name = resolve_chat_model(ws, model)
    notice = get_provider(provider, "chat").model_notice(name)  # e.g. the date the provider shuts this model down
    if allowance is not None or not is_paid(provider):
        result = chat_with_provider(ws, provider, name, messages, max_tokens=max_tokens, temperature=temperature, seed=seed, allowance=allowance, tools=tools)
        return {**result, "notice": notice} if notice else result
    quote = chat_quote_usd(provider, name, messages, max_tokens, tools)
    own = authorize_chat_operation(ws, provider, quote, consent, what=f"call to {name}", kind="prompt")
    try:
        result = chat_with_provider(ws, provider, name, messages, max_tokens=max_tokens, temperature=temperature, seed=seed, allowance=own, tools=tools)
        return {**result, "notice": notice} if notice else result
    finally:
        if own is not None:
            own.close()


def chat_quote_usd(provider: str, name: str, messages: list[dict[str, Any]], max_tokens: int, tools: list[dict[str, Any]] | None = None) -> float | None:
    """The most one call can cost (0 for a provider that is free; None when its price is unknown), tools included."""
    if not is_paid(provider):
        return 0.0
    sent = _as_billed(tool_results_as_user_text(messages), tools)
    return chat_call_bound_usd(provider, name, prompt_tokens_bound(sent), max_tokens)


def _as_billed(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The messages a call's price is bounded on: its tools are prompt tokens too, counted as the text that
    describes them (at least as long as their JSON, which an API sending them natively bills)."""
    return with_tools_described(messages, tools)


def check_chat_spending(ws: Workspace, model: str, messages: list[dict[str, Any]], max_tokens: int, consent: Consent = NO_CONSENT) -> None:
    """Raise ConfirmationNeeded when `chat` with these arguments would need a person (nothing is recorded)."""
    provider, name = resolve_chat_model(ws, model)
    quote = chat_quote_usd(provider, name, messages, max_tokens)
    if quote != 0:
        approve_spend(ws, provider, quote, consent, what=f"call to {name}", by_argument=False)


def chat_with_provider(
    ws: Workspace,
    provider: str,
    name: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int = 256,
    temperature: float = 0.0,
    seed: int = 0,
    allowance: Allowance | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """`chat` once the provider is known (the evaluation resolves each model once, then calls this per case).

    The one door to every provider's chat: a call that may cost money (a paid provider whose price is not known to
    be 0) is sent only with an allowance to draw its upper bound from, and what it cost is counted there.

    `tools` (OpenAI function tools) go to a provider whose chat takes them (chat_tools: an API's `tools`, a local
    chat template); any other gets them described in the system message, so every model is shown the tools."""
    if not messages:
        raise UserError("Nothing to answer: give a prompt or at least one message.")
    if max_tokens < 1:
        raise UserError(f"max_tokens must be at least 1 (got {max_tokens}).")
    if not 0 <= temperature <= 2:
        raise UserError(f"temperature must be between 0 and 2 (got {temperature}); 0 means the most repeatable answer.")
    answering = get_provider(provider, "chat")
    # A model running here reads tool results as they are; remote APIs need them as text (see below).
    sent = messages if answering.runs_locally else tool_results_as_user_text(messages)
    if tools and not answering.chat_tools:
        sent, tools = with_tools_described(sent, tools), None
    bound = 0.0
    if answering.paid:
        billed = _as_billed(sent, tools)
        if allowance is not None:
            bound = allowance.draw(answering.name, name, billed, max_tokens)
        elif chat_call_bound_usd(answering.name, name, prompt_tokens_bound(billed), max_tokens) != 0:
            raise UserError(f"A paid {answering.title} call must be quoted and approved before it is sent; it was not sent. (A bug in the caller: report it.)")
    try:
        result = answering.chat(ws, name, sent, max_tokens=max_tokens, temperature=temperature, seed=seed, **({"tools": tools} if tools else {}))
    except ModuleNotFoundError as error:
        if allowance is not None:
            allowance.refund(bound)
        package = (error.name or "").split(".")[0]
        if package in answering.sdk_packages:
            raise UserError(f"The {package} package is not installed; install it (pip install {package}) to use {answering.name} models.") from error
        raise
    except BaseException:
        # Providers do not bill a request they refused or failed (rate limits, server errors): the draw goes back.
        if allowance is not None:
            allowance.refund(bound)
        raise
    if allowance is not None:
        allowance.settle(answering.name, name, bound, result)
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
