"""Importer for Cursor's chats, kept in the editor's SQLite state databases (``state.vscdb``).

Cursor is closed source; the layout below is the one its databases show (a real workspace database is the fixture)
and that the public tools reading them agree on. Both tables are key-value tables (``key TEXT``, ``value`` JSON):

* the global database (``User/globalStorage/state.vscdb``), table ``cursorDiskKV``, Cursor since early 2025:
  ``composerData:<composerId>`` is one chat (``_v``, ``composerId``, ``name``, ``createdAt`` in ms, ``status``,
  ``modelConfig.modelName``, and its messages as ``fullConversationHeadersOnly`` — ``{bubbleId, type}`` headers —
  or, in earlier versions, inline as ``conversation`` or ``conversationMap``); each message ("bubble") is
  ``bubbleId:<composerId>:<bubbleId>``: ``type`` 1 (user) or 2 (assistant), ``text``, ``thinking.text``, and for a
  tool call ``toolFormerData`` (``name``, ``toolCallId``, ``rawArgs`` or ``params``, ``result``, ``status``);
* a workspace database (``User/workspaceStorage/<hash>/state.vscdb``), table ``ItemTable``, Cursor in 2024:
  ``composer.composerData`` holds ``allComposers``, each with its bubbles inline in ``conversation`` (later versions
  keep only headers there, the content being in the global database); ``workbench.panel.aichat.view.aichat.chatdata``
  holds the older chat panel's ``tabs``, each a chat of ``bubbles`` with ``type`` "user" or "ai" and ``text``.
  ``aiService.prompts`` is only the prompt history and is not imported.

The database is opened read-only and never written or locked for writing. A SQLite file without these tables and
keys (VS Code's own state.vscdb, any other database) is not this format.

Per chat: the user bubbles' text; assistant bubbles in order, consecutive ones forming one turn (text, then its tool
calls), each tool call followed by a ``tool`` message with its result; text after tool results starts a new turn.
Thinking is dropped, and kept as ``<thinking>...</thinking>`` with ``include_thinking=True``. Empty bubbles (the
unsent input box) are skipped. Metadata: the chat's name, the model (``modelConfig.modelName``, a bubble's
``modelInfo.modelName`` or the chat panel's ``modelType``). Outcome: a tool call with status ``error`` sets
``is_error``, one ``cancelled`` (or a chat whose status is ``aborted``) sets ``interrupted``; a chat with status
``error`` sets ``is_error``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model_customization.timestamps import epoch_to_iso

from .formats import MemoryFormat
from .records import Conversation, ImportProblem, Message, Outcome, ToolCall

SOURCE_FORMAT = "cursor"
COMPOSERS_KEY = "composer.composerData"
CHAT_PANEL_KEY = "workbench.panel.aichat.view.aichat.chatdata"
_COMPOSER_PREFIX = "composerData:"
_COMPOSER_RANGE = "key >= 'composerData:' AND key < 'composerData;'"  # every key starting with the prefix


def _connect(db: Path):
    import sqlite3  # only SQLite formats need it

    # Read-only: Cursor may be running; nothing here writes or takes a write lock.
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def _tables(connection) -> set[str]:
    return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _value(raw: Any) -> Any:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    return json.loads(raw) if isinstance(raw, str) else None


# ------------------------------------------------------------------------------------------------------- reading


def iter_cursor(path: Path, include_thinking: bool = False) -> Iterator[Conversation | ImportProblem]:
    import sqlite3

    path = Path(path)
    try:
        connection = _connect(path)
        tables = _tables(connection)
    except sqlite3.Error as error:
        yield ImportProblem(str(path), 0, f"cannot read the Cursor database: {error}")
        return
    try:
        seen: set[str] = set()
        if "cursorDiskKV" in tables:
            yield from _global_composers(path, connection, seen, include_thinking)
        if "ItemTable" in tables:
            yield from _workspace_chats(path, connection, seen, include_thinking)
    except sqlite3.Error as error:
        yield ImportProblem(str(path), 0, f"cannot read the Cursor database: {error}")
    finally:
        connection.close()


def _global_composers(path: Path, connection, seen: set[str], include_thinking: bool) -> Iterator[Conversation | ImportProblem]:
    # Row by row (a global database holds thousands of chats); the key range uses the table's unique index.
    rows = connection.execute(f"SELECT key, value FROM cursorDiskKV WHERE {_COMPOSER_RANGE} ORDER BY key")
    for key, raw in rows:
        try:
            composer = _value(raw)
        except (json.JSONDecodeError, RecursionError):
            yield ImportProblem(str(path), 0, f"{key}: invalid JSON")
            continue
        if not isinstance(composer, dict):
            continue  # Cursor leaves JSON null under some keys
        composer_id = str(composer.get("composerId") or key[len(_COMPOSER_PREFIX) :])
        bubbles, problems = _composer_bubbles(path, connection, composer_id, composer)
        yield from problems
        seen.add(composer_id)
        conv = _render(path, composer_id, composer, bubbles, include_thinking)
        if conv is not None:
            yield conv


def _composer_bubbles(path: Path, connection, composer_id: str, composer: dict[str, Any]) -> tuple[list[dict], list[ImportProblem]]:
    inline = composer.get("conversation")
    if isinstance(inline, list) and inline:
        return [b for b in inline if isinstance(b, dict)], []
    headers = composer.get("fullConversationHeadersOnly")
    if not isinstance(headers, list):
        return [], []
    by_map = composer.get("conversationMap") if isinstance(composer.get("conversationMap"), dict) else {}
    bubbles: list[dict] = []
    problems: list[ImportProblem] = []
    for header in headers:
        bubble_id = header.get("bubbleId") if isinstance(header, dict) else None
        if not isinstance(bubble_id, str):
            continue
        bubble = by_map.get(bubble_id)
        if not isinstance(bubble, dict):
            key = f"bubbleId:{composer_id}:{bubble_id}"
            row = connection.execute("SELECT value FROM cursorDiskKV WHERE key = ?", (key,)).fetchone()
            if row is None:
                continue  # a header whose bubble Cursor never stored (a cancelled request)
            try:
                bubble = _value(row[0])
            except (json.JSONDecodeError, RecursionError):
                problems.append(ImportProblem(str(path), 0, f"{key}: invalid JSON"))
                continue
        if isinstance(bubble, dict):
            bubble.setdefault("type", header.get("type"))
            bubbles.append(bubble)
    return bubbles, problems


def _workspace_chats(path: Path, connection, seen: set[str], include_thinking: bool) -> Iterator[Conversation | ImportProblem]:
    for key in (COMPOSERS_KEY, CHAT_PANEL_KEY):
        row = connection.execute("SELECT value FROM ItemTable WHERE key = ?", (key,)).fetchone()
        if row is None:
            continue
        try:
            data = _value(row[0])
        except (json.JSONDecodeError, RecursionError):
            yield ImportProblem(str(path), 0, f"{key}: invalid JSON")
            continue
        if not isinstance(data, dict):
            continue
        if key == COMPOSERS_KEY:
            for composer in data.get("allComposers") or []:
                if not isinstance(composer, dict) or not isinstance(composer.get("composerId"), str):
                    continue
                if composer["composerId"] in seen or not isinstance(composer.get("conversation"), list):
                    continue  # newer workspaces keep only headers here; the global database has the chat
                bubbles = [b for b in composer["conversation"] if isinstance(b, dict)]
                conv = _render(path, composer["composerId"], composer, bubbles, include_thinking)
                if conv is not None:
                    yield conv
        else:
            for tab in data.get("tabs") or []:
                if not isinstance(tab, dict) or not isinstance(tab.get("tabId"), str):
                    continue
                bubbles = [b for b in tab.get("bubbles") or [] if isinstance(b, dict)]
                # The chat panel records when the last message was sent, not when the chat began: no start time.
                header = {"name": tab.get("chatTitle")}
                conv = _render(path, tab["tabId"], header, bubbles, include_thinking)
                if conv is not None:
                    yield conv


# ------------------------------------------------------------------------------------------------- conversation


def _role(bubble: dict[str, Any]) -> str | None:
    kind = bubble.get("type")
    if kind in (1, "user"):
        return "user"
    if kind in (2, "ai", "assistant"):
        return "assistant"
    return None


def _render(path: Path, session_id: str, header: dict[str, Any], bubbles: list[dict], include_thinking: bool) -> Conversation | None:
    outcome = Outcome()
    messages: list[Message] = []
    open_turn: Message | None = None  # the assistant turn later assistant bubbles add to
    pending_results: list[Message] = []
    model = (header.get("modelConfig") or {}).get("modelName") if isinstance(header.get("modelConfig"), dict) else None

    def close_turn() -> None:
        nonlocal open_turn
        if open_turn is not None and (open_turn.content or open_turn.tool_calls):
            messages.append(open_turn)
            messages.extend(pending_results)
        open_turn = None
        pending_results.clear()

    for bubble in bubbles:
        role = _role(bubble)
        text = bubble.get("text") if isinstance(bubble.get("text"), str) else ""
        if role == "user":
            model = model or _bubble_model(bubble)  # the model a request was sent to is recorded on the user bubble
            if text.strip():
                close_turn()
                messages.append(Message(role="user", content=text))
            continue
        if role != "assistant":
            continue
        model = model or _bubble_model(bubble)
        pieces = []
        thinking = bubble.get("thinking")
        if include_thinking and isinstance(thinking, dict) and isinstance(thinking.get("text"), str) and thinking["text"].strip():
            pieces.append(f"<thinking>{thinking['text']}</thinking>")
        if text.strip():
            pieces.append(text.strip())
        if pieces and open_turn is not None and open_turn.tool_calls:
            close_turn()  # text after tool results answers them: a new turn
        if open_turn is None:
            open_turn = Message(role="assistant", content="")
        if pieces:
            open_turn.content = "\n\n".join(p for p in (open_turn.content, *pieces) if p)
        tool = bubble.get("toolFormerData")
        if isinstance(tool, dict) and (tool.get("name") or tool.get("tool") is not None):
            call_id = str(tool.get("toolCallId") or bubble.get("bubbleId") or f"call_{len(messages)}")
            open_turn.tool_calls.append(ToolCall(id=call_id, name=str(tool.get("name") or tool.get("tool")), arguments=_arguments(tool)))
            pending_results.append(Message(role="tool", content=_result(tool.get("result")), tool_call_id=call_id))
            _tool_outcome(tool, outcome)
    close_turn()
    roles = {m.role for m in messages}
    if "user" not in roles or "assistant" not in roles:
        return None
    status = header.get("status")
    if status == "aborted":
        outcome.interrupted = True
    elif status == "error":
        outcome.is_error = True
    metadata = {k: v for k, v in (("title", header.get("name")), ("model", model)) if isinstance(v, str) and v}
    return Conversation(
        session_id=session_id,
        messages=messages,
        source_file=str(path),
        source_line=0,
        source_format=SOURCE_FORMAT,
        started_at=epoch_to_iso(header["createdAt"] / 1000, timespec="milliseconds", zulu=True) if _is_number(header.get("createdAt")) else None,
        outcome=outcome,
        metadata=metadata,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bubble_model(bubble: dict[str, Any]) -> str | None:
    info = bubble.get("modelInfo")
    if isinstance(info, dict) and isinstance(info.get("modelName"), str) and info["modelName"]:
        return info["modelName"]
    return bubble.get("modelType") if isinstance(bubble.get("modelType"), str) and bubble["modelType"] else None


def _arguments(tool: dict[str, Any]) -> str:
    for key in ("rawArgs", "params"):
        value = tool.get(key)
        if isinstance(value, str) and value.strip():
            return value  # already JSON text as Cursor stores it
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False)
    return "{}"


def _result(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _tool_outcome(tool: dict[str, Any], outcome: Outcome) -> None:
    extra = tool.get("additionalData") if isinstance(tool.get("additionalData"), dict) else {}
    statuses = {tool.get("status"), extra.get("status")}
    if "error" in statuses:
        outcome.is_error = True
    if "cancelled" in statuses:
        outcome.interrupted = True


# ----------------------------------------------------------------------------------------------------- sniffing


def sniff_file(path: Path) -> float:
    """A SQLite database holding Cursor's chat keys: composerData rows in cursorDiskKV, or the composer or chat
    panel entries in ItemTable. Other databases, VS Code's own state.vscdb among them, score 0."""
    import sqlite3

    path = Path(path)
    try:
        with path.open("rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                return 0.0
        connection = _connect(path)
    except (OSError, sqlite3.Error):
        return 0.0
    try:
        tables = _tables(connection)
        if "cursorDiskKV" in tables and connection.execute(f"SELECT 1 FROM cursorDiskKV WHERE {_COMPOSER_RANGE} LIMIT 1").fetchone():
            return 1.0
        if "ItemTable" in tables and connection.execute("SELECT 1 FROM ItemTable WHERE key IN (?, ?) LIMIT 1", (COMPOSERS_KEY, CHAT_PANEL_KEY)).fetchone():
            return 1.0
        return 0.0
    except sqlite3.Error:
        return 0.0
    finally:
        connection.close()


def count_sessions(path: Path) -> int:
    """Chats with at least one message, counted from the keys and a look into the values, not by importing."""
    import sqlite3

    total = 0
    try:
        connection = _connect(Path(path))
    except sqlite3.Error:
        return 0
    try:
        tables = _tables(connection)
        global_ids: set[str] = set()
        if "cursorDiskKV" in tables:
            for key, raw in connection.execute(f"SELECT key, value FROM cursorDiskKV WHERE {_COMPOSER_RANGE}"):
                text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw or "")
                global_ids.add(key[len(_COMPOSER_PREFIX) :])
                total += '"bubbleId"' in text
        if "ItemTable" in tables:
            for key in (COMPOSERS_KEY, CHAT_PANEL_KEY):
                row = connection.execute("SELECT value FROM ItemTable WHERE key = ?", (key,)).fetchone()
                try:
                    data = _value(row[0]) if row else None
                except (json.JSONDecodeError, RecursionError):
                    continue
                if not isinstance(data, dict):
                    continue
                if key == COMPOSERS_KEY:
                    total += sum(
                        1
                        for c in data.get("allComposers") or []
                        if isinstance(c, dict) and c.get("conversation") and c.get("composerId") not in global_ids
                    )
                else:
                    total += sum(1 for t in data.get("tabs") or [] if isinstance(t, dict) and t.get("bubbles"))
    except sqlite3.Error:
        return total
    finally:
        connection.close()
    return total


FORMAT = MemoryFormat(
    SOURCE_FORMAT,
    iter_cursor,
    sniff_file=sniff_file,
    options=frozenset({"include_thinking"}),
    suffixes=(".vscdb",),
    database=True,
    title="Cursor chats",
    agent="Cursor",
    where="Cursor's User/globalStorage/state.vscdb (composerData and bubbleId keys) and "
    "User/workspaceStorage/<hash>/state.vscdb (2024 composer and chat panel)",
    kept="user and assistant turns, agent tool calls with their results, chat names, the model; thinking on request",
    outcome_signals="tool calls that failed or were cancelled, chats that ended aborted or in error",
    locations=(
        "~/.config/Cursor/User/globalStorage",
        "~/.config/Cursor/User/workspaceStorage",
        "~/Library/Application Support/Cursor/User/globalStorage",
        "~/Library/Application Support/Cursor/User/workspaceStorage",
        "~/AppData/Roaming/Cursor/User/globalStorage",
        "~/AppData/Roaming/Cursor/User/workspaceStorage",
    ),
    count_sessions=count_sessions,
)
