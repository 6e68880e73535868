"""Importer for ShareGPT-style datasets (FastChat, LLaMA-Factory), as a JSON array or as JSON Lines.

(A ``.json`` file holding a single record object is read as one record.)

Each record becomes one Conversation:

* ``{"id"?, "conversations": [{"from", "value"}, ...], "system"?, "tools"?}``. ``from``: ``human``/``user`` ->
  user, ``gpt``/``assistant`` -> assistant, ``system`` -> system, ``function_call`` -> an assistant message with
  one ToolCall (``value`` is JSON ``{"name", "arguments"}``; arguments given as an object are serialised to a JSON
  string), ``observation``/``tool`` -> a tool message answering the oldest unanswered call. Consecutive
  ``function_call`` turns (parallel calls) become one assistant message. Call ids are ``call_<turn number>``.
  A top-level ``system`` string becomes the first message.
* ``tools``: a list of function definitions, or (LLaMA-Factory / glaive) a JSON *string* holding that list; each
  bare definition ``{"name", "description", "parameters"}`` is wrapped as ``{"type": "function", "function": ...}``
  and definitions already in that shape are kept. An empty list means no tools (``None``).
* The KTO variant ``{"messages": [{"role", "content"}], "label": true|false}`` (LLaMA-Factory ``kto_en_demo``):
  ``label`` sets ``outcome.rating`` to +1 / -1.

``session_id`` is the record's ``id`` when it has one, else ``<file stem>:<N>`` with N the record number (1-based:
the index in the array + 1, or the line number in JSON Lines); ``source_line`` is that same N. A record that cannot
be read (unknown ``from``, a ``function_call`` whose value is not ``{"name", "arguments"}`` JSON, an
``observation`` without a call before it, unreadable ``tools``, ...) becomes an ImportProblem saying
"conversation #N: ..." and the rest of the file continues.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .formats import MemoryFormat
from .reading import RecordError, json_type, read_json_lines, read_text
from .records import Conversation, ImportProblem, Message, Outcome, ToolCall

SOURCE_FORMAT = "sharegpt"

_FROM = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "function_call": "function_call",
    "observation": "tool",
    "tool": "tool",
}
_KTO_ROLES = {"system", "user", "assistant"}
_PEEK = 20


def _is_turn(obj: Any) -> bool:
    return isinstance(obj, dict) and "from" in obj and "value" in obj


def _is_record(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    turns = obj.get("conversations")
    if isinstance(turns, list) and turns and _is_turn(turns[0]):
        return True
    messages = obj.get("messages")
    return (
        isinstance(obj.get("label"), bool)
        and isinstance(messages, list)
        and bool(messages)
        and isinstance(messages[0], dict)
        and "role" in messages[0]
    )


def sniff_line(obj: Any) -> bool:
    return _is_record(obj)


def sniff_document(doc: Any) -> bool:
    return _is_record(doc) or (isinstance(doc, list) and any(_is_record(x) for x in doc[:_PEEK]))


# --------------------------------------------------------------------------------------------------- reading


def iter_sharegpt(path: Path) -> Iterator[Conversation | ImportProblem]:
    path = Path(path)
    file = str(path)
    doc = _whole_document(path)
    if doc is None:
        yield from _iter_lines(path)
        return
    items = doc if isinstance(doc, list) else [doc]
    for no, item in enumerate(items, start=1):
        try:
            yield _conversation(item, path, no)
        except RecordError as exc:
            yield ImportProblem(file, no, f"conversation #{no}: {exc}")


def _whole_document(path: Path) -> Any:
    """The parsed file when it is one JSON document (array or object), None when it is to be read as JSON Lines."""
    if path.suffix.lower() == ".jsonl":
        return None
    try:
        return json.loads(read_text(path))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None  # JSON Lines under another name (or broken): line by line, each bad line reported


def _iter_lines(path: Path) -> Iterator[Conversation | ImportProblem]:
    return read_json_lines(path, lambda obj, line_no: _conversation(obj, path, line_no), prefix=lambda line_no: f"conversation #{line_no}: ")


def _conversation(obj: Any, path: Path, no: int) -> Conversation:
    if not isinstance(obj, dict):
        raise RecordError(f"expected an object, got {json_type(obj)}")
    outcome = Outcome()
    if "conversations" in obj:
        messages = _sharegpt_messages(obj)
    elif "messages" in obj and "label" in obj:
        messages = _kto_messages(obj["messages"])
        if not isinstance(obj["label"], bool):
            raise RecordError(f"'label' must be true or false, got {obj['label']!r}")
        outcome.rating = 1 if obj["label"] else -1
    else:
        raise RecordError("missing 'conversations' (or 'messages' with 'label')")
    record_id = obj.get("id")
    session_id = (
        str(record_id)
        if isinstance(record_id, (str, int)) and not isinstance(record_id, bool) and record_id != ""
        else f"{path.stem}:{no}"
    )
    return Conversation(
        session_id=session_id,
        messages=messages,
        source_file=str(path),
        source_line=no,
        source_format=SOURCE_FORMAT,
        tools=_tools(obj.get("tools")),
        outcome=outcome,
    )


def _sharegpt_messages(obj: dict[str, Any]) -> list[Message]:
    turns = obj["conversations"]
    if not isinstance(turns, list):
        raise RecordError(f"'conversations' must be a list, got {json_type(turns)}")
    if not turns:
        raise RecordError("'conversations' is empty")
    messages: list[Message] = []
    system = obj.get("system")
    if system is not None and not isinstance(system, str):
        raise RecordError(f"'system' must be a string, got {json_type(system)}")
    if system:
        messages.append(Message(role="system", content=system))
    pending: list[ToolCall] = []
    for k, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            raise RecordError(f"turn {k}: expected an object, got {json_type(turn)}")
        source = turn.get("from")
        role = _FROM.get(source) if isinstance(source, str) else None
        if role is None:
            raise RecordError(
                f"turn {k}: unknown 'from' value {source!r} "
                "(expected human, user, gpt, assistant, system, function_call, observation or tool)"
            )
        value = turn.get("value")
        if not isinstance(value, str):
            raise RecordError(f"turn {k}: 'value' must be a string, got {json_type(value)}")
        if role == "function_call":
            call = _function_call(value, k)
            pending.append(call)
            if messages and messages[-1].role == "assistant" and messages[-1].tool_calls:
                messages[-1].tool_calls.append(call)  # parallel calls: one assistant turn
            else:
                messages.append(Message(role="assistant", content="", tool_calls=[call]))
        elif role == "tool":
            if not pending:
                raise RecordError(f"turn {k}: '{source}' without a function_call before it")
            messages.append(Message(role="tool", content=value, tool_call_id=pending.pop(0).id))
        else:
            messages.append(Message(role=role, content=value))
    return messages


def _function_call(value: str, k: int) -> ToolCall:
    try:
        fn = json.loads(value)
    except json.JSONDecodeError as exc:
        raise RecordError(f"turn {k}: function_call value is not JSON ({exc.msg})") from None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise RecordError(f"turn {k}: function_call value has no 'name'")
    args = fn.get("arguments", {})
    if isinstance(args, str):
        arguments = args
    else:
        arguments = json.dumps({} if args is None else args, ensure_ascii=False)
    return ToolCall(id=f"call_{k}", name=fn["name"], arguments=arguments)


def _kto_messages(raw: Any) -> list[Message]:
    if not isinstance(raw, list):
        raise RecordError(f"'messages' must be a list, got {json_type(raw)}")
    if not raw:
        raise RecordError("'messages' is empty")
    messages = []
    for k, m in enumerate(raw, start=1):
        if not isinstance(m, dict):
            raise RecordError(f"message {k}: expected an object, got {json_type(m)}")
        role = m.get("role")
        if role not in _KTO_ROLES:
            raise RecordError(f"message {k}: unknown role {role!r} (expected system, user or assistant)")
        content = m.get("content")
        if not isinstance(content, str):
            raise RecordError(f"message {k}: 'content' must be a string, got {json_type(content)}")
        messages.append(Message(role=role, content=content))
    return messages


def _tools(raw: Any) -> list[dict] | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RecordError(f"'tools' is a string but not JSON ({exc.msg})") from None
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise RecordError("'tools' must be a list of function definitions")
    tools = []
    for i, t in enumerate(raw, start=1):
        if t.get("type") == "function" and isinstance(t.get("function"), dict):
            tools.append(t)
        elif isinstance(t.get("name"), str) and t["name"]:
            tools.append({"type": "function", "function": t})
        else:
            raise RecordError(f"tool {i}: a function definition needs a 'name'")
    return tools or None


FORMAT = MemoryFormat(
    SOURCE_FORMAT,
    iter_sharegpt,
    sniff_line=sniff_line,
    sniff_document=sniff_document,
    title="ShareGPT conversations",
    where="JSON or JSONL datasets with conversations: [{from, value}] (FastChat, LLaMA-Factory)",
    kept="system, human and gpt turns, function_call / observation turns, tools given as a JSON string",
    outcome_signals="a KTO label becomes a rating",
)
