"""Importer for Cline, Roo Code and Kilo Code tasks (VS Code extensions that share one task folder layout), and for
the session files of Cline's SDK-based CLI.

Task folders
    ``<VS Code globalStorage>/<extension id>/tasks/<task id>/`` (Cline's JetBrains plug-in and old CLI: ``~/.cline/data/tasks/<task id>/``)
    holding ``api_conversation_history.json`` (very old Cline: ``claude_messages.json``), the messages sent to the
    model in Anthropic Messages form (``[{role, content: string | [blocks]}]``, newer versions add ``ts``,
    ``modelInfo``, ``metrics`` per message), ``ui_messages.json`` (what the chat panel showed: ``{ts, type: ask|say,
    ask|say kind, text, modelInfo...}``) and ``task_metadata.json`` (``files_in_context``, ``model_usage``,
    ``environment_history``; Roo Code writes ``history_item.json`` instead, whose ``parentTaskId`` makes a subtask's
    ``parent_session_id``). One task folder is one conversation, its session id the task id (the folder name).

    The folder is the unit (``sniff_folder``); ``api_conversation_history.json`` given alone is read too, its side
    files taken from its folder when they are there (judged by its path when an extension id is in it, else by its
    content, as Cline). ``ui_messages.json`` and ``task_metadata.json`` alone are side
    files: recognised, nothing imported. No conversation is rebuilt from ``ui_messages.json`` when the API history is
    missing: it holds what the panel showed (partial streams, UI-only notices), not what the model saw, and has no
    tool call ids to pair results with.

Formats: one per agent, ``cline``, ``roo_code`` and ``kilo_code``, because a user filtering by source asks for the
    agent they ran. The agent is read from the path (the extension id ``saoudrizwan.claude-dev``,
    ``rooveterinaryinc.roo-cline`` or ``kilocode.kilo-code``, or ``~/.cline``); a task folder copied elsewhere, with no
    extension id in its path, is taken for Cline. ``metadata["agent"]`` says the same as ``source_format``.

How messages are read
    * ``text`` blocks are kept; ``tool_use`` becomes a ToolCall (``json.dumps(input)``), each ``tool_result`` a
      ``tool`` message after it, paired by ``tool_use_id``. Images and documents become ``[image]`` / ``[document]``.
    * Older versions (and Roo Code before native tools) called tools in XML inside the assistant's text
      (``<read_file><path>...</path></read_file>``) and returned results as user text (``[read_file for '...']
      Result:``). That text is kept as it is: it is exactly what the model wrote and read, and rewriting it into
      tool calls would teach a different protocol from the one the model followed.
    * ``<environment_details>`` blocks (open tabs, file listings, time, cost: machine-made and often the largest part
      of a turn) are removed from user turns and tool results; ``metadata["environment_details_removed"]`` counts
      them. The working directory they name ("# Current Working Directory (...) Files") is kept as
      ``metadata["cwd"]``.
    * A user turn's ``<task>...</task>``, ``<feedback>...</feedback>`` and ``<user_message>...</user_message>``
      wrappers (and Cline's "The user provided the following feedback:" around them) are unwrapped to the words the
      user typed.
    * ``thinking`` blocks (and Roo Code's stored ``reasoning`` items) are kept as ``<thinking>...</thinking>`` before
      the answer only with ``include_thinking``; ``redacted_thinking`` is always dropped.
    * Roo Code's condense summaries (``isSummary``) and truncation markers are written by the extension, not said by
      anyone, and are skipped; the messages they replaced stay in the file and are kept.

Outcome: a ``tool_result`` with ``is_error`` or Cline's "The tool execution failed" text sets ``is_error``, as does an
    ``error`` / ``api_req_failed`` / ``mistake_limit_reached`` entry in ``ui_messages.json``; "The user denied this
    operation" sets ``user_rejected``; a "[TASK RESUMPTION]" turn (the task was interrupted and resumed later) sets
    ``interrupted`` and is not kept as a message (the resumed user's new words, if any, are).

Timestamps: ``started_at`` is the first ``ts`` of ``ui_messages.json`` (else of the API history, else the task id,
    which Cline makes from the clock). Model: the last ``model_usage`` entry of ``task_metadata.json``, else the
    last ``modelInfo`` of the messages. ``metadata["agent_version"]`` from ``environment_history``.

Kilo Code's newer extension (built on the Kilo CLI) keeps sessions in the CLI's own store and offers to migrate these
legacy task folders into it; that store is not read here.

Cline SDK sessions (Cline CLI 4 and later)
    ``~/.cline/data/sessions/<id>/<id>.messages.json``: ``{version, sessionId, agent, system_prompt, messages}`` with
    the same message shapes (plus ``file`` blocks, kept as ``[file: path]`` and their text), beside the manifest
    ``<id>.json`` (model, cwd, start time, status), which is read when present and is itself a side file, and
    ``<id>.compaction.json`` (the compacted copy the model saw later: a side file, not a second conversation).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model_customization.timestamps import epoch_to_iso

from .anthropic_content import tool_result_text
from .formats import MemoryFormat
from .reading import json_type, read_json_document
from .records import Conversation, ImportProblem, Message, Outcome, ToolCall

CLINE, ROO_CODE, KILO_CODE = "cline", "roo_code", "kilo_code"
API_HISTORY = "api_conversation_history.json"
LEGACY_API_HISTORY = "claude_messages.json"  # Cline before it was renamed (2024)
UI_MESSAGES = "ui_messages.json"
TASK_METADATA = "task_metadata.json"
HISTORY_ITEM = "history_item.json"  # Roo Code: the task's entry in the history list (parent task, workspace, mode)
EXTENSION_IDS = {"saoudrizwan.claude-dev": CLINE, "rooveterinaryinc.roo-cline": ROO_CODE, "kilocode.kilo-code": KILO_CODE}

_ENV_DETAILS = re.compile(r"<environment_details>.*?(?:</environment_details>|\Z)", re.DOTALL)
_CWD = re.compile(r"# Current (?:Working|Workspace) Directory \((.+?)\) Files")
_WRAPPED = re.compile(r"^\s*<(task|feedback|user_message)>\n?(.*?)\n?</\1>\s*$", re.DOTALL)
_USER_MESSAGE = re.compile(r"<user_message>\n?(.*?)\n?</user_message>", re.DOTALL)
# Cline's wording around what the user typed when answering a tool call or a completion (responses.ts)
_FEEDBACK = re.compile(r"^\s*The user (?:has )?provided the following feedback[^\n]*:\n<feedback>\n?(.*?)\n?</feedback>\s*$", re.DOTALL)
_DENIED = "The user denied this operation"
_TOOL_FAILED = "The tool execution failed with the following error"
_RESUMPTION = "[TASK RESUMPTION]"
_UI_ERRORS = {("say", "error"), ("ask", "api_req_failed"), ("ask", "mistake_limit_reached")}


# ---------------------------------------------------------------------------------------------------------------
# recognising


def agent_of_path(path: Path) -> str | None:
    """The agent whose storage `path` lies in, judged by the extension id (or ``.cline``) among its folders."""
    for part in reversed(Path(path).parts):
        agent = EXTENSION_IDS.get(part.lower())
        if agent:
            return agent
        if part == ".cline":
            return CLINE
    return None


def _history_file(folder: Path) -> Path | None:
    for name in (API_HISTORY, LEGACY_API_HISTORY):
        if (folder / name).is_file():
            return folder / name
    return None


def _folder_sniffer(agent: str):
    def sniff(folder: Path) -> float:
        if _history_file(folder) is None:
            return 0.0
        found = agent_of_path(folder)
        if found == agent:
            return 1.0
        if found is None and agent == CLINE:
            # A task folder copied out of VS Code: the side files beside the history make it certain it is a task.
            return 0.9 if (folder / UI_MESSAGES).is_file() or (folder / TASK_METADATA).is_file() else 0.8
        return 0.0

    return sniff


def _file_sniffer(agent: str):
    """A task's history file judged by its path: the extension id above it names the agent exactly."""

    def sniff(path: Path) -> float:
        return 1.0 if path.name in (API_HISTORY, LEGACY_API_HISTORY) and agent_of_path(path) == agent else 0.0

    return sniff


