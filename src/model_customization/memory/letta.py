"""Importer for Letta (formerly MemGPT) agent files: ``.af``, one JSON document holding one or more agents.

Two schemas are read:

* current (``AgentFileSchema``, Letta >= 0.8): ``{"agents": [...], "blocks": [...], "tools": [...], "groups",
  "files", "sources", ...}``. Each agent has ``id``, ``name``, ``agent_type``, ``system``, ``block_ids`` /
  ``tool_ids`` (references into the top-level ``blocks`` / ``tools``) and ``messages``;
* older (``serialize_schemas`` ``AgentSchema``, Letta 0.6/0.7): the document *is* the agent, with ``messages``,
  ``core_memory`` (the blocks), ``tools``, ``system``, ``in_context_message_indices`` and ``version``.

Some published files are double-encoded (the file is a JSON string whose text is the JSON document); that is
unwrapped. Each agent becomes one Conversation; ``session_id`` is ``<file stem>:<agent id or name>`` (the ids in an
exported file are file-local placeholders such as ``agent-0``, so the stem keeps them apart across files).

Messages (stored Letta messages: ``role``, ``content`` as a string or a list of parts, ``tool_calls``,
``tool_call_id``, ``tool_returns``), the whole history in file order (not only the in-context window):

* The agent's visible reply is its ``send_message`` tool call: it becomes an assistant message whose content is
  ``arguments.message``, not a tool call; the tool result answering it is dropped, and ``send_message`` is left
  out of ``tools``. Other tool calls stay tool calls, followed by their tool messages (a tool message carrying
  several ``tool_returns`` is split, one tool message per return).
* Inner thoughts are dropped: text on an assistant message that calls tools (older agents think out loud there;
  ``letta_v1_agent`` agents, which have no ``send_message``, are the exception: their text is the reply),
  reasoning parts (``reasoning``, ``omitted_reasoning``, ``redacted_reasoning``) and an ``inner_thoughts``
  argument. They are kept only when they are the assistant message's only content.
* User messages packed as JSON by older Letta (``{"type": "user_message", "message": ...}``) are unpacked;
  ``heartbeat``, ``system_alert`` and ``login`` messages are automated, not the user, and are skipped (counted in
  ``metadata["skipped_automated"]``). Stored system-role messages (the compiled prompt, with dates and block
  contents) are skipped in favour of the system message below.
* ``tool_returns`` with ``status: "error"`` (or an older packed result ``{"status": "Failed"}``) sets
  ``outcome.is_error``; an approval with ``approve: false`` sets ``outcome.user_rejected``.

System message: the agent's ``system`` prompt (or, when absent, its first stored system message), cut to
``MAX_SYSTEM_PROMPT_CHARS`` (4000), followed by each core memory block as ``<label>\\nvalue\\n</label>`` (the way
Letta itself renders blocks), each value cut to ``MAX_BLOCK_CHARS`` (2000). What was cut is noted in
``metadata["truncated"]`` (name -> original length). Tool definitions come from each tool's ``json_schema``.

Problems: a file that is not JSON or not an agent file is one ImportProblem with line 0; an agent that cannot be
read (not an object, ``messages`` not a list, a message of unknown shape) is an ImportProblem with line 0 naming
the agent index, and the other agents are still read. An agent with nothing but its system prompt is reported the
same way (there is nothing to learn from it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .formats import MemoryFormat
from .reading import RecordError, read_text
from .records import Conversation, ImportProblem, Message, Outcome, ToolCall

SOURCE_FORMAT = "letta"
MAX_SYSTEM_PROMPT_CHARS = 4000
MAX_BLOCK_CHARS = 2000
REPLY_TOOL = "send_message"

_AUTOMATED_USER_TYPES = {"heartbeat", "system_alert", "login"}
_REASONING_PARTS = {"reasoning", "omitted_reasoning", "redacted_reasoning"}
_VISIBLE_TEXT_AGENT_TYPES = {"letta_v1_agent"}
_AGENT_KEYS = (
    "messages", "system", "llm_config", "agent_type", "core_memory", "block_ids", "in_context_message_indices",
)


def iter_letta(path: Path) -> Iterator[Conversation | ImportProblem]:
    path = Path(path)
    file = str(path)
    try:
        doc = _decode(json.loads(read_text(path)))
    except UnicodeDecodeError as exc:
        yield ImportProblem(file, 0, f"invalid UTF-8 at byte {exc.start}")
        return
    except json.JSONDecodeError as exc:
        yield ImportProblem(file, 0, f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
        return
    if not isinstance(doc, dict):
        yield ImportProblem(file, 0, "not a Letta agent file: expected a JSON object")
        return
    if isinstance(doc.get("agents"), list):
        agents = doc["agents"]
        if not agents:
            yield ImportProblem(file, 0, "agent file without agents")
            return
        shared_blocks = [b for b in doc.get("blocks") or [] if isinstance(b, dict)]
        shared_tools = [t for t in doc.get("tools") or [] if isinstance(t, dict)]
        schema = "agent_file"
    elif _is_agent(doc):
        agents = [doc]
        shared_blocks, shared_tools = [], []
        schema = "legacy"
    else:
        yield ImportProblem(file, 0, "not a Letta agent file: no 'agents' list and no agent fields")
        return
    for index, agent in enumerate(agents):
        try:
            yield _conversation(agent, index, len(agents), path, schema, shared_blocks, shared_tools)
        except RecordError as exc:
            yield ImportProblem(file, 0, f"agent {index}{_label(agent)}: {exc}")


def _decode(value: Any) -> Any:
    """Unwrap a document that was JSON-encoded twice (the file holds a JSON string of the JSON)."""
    for _ in range(2):
        if not isinstance(value, str):
            break
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            break
    return value


def _is_agent(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("messages"), list) and (
        "core_memory" in obj or "in_context_message_indices" in obj or "llm_config" in obj or "agent_type" in obj
    )


def _label(agent: Any) -> str:
    if isinstance(agent, dict):
        for key in ("name", "id"):
            if isinstance(agent.get(key), str) and agent[key]:
                return f" ({agent[key]!r})"
    return ""


def _conversation(
    agent: Any,
    index: int,
    count: int,
    path: Path,
    schema: str,
    shared_blocks: list[dict],
    shared_tools: list[dict],
) -> Conversation:
    if not isinstance(agent, dict):
        raise RecordError("expected an object")
    raw_messages = agent.get("messages", [])
    if raw_messages is None:
        raw_messages = []
    if not isinstance(raw_messages, list):
        raise RecordError("'messages' must be a list")
    agent_type = agent.get("agent_type") if isinstance(agent.get("agent_type"), str) else None
    inner_thoughts_in_text = agent_type not in _VISIBLE_TEXT_AGENT_TYPES

    messages: list[Message] = []
    outcome = Outcome()
    reply_call_ids: set[str] = set()
    skipped = {"automated": 0, "system": 0, "reply_results": 0}
    stored_system: str | None = None
    started_at: str | None = None

    for i, m in enumerate(raw_messages, start=1):
        if not isinstance(m, dict):
            raise RecordError(f"message {i}: expected an object")
        if started_at is None and isinstance(m.get("created_at"), str):
            started_at = m["created_at"]
        if m.get("approve") is False or m.get("denial_reason"):
            outcome.user_rejected = True
        role = m.get("role")
        if role == "system":
            if stored_system is None:
                stored_system = _content(m.get("content"), i)[0]
            skipped["system"] += 1
        elif role == "user":
            text = _user_text(_content(m.get("content"), i)[0])
            if text is None:
                skipped["automated"] += 1
            elif text:
                messages.append(Message(role="user", content=text))
        elif role == "assistant":
            message = _assistant(m, i, inner_thoughts_in_text, reply_call_ids)
            if message is not None:
                messages.append(message)
        elif role == "tool":
            for tool_message, failed in _tool_messages(m, i):
                outcome.is_error = outcome.is_error or failed
                if tool_message.tool_call_id is not None and tool_message.tool_call_id in reply_call_ids:
                    skipped["reply_results"] += 1
                    continue
                messages.append(tool_message)
        elif role == "approval":
            continue  # the approval request/answer itself; its decision is read above
        else:
            raise RecordError(f"message {i}: unknown role {role!r}")

    if not any(msg.role in ("user", "assistant") for msg in messages):
        raise RecordError("no messages besides the system prompt; nothing to import")

    metadata: dict[str, Any] = {"schema": schema, "agent_index": index}
    for key, meta_key in (("name", "agent_name"), ("agent_type", "agent_type"), ("version", "letta_version")):
        if isinstance(agent.get(key), str) and agent[key]:
            metadata[meta_key] = agent[key]
    if schema == "agent_file" and count > 1:
        metadata["agents_in_file"] = count
    for key, n in skipped.items():
        if n:
            metadata[f"skipped_{key}"] = n

    system_text, truncated = _system_message(agent, stored_system, _blocks(agent, shared_blocks))
    if truncated:
        metadata["truncated"] = truncated
    if system_text:
        messages.insert(0, Message(role="system", content=system_text))

    ident = next((agent[k] for k in ("id", "name") if isinstance(agent.get(k), str) and agent[k]), f"agent-{index}")
    if started_at is None and isinstance(agent.get("created_at"), str):
        started_at = agent["created_at"]
    return Conversation(
        session_id=f"{path.stem}:{ident}",
        messages=messages,
        source_file=str(path),
        source_line=1,
        source_format=SOURCE_FORMAT,
        tools=_tools(agent, shared_tools),
        started_at=started_at,
        outcome=outcome,
        metadata=metadata,
    )


def _content(content: Any, i: int) -> tuple[str, str]:
    """(visible text, reasoning text) of a message's content."""
    if content is None:
        return "", ""
    if isinstance(content, str):
        return content, ""
    if not isinstance(content, list):
        raise RecordError(f"message {i}: 'content' must be a string, a list of parts or null")
    texts: list[str] = []
    thoughts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise RecordError(f"message {i}: content part must be an object")
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise RecordError(f"message {i}: text part without a string 'text'")
            texts.append(part["text"])
        elif kind in _REASONING_PARTS:
            if isinstance(part.get("reasoning"), str):
                thoughts.append(part["reasoning"])
        elif kind == "image":
            texts.append("[image]")
        elif kind in ("tool_call", "tool_return"):
            continue  # mirrored in tool_calls / tool_returns
        elif isinstance(kind, str):
            texts.append(f"[{kind}]")
        else:
            raise RecordError(f"message {i}: content part without a 'type'")
    return "\n".join(texts), "\n".join(thoughts)


