"""Importer for Gemini CLI chats as its ChatRecordingService and ``/chat save`` write them under
``~/.gemini/tmp/<project hash or slug>/``:

* sessions, ``chats/session-<date>-<id8>.json`` (2025 to April 2026): one JSON document ``{sessionId, projectHash,
  startTime, lastUpdated, messages: [...], summary?, directories?, kind?}``, normally pretty-printed but also met on
  a single line;
* sessions, ``chats/session-<date>-<id8>.jsonl`` (from April 2026; subagents in ``chats/<parent id>/<id>.jsonl``):
  an append-only log whose first line is the metadata (``sessionId``, ``projectHash``, ``startTime``, ``kind``...),
  then message records (a record whose ``id`` was seen before replaces it: tool results and token counts are
  filled in that way), ``{"$set": {...}}`` metadata updates (a ``$set`` of ``messages`` replaces the whole
  history) and ``{"$rewindTo": id}`` (the history from that message on is dropped). It is replayed the way Gemini
  CLI's own loader does; a legacy document on one line reads the same way;
* checkpoints, ``checkpoint-<tag>.json`` (``/chat save <tag>``): the API history, either a bare list of Content
  ``{role: "user"|"model", parts}`` (older) or ``{history: [...], authType}``.

Messages (``type``): ``user`` and ``gemini`` are the conversation; ``info``, ``warning`` and ``error`` are UI notes
and are left out (errors are counted in ``metadata["ui_errors"]``). ``content`` is a string or a Part list; text
parts are kept, inline data and files become ``[file]``. A gemini message's ``toolCalls`` become tool calls
(``args`` as JSON), each followed by a ``tool`` message with its ``result`` (the ``functionResponse.response``'s
``output`` or ``error``, else the response as JSON). ``functionCall`` parts inside the content (newer sessions)
add the calls not already listed. A user message made only of ``functionResponse`` parts (newer versions record
tool responses that way too) is not a user turn: it answers calls not answered yet, else it is dropped. User text
Gemini CLI itself sends (``<session_context>`` / "This is the Gemini CLI. We are setting up the context..." and
``<hook_context>``) is system context: it forms the system message when it comes before the first real prompt
(and the model's "Got it. Thanks for the context!" reply to it is dropped), later it is dropped. Prompts that
start with ``/`` or ``?`` are CLI commands, which Gemini CLI itself leaves out of a resumed chat; so do we.

Thoughts (``thoughts: [{subject, description}]`` and ``thought: true`` parts) are kept only with
``include_thinking``, as ``<thinking>...</thinking>`` before the answer (a record holding only thoughts lends them
to the next answer).

Outcome: a tool call with status ``error`` sets ``is_error``; status ``cancelled`` sets ``user_rejected`` when the
user declined it (Gemini writes "User denied execution" / "did not allow") and ``interrupted`` otherwise; the
"Request cancelled." / "User cancelled the request." notes set ``interrupted``.

Metadata: ``model`` (the first gemini message's; ``models`` when several), ``project_hash``, ``cwd`` (read from the
``.project_root`` file newer versions keep beside ``chats/``), ``directories``, ``summary``, ``kind``. A subagent
session names its parent in ``parent_session_id``. ``session_id`` is ``sessionId`` (checkpoints:
``checkpoint:<tag>``); ``started_at`` is ``startTime``.

``logs.json`` (the user's prompts only, for the up-arrow history) and the tool-call restore points in
``checkpoints/`` (the UI history at a tool call, used by ``/restore``) are not conversations: SIDE_FORMAT
recognises them so a folder walk does not report them, and they yield nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from model_customization.paths import FenceError

from .formats import MemoryFormat
from .reading import RecordError, json_type, read_json_lines, read_text
from .records import Conversation, ImportProblem, Message, Outcome, ToolCall

SOURCE_FORMAT = "gemini_cli"
_MESSAGE_TYPES = {"user", "gemini", "info", "error", "warning"}
_CONTEXT_PREFIXES = ("<session_context>", "<hook_context>", "This is the Gemini CLI. We are setting up the context")
_CONTEXT_ACK = "Got it. Thanks for the context!"
_CANCEL_NOTES = ("Request cancelled.", "User cancelled the request.")
_LEADING_ESCAPED_BREAKS = re.compile(r"^(?:\\n|\s)+")
_DECLINED = ("User denied execution", "did not allow", "rejected")


# --- recognising -------------------------------------------------------------------------------------------------


def _is_message_record(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("id"), str)
        and obj.get("type") in _MESSAGE_TYPES
        and "timestamp" in obj
        and ("content" in obj or "toolCalls" in obj)
    )


def _session_fit(obj: Any) -> float:
    """A session document (or its first JSONL line): sessionId + projectHash are Gemini CLI's own keys."""
    if not isinstance(obj, dict):
        return 0.0
    if isinstance(obj.get("sessionId"), str) and isinstance(obj.get("projectHash"), str):
        return 1.0
    messages = obj.get("messages")
    if isinstance(obj.get("sessionId"), str) and isinstance(messages, list) and any(
        isinstance(m, dict) and m.get("type") == "gemini" for m in messages[:50]
    ):
        return 0.9
    return 0.0


