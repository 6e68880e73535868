"""Function tools (OpenAI's shape) written out for a model that takes no `tools` of its own: a chat template that
ignores them (the embedded SmolLM2's) or a chat API without tool support.

The text names each tool with its JSON definition and asks for calls in the same <tool_call>{json}</tool_call> form
that our rendering of stored tool calls uses (datasets/examples.render_tool_calls) and that the scorers read back
(evaluation/metrics.extract_tool_calls), so a model is shown, trained on and scored by one convention.
"""

from __future__ import annotations

import json
from typing import Any

TOOLS_PREAMBLE = (
    "You can call the tools listed below. To call one, write "
    '<tool_call>{"name": "<tool name>", "arguments": {<arguments as JSON>}}</tool_call> '
    "(one such block per call) and end your turn; each call's result comes back in a tool message. "
    "Answer in plain text when no tool is needed."
)


def describe_tools(tools: list[dict[str, Any]]) -> str:
    """The tools as text: the preamble, then each tool's definition as one line of JSON inside <tools>...</tools>."""
    lines = [json.dumps(tool, ensure_ascii=False, sort_keys=True) for tool in tools]
    return TOOLS_PREAMBLE + "\n<tools>\n" + "\n".join(lines) + "\n</tools>"


def with_tools_described(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The conversation with its tools described in the system message: appended to the first message when that is
    a system message, else in a system message of its own put first. Without tools, the messages unchanged."""
    if not tools:
        return messages
    description = describe_tools(tools)
    if messages and messages[0].get("role") == "system":
        first = messages[0]
        content = first.get("content") or ""
        return [{**first, "content": f"{content}\n\n{description}" if content else description}, *messages[1:]]
    return [{"role": "system", "content": description}, *messages]