def _user_text(text: str) -> str | None:
    """The user's words; None for automated messages (heartbeats, system alerts, logins)."""
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            packed = json.loads(stripped)
        except json.JSONDecodeError:
            return text
        if isinstance(packed, dict):
            kind = packed.get("type")
            if kind in _AUTOMATED_USER_TYPES:
                return None
            if kind == "user_message" and isinstance(packed.get("message"), str):
                return packed["message"]
    return text


def _assistant(m: dict[str, Any], i: int, inner_thoughts_in_text: bool, reply_call_ids: set[str]) -> Message | None:
    text, thoughts = _content(m.get("content"), i)
    replies: list[str] = []
    calls: list[ToolCall] = []
    raw_calls = m.get("tool_calls")
    if raw_calls is not None and not isinstance(raw_calls, list):
        raise RecordError(f"message {i}: 'tool_calls' must be a list or null")
    for k, tc in enumerate(raw_calls or [], start=1):
        if not isinstance(tc, dict):
            raise RecordError(f"message {i}: tool call {k} must be an object")
        fn = tc.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise RecordError(f"message {i}: tool call {k} has no function name")
        call_id = tc["id"] if isinstance(tc.get("id"), str) and tc["id"] else f"call_{i}_{k}"
        args = _arguments(fn.get("arguments"))
        if fn["name"] == REPLY_TOOL and isinstance(args, dict) and isinstance(args.get("message"), str):
            replies.append(args["message"])
            reply_call_ids.add(call_id)
            continue
        if isinstance(args, dict):
            args.pop("inner_thoughts", None)
            arguments = json.dumps(args, ensure_ascii=False)
        elif isinstance(fn.get("arguments"), str):
            arguments = fn["arguments"]
        else:
            arguments = "" if fn.get("arguments") is None else json.dumps(fn["arguments"], ensure_ascii=False)
        calls.append(ToolCall(id=call_id, name=fn["name"], arguments=arguments))

    if replies:
        content = "\n\n".join(replies)
    elif calls:
        content = "" if inner_thoughts_in_text else text
    else:
        content = text if text.strip() else thoughts
    if not content.strip() and not calls:
        return None
    return Message(role="assistant", content=content, tool_calls=calls)


