"""Conversations to training examples, and the checks every example must pass.

An example is stored in the OpenAI chat fine-tuning shape (`{"messages": [...], "tools"?: [...]}`): it is the one
format every provider in this product can take unchanged, and it is what a user would recognise.
"""

from __future__ import annotations

import json
from typing import Any

from model_customization.memory.records import Conversation, Message

VALID_ROLES = {"system", "user", "assistant", "tool"}


EMPTY_TOOL_RESULT = "(no output)"


def message_to_dict(message: Message) -> dict[str, Any]:
    content = message.content
    if message.role == "tool" and not content.strip():
        content = EMPTY_TOOL_RESULT  # a tool that printed nothing still answered; OpenAI rejects empty content
    out: dict[str, Any] = {"role": message.role, "content": content}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.weight is not None and message.role == "assistant":
        out["weight"] = message.weight
    return out


def conversation_to_example(conversation: Conversation) -> dict[str, Any]:
    """The whole session as one example; trailing turns after the last assistant message teach nothing."""
    messages = [message_to_dict(m) for m in conversation.messages]
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()
    example: dict[str, Any] = {"messages": messages}
    if conversation.tools:
        example["tools"] = conversation.tools
    return example


def example_problem(example: dict[str, Any]) -> str | None:
    """Why an example cannot be trained on, as a short reason key for the card; None when it is fine."""
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return "no_messages"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in VALID_ROLES:
            return "unrecognised_role"
    if not any(m["role"] == "user" for m in messages):
        return "no_user_message"
    learnable = [
        m
        for m in messages
        if m["role"] == "assistant" and m.get("weight", 1) != 0 and ((m.get("content") or "").strip() or m.get("tool_calls"))
    ]
    if not learnable:
        return "no_assistant_message"
    # Every tool call must be answered by a tool message with its id, or the model learns calls without results.
    pending: set[str] = set()
    for message in messages:
        for call in message.get("tool_calls") or []:
            pending.add(call["id"])
        if message["role"] == "tool":
            pending.discard(message.get("tool_call_id") or "")
    last = messages[-1]
    if pending - {c["id"] for c in last.get("tool_calls") or []}:
        return "unanswered_tool_call"
    return None


def render_tool_calls(message: dict[str, Any]) -> str:
    """Text form of an assistant message for models whose chat template knows no tool calls."""
    parts = [message.get("content") or ""]
    for call in message.get("tool_calls") or []:
        function = call["function"]
        try:
            arguments = json.loads(function["arguments"])
        except (json.JSONDecodeError, TypeError):
            arguments = function["arguments"]
        parts.append("<tool_call>" + json.dumps({"name": function["name"], "arguments": arguments}) + "</tool_call>")
    return "\n".join(p for p in parts if p)


def to_plain_chat(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as role + content only (tool calls rendered as text), keeping `weight` for the loss mask."""
    plain = []
    for message in messages:
        item: dict[str, Any] = {"role": message["role"], "content": render_tool_calls(message)}
        if "weight" in message:
            item["weight"] = message["weight"]
        plain.append(item)
    return plain


def example_tools(example: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The function tools an example offers the model (its `tools`), or None. Training, the local token counts and
    evaluation all show them to the model as inference does (providers/local/chat.py), so that a model is trained
    on the same prompt it is later asked."""
    tools = example.get("tools")
    if not isinstance(tools, list):
        return None
    return [tool for tool in tools if isinstance(tool, dict)] or None


def prompt_and_reference(example: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """Split an example for evaluation: everything before the last assistant turn, and that turn's text."""
    messages = example["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return to_plain_chat(messages[:last]), render_tool_calls(messages[last])