def _is_anthropic_message(obj: Any) -> bool:
    if not isinstance(obj, dict) or obj.get("role") not in ("user", "assistant"):
        return False
    content = obj.get("content")
    return isinstance(content, str) or (isinstance(content, list) and all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in content))


def _mentions_cline(entries: list[Any]) -> bool:
    for entry in entries[:4]:
        content = entry.get("content") if isinstance(entry, dict) else None
        texts = [content] if isinstance(content, str) else [b.get("text") for b in content or [] if isinstance(b, dict)]
        if any(isinstance(t, str) and ("<environment_details>" in t or t.lstrip().startswith("<task>")) for t in texts):
            return True
    return False


def sniff_document(doc: Any) -> float:
    """``api_conversation_history.json`` alone (a list of Anthropic messages) or an SDK ``<id>.messages.json``."""
    if isinstance(doc, list):
        if not doc or not all(_is_anthropic_message(m) or _is_stored_reasoning(m) for m in doc[:50]):
            return 0.0
        # Cline's own marks (environment details, a <task> wrapper, per-message ts) make it certain; a bare list of
        # Anthropic messages is only a guess (nothing else we know writes one as a whole file, but anyone could).
        if _mentions_cline(doc) or any(isinstance(m, dict) and "ts" in m for m in doc[:5]):
            return 0.95
        return 0.5
    messages = doc.get("messages") if isinstance(doc, dict) else None
    if isinstance(messages, list) and messages and "version" in doc and ("sessionId" in doc or "agent" in doc):
        return 0.95 if all(_is_anthropic_message(m) for m in messages[:20]) else 0.0
    return 0.0