def _is_content(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("role") in ("user", "model") and isinstance(obj.get("parts"), list)


def sniff_document(doc: Any) -> float:
    fit = _session_fit(doc)
    if fit:
        return fit
    history = doc.get("history") if isinstance(doc, dict) and "toolCall" not in doc else doc
    if isinstance(history, list) and history and all(_is_content(c) for c in history[:50]):
        # A checkpoint: Gemini API Content (role user/model + parts). Only "model" is specific to Gemini.
        return 0.9 if any(c["role"] == "model" for c in history[:50]) else 0.6
    return 0.0


def sniff_line(obj: Any) -> float:
    fit = _session_fit(obj)
    if fit:
        return fit
    if _is_message_record(obj):
        return 0.9 if obj["type"] in ("gemini", "info", "warning") or "toolCalls" in obj else 0.7
    if isinstance(obj, dict) and len(obj) == 1 and (isinstance(obj.get("$rewindTo"), str) or isinstance(obj.get("$set"), dict)):
        return 0.9
    return 0.0


def sniff_side_document(doc: Any) -> float:
    """logs.json (a list of {sessionId, messageId, type, message, timestamp}) or a tool-call restore point."""
    if isinstance(doc, list) and doc and all(
        isinstance(e, dict) and "sessionId" in e and "messageId" in e and "message" in e for e in doc[:50]
    ):
        return 0.95
    if isinstance(doc, dict) and isinstance(doc.get("toolCall"), dict) and ("clientHistory" in doc or "history" in doc):
        return 0.95
    return 0.0


# --- reading -----------------------------------------------------------------------------------------------------


def iter_gemini_cli(path: Path, include_thinking: bool = False) -> Iterator[Conversation | ImportProblem]:
    path = Path(path)
    file = str(path)
    text: str | None = None
    if path.suffix.lower() == ".json":
        try:
            text = read_text(path)
            doc = json.loads(text)
        except UnicodeDecodeError as exc:
            yield ImportProblem(file, 0, f"invalid UTF-8 at byte {exc.start}")
            return
        except json.JSONDecodeError as exc:
            if "\n" not in text.strip():
                yield ImportProblem(file, exc.lineno, f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
                return
            doc = None  # maybe the JSONL log under a .json name: replayed line by line below
        if doc is not None:
            yield from _iter_document(path, doc, include_thinking)
            return
    replay = _Replay()
    yield from read_json_lines(path, replay.take)  # only problems: take returns nothing
    if replay.metadata is None and not replay.messages:
        yield ImportProblem(file, 0, "not a Gemini CLI session: no line with sessionId and projectHash")
        return
    meta = replay.metadata or {}
    problems: list[ImportProblem] = []
    conv = _session(path, meta, list(replay.messages.values()), include_thinking, replay.first_line, problems)
    yield from problems
    if conv is not None:
        yield conv


def _iter_document(path: Path, doc: Any, include_thinking: bool) -> Iterator[Conversation | ImportProblem]:
    file = str(path)
    problems: list[ImportProblem] = []
    if _session_fit(doc):
        messages = doc.get("messages")
        if not isinstance(messages, list):
            yield ImportProblem(file, 0, f"'messages' must be a list, got {json_type(messages)}")
            return
        conv = _session(path, doc, [(m, 0) for m in messages], include_thinking, 1, problems)
    else:
        history = doc.get("history") if isinstance(doc, dict) else doc
        if not isinstance(history, list):
            yield ImportProblem(file, 0, "not a Gemini CLI session or checkpoint: no sessionId/projectHash, no history list")
            return
        conv = _checkpoint(path, history, include_thinking, problems)
    yield from problems
    if conv is not None:
        yield conv


class _Replay:
    """Gemini CLI's JSONL session log replayed into its final state (see the module docstring)."""

    def __init__(self) -> None:
        self.metadata: dict[str, Any] | None = None
        self.messages: dict[str, tuple[Any, int]] = {}  # id -> (record, line it was last written on)
        self.first_line: int = 1

    def take(self, obj: dict[str, Any], line_no: int) -> None:
        if isinstance(obj.get("$rewindTo"), str):
            ids = list(self.messages)
            if obj["$rewindTo"] in self.messages:
                for mid in ids[ids.index(obj["$rewindTo"]):]:
                    del self.messages[mid]
            else:
                self.messages.clear()
        elif isinstance(obj.get("id"), str):
            self.messages[obj["id"]] = (obj, line_no)  # a re-written record keeps its place, as a JavaScript Map does
        elif isinstance(obj.get("$set"), dict):
            update = obj["$set"]
            if isinstance(update.get("messages"), list):
                self.messages = {
                    m["id"]: (m, line_no) for m in update["messages"] if isinstance(m, dict) and isinstance(m.get("id"), str)
                }
            self.metadata = {**(self.metadata or {}), **{k: v for k, v in update.items() if k != "messages"}}
        elif isinstance(obj.get("sessionId"), str) and isinstance(obj.get("projectHash"), str):
            if self.metadata is None:
                self.first_line = line_no
            self.metadata = {**(self.metadata or {}), **{k: v for k, v in obj.items() if k != "messages"}}
            if isinstance(obj.get("messages"), list):  # a legacy document saved on one line
                for m in obj["messages"]:
                    if isinstance(m, dict) and isinstance(m.get("id"), str):
                        self.messages[m["id"]] = (m, line_no)
        else:
            raise RecordError("not a Gemini CLI session record (no id, sessionId, $set or $rewindTo)")


class _Builder:
    def __init__(self, include_thinking: bool) -> None:
        self.include_thinking = include_thinking
        self.system: list[str] = []
        self.messages: list[Message] = []
        self.outcome = Outcome()
        self.seen_user = False
        self.after_context = False
        self.calls: dict[str, str] = {}  # call id -> tool name
        self.answered: set[str] = set()
        self.models: list[str] = []
        self.ui_errors = 0
        self.pending_thinking: list[str] = []

    def context(self, text: str) -> None:
        if not self.seen_user:
            self.system.append(text.strip())
            self.after_context = True

    def user(self, parts: list[Any]) -> None:
        responses = [p["functionResponse"] for p in parts if isinstance(p, dict) and isinstance(p.get("functionResponse"), dict)]
        text = _parts_text(parts, thoughts=False)
        if responses and not text.strip():
            for response in responses:
                self.tool_result(response.get("id"), response.get("name"), _response_text(response), None)
            return
        stripped = text.strip()
        if not stripped:
            return
        if stripped.startswith(_CONTEXT_PREFIXES):
            self.context(stripped)
            return
        if stripped.startswith(("/", "?")):
            return
        self.seen_user = True
        self.after_context = False
        self.pending_thinking = []
        self.messages.append(Message(role="user", content=text))

    def assistant(self, text: str, thinking: list[str], calls: list[tuple[str, str, Any]]) -> Message | None:
        if self.after_context and text.strip() == _CONTEXT_ACK and not calls:
            self.after_context = False
            return None
        parts = [f"<thinking>{t}</thinking>" for t in thinking if t.strip()] if self.include_thinking else []
        if not text.strip() and not calls:
            self.pending_thinking += parts  # a thoughts-only record: its thoughts lead the next answer
            return None
        parts, self.pending_thinking = self.pending_thinking + parts, []
        if text.strip():
            parts.append(text)
        message = Message(role="assistant", content="\n\n".join(parts))
        for call_id, name, args in calls:
            if call_id in self.calls:
                continue
            self.calls[call_id] = name
            arguments = args if isinstance(args, str) else json.dumps(args if args is not None else {}, ensure_ascii=False)
            message.tool_calls.append(ToolCall(id=call_id, name=name, arguments=arguments))
        if not message.content and not message.tool_calls:
            return None
        self.messages.append(message)
        return message

    def tool_result(self, call_id: Any, name: Any, text: str, status: str | None) -> None:
        if not isinstance(call_id, str) or call_id not in self.calls:
            # Checkpoints written before calls had ids: answer the latest open call of that name.
            call_id = next((c for c in reversed(self.calls) if c not in self.answered and self.calls[c] == name), None)
        if call_id is None or call_id in self.answered:
            return
        self.answered.add(call_id)
        if status == "error":
            self.outcome.is_error = True
        elif status == "cancelled":
            if any(d in text for d in _DECLINED):
                self.outcome.user_rejected = True
            else:
                self.outcome.interrupted = True
        self.messages.append(Message(role="tool", content=text, tool_call_id=call_id))

    def finish(self) -> list[Message] | None:
        roles = {m.role for m in self.messages}
        if "user" not in roles or "assistant" not in roles:
            return None
        system = list(dict.fromkeys(s for s in self.system if s))
        return ([Message(role="system", content="\n\n".join(system))] if system else []) + self.messages


def _session(
    path: Path,
    meta: dict[str, Any],
    lined: list[tuple[Any, int]],
    include_thinking: bool,
    first_line: int,
    problems: list[ImportProblem],
) -> Conversation | None:
    """The conversation of a session's messages, each with the line it came from (0 in a document); a message that
    cannot be read is reported in `problems` and the others are still read."""
    builder = _Builder(include_thinking)
    records = [record for record, _ in lined]
    for index, (record, line_no) in enumerate(lined, start=1):
        try:
            _take_record(builder, record)
        except RecordError as exc:
            problems.append(ImportProblem(str(path), line_no, f"message {index}: {exc}"))
    messages = builder.finish()
    if messages is None:
        return None
    metadata: dict[str, Any] = {}
    if builder.models:
        metadata["model"] = builder.models[0]
        if len(builder.models) > 1:
            metadata["models"] = builder.models
    for key, meta_key in (("projectHash", "project_hash"), ("summary", "summary"), ("kind", "kind"), ("directories", "directories")):
        if meta.get(key):
            metadata[meta_key] = meta[key]
    cwd = _project_root(path)
    if cwd:
        metadata["cwd"] = cwd
    if builder.ui_errors:
        metadata["ui_errors"] = builder.ui_errors
    session_id = meta.get("sessionId") if isinstance(meta.get("sessionId"), str) else path.stem
    parent = None
    if meta.get("kind") == "subagent" and path.parent.name != "chats" and path.parent.parent.name == "chats":
        parent = path.parent.name
    started = meta.get("startTime") if isinstance(meta.get("startTime"), str) else None
    if started is None:
        started = next((r.get("timestamp") for r in records if isinstance(r, dict) and isinstance(r.get("timestamp"), str)), None)
    return Conversation(
        session_id=session_id,
        messages=messages,
        source_file=str(path),
        source_line=first_line,
        source_format=SOURCE_FORMAT,
        started_at=started,
        outcome=builder.outcome,
        parent_session_id=parent,
        metadata=metadata,
    )


def _take_record(builder: _Builder, record: Any) -> None:
    if not isinstance(record, dict):
        raise RecordError(f"expected an object, got {json_type(record)}")
    kind = record.get("type")
    content = _as_parts(record.get("content"))
    if kind == "user":
        builder.user(content)
    elif kind == "gemini":
        _gemini_message(builder, record, content)
    elif kind == "info":
        if _parts_text(content, thoughts=False).strip() in _CANCEL_NOTES:
            builder.outcome.interrupted = True
    elif kind == "error":
        builder.ui_errors += 1
    elif kind != "warning":
        raise RecordError(f"unknown type {kind!r}")


def _gemini_message(builder: _Builder, record: dict[str, Any], content: list[Any]) -> None:
    model = record.get("model")
    if isinstance(model, str) and model and model not in builder.models:
        builder.models.append(model)
    thinking = []
    for thought in record.get("thoughts") or []:
        if isinstance(thought, dict):
            subject, description = thought.get("subject"), thought.get("description")
            # Descriptions often open with a literal "\\n\\n" left by Gemini CLI's thought parsing: dropped.
            texts = [_LEADING_ESCAPED_BREAKS.sub("", t).strip() for t in (subject, description) if isinstance(t, str)]
            thinking.append("\n".join(t for t in texts if t))
    thinking += [p["text"] for p in content if isinstance(p, dict) and p.get("thought") is True and isinstance(p.get("text"), str)]
    tool_calls = [tc for tc in record.get("toolCalls") or [] if isinstance(tc, dict)]
    calls = [(tc["id"], str(tc.get("name", "")), tc.get("args")) for tc in tool_calls if isinstance(tc.get("id"), str)]
    listed = {c[0] for c in calls}
    for k, part in enumerate(content):
        call = part.get("functionCall") if isinstance(part, dict) else None
        if isinstance(call, dict):
            call_id = call.get("id") if isinstance(call.get("id"), str) else f"{record.get('id')}:{k}"
            if call_id not in listed:
                calls.append((call_id, str(call.get("name", "")), call.get("args")))
    builder.assistant(_parts_text(content, thoughts=False), thinking, calls)
    for tc in tool_calls:
        if not isinstance(tc.get("id"), str):
            continue
        status = tc.get("status") if isinstance(tc.get("status"), str) else None
        if tc.get("result") is None and status not in ("error", "cancelled", "success"):
            continue  # still running when the file was written: a later record or the tool-response message answers it
        text = _result_text(tc.get("result"))
        if not text and isinstance(tc.get("resultDisplay"), str):
            text = tc["resultDisplay"]
        builder.tool_result(tc["id"], tc.get("name"), text, status)


def _checkpoint(path: Path, history: list[Any], include_thinking: bool, problems: list[ImportProblem]) -> Conversation | None:
    builder = _Builder(include_thinking)
    for index, content in enumerate(history, start=1):
        if not _is_content(content):
            problems.append(ImportProblem(str(path), 0, f"history entry {index}: expected a Content object with 'role' and 'parts'"))
            continue
        parts = content["parts"]
        if content["role"] == "user":
            builder.user(parts)
            continue
        thinking = [p["text"] for p in parts if isinstance(p, dict) and p.get("thought") is True and isinstance(p.get("text"), str)]
        calls = []
        for k, part in enumerate(parts):
            call = part.get("functionCall") if isinstance(part, dict) else None
            if isinstance(call, dict):
                call_id = call.get("id") if isinstance(call.get("id"), str) else f"{path.stem}:{index}:{k}"
                calls.append((call_id, str(call.get("name", "")), call.get("args")))
        builder.assistant(_parts_text(parts, thoughts=False), thinking, calls)
    messages = builder.finish()
    if messages is None:
        return None
    tag = unquote(path.stem.removeprefix("checkpoint-"))  # Gemini CLI percent-encodes the tag in the name
    metadata: dict[str, Any] = {"checkpoint_tag": tag}
    cwd = _project_root(path)
    if cwd:
        metadata["cwd"] = cwd
    return Conversation(
        session_id=f"checkpoint:{tag}",
        messages=messages,
        source_file=str(path),
        source_line=1,
        source_format=SOURCE_FORMAT,
        outcome=builder.outcome,
        metadata=metadata,
    )


# --- helpers -----------------------------------------------------------------------------------------------------


def _as_parts(content: Any) -> list[Any]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    if isinstance(content, dict):
        return [content]
    if isinstance(content, list):
        return [{"text": p} if isinstance(p, str) else p for p in content]
    raise RecordError(f"'content' must be a string or a list of parts, got {json_type(content)}")


def _parts_text(parts: list[Any], *, thoughts: bool) -> str:
    texts = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            if (part.get("thought") is True) == thoughts:
                texts.append(part["text"])
        elif "inlineData" in part or "fileData" in part:
            texts.append("[file]")
    return "".join(texts)  # as Gemini CLI's own partListUnionToString joins parts


def _response_text(response: dict[str, Any]) -> str:
    body = response.get("response")
    if isinstance(body, dict):
        for key in ("output", "error"):
            if isinstance(body.get(key), str):
                return body[key]
        return json.dumps(body, ensure_ascii=False)
    return "" if body is None else json.dumps(body, ensure_ascii=False)


def _result_text(result: Any) -> str:
    if result is None:
        return ""
    if isinstance(result, str):
        return result
    parts = result if isinstance(result, list) else [result]
    texts = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("functionResponse"), dict):
            texts.append(_response_text(part["functionResponse"]))
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, dict) and ("inlineData" in part or "fileData" in part):
            texts.append("[file]")
    return "\n".join(t for t in texts if t)


