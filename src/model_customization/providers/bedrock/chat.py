"""Prompting Bedrock models: a tuned model through its provisioned throughput, or a base model on demand.

A tuned (custom) Bedrock model is invoked through provisioned throughput here, so a registered tuned model is
called by its throughput's ARN; "bedrock:<model id>" calls a base model on demand. Calls go through Bedrock's
Converse API, which speaks one message format to every family this product trains (Nova, Llama, Titan, Cohere,
Claude): system text apart, user/assistant turns alternating, starting with user, each a list of text blocks.
"""

from __future__ import annotations

import time
from typing import Any

from model_customization.datasets.examples import render_tool_calls
from model_customization.errors import NotFoundError, TransientError, UserError
from model_customization.providers.bedrock import clients
from model_customization.workspace import Workspace

# AWS error codes after which the same call may succeed later (throttling, capacity, a slow or failing service).
TRANSIENT_CODES = frozenset({"ThrottlingException", "ServiceUnavailableException", "ModelTimeoutException", "InternalServerException", "ServiceQuotaExceededException"})

BASE_PREFIX = "bedrock:"


def _text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type", "text") == "text")
    return "" if content is None else str(content)


def to_turns(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, str]]]:
    """(system text, turns): system/developer messages joined apart, tool results as user text, same-role turns merged."""
    system_parts: list[str] = []
    turns: list[dict[str, str]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system_parts.append(_text(message.get("content")))
            continue
        if role == "tool":
            role, text = "user", f"<tool_result>{_text(message.get('content'))}</tool_result>"
        elif role == "assistant":
            text = render_tool_calls({**message, "content": _text(message.get("content"))})
        elif role == "user":
            text = _text(message.get("content"))
        else:
            raise UserError(f"Unknown message role {role!r}; use system, user, assistant or tool.")
        if not text.strip():
            continue  # Bedrock refuses empty text blocks
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n\n" + text
        else:
            turns.append({"role": role, "content": text})
    while turns and turns[0]["role"] != "user":
        turns.pop(0)
    if not turns:
        raise UserError("The messages hold no user message with text; a Bedrock model needs one to answer.")
    system = "\n\n".join(p for p in system_parts if p.strip()) or None
    return system, turns


def _target(ws: Workspace, model: str) -> str:
    """The modelId to invoke: a base model's id, or the provisioned throughput ARN of a registered tuned model."""
    if model.startswith(BASE_PREFIX):
        base = model[len(BASE_PREFIX):]
        if not base:
            raise UserError("Give a Bedrock model id after 'bedrock:', e.g. 'bedrock:amazon.nova-lite-v1:0'.")
        return base
    row = ws.store.models.get(model)
    if not row:
        raise NotFoundError(f"Model {model!r} not found. The resource models://index lists the registered models; a Bedrock base model is named 'bedrock:<model id>'.")
    if row["provider"] != "bedrock":
        raise UserError(f"Model {model} is a {row['provider']} model, not a Bedrock one.")
    arn = (row.get("details") or {}).get("provisioned_model_arn")
    if not arn:
        raise UserError(
            f"Tuned Bedrock model {model} has no provisioned throughput, and Bedrock runs custom models only through one. "
            f"Call provision_throughput(model_id={model!r}, confirm=true) (billed hourly), wait until throughput_status "
            "says InService, then prompt it again."
        )
    return arn


def chat(ws: Workspace, model: str, messages: list[dict[str, Any]], *, max_tokens: int, temperature: float, seed: int | None) -> dict[str, Any]:
    """One reply from a Bedrock model: {"model", "text", "prompt_tokens", "completion_tokens", "seconds", "stop_reason"}.

    `seed` is accepted for the common interface but the Converse API has no sampling seed; use temperature 0 for
    repeatable answers.
    """
    if max_tokens < 1:
        raise UserError(f"max_tokens must be 1 or more (got {max_tokens}).")
    if not 0 <= temperature <= 1:
        raise UserError(f"temperature must be from 0 to 1 for Bedrock models (got {temperature}).")
    target = _target(ws, model)
    system, turns = to_turns(messages)
    request: dict[str, Any] = {
        "modelId": target,
        "messages": [{"role": turn["role"], "content": [{"text": turn["content"]}]} for turn in turns],
        "inferenceConfig": {"maxTokens": max_tokens, "temperature": temperature},
    }
    if system:
        request["system"] = [{"text": system}]
    runtime = clients.client("bedrock-runtime")
    from botocore.exceptions import BotoCoreError, ClientError

    started = time.monotonic()
    try:
        response = runtime.converse(**request)
    except (ClientError, BotoCoreError) as error:
        hint = ""
        if clients.error_code(error) == "ModelNotReadyException":
            hint = " The provisioned throughput is not ready yet; throughput_status shows when it is InService."
        elif clients.error_code(error) == "AccessDeniedException":
            hint = " Request access to this model in the Bedrock console (Model access) or use credentials allowed to invoke it."
        message = f"Bedrock could not run {model} ({clients.error_message(error)}).{hint}"
        if clients.error_code(error) in TRANSIENT_CODES or isinstance(error, BotoCoreError):
            raise TransientError(message) from error
        raise UserError(message) from error
    seconds = time.monotonic() - started
    content = ((response.get("output") or {}).get("message") or {}).get("content") or []
    usage = response.get("usage") or {}
    return {
        "model": model,
        "text": "".join(block.get("text", "") for block in content if "text" in block),
        "prompt_tokens": int(usage.get("inputTokens") or 0),
        "completion_tokens": int(usage.get("outputTokens") or 0),
        "seconds": round(seconds, 3),
        "stop_reason": response.get("stopReason"),
    }
