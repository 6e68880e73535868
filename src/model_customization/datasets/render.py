"""Rendering stored examples to each provider's training format: pure functions, one per target.

Stored examples are OpenAI chat examples (`{"messages", "tools"?}`) or preference examples (`{"input",
"preferred_output", "non_preferred_output"}`). The OpenAI renderings are the stored shape tidied; Bedrock's Claude
format needs a separate `system` and strictly alternating user/assistant turns, so tool traffic is folded into
text there.
"""

from __future__ import annotations

from typing import Any

from model_customization.datasets.examples import render_tool_calls


def is_preference(example: dict[str, Any]) -> bool:
    return "preferred_output" in example


def render_openai_sft(example: dict[str, Any]) -> dict[str, Any]:
    messages = []
    for message in example["messages"]:
        out = {k: v for k, v in message.items() if v is not None}
        if out.get("tool_calls") and not out.get("content"):
            out.pop("content", None)  # a pure tool-call turn carries no content in OpenAI's format
        if out.get("role") != "assistant":
            out.pop("weight", None)  # only assistant turns may carry a weight
        messages.append(out)
    rendered: dict[str, Any] = {"messages": messages}
    if example.get("tools"):
        rendered["tools"] = example["tools"]
    return rendered


def render_openai_dpo(example: dict[str, Any]) -> dict[str, Any]:
    rendered_input = render_openai_sft({"messages": example["input"]["messages"], "tools": example["input"].get("tools")})
    return {
        "input": rendered_input,
        "preferred_output": [render_openai_sft({"messages": example["preferred_output"]})["messages"][0]],
        "non_preferred_output": [render_openai_sft({"messages": example["non_preferred_output"]})["messages"][0]],
    }


def render_openai(example: dict[str, Any]) -> dict[str, Any]:
    return render_openai_dpo(example) if is_preference(example) else render_openai_sft(example)


def render_bedrock_claude(example: dict[str, Any]) -> dict[str, Any]:
    """`{"system", "messages"}` with user/assistant strictly alternating, starting with user, ending with assistant."""
    messages = example["input"]["messages"] + example["preferred_output"] if is_preference(example) else example["messages"]
    system_parts: list[str] = []
    turns: list[dict[str, str]] = []
    for message in messages:
        role = message["role"]
        if role == "system":
            system_parts.append(message.get("content") or "")
            continue
        if role == "tool":
            role, text = "user", f"<tool_result>{message.get('content') or ''}</tool_result>"
        else:
            text = render_tool_calls(message) if role == "assistant" else (message.get("content") or "")
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n\n" + text  # merge same-role neighbours to keep strict alternation
        else:
            turns.append({"role": role, "content": text})
    while turns and turns[0]["role"] != "user":
        turns.pop(0)
    while turns and turns[-1]["role"] != "assistant":
        turns.pop()
    rendered: dict[str, Any] = {"messages": turns}
    if system_parts:
        rendered["system"] = "\n\n".join(p for p in system_parts if p)
    return rendered