def _project_root(path: Path) -> str | None:
    """Newer Gemini CLI keeps the project's path in ``<project dir>/.project_root`` beside ``chats/``."""
    folder = path.parent
    for _ in range(3):
        marker = folder / ".project_root"
        try:
            if marker.is_file() and marker.stat().st_size < 4096:
                text = read_text(marker).strip()
                return text or None
        except (OSError, UnicodeDecodeError, FenceError):  # a marker outside the roots is not read
            return None
        folder = folder.parent
    return None


def _iter_nothing(path: Path) -> Iterator[Conversation | ImportProblem]:
    return iter(())


FORMAT = MemoryFormat(
    SOURCE_FORMAT,
    iter_gemini_cli,
    sniff_line=sniff_line,
    sniff_document=sniff_document,
    options=frozenset({"include_thinking"}),
    title="Gemini CLI chat sessions and checkpoints",
    agent="Gemini CLI",
    where="~/.gemini/tmp/<project>/chats/session-*.json(l), ~/.gemini/tmp/<project>/checkpoint-<tag>.json",
    kept=(
        "user and Gemini turns, tool calls with their results, session context as the system message, thoughts on "
        "request, model, project folder, timestamps, subagent sessions linked to their parent"
    ),
    outcome_signals="tool calls that failed, tool calls the user declined, cancelled requests",
    locations=("~/.gemini/tmp",),
)

SIDE_FORMAT = MemoryFormat(
    "gemini_cli_side_file",
    _iter_nothing,
    sniff_document=sniff_side_document,
    side_file=True,
    title="Gemini CLI prompt log (logs.json) and tool restore points",
    agent="Gemini CLI",
    where="~/.gemini/tmp/<project>/logs.json, ~/.gemini/tmp/<project>/checkpoints/*.json",
    kept="nothing: user prompts only, or a UI snapshot taken before a tool ran (the session files hold the chat)",
)
