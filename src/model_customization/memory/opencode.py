"""Importer for OpenCode sessions (sst/opencode, now anomalyco/opencode), in both stores OpenCode has used.

OpenCode keeps its data in ``$XDG_DATA_HOME/opencode`` (``~/.local/share/opencode``):

* the JSON store, ``storage/``: ``session/<projectID>/<sessionID>.json`` (Session.Info: id, title, directory,
  parentID, version, time.created/updated), ``message/<sessionID>/<messageID>.json`` (role user or assistant, time,
  modelID, providerID, path.cwd, tokens, cost, error), ``part/<messageID>/<partID>.json`` (the content: text,
  reasoning, tool, file, step-start, step-finish, snapshot, patch, compaction...);
* since early 2026 the SQLite store ``opencode.db`` (``opencode-<channel>.db`` for other release channels), which
  OpenCode fills from the JSON store once (storage/json-migration.ts): tables ``session`` (id, project_id, parent_id,
  directory, title, version, time_created...), ``message`` and ``part`` (id, session_id / message_id, and ``data``,
  the same JSON as the file without its ids).

Pointing at the data folder, at ``storage/``, at ``opencode.db`` or at one ``session/<project>/<id>.json`` file (its
messages and parts are read from the folders beside it) imports those sessions; a data folder with both stores is
read from the database first, and JSON sessions already in it are not imported twice. Message and part files alone
(and project files) are side files: recognised, and yield nothing.

Per session: messages in order of creation, parts in order of their ids (which OpenCode makes ascending). A user
message's text parts are its turn (parts marked ``ignored`` are left out; attached files become ``[file: name]``).
An assistant message is cut into one assistant turn per step (``step-start`` parts): the step's text and its tool
calls, then a ``tool`` message per call with its output or error. ``reasoning`` parts are dropped, and kept as
``<thinking>...</thinking>`` with ``include_thinking=True``. A compaction request (a user message holding only a
``compaction`` part) and the summary answering it (``summary: true``) are OpenCode's housekeeping, not the
conversation, and are left out. A user's own system prompt (``system`` on the user message; older assistant messages
carry it as a list) becomes the system message.

Outcome: a tool whose state is ``error`` sets ``is_error``, and ``user_rejected`` when the error is OpenCode's
permission refusal; a message that ended in ``MessageAbortedError``, or a tool "aborted", sets ``interrupted``; any
other message error (API, auth, output length) sets ``is_error``. Metadata: cwd (the session's directory), model and
provider of the first answer, OpenCode's version, the session title. A subagent session names its parent through
``parent_session_id``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_customization.timestamps import epoch_to_iso

from .formats import MemoryFormat
from .reading import json_type, read_json_document
from .records import Conversation, ImportProblem, Message, Outcome, ToolCall

SOURCE_FORMAT = "opencode"
_REJECTED = "rejected permission to use this specific tool call"
_ABORTED_TOOL = "Tool execution aborted"
_STORE_FOLDERS = ("session", "message", "part")


@dataclass
class _Session:
    id: str
    info: dict[str, Any]
    source: str  # the file or database it was read from
    messages: list[tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------------ entry point


def iter_opencode(path: Path, include_thinking: bool = False) -> Iterator[Conversation | ImportProblem]:
    """Sessions of an OpenCode data folder, ``storage/`` folder, ``opencode.db`` or one session file."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".json":
        storage = path.parent.parent.parent
        yield from _render_all(_json_sessions(storage, [path]), include_thinking)
        return
    if path.is_file():
        yield from _render_all(_db_sessions(path), include_thinking)
        return
    seen: set[str] = set()
    for db in _databases(path):
        for item in _db_sessions(db):
            if isinstance(item, _Session):
                seen.add(item.id)
            yield from _render_all([item], include_thinking)
    storage = _storage_of(path)
    if storage is not None:
        files = sorted((storage / "session").glob("*/*.json"))
        sessions = (s for s in _json_sessions(storage, files, skip=seen))
        yield from _render_all(sessions, include_thinking)


def _render_all(items: Iterable[_Session | ImportProblem], include_thinking: bool) -> Iterator[Conversation | ImportProblem]:
    for item in items:
        if isinstance(item, ImportProblem):
            yield item
        else:
            conv = _render(item, include_thinking)
            if conv is not None:
                yield conv


def _storage_of(folder: Path) -> Path | None:
    if (folder / "session").is_dir() and ((folder / "message").is_dir() or folder.name == "storage"):
        return folder
    if (folder / "storage" / "session").is_dir():
        return folder / "storage"
    return None


