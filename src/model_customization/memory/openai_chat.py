"""Importer for OpenAI fine-tuning chat JSONL: one training example (``{"messages": [...], "tools"?: [...]}``) a line.

Each line becomes one Conversation. What is accepted, beyond the plain system/user/assistant/tool shape:

* content as a string, ``null`` (assistant turns that only call tools) or a list of parts; text parts are joined,
  non-text parts (images, audio, files) become a placeholder such as ``[image]`` so the turn keeps its place;
* ``tool_calls: null`` / ``function_call: null`` as written by serialising API response objects;
* the legacy ``function_call`` on assistant turns and ``role: "function"`` results; each legacy call gets a
  synthetic id and the function result is pointed at it, so downstream code only sees the modern shape;
* ``developer`` (the newer name of the system role) is read as ``system``;
* per-message ``weight`` (0 or 1);
* top-level ``tools`` (and the legacy ``functions`` list, wrapped as tools).

Preference (DPO) lines (``input`` / ``preferred_output`` / ``non_preferred_output``) become PreferencePair records.
Every unreadable line becomes an ImportProblem with its line number and the rest of the file continues.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .reading import RecordError, json_type, read_json_lines
from .records import Conversation, ImportProblem, Message, PreferencePair, ToolCall

SOURCE_FORMAT = "openai_chat"

_ROLE_ALIASES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
_PREFERENCE_KEYS = ("input", "preferred_output", "non_preferred_output")


def iter_openai_chat(path: Path) -> Iterator[Conversation | PreferencePair | ImportProblem]:
    path = Path(path)
    return read_json_lines(path, lambda obj, line_no: openai_record(obj, path, line_no))


def openai_record(obj: dict[str, Any], path: Path, line_no: int) -> Conversation | PreferencePair:
    """One line of OpenAI fine-tuning JSONL as a Conversation (or a PreferencePair); RecordError says what is wrong."""
    if "messages" not in obj:
        if all(k in obj for k in _PREFERENCE_KEYS):
            return _preference(obj, path, line_no)
        raise RecordError("missing 'messages'")
    return Conversation(
        session_id=f"{path.stem}:{line_no}",
        messages=_messages(obj["messages"], "messages"),
        source_file=str(path),
        source_line=line_no,
        source_format=SOURCE_FORMAT,
        tools=_tools(obj),
    )


def _preference(obj: dict[str, Any], path: Path, line_no: int) -> PreferencePair:
    """An OpenAI DPO line: the input conversation and two single-message answers."""
    input_ = obj["input"]
    if not isinstance(input_, dict):
        raise RecordError(f"'input' must be an object with 'messages', got {json_type(input_)}")
    prompt = _messages(input_.get("messages"), "input.messages")
    answers = []
    for key in ("preferred_output", "non_preferred_output"):
        output = _messages(obj[key], key)
        if len(output) != 1 or output[0].role != "assistant":
            raise RecordError(f"'{key}' must hold exactly one assistant message")
        answers.append(output[0])
    return PreferencePair(
        session_id=f"{path.stem}:{line_no}",
        prompt=prompt,
        preferred=answers[0],
        non_preferred=answers[1],
        source_file=str(path),
        source_line=line_no,
        source_format=SOURCE_FORMAT,
        tools=_tools(input_),
    )


def _messages(raw_messages: Any, where: str) -> list[Message]:
    if not isinstance(raw_messages, list):
        raise RecordError(f"'{where}' must be a list, got {json_type(raw_messages)}")
    if not raw_messages:
        raise RecordError(f"'{where}' is empty")

    messages: list[Message] = []
    # Legacy function calls carry no id; remember the synthetic ids we hand out so that the following
    # role:"function" results can be linked to them (by name, first unanswered first).
    pending_legacy: list[ToolCall] = []
    legacy_count = 0
    for i, m in enumerate(raw_messages, start=1):
        if not isinstance(m, dict):
            raise RecordError(f"message {i}: expected an object, got {json_type(m)}")
        role = m.get("role")
        if role == "function":
            name = m.get("name")
            call = next((c for c in pending_legacy if c.name == name), pending_legacy[0] if pending_legacy else None)
            if call is not None:
                pending_legacy.remove(call)
            messages.append(
                Message(
                    role="tool",
                    content=_content(m.get("content"), i),
                    tool_call_id=call.id if call else None,
                    weight=_weight(m, i),
                )
            )
            continue
        if role not in _ROLE_ALIASES:
            raise RecordError(f"message {i}: unknown role {role!r} (expected system, user, assistant, tool or function)")
        role = _ROLE_ALIASES[role]
        tool_calls: list[ToolCall] = []
        if role == "assistant":
            tool_calls = _tool_calls(m.get("tool_calls"), i)
            fc = m.get("function_call")
            if fc is not None:
                legacy_count += 1
                call = _function(fc, i, f"call_legacy_{legacy_count}", "function_call")
                tool_calls.append(call)
                pending_legacy.append(call)
        tool_call_id = m.get("tool_call_id") if role == "tool" else None
        if tool_call_id is not None and not isinstance(tool_call_id, str):
            raise RecordError(f"message {i}: 'tool_call_id' must be a string")
        messages.append(
            Message(
                role=role,
                content=_content(m.get("content"), i),
                tool_calls=tool_calls,
                tool_call_id=tool_call_id,
                weight=_weight(m, i),
            )
        )
    return messages


def _content(content: Any, i: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                kind = part.get("type")
                if kind in ("text", "input_text", "output_text"):
                    if not isinstance(part.get("text"), str):
                        raise RecordError(f"message {i}: text part without a string 'text'")
                    parts.append(part["text"])
                elif kind in ("image_url", "input_image", "image"):
                    parts.append("[image]")
                elif isinstance(kind, str):
                    parts.append(f"[{kind}]")
                else:
                    raise RecordError(f"message {i}: content part without a 'type'")
            else:
                raise RecordError(f"message {i}: content part must be an object, got {json_type(part)}")
        return "\n".join(parts)
    raise RecordError(f"message {i}: 'content' must be a string, a list of parts or null, got {json_type(content)}")


def _weight(m: dict[str, Any], i: int) -> int | None:
    if "weight" not in m or m["weight"] is None:
        return None
    w = m["weight"]
    # bool is an int subclass; True/False are accepted as 1/0 on purpose.
    if isinstance(w, (int, float)) and w in (0, 1):
        return int(w)
    raise RecordError(f"message {i}: 'weight' must be 0 or 1, got {w!r}")


def _tool_calls(raw: Any, i: int) -> list[ToolCall]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RecordError(f"message {i}: 'tool_calls' must be a list or null, got {json_type(raw)}")
    calls = []
    for k, tc in enumerate(raw, start=1):
        if not isinstance(tc, dict):
            raise RecordError(f"message {i}: tool call {k} must be an object")
        # Some hand-made datasets omit ids; a stable synthetic id keeps the call usable.
        call_id = tc.get("id") if isinstance(tc.get("id"), str) and tc.get("id") else f"call_{i}_{k}"
        calls.append(_function(tc.get("function"), i, call_id, f"tool call {k}"))
    return calls


def _function(fn: Any, i: int, call_id: str, what: str) -> ToolCall:
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise RecordError(f"message {i}: {what} has no function name")
    args = fn.get("arguments", "")
    if args is None:
        args = ""
    elif not isinstance(args, str):
        # The format says a JSON string; an inline object is unambiguous enough to keep.
        args = json.dumps(args, ensure_ascii=False)
    return ToolCall(id=call_id, name=fn["name"], arguments=args)


def _tools(obj: dict[str, Any]) -> list[dict] | None:
    tools = obj.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise RecordError("'tools' must be a list of objects")
        return tools
    functions = obj.get("functions")
    if functions is not None:
        if not isinstance(functions, list) or not all(isinstance(f, dict) for f in functions):
            raise RecordError("'functions' must be a list of objects")
        return [{"type": "function", "function": f} for f in functions]
    return None