def _arguments(raw: Any) -> Any:
    if isinstance(raw, dict):
        return dict(raw)
    if isinstance(raw, str):
        try:
            return json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            return None
    return None


def _tool_messages(m: dict[str, Any], i: int) -> list[tuple[Message, bool]]:
    text, _ = _content(m.get("content"), i)
    returns = m.get("tool_returns") or []
    if not isinstance(returns, list) or not all(isinstance(r, dict) for r in returns):
        raise RecordError(f"message {i}: 'tool_returns' must be a list of objects")
    call_id = m.get("tool_call_id") if isinstance(m.get("tool_call_id"), str) else None
    packed_failed = _packed_status(text) == "Failed"
    if len(returns) > 1 and all(isinstance(r.get("tool_call_id"), str) for r in returns):
        return [
            (Message(role="tool", content=_return_text(r), tool_call_id=r["tool_call_id"]), r.get("status") == "error")
            for r in returns
        ]
    failed = packed_failed or any(r.get("status") == "error" for r in returns)
    if not text and returns:
        text = _return_text(returns[0])
    if call_id is None and returns and isinstance(returns[0].get("tool_call_id"), str):
        call_id = returns[0]["tool_call_id"]
    return [(Message(role="tool", content=text, tool_call_id=call_id), failed)]