def _databases(folder: Path) -> list[Path]:
    return [db for db in sorted(folder.glob("opencode*.db")) if db.is_file() and _is_opencode_db(db)]


# ----------------------------------------------------------------------------------------------------- JSON store


def _json_sessions(storage: Path, files: list[Path], skip: set[str] = frozenset()) -> Iterator[_Session | ImportProblem]:
    for file in files:
        info, problem = read_json_document(file)
        if problem is not None:
            yield problem
            continue
        if not isinstance(info, dict):
            yield ImportProblem(str(file), 0, f"expected a session object, got {json_type(info)}")
            continue
        session_id = file.stem  # OpenCode derives ids from file names too: files may have been moved
        if session_id in skip:
            continue
        session = _Session(session_id, info, str(file))
        message_files = sorted((storage / "message" / session_id).glob("*.json"))
        for message_file in message_files:
            message, problem = read_json_document(message_file)
            if problem is not None:
                yield problem
                continue
            if not isinstance(message, dict):
                yield ImportProblem(str(message_file), 0, f"expected a message object, got {json_type(message)}")
                continue
            message.setdefault("id", message_file.stem)
            parts: list[dict[str, Any]] = []
            for part_file in sorted((storage / "part" / message_file.stem).glob("*.json")):
                part, problem = read_json_document(part_file)
                if problem is not None:
                    yield problem
                elif not isinstance(part, dict):
                    yield ImportProblem(str(part_file), 0, f"expected a part object, got {json_type(part)}")
                else:
                    part.setdefault("id", part_file.stem)
                    parts.append(part)
            session.messages.append((message, parts))
        yield session


# --------------------------------------------------------------------------------------------------- SQLite store