def _is_stored_reasoning(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("type") == "reasoning" and "role" not in obj


def sniff_side_document(doc: Any) -> float:
    """``ui_messages.json``, ``task_metadata.json``, ``history_item.json``, ``taskHistory.json`` and the SDK's session
    manifest, met on their own."""
    if isinstance(doc, list) and doc and all(isinstance(m, dict) for m in doc[:20]):
        if all(m.get("type") in ("ask", "say") and "ts" in m for m in doc[:20]):
            return 0.95
        if all(all(k in m for k in ("id", "ts", "task")) and ("tokensIn" in m or "totalCost" in m) for m in doc[:20]):
            return 0.9  # taskHistory.json: the index of tasks the history view lists (~/.cline/data/tasks/, state/)
        return 0.0
    if isinstance(doc, dict):
        if sum(k in doc for k in ("files_in_context", "model_usage", "environment_history")) >= 2:
            return 0.95
        if "session_id" in doc and "messages_path" in doc:
            return 0.95
        if all(k in doc for k in ("id", "ts", "task", "tokensIn", "totalCost")):
            return 0.9  # Roo Code's history_item.json
    return 0.0


# ---------------------------------------------------------------------------------------------------------------
# reading


def iter_cline(path: Path, include_thinking: bool = False) -> Iterator[Conversation | ImportProblem]:
    """A task folder, an ``api_conversation_history.json``, or an SDK ``<id>.messages.json``: one conversation."""
    path = Path(path)
    if path.is_dir():
        history = _history_file(path)
        if history is None:
            yield ImportProblem(str(path), 0, f"no {API_HISTORY} in this task folder")
            return
        yield from _task(path, history, include_thinking)
        return
    doc, problem = read_json_document(path)
    if problem is not None:
        yield problem
        return
    if isinstance(doc, dict):
        yield from _sdk_session(path, doc, include_thinking)
        return
    yield from _task(path.parent, path, include_thinking, doc)


def _task(folder: Path, history: Path, include_thinking: bool, entries: Any = None) -> Iterator[Conversation | ImportProblem]:
    file = str(history)
    if entries is None:
        entries, problem = read_json_document(history)
        if problem is not None:
            yield problem
            return
    if not isinstance(entries, list):
        yield ImportProblem(file, 1, f"expected a list of messages, got {json_type(entries)}")
        return
    agent = agent_of_path(folder) or CLINE
    reader = _Reader(file, include_thinking)
    yield from reader.read(entries)
    ui = _side(folder / UI_MESSAGES, list)
    meta = _side(folder / TASK_METADATA, dict)
    item = _side(folder / HISTORY_ITEM, dict)
    for side in (ui, meta, item):
        if isinstance(side, ImportProblem):
            yield side
    ui = ui if isinstance(ui, list) else []
    meta = meta if isinstance(meta, dict) else {}
    item = item if isinstance(item, dict) else {}

    outcome = reader.outcome
    for m in ui:
        if isinstance(m, dict) and (m.get("type"), m.get("ask") or m.get("say")) in _UI_ERRORS:
            outcome.is_error = True
    conv = reader.conversation(folder.name if history.name in (API_HISTORY, LEGACY_API_HISTORY) else history.stem, agent)
    if conv is None:
        return
    started = _first_ts(ui) or _first_ts(entries)
    if started is None and folder.name.isdigit() and len(folder.name) == 13:
        started = int(folder.name)  # Cline names a task after Date.now()
    conv.started_at = epoch_to_iso(started / 1000, timespec="milliseconds", zulu=True) if started is not None else None
    model, provider = _model_from_metadata(meta)
    if model is None:
        model, provider = _model_from_messages([*entries, *ui])
    if model:
        conv.metadata["model"] = model
    if provider:
        conv.metadata["model_provider"] = provider
    environments = meta.get("environment_history")
    if isinstance(environments, list) and environments and isinstance(environments[-1], dict):
        version = environments[-1].get("cline_version")
        if isinstance(version, str) and version:
            conv.metadata["agent_version"] = version
    if isinstance(item.get("parentTaskId"), str) and item["parentTaskId"]:
        conv.parent_session_id = item["parentTaskId"]  # a subtask started with new_task
    if "cwd" not in conv.metadata and isinstance(item.get("workspace"), str) and item["workspace"]:
        conv.metadata["cwd"] = item["workspace"]
    if isinstance(item.get("mode"), str) and item["mode"]:
        conv.metadata["mode"] = item["mode"]
    if any(isinstance(m, dict) and m.get("say") == "completion_result" for m in ui):
        conv.metadata["completion_result"] = True  # the agent reported the task done (the user may still disagree)
    yield conv


def _sdk_session(path: Path, doc: dict[str, Any], include_thinking: bool) -> Iterator[Conversation | ImportProblem]:
    entries = doc.get("messages")
    if not isinstance(entries, list):
        yield ImportProblem(str(path), 1, f"'messages' must be a list, got {json_type(entries)}")
        return
    reader = _Reader(str(path), include_thinking)
    system = doc.get("system_prompt")
    if isinstance(system, str) and system.strip():
        reader.messages.append(Message(role="system", content=system))
    yield from reader.read(entries)
    session_id = doc.get("sessionId") if isinstance(doc.get("sessionId"), str) else path.name.removesuffix(".messages.json")
    conv = reader.conversation(session_id, CLINE)
    if conv is None:
        return
    manifest_path = path.with_name(path.name.removesuffix(".messages.json") + ".json")
    manifest = _side(manifest_path, dict) if manifest_path != path else None
    if isinstance(manifest, ImportProblem):
        yield manifest
        manifest = None
    manifest = manifest or {}
    # The messages say when each turn happened and which model wrote it; the manifest describes the session as
    # configured (for a fork, when and with what it was forked), so it only fills in what the messages lack.
    started = _first_ts(entries)
    if started is not None:
        conv.started_at = epoch_to_iso(started / 1000, timespec="milliseconds", zulu=True)
    elif isinstance(manifest.get("started_at"), str):
        conv.started_at = manifest["started_at"]
    model, provider = _model_from_messages(entries)
    if model:
        conv.metadata["model"] = model
    if provider:
        conv.metadata["model_provider"] = provider
    for key, meta_key in (("cwd", "cwd"), ("model", "model"), ("provider", "model_provider"), ("status", "status")):
        if meta_key not in conv.metadata and isinstance(manifest.get(key), str) and manifest[key]:
            conv.metadata[meta_key] = manifest[key]
    if manifest.get("status") in ("failed", "error"):
        conv.outcome.is_error = True
    if manifest.get("status") in ("cancelled", "aborted", "interrupted"):
        conv.outcome.interrupted = True
    yield conv


def _side(path: Path, kind: type) -> Any:
    """A side file's parsed content, None when it is absent, or the problem that stops it being read."""
    if not path.is_file():
        return None
    doc, problem = read_json_document(path)
    if problem is not None:
        return problem
    if not isinstance(doc, kind):
        return ImportProblem(str(path), 1, f"expected {json_type(kind())}, got {json_type(doc)}; not used")
    return doc


def _first_ts(entries: list[Any]) -> float | None:
    for entry in entries:
        ts = entry.get("ts") if isinstance(entry, dict) else None
        if isinstance(ts, (int, float)) and not isinstance(ts, bool) and ts > 0:
            return ts
    return None


def _model_from_metadata(meta: dict[str, Any]) -> tuple[str | None, str | None]:
    usage = meta.get("model_usage")
    if isinstance(usage, list):
        for entry in reversed(usage):
            if isinstance(entry, dict) and isinstance(entry.get("model_id"), str) and entry["model_id"]:
                provider = entry.get("model_provider_id")
                return entry["model_id"], provider if isinstance(provider, str) else None
    return None, None


def _model_from_messages(entries: list[Any]) -> tuple[str | None, str | None]:
    for entry in reversed(entries):
        info = entry.get("modelInfo") if isinstance(entry, dict) else None
        if isinstance(info, dict):
            model = info.get("modelId") or info.get("id")
            provider = info.get("providerId") or info.get("provider")
            if isinstance(model, str) and model:
                return model, provider if isinstance(provider, str) else None
    return None, None


class _Reader:
    """Turns Anthropic-form messages into Messages, collecting outcome signals and what was removed."""

    def __init__(self, file: str, include_thinking: bool) -> None:
        self.file = file
        self.include_thinking = include_thinking
        self.messages: list[Message] = []
        self.outcome = Outcome()
        self.cwd: str | None = None
        self.env_removed = 0
        self.skipped_markers = 0
        self.pending_thinking: list[str] = []

    def read(self, entries: list[Any]) -> Iterator[ImportProblem]:
        for index, entry in enumerate(entries, start=1):
            if _is_stored_reasoning(entry):
                if self.include_thinking:
                    self.pending_thinking.extend(_reasoning_texts(entry))
                continue
            if not _is_anthropic_message(entry):
                yield ImportProblem(self.file, 1, f"message {index}: not a {{role, content}} message ({_describe(entry)}); skipped")
                continue
            if entry.get("isSummary") or entry.get("isTruncationMarker"):
                self.skipped_markers += 1
                continue
            content = entry["content"]
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if entry["role"] == "assistant":
                self._assistant(blocks, entry)
            else:
                self._user(blocks)

    def _assistant(self, blocks: list[dict[str, Any]], entry: dict[str, Any]) -> None:
        parts = [f"<thinking>{t}</thinking>" for t in self.pending_thinking]
        self.pending_thinking = []
        calls: list[ToolCall] = []
        reasoning = entry.get("reasoning_content")
        if self.include_thinking and isinstance(reasoning, str) and reasoning.strip():
            parts.append(f"<thinking>{reasoning}</thinking>")
        for n, b in enumerate(blocks, start=1):
            kind = b["type"]
            if kind == "text" and isinstance(b.get("text"), str):
                parts.append(b["text"])
            elif kind == "tool_use":
                call_id = b.get("id") if isinstance(b.get("id"), str) and b.get("id") else f"call_{len(self.messages)}_{n}"
                calls.append(ToolCall(id=call_id, name=str(b.get("name", "")), arguments=json.dumps(b.get("input", {}), ensure_ascii=False)))
            elif kind == "thinking" and self.include_thinking and isinstance(b.get("thinking"), str) and b["thinking"].strip():
                parts.append(f"<thinking>{b['thinking']}</thinking>")
            elif kind in ("image", "document"):
                parts.append(f"[{kind}]")
        text = "\n\n".join(p for p in parts if p.strip())
        if text or calls:
            self.messages.append(Message(role="assistant", content=text, tool_calls=calls))

    def _user(self, blocks: list[dict[str, Any]]) -> None:
        parts: list[str] = []
        for b in blocks:
            kind = b["type"]
            if kind == "tool_result":
                text = self._clean(tool_result_text(b.get("content"), keep_structured=True))
                if b.get("is_error") is True or text.startswith(_TOOL_FAILED):
                    self.outcome.is_error = True
                if _DENIED in text:
                    self.outcome.user_rejected = True
                call_id = b.get("tool_use_id") if isinstance(b.get("tool_use_id"), str) else None
                self.messages.append(Message(role="tool", content=text, tool_call_id=call_id))
            elif kind == "text" and isinstance(b.get("text"), str):
                text = b["text"]
                head = text.lstrip()
                if head.startswith((_RESUMPTION, "New instructions for task continuation", "New message to respond to", "(The user did not provide")):
                    # Resumption notices are the extension's words; only a new message from the user inside them is
                    # kept (older versions put both in one block, newer ones in two).
                    if head.startswith(_RESUMPTION):
                        self.outcome.interrupted = True
                    said = _USER_MESSAGE.search(text)
                    if said is None:
                        continue
                    text = said.group(1)
                else:
                    text = self._clean(text)
                feedback = _FEEDBACK.match(text)
                text = feedback.group(1) if feedback else text
                if text.startswith(_TOOL_FAILED):
                    self.outcome.is_error = True  # XML-era tools report failures as user text
                if _DENIED in text:
                    self.outcome.user_rejected = True
                if text.strip():
                    parts.append(text)
            elif kind == "file":
                label = f"[file: {b.get('path')}]" if isinstance(b.get("path"), str) else "[file]"
                parts.append(f"{label}\n{b['content']}" if isinstance(b.get("content"), str) else label)
            elif kind in ("image", "document"):
                parts.append(f"[{kind}]")
        text = "\n\n".join(parts)
        if text.strip():
            self.messages.append(Message(role="user", content=text))

    def _clean(self, text: str) -> str:
        def drop(match: re.Match[str]) -> str:
            self.env_removed += 1
            cwd = _CWD.search(match.group(0))
            if cwd and self.cwd is None:
                self.cwd = cwd.group(1)
            return ""

        text = _ENV_DETAILS.sub(drop, text).strip()
        wrapped = _WRAPPED.match(text)
        return wrapped.group(2).strip() if wrapped else text

    def conversation(self, session_id: str, agent: str) -> Conversation | None:
        roles = {m.role for m in self.messages}
        if "assistant" not in roles or not roles & {"user", "tool"}:
            return None  # a task that never got an answer (cancelled before the first reply)
        metadata: dict[str, Any] = {"agent": agent}
        if self.cwd:
            metadata["cwd"] = self.cwd
        if self.env_removed:
            metadata["environment_details_removed"] = self.env_removed
        if self.skipped_markers:
            metadata["skipped_summaries"] = self.skipped_markers
        return Conversation(
            session_id=session_id,
            messages=self.messages,
            source_file=self.file,
            source_line=1,
            source_format=agent,
            outcome=self.outcome,
            metadata=metadata,
        )


def _reasoning_texts(entry: dict[str, Any]) -> list[str]:
    texts = [s.get("text") for s in entry.get("summary") or [] if isinstance(s, dict)]
    if isinstance(entry.get("text"), str):
        texts.append(entry["text"])
    return [t for t in texts if isinstance(t, str) and t.strip()]


def _describe(entry: Any) -> str:
    if isinstance(entry, dict):
        return f"role {entry.get('role')!r}"
    return json_type(entry)


def sniff_side_file(path: Path) -> float:
    """An SDK session's ``<id>.compaction.json``: the same messages as ``<id>.messages.json`` after compaction (the
    model's shortened view, with the extension's summary notices), so not a second conversation."""
    return 1.0 if path.name.endswith(".compaction.json") else 0.0


def _iter_nothing(path: Path) -> Iterator[Conversation | ImportProblem]:
    return iter(())


# ---------------------------------------------------------------------------------------------------------------
# the formats

_KEPT = (
    "user and assistant turns, tool calls with their results, the working directory, model, timestamps; "
    "environment details removed (counted); thinking on request; XML-era tool calls kept as the text the model wrote"
)
_SIGNALS = "tool errors, operations the user denied, interrupted and resumed tasks, API and tool errors shown in the panel"


def _vscode_storage(extension_id: str) -> tuple[str, ...]:
    """The extension's globalStorage in VS Code and its forks, on Linux, macOS and Windows."""
    editors = ("Code", "Code - Insiders", "VSCodium", "Cursor", "Windsurf")
    roots = (
        *(f"~/.config/{e}/User/globalStorage" for e in editors),
        *(f"~/Library/Application Support/{e}/User/globalStorage" for e in editors),
        *(f"~/AppData/Roaming/{e}/User/globalStorage" for e in editors),
        "~/.vscode-server/data/User/globalStorage",  # Remote - SSH / WSL
    )
    return tuple(f"{root}/{extension_id}/tasks" for root in roots)


FORMAT = MemoryFormat(
    CLINE,
    iter_cline,
    sniff_document=sniff_document,
    sniff_folder=_folder_sniffer(CLINE),
    sniff_file=_file_sniffer(CLINE),
    options=frozenset({"include_thinking"}),
    title="Cline tasks",
    agent="Cline",
    where="<VS Code globalStorage>/saoudrizwan.claude-dev/tasks/<task id>/ (api_conversation_history.json, ui_messages.json, task_metadata.json); ~/.cline/data/sessions/<id>/<id>.messages.json",
    kept=_KEPT,
    outcome_signals=_SIGNALS,
    locations=(*_vscode_storage("saoudrizwan.claude-dev"), "~/.cline/data/tasks", "~/.cline/data/sessions"),
)
ROO_CODE_FORMAT = MemoryFormat(
    ROO_CODE,
    iter_cline,
    sniff_folder=_folder_sniffer(ROO_CODE),
    sniff_file=_file_sniffer(ROO_CODE),
    options=frozenset({"include_thinking"}),
    title="Roo Code tasks",
    agent="Roo Code",
    where="<VS Code globalStorage>/rooveterinaryinc.roo-cline/tasks/<task id>/ (api_conversation_history.json, ui_messages.json)",
    kept=_KEPT,
    outcome_signals=_SIGNALS,
    locations=_vscode_storage("rooveterinaryinc.roo-cline"),
)
KILO_CODE_FORMAT = MemoryFormat(
    KILO_CODE,
    iter_cline,
    sniff_folder=_folder_sniffer(KILO_CODE),
    sniff_file=_file_sniffer(KILO_CODE),
    options=frozenset({"include_thinking"}),
    title="Kilo Code tasks",
    agent="Kilo Code",
    where="<VS Code globalStorage>/kilocode.kilo-code/tasks/<task id>/ (api_conversation_history.json, ui_messages.json)",
    kept=_KEPT,
    outcome_signals=_SIGNALS,
    locations=_vscode_storage("kilocode.kilo-code"),
)
SIDE_FILE_FORMAT = MemoryFormat(
    "cline_side_file",
    _iter_nothing,
    sniff_document=sniff_side_document,
    sniff_file=sniff_side_file,
    side_file=True,
    title="Cline / Roo Code / Kilo Code task side files (ui_messages.json, task_metadata.json, history_item.json, SDK session manifests and compactions)",
    where="beside api_conversation_history.json in a task folder; read with the task, nothing imported alone",
)
FORMATS = (FORMAT, ROO_CODE_FORMAT, KILO_CODE_FORMAT, SIDE_FILE_FORMAT)