def _return_text(r: dict[str, Any]) -> str:
    value = r.get("func_response")
    if value is None:
        value = r.get("tool_return")
    if value is None:
        out = [*(r.get("stdout") or []), *(r.get("stderr") or [])]
        return "\n".join(str(x) for x in out)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _packed_status(text: str) -> str | None:
    stripped = text.strip()
    if not (stripped.startswith("{") and '"status"' in stripped):
        return None
    try:
        packed = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    return packed.get("status") if isinstance(packed, dict) else None


def _blocks(agent: dict[str, Any], shared_blocks: list[dict]) -> list[dict]:
    blocks = [b for b in (agent.get("core_memory") or []) if isinstance(b, dict)]
    blocks += [b for b in (agent.get("memory_blocks") or []) if isinstance(b, dict)]
    ids = agent.get("block_ids")
    if isinstance(ids, list):
        by_id = {b.get("id"): b for b in shared_blocks}
        blocks += [by_id[i] for i in ids if i in by_id]
    return blocks


def _system_message(agent: dict[str, Any], stored: str | None, blocks: list[dict]) -> tuple[str, dict[str, int]]:
    truncated: dict[str, int] = {}
    prompt = agent.get("system") if isinstance(agent.get("system"), str) and agent["system"].strip() else stored or ""
    prompt = prompt.strip()
    if len(prompt) > MAX_SYSTEM_PROMPT_CHARS:
        truncated["system"] = len(prompt)
        prompt = prompt[:MAX_SYSTEM_PROMPT_CHARS]
    parts = [prompt] if prompt else []
    for block in blocks:
        label = block.get("label") if isinstance(block.get("label"), str) and block["label"] else "memory"
        value = block.get("value") if isinstance(block.get("value"), str) else ""
        value = value.strip()
        if not value:
            continue
        if len(value) > MAX_BLOCK_CHARS:
            truncated[f"block:{label}"] = len(value)
            value = value[:MAX_BLOCK_CHARS]
        parts.append(f"<{label}>\n{value}\n</{label}>")
    return "\n\n".join(parts), truncated


def _tools(agent: dict[str, Any], shared_tools: list[dict]) -> list[dict] | None:
    tools = [t for t in (agent.get("tools") or []) if isinstance(t, dict)]
    ids = agent.get("tool_ids")
    if isinstance(ids, list):
        wanted = set(ids)
        tools += [t for t in shared_tools if t.get("id") in wanted]
    elif not tools:
        tools = list(shared_tools)
    out: list[dict] = []
    seen: set[str] = set()
    for tool in tools:
        schema = tool.get("json_schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("name"), str):
            continue
        name = schema["name"]
        if name == REPLY_TOOL or name in seen:
            continue
        seen.add(name)
        function = {"name": name}
        if isinstance(schema.get("description"), str):
            function["description"] = schema["description"]
        function["parameters"] = schema.get("parameters") or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": function})
    return out or None


def sniff_document(doc: Any) -> bool:
    doc = _decode(doc)
    if not isinstance(doc, dict):
        return False
    agents = doc.get("agents")
    if isinstance(agents, list):
        return bool(agents) and all(
            isinstance(a, dict) and any(k in a for k in _AGENT_KEYS) for a in agents[:5]
        ) and any(isinstance(a.get("messages"), list) or "llm_config" in a for a in agents[:5])
    return _is_agent(doc) and ("core_memory" in doc or "in_context_message_indices" in doc)


FORMAT = MemoryFormat(
    SOURCE_FORMAT,
    iter_letta,
    sniff_document=sniff_document,
    title="Letta agent files (.af)",
    agent="Letta",
    where="*.af files exported from Letta (ADE or API); ~/.letta",
    kept="current and older schemas, double-encoded files; the visible reply (send_message), tool calls with results, system prompt",
    outcome_signals="tool returns with status error",
    locations=("~/.letta",),
)