def _connect(db: Path):
    import sqlite3  # only SQLite stores need it

    # Read-only: OpenCode may be running and writing; we never write or take a write lock.
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def _is_opencode_db(db: Path) -> bool:
    try:
        with db.open("rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                return False
        connection = _connect(db)
    except OSError:
        return False
    try:
        columns = {
            table: {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
            for table in ("session", "message", "part")
        }
    except Exception:  # noqa: BLE001 - an unreadable or foreign database is simply not OpenCode's
        return False
    finally:
        connection.close()
    return (
        {"id", "title"} <= columns["session"]
        and {"id", "session_id", "data"} <= columns["message"]
        and {"id", "message_id", "data"} <= columns["part"]
    )


def _db_sessions(db: Path) -> Iterator[_Session | ImportProblem]:
    import sqlite3

    try:
        connection = _connect(db)
        session_columns = [row[1] for row in connection.execute("PRAGMA table_info(session)")]
        rows = connection.execute("SELECT * FROM session ORDER BY time_created, id").fetchall()
    except sqlite3.Error as error:
        yield ImportProblem(str(db), 0, f"cannot read the OpenCode database: {error}")
        return
    try:
        for row in rows:
            record = dict(zip(session_columns, row, strict=False))
            info = {
                "id": record.get("id"),
                "title": record.get("title"),
                "directory": record.get("directory"),
                "parentID": record.get("parent_id"),
                "version": record.get("version"),
                "time": {"created": record.get("time_created"), "updated": record.get("time_updated")},
            }
            session = _Session(str(record.get("id")), info, str(db))
            messages = connection.execute(
                "SELECT id, data FROM message WHERE session_id = ? ORDER BY time_created, id", (session.id,)
            ).fetchall()
            for message_id, data in messages:
                message = _row_json(data)
                if message is None:
                    yield ImportProblem(str(db), 0, f"message {message_id}: 'data' is not a JSON object")
                    continue
                message["id"] = message_id
                parts = []
                for part_id, part_data in connection.execute(
                    "SELECT id, data FROM part WHERE message_id = ? ORDER BY id", (message_id,)
                ):
                    part = _row_json(part_data)
                    if part is None:
                        yield ImportProblem(str(db), 0, f"part {part_id}: 'data' is not a JSON object")
                        continue
                    part["id"] = part_id
                    parts.append(part)
                session.messages.append((message, parts))
            yield session
    except sqlite3.Error as error:
        yield ImportProblem(str(db), 0, f"cannot read the OpenCode database: {error}")
    finally:
        connection.close()


def _row_json(data: Any) -> dict[str, Any] | None:
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    try:
        value = json.loads(data) if isinstance(data, str) else None
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


# -------------------------------------------------------------------------------------------------- conversation


def _created(info: dict[str, Any]) -> float:
    time = info.get("time")
    created = time.get("created") if isinstance(time, dict) else None
    return created if isinstance(created, (int, float)) and not isinstance(created, bool) else 0


def _render(session: _Session, include_thinking: bool) -> Conversation | None:
    outcome = Outcome()
    metadata: dict[str, Any] = {}
    messages: list[Message] = []
    system: str | None = None
    ordered = sorted(session.messages, key=lambda item: (_created(item[0]), str(item[0].get("id", ""))))
    for info, parts in ordered:
        parts = sorted(parts, key=lambda p: str(p.get("id", "")))
        role = info.get("role")
        if role == "user":
            if isinstance(info.get("system"), str) and info["system"].strip() and system is None:
                system = info["system"]
            if any(p.get("type") == "compaction" for p in parts):
                continue
            text = _user_text(parts)
            if text:
                messages.append(Message(role="user", content=text))
        elif role == "assistant":
            if info.get("summary") is True:
                continue  # the answer to a compaction request
            if system is None and isinstance(info.get("system"), list):
                system = "\n\n".join(s for s in info["system"] if isinstance(s, str)) or None
            _read_error(info.get("error"), outcome)
            turns = _assistant_turns(parts, outcome, include_thinking)
            if turns:
                metadata.setdefault("model", info.get("modelID"))
                metadata.setdefault("provider", info.get("providerID"))
                path = info.get("path")
                if isinstance(path, dict) and isinstance(path.get("cwd"), str):
                    metadata.setdefault("cwd", path["cwd"])
            messages.extend(turns)
    roles = {m.role for m in messages}
    if "user" not in roles or "assistant" not in roles:
        return None
    if system:
        messages.insert(0, Message(role="system", content=system))
    info = session.info
    if isinstance(info.get("directory"), str) and info["directory"]:
        metadata["cwd"] = info["directory"]
    for key, value in (("version", info.get("version")), ("title", info.get("title"))):
        if isinstance(value, str) and value:
            metadata[key] = value
    parent = info.get("parentID")
    return Conversation(
        session_id=session.id,
        messages=messages,
        source_file=session.source,
        source_line=0 if session.source.endswith(".db") else 1,
        source_format=SOURCE_FORMAT,
        started_at=epoch_to_iso(_created(info) / 1000, timespec="milliseconds", zulu=True) if _created(info) else None,
        outcome=outcome,
        parent_session_id=parent if isinstance(parent, str) and parent else None,
        metadata={k: v for k, v in metadata.items() if v is not None},
    )


def _user_text(parts: list[dict[str, Any]]) -> str:
    pieces = []
    for part in parts:
        if part.get("ignored") is True:
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str) and part["text"].strip():
            pieces.append(part["text"])
        elif kind == "file":
            pieces.append(f"[file: {part.get('filename') or part.get('url') or part.get('mime') or 'attachment'}]")
    return "\n\n".join(pieces)


def _assistant_turns(parts: list[dict[str, Any]], outcome: Outcome, include_thinking: bool) -> list[Message]:
    turns: list[Message] = []
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []

    def flush() -> None:
        content = "\n\n".join(t for t in texts if t.strip())
        if content or calls:
            turns.append(Message(role="assistant", content=content, tool_calls=list(calls)))
            turns.extend(results)
        texts.clear()
        calls.clear()
        results.clear()

    for part in parts:
        kind = part.get("type")
        if kind == "step-start":
            flush()
        elif kind == "text" and isinstance(part.get("text"), str):
            if calls:
                flush()  # text after tool calls answers their results: a new turn
            texts.append(part["text"])
        elif kind == "reasoning" and include_thinking and isinstance(part.get("text"), str) and part["text"].strip():
            if calls:
                flush()
            texts.append(f"<thinking>{part['text']}</thinking>")
        elif kind == "tool":
            call_id = part.get("callID") if isinstance(part.get("callID"), str) else str(part.get("id", ""))
            state = part.get("state") if isinstance(part.get("state"), dict) else {}
            arguments = json.dumps(state.get("input", {}), ensure_ascii=False)
            calls.append(ToolCall(id=call_id, name=str(part.get("tool", "")), arguments=arguments))
            results.append(Message(role="tool", content=_tool_result(state, outcome), tool_call_id=call_id))
    flush()
    return turns


def _tool_result(state: dict[str, Any], outcome: Outcome) -> str:
    status = state.get("status")
    if status == "completed":
        output = state.get("output")
        return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    if status == "error":
        error = str(state.get("error", ""))
        if _ABORTED_TOOL in error or (isinstance(state.get("metadata"), dict) and state["metadata"].get("interrupted")):
            outcome.interrupted = True
        else:
            outcome.is_error = True
            if _REJECTED in error:
                outcome.user_rejected = True
        return error
    outcome.interrupted = True  # pending or running when the session stopped
    return ""


def _read_error(error: Any, outcome: Outcome) -> None:
    if not isinstance(error, dict):
        return
    if error.get("name") == "MessageAbortedError":
        outcome.interrupted = True
    else:
        outcome.is_error = True


# ----------------------------------------------------------------------------------------------------- sniffing


def sniff_folder(folder: Path) -> float:
    """The data folder (``storage/`` or ``opencode.db`` inside) or the ``storage/`` folder itself."""
    folder = Path(folder)
    storage = _storage_of(folder)
    if storage is not None and (storage / "message").is_dir():
        return 1.0
    if _databases(folder):
        return 1.0
    return 0.0


def sniff_file(path: Path) -> float:
    """An OpenCode SQLite store: session, message and part tables with OpenCode's columns."""
    path = Path(path)
    return 1.0 if path.suffix.lower() == ".db" and _is_opencode_db(path) else 0.0


def _time_keys(doc: dict[str, Any]) -> bool:
    return isinstance(doc.get("time"), dict) and "created" in doc["time"]


def sniff_session_document(doc: Any) -> float:
    """A Session.Info file: ``ses_`` id, title, time, and the project or directory it belongs to."""
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not doc["id"].startswith("ses_"):
        return 0.0
    if "title" in doc and _time_keys(doc) and ("projectID" in doc or "directory" in doc):
        return 1.0
    return 0.0


_PROJECT_KEYS = {"id", "worktree", "vcs", "name", "icon", "time", "sandboxes", "commands"}


def sniff_side_document(doc: Any) -> float:
    """A message, part or project file of the JSON store (read through its session, so alone it yields nothing)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        return 0.0
    if doc["id"].startswith("msg_") and doc.get("role") in ("user", "assistant") and str(doc.get("sessionID", "")).startswith("ses_"):
        return 1.0
    if doc["id"].startswith("prt_") and str(doc.get("messageID", "")).startswith("msg_") and isinstance(doc.get("type"), str):
        return 1.0
    if isinstance(doc.get("worktree"), str) and _time_keys(doc) and set(doc) <= _PROJECT_KEYS:
        return 0.9  # project/<projectID>.json: which folder a project is
    return 0.0


def count_sessions(path: Path) -> int:
    """Sessions in a data folder, storage folder or database, counted from file names and rows."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == ".json":
            return 1
        return _count_db(path)
    seen: set[str] = set()
    total = 0
    for db in _databases(path):
        ids = _db_session_ids(db)
        seen.update(ids)
        total += len(ids)
    storage = _storage_of(path)
    if storage is not None:
        total += sum(1 for f in (storage / "session").glob("*/*.json") if f.stem not in seen)
    return total


def _db_session_ids(db: Path) -> set[str]:
    import sqlite3

    try:
        connection = _connect(db)
        try:
            return {row[0] for row in connection.execute("SELECT id FROM session")}
        finally:
            connection.close()
    except sqlite3.Error:
        return set()


def _count_db(db: Path) -> int:
    return len(_db_session_ids(db)) if _is_opencode_db(db) else 0


def _iter_nothing(path: Path) -> Iterator[Conversation | ImportProblem]:
    return iter(())


FORMAT = MemoryFormat(
    SOURCE_FORMAT,
    iter_opencode,
    sniff_document=sniff_session_document,
    sniff_file=sniff_file,
    sniff_folder=sniff_folder,
    options=frozenset({"include_thinking"}),
    suffixes=(".db",),
    database=True,
    title="OpenCode sessions",
    agent="OpenCode",
    where="~/.local/share/opencode (opencode.db, or storage/session, message and part JSON files)",
    kept="user and assistant turns per step, tool calls with their outputs or errors, the user's system prompt; "
    "model, provider, cwd, version and title; reasoning on request; subagent sessions linked to their parent",
    outcome_signals="tool errors, refused permissions, aborted messages and tools, API and provider errors",
    locations=("~/.local/share/opencode",),
    count_sessions=count_sessions,
)
SIDE_FORMAT = MemoryFormat(
    "opencode_side",
    _iter_nothing,
    sniff_document=sniff_side_document,
    side_file=True,
    title="OpenCode message, part and project files (read through their session)",
    agent="OpenCode",
    where="~/.local/share/opencode/storage/message, part and project",
)
