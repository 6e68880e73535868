"""Aider chat history, OpenCode session storage and Cursor's chat databases: import from real fixtures (Aider, a
Cursor workspace database) and from ones written to the owner's published shapes (OpenCode, Cursor's global database).

Counts are computed from the fixtures themselves (plain text scans for Aider, json for OpenCode), never by asking
the importer twice."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from model_customization.memory import detect
from model_customization.memory.aider import count_sessions as aider_count_sessions
from model_customization.memory.aider import iter_aider, sniff_file, sniff_input_history
from model_customization.memory.cursor import count_sessions as cursor_count_sessions
from model_customization.memory.cursor import iter_cursor
from model_customization.memory.cursor import sniff_file as cursor_sniff_file
from model_customization.memory.opencode import (
    count_sessions as opencode_count_sessions,
)
from model_customization.memory.opencode import iter_opencode
from model_customization.memory.records import Conversation, ImportProblem

FIXTURES = Path(__file__).resolve().parent / "fixtures"
AIDER = FIXTURES / "aider" / "chat-history.md"
OPENCODE = FIXTURES / "opencode"
STORAGE = OPENCODE / "storage"
ROOT_SESSION = "ses_2b7e41c5affe0QHk7Nq3Rw1sVd"
CHILD_SESSION = "ses_2b7e3f0e9ffeGm8Lw2Xk5Tq9Pz"


def _conversations(records) -> list[Conversation]:
    return [r for r in records if isinstance(r, Conversation)]


# ------------------------------------------------------------------------------------------------------------ Aider


def _aider_sessions_by_start() -> dict[str, list[str]]:
    """The fixture's lines per session header, read with plain string operations."""
    sessions: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in AIDER.read_text(encoding="utf-8").splitlines():
        if line.startswith("# aider chat started at "):
            current = sessions.setdefault(line.removeprefix("# aider chat started at ").replace(" ", "T"), [])
        elif current is not None:
            current.append(line)
    return sessions


def _aider_by_start() -> dict[str, Conversation]:
    return {c.started_at: c for c in _conversations(iter_aider(AIDER))}


def test_aider_one_conversation_per_launch_that_talked_to_the_model():
    sessions = _aider_sessions_by_start()
    assert len(sessions) == 8
    # A launch is a conversation when someone typed a prompt (a #### line that is not a /command).
    talked = {start for start, lines in sessions.items() if any(ln.startswith("#### ") and not ln[5:].lstrip().startswith("/") for ln in lines)}
    conversations = _aider_by_start()
    assert set(conversations) == talked and len(talked) == 7
    assert aider_count_sessions(AIDER) == 8  # count_sessions counts headers, including the launch with no prompt
    assert all(c.source_format == "aider" for c in conversations.values())
    assert len({c.session_id for c in conversations.values()}) == 7


def test_aider_reply_keeps_the_search_replace_block_verbatim():
    lines = _aider_sessions_by_start()["2024-08-05T19:33:32"]
    prompt = lines.index("#### Use the Spinner instead of the inlined custom spinner  ")
    report = next(i for i in range(prompt, len(lines)) if lines[i].startswith("> Tokens:"))
    reply = "\n".join(lines[prompt + 1 : report]).strip()
    conv = _aider_by_start()["2024-08-05T19:33:32"]
    assert [m.role for m in conv.messages] == ["user", "assistant"]  # /diff and /ex are commands, not prompts
    assert conv.messages[0].content == "Use the Spinner instead of the inlined custom spinner"
    assert conv.messages[1].content == reply
    assert "<<<<<<< SEARCH" in reply and ">>>>>>> REPLACE" in reply
    assert conv.metadata["model"] == "claude-3-5-sonnet-20240620"
    assert conv.metadata["edit_format"] == "diff"
    assert conv.metadata["version"] == "0.47.2-dev"
    assert conv.metadata["edited_files"] == ["aider/utils.py"]
    assert conv.started_at == "2024-08-05T19:33:32"
    assert conv.outcome.successful


def test_aider_failed_edits_reflected_to_the_model_are_the_user_turns_it_answers():
    conv = _aider_by_start()["2024-08-06T14:13:01"]
    # The prompt was sent three times (an overloaded API, then ^C) before one got an answer; the answer came from
    # gpt-4o after two /model switches. Then two failed SEARCH blocks were reflected back and answered.
    assert [m.role for m in conv.messages] == ["user", "assistant"] * 3
    assert conv.messages[0].content.startswith("remove `cache_missing`")
    reflected = conv.messages[2].content
    assert reflected.startswith("# 1 SEARCH/REPLACE block failed to match!")
    assert "SearchReplaceNoExactMatch" in reflected
    assert "Tokens:" not in reflected and "did not conform" not in reflected
    assert conv.messages[-1].content.startswith("It seems the previous block was not necessary.")
    assert conv.metadata["model"] == "gpt-4o"
    assert conv.outcome.is_error and conv.outcome.interrupted


def test_aider_outcomes_interrupt_failed_edit_and_undo():
    by_start = _aider_by_start()
    interrupted = by_start["2024-08-05T20:39:59"]
    assert interrupted.outcome.interrupted and interrupted.metadata["model"] == "gpt-4o-mini"
    assert [m.content for m in interrupted.messages if m.role == "user"] == ["hi"]  # the retry got no reply
    assert by_start["2024-08-06T09:52:26"].outcome.is_error  # "The LLM did not conform to the edit format."
    assert by_start["2024-08-06T10:03:58"].outcome.user_rejected  # two /undo
    assert not by_start["2024-08-06T10:03:58"].outcome.is_error


def test_aider_ask_command_is_not_doubled():
    conv = _aider_by_start()["2024-08-21T16:17:00"]
    # "#### /ask what is this?" is followed by Aider's own "####  what is this?": one user turn.
    assert (conv.messages[0].role, conv.messages[0].content) == ("user", "what is this?")
    assert [m.role for m in conv.messages] == ["user", "assistant"]
    assert conv.metadata["model"] == "claude-3-5-sonnet-20240620"  # announced as "Main model:"
    assert all(not m.content.startswith("/") for c in _aider_by_start().values() for m in c.messages)


def _write_history(path: Path, reply: str) -> Path:
    path.write_text(
        "\n# aider chat started at 2025-02-01 10:00:00\n\n> Aider v0.74.1\n> Main model: deepseek/deepseek-reasoner with diff edit format\n\n"
        f"#### why is the sky blue?  \n#### answer briefly  \n\n{reply}\n\n> Tokens: 10 sent, 20 received.  \n",
        encoding="utf-8",
    )
    return path


def test_aider_reasoning_only_on_request_and_multi_line_prompts(tmp_path: Path):
    tag = "thinking-content-7bbeb8e1441453ad999a0bbba8a46d4b"
    path = _write_history(tmp_path / ".aider.chat.history.md", f"<{tag}>\nRayleigh scattering.\n</{tag}>\n\nShort waves scatter more.")
    plain = _conversations(iter_aider(path))[0]
    assert plain.messages[0].content == "why is the sky blue?\nanswer briefly"
    assert plain.messages[1].content == "Short waves scatter more."
    assert plain.metadata["cwd"] == str(tmp_path)  # the default history lives in the project's root
    thinking = _conversations(iter_aider(path, include_thinking=True))[0]
    assert thinking.messages[1].content == "<thinking>Rayleigh scattering.</thinking>\n\nShort waves scatter more."


def test_aider_declined_shell_command_is_a_rejection(tmp_path: Path):
    # confirm_ask writes "<question> <first letter of the answer>" as an output line (aider/io.py)
    path = _write_history(tmp_path / "chat.md", "Run this:\n\n```bash\nrm -rf build\n```")
    with path.open("a", encoding="utf-8") as handle:
        handle.write("> Run shell command? (Y)es/(N)o/(D)on't ask again [Yes]: n  \n")
    conv = _conversations(iter_aider(path))[0]
    assert conv.outcome.user_rejected and not conv.outcome.is_error
    assert conv.metadata["model"] == "deepseek/deepseek-reasoner" and conv.metadata["version"] == "0.74.1"


def test_aider_a_bad_line_is_reported_and_the_rest_is_read(tmp_path: Path):
    path = tmp_path / "history.md"
    path.write_bytes(AIDER.read_bytes().replace(b"#### hi  \n", b"#### hi \xff\xfe \n", 1))
    records = list(iter_aider(path))
    problems = [r for r in records if isinstance(r, ImportProblem)]
    assert len(problems) == 1 and "invalid UTF-8" in problems[0].message
    bad_line = next(i for i, ln in enumerate(path.read_bytes().split(b"\n"), start=1) if b"\xff" in ln)
    assert problems[0].line == bad_line
    conversations = _conversations(records)
    assert len(conversations) == 7
    assert conversations[1].messages[0].content == "hi \ufffd\ufffd"


def test_aider_sniffing_and_detection(tmp_path: Path):
    assert sniff_file(AIDER) == 1.0
    assert detect.detect_format(AIDER) == "aider"
    readme = tmp_path / "README.md"
    readme.write_text("# A project\n\n#### not a chat\n")
    assert sniff_file(readme) == 0
    named = _write_history(tmp_path / ".aider.chat.history.md", "Fine.")
    assert detect.detect_format(named) == "aider"
    # Aider's prompt history (prompt_toolkit's FileHistory) is a side file: recognised, nothing imported.
    inputs = tmp_path / ".aider.input.history"
    inputs.write_text("\n# 2025-02-01 10:00:03.123456\n+why is the sky blue?\n+answer briefly\n")
    assert sniff_input_history(inputs) == 1.0
    assert detect.detect_format(inputs) == "aider_input_history"
    skipped: list = []
    records = list(detect.iter_memory([tmp_path], skipped=skipped))
    assert [type(r).__name__ for r in records] == ["Conversation"]
    assert [Path(s.file).name for s in skipped] == ["README.md"]


# --------------------------------------------------------------------------------------------------------- OpenCode


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _parts_of(session_id: str) -> list[dict]:
    parts = []
    for message_file in sorted((STORAGE / "message" / session_id).glob("*.json")):
        parts += [_load(p) for p in sorted((STORAGE / "part" / message_file.stem).glob("*.json"))]
    return parts


def _by_id(records) -> dict[str, Conversation]:
    return {c.session_id: c for c in _conversations(records)}


def test_opencode_storage_folder_imports_every_session():
    session_files = sorted((STORAGE / "session").glob("*/*.json"))
    conversations = _by_id(iter_opencode(OPENCODE))
    assert set(conversations) == {f.stem for f in session_files} == {ROOT_SESSION, CHILD_SESSION}
    assert opencode_count_sessions(OPENCODE) == len(session_files)
    assert set(_by_id(iter_opencode(STORAGE))) == set(conversations)  # the storage folder itself works too


def test_opencode_tool_calls_are_paired_with_their_results():
    conv = _by_id(iter_opencode(OPENCODE))[ROOT_SESSION]
    tools = [p for p in _parts_of(ROOT_SESSION) if p["type"] == "tool"]
    calls = [c for m in conv.messages if m.role == "assistant" for c in m.tool_calls]
    assert [(c.id, c.name) for c in calls] == [(p["callID"], p["tool"]) for p in tools]
    assert [json.loads(c.arguments) for c in calls] == [p["state"]["input"] for p in tools]
    results = {m.tool_call_id: m.content for m in conv.messages if m.role == "tool"}
    expected = {p["callID"]: p["state"].get("output", p["state"].get("error")) for p in tools}
    assert results == expected
    # each result follows the assistant turn that made the call
    for k, message in enumerate(conv.messages):
        if message.role == "tool":
            caller = next(m for m in reversed(conv.messages[:k]) if m.role == "assistant")
            assert message.tool_call_id in {c.id for c in caller.tool_calls}


def test_opencode_turns_final_answer_metadata_and_outcome():
    conv = _by_id(iter_opencode(OPENCODE))[ROOT_SESSION]
    users = [p["text"] for p in _parts_of(ROOT_SESSION) if p["type"] == "text" and _load(STORAGE / "message" / ROOT_SESSION / f"{p['messageID']}.json")["role"] == "user"]
    assert [m.content for m in conv.messages if m.role == "user"] == users
    # The first answer ran three steps: read + bash, a refused edit, then its final text.
    answer_texts = [m.content for m in conv.messages if m.role == "assistant" and m.content]
    assert answer_texts[0] == "Let me look at the failing test first."
    assert answer_texts[-1].startswith("The helper compares the string `due` with a `date`.")
    assert not any("<thinking>" in m.content for m in conv.messages)  # reasoning only on request
    info = _load(next((STORAGE / "session").glob(f"*/{ROOT_SESSION}.json")))
    assert conv.metadata["cwd"] == info["directory"]
    assert conv.metadata["version"] == info["version"]
    assert conv.metadata["title"] == info["title"]
    assert conv.metadata["model"] == "claude-sonnet-4-20250514" and conv.metadata["provider"] == "anthropic"
    assert conv.started_at == "2025-08-05T08:00:00.000Z"  # time.created 1754380800000 ms
    assert conv.outcome.user_rejected and conv.outcome.is_error  # the refused edit
    assert conv.outcome.interrupted  # MessageAbortedError on the last answer
    child = _by_id(iter_opencode(OPENCODE))[CHILD_SESSION]
    assert child.parent_session_id == ROOT_SESSION
    assert child.messages[-1].content == "todo/dates.py defines parse_day(text) -> date, used by todo/list.py."
    assert child.outcome.successful


def test_opencode_reasoning_on_request():
    conv = _by_id(iter_opencode(OPENCODE, include_thinking=True))[ROOT_SESSION]
    reasoning = next(p["text"] for p in _parts_of(ROOT_SESSION) if p["type"] == "reasoning")
    assert conv.messages[1].content.startswith(f"<thinking>{reasoning}</thinking>")


def test_opencode_one_session_file_reads_its_messages_beside_it():
    session_file = next((STORAGE / "session").glob(f"*/{CHILD_SESSION}.json"))
    assert detect.detect_format(session_file) == "opencode"
    conversations = _conversations(detect.iter_memory([session_file]))
    assert [c.session_id for c in conversations] == [CHILD_SESSION]
    # message and part files alone are side files: recognised, nothing imported, nothing reported
    message_file = next((STORAGE / "message" / CHILD_SESSION).glob("*.json"))
    part_file = next((STORAGE / "part").glob("*/*.json"))
    assert detect.detect_format(message_file) == detect.detect_format(part_file) == "opencode_side"
    assert list(detect.iter_memory([message_file, part_file])) == []


def test_opencode_folder_detection_and_walk(tmp_path: Path):
    assert detect.detect_format(OPENCODE) == "opencode"
    assert detect.detect_format(STORAGE) == "opencode"
    home = tmp_path / "share"
    shutil.copytree(OPENCODE, home / "opencode")
    records = list(detect.iter_memory([home]))
    # the data folder is claimed whole: each session once, no message or part file read on its own
    assert sorted(c.session_id for c in _conversations(records)) == sorted([ROOT_SESSION, CHILD_SESSION])
    assert not [r for r in records if isinstance(r, ImportProblem)]


def _build_db(path: Path) -> Path:
    """opencode.db as OpenCode's JSON-to-SQLite migration writes it, from the same JSON files (ids out of `data`)."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE session (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, parent_id TEXT, slug TEXT NOT NULL,
            directory TEXT NOT NULL, title TEXT NOT NULL, version TEXT NOT NULL, time_created INTEGER NOT NULL,
            time_updated INTEGER NOT NULL);
        CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT NOT NULL, time_created INTEGER NOT NULL,
            time_updated INTEGER NOT NULL, data TEXT NOT NULL);
        CREATE TABLE part (id TEXT PRIMARY KEY, message_id TEXT NOT NULL, session_id TEXT NOT NULL,
            time_created INTEGER NOT NULL, time_updated INTEGER NOT NULL, data TEXT NOT NULL);
        """
    )
    for session_file in sorted((STORAGE / "session").glob("*/*.json")):
        info = _load(session_file)
        db.execute(
            "INSERT INTO session VALUES (?, ?, ?, '', ?, ?, ?, ?, ?)",
            (session_file.stem, session_file.parent.name, info.get("parentID"), info["directory"], info["title"], info["version"], info["time"]["created"], info["time"]["updated"]),
        )
        for message_file in sorted((STORAGE / "message" / session_file.stem).glob("*.json")):
            message = _load(message_file)
            created = message["time"]["created"]
            data = {k: v for k, v in message.items() if k not in ("id", "sessionID")}
            db.execute("INSERT INTO message VALUES (?, ?, ?, ?, ?)", (message_file.stem, session_file.stem, created, created, json.dumps(data)))
            for part_file in sorted((STORAGE / "part" / message_file.stem).glob("*.json")):
                part = {k: v for k, v in _load(part_file).items() if k not in ("id", "messageID", "sessionID")}
                db.execute("INSERT INTO part VALUES (?, ?, ?, ?, ?, ?)", (part_file.stem, message_file.stem, session_file.stem, created, created, json.dumps(part)))
    db.commit()
    db.close()
    return path


def _comparable(conv: Conversation):
    return conv.session_id, [(m.role, m.content, [(c.id, c.name, c.arguments) for c in m.tool_calls], m.tool_call_id) for m in conv.messages], conv.outcome, conv.started_at, conv.parent_session_id, conv.metadata


def test_opencode_sqlite_store_reads_like_the_json_store(tmp_path: Path):
    db = _build_db(tmp_path / "opencode.db")
    from_db = _by_id(iter_opencode(db))
    from_json = _by_id(iter_opencode(OPENCODE))
    assert {k: _comparable(v) for k, v in from_db.items()} == {k: _comparable(v) for k, v in from_json.items()}
    assert detect.detect_format(db) == "opencode"
    assert opencode_count_sessions(db) == 2
    # a data folder with both stores (the JSON store stays after OpenCode migrates it): each session once
    home = tmp_path / "opencode"
    shutil.copytree(STORAGE, home / "storage")
    shutil.move(db, home / "opencode.db")
    assert sorted(c.session_id for c in _conversations(iter_opencode(home))) == sorted(from_json)
    assert opencode_count_sessions(home) == 2


def test_opencode_database_opened_read_only(tmp_path: Path):
    db = _build_db(tmp_path / "opencode.db")
    db.chmod(0o444)
    try:
        assert len(_conversations(iter_opencode(db))) == 2
    finally:
        db.chmod(0o644)


def test_opencode_a_foreign_database_is_not_opencode(tmp_path: Path):
    other = tmp_path / "notes.db"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE session (id TEXT, title TEXT)")
    connection.commit()
    connection.close()
    assert detect.detect_format(other) is None


def test_opencode_a_broken_part_is_reported_and_the_rest_read(tmp_path: Path):
    copy = tmp_path / "storage"
    shutil.copytree(STORAGE, copy)
    broken = next((copy / "part").glob("*/*.json"))
    broken.write_text('{"id": "prt_x", "type": "text", "text": ')
    records = list(iter_opencode(copy))
    problems = [r for r in records if isinstance(r, ImportProblem)]
    assert [Path(p.file).name for p in problems] == [broken.name]
    assert len(_conversations(records)) == 2


@pytest.mark.parametrize("name", ["aider", "opencode", "cursor"])
def test_formats_describe_themselves(name: str):
    fmt = next(f for f in detect.FORMATS if f.name == name)
    assert fmt.title and fmt.agent and fmt.where and fmt.kept and fmt.outcome_signals and fmt.count_sessions
    assert all("auth" not in location for location in fmt.locations)


# ----------------------------------------------------------------------------------------------------------- Cursor

CURSOR = FIXTURES / "cursor" / "workspace-state.vscdb"


def _item(db: Path, key: str):
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return json.loads(connection.execute("SELECT value FROM ItemTable WHERE key = ?", (key,)).fetchone()[0])
    finally:
        connection.close()


def test_cursor_workspace_database_every_composer_and_chat_tab():
    composers = _item(CURSOR, "composer.composerData")["allComposers"]
    tabs = _item(CURSOR, "workbench.panel.aichat.view.aichat.chatdata")["tabs"]
    conversations = _by_id(iter_cursor(CURSOR))
    assert set(conversations) == {c["composerId"] for c in composers} | {t["tabId"] for t in tabs}
    assert len(conversations) == 8 == cursor_count_sessions(CURSOR)
    for composer in composers:
        conv = conversations[composer["composerId"]]
        bubbles = [b for b in composer["conversation"] if b["text"].strip()]
        assert [m.role for m in conv.messages] == [{1: "user", 2: "assistant"}[b["type"]] for b in bubbles]
        assert [m.content for m in conv.messages] == [b["text"].strip() if b["type"] == 2 else b["text"] for b in bubbles]
        assert conv.started_at.startswith("2024-11-1")
    for tab in tabs:
        conv = conversations[tab["tabId"]]
        said = [b for b in tab["bubbles"] if b.get("text", "").strip()]  # the last user bubble is the empty input box
        assert len(conv.messages) == len(said) and conv.messages[-1].role == "assistant"
        assert conv.metadata == {"title": tab["chatTitle"], "model": "claude-3.5-sonnet"}
    assert detect.detect_format(CURSOR) == "cursor"


def _global_db(path: Path, rows: dict[str, object]) -> Path:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB)")
    connection.execute("CREATE TABLE cursorDiskKV (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB)")
    connection.executemany("INSERT INTO cursorDiskKV VALUES (?, ?)", [(k, json.dumps(v)) for k, v in rows.items()])
    connection.commit()
    connection.close()
    return path


COMPOSER = "5f1c0a3e-8d2b-4c7e-9a41-2e6b0d9c7f13"


def _agent_rows() -> dict[str, object]:
    """A 2025 agent chat in the global layout (hand-written from the layout public readers document)."""
    bubbles = [
        ("b1", {"_v": 3, "type": 1, "text": "Why does `npm test` fail?", "createdAt": "2025-06-02T09:00:00.000Z", "modelInfo": {"modelName": "claude-4-sonnet"}}),
        ("b2", {"_v": 3, "type": 2, "text": "Let me run the tests.", "thinking": {"text": "Run them first."}}),
        ("b3", {"_v": 3, "type": 2, "text": "", "toolFormerData": {"name": "run_terminal_cmd", "toolCallId": "toolu_01", "rawArgs": '{"command": "npm test"}', "result": '{"output": "1 failing: expected 2 to equal 3"}', "status": "completed"}}),
        ("b4", {"_v": 3, "type": 2, "text": "", "toolFormerData": {"name": "edit_file", "toolCallId": "toolu_02", "params": '{"target_file": "src/sum.js"}', "result": None, "status": "error"}}),
        ("b5", {"_v": 3, "type": 2, "text": "`sum` adds one too many; the edit failed, so change line 3 of src/sum.js by hand."}),
    ]
    rows: dict[str, object] = {f"bubbleId:{COMPOSER}:{bid}": bubble for bid, bubble in bubbles}
    rows[f"composerData:{COMPOSER}"] = {
        "_v": 10,
        "composerId": COMPOSER,
        "name": "Failing npm test",
        "createdAt": 1748854800000,
        "status": "completed",
        "fullConversationHeadersOnly": [{"bubbleId": bid, "type": bubble["type"]} for bid, bubble in bubbles] + [{"bubbleId": "never-stored", "type": 2}],
    }
    rows["composerData:empty"] = {"_v": 10, "composerId": "empty", "fullConversationHeadersOnly": [], "conversationMap": {}, "status": "none", "createdAt": 1748854700000}
    rows["composerData:null"] = None
    return rows


def test_cursor_global_database_tool_calls_paired_with_results(tmp_path: Path):
    db = _global_db(tmp_path / "state.vscdb", _agent_rows())
    conversations = _by_id(iter_cursor(db))
    assert list(conversations) == [COMPOSER]  # the empty composer and the null row are not conversations
    assert cursor_count_sessions(db) == 1
    conv = conversations[COMPOSER]
    assert [m.role for m in conv.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    calls = conv.messages[1].tool_calls
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("toolu_01", "run_terminal_cmd", {"command": "npm test"}),
        ("toolu_02", "edit_file", {"target_file": "src/sum.js"}),
    ]
    assert [(m.tool_call_id, m.content) for m in conv.messages[2:4]] == [("toolu_01", '{"output": "1 failing: expected 2 to equal 3"}'), ("toolu_02", "")]
    assert conv.messages[1].content == "Let me run the tests."
    assert conv.messages[-1].content.startswith("`sum` adds one too many")
    assert conv.metadata == {"title": "Failing npm test", "model": "claude-4-sonnet"}
    assert conv.started_at == "2025-06-02T09:00:00.000Z"
    assert conv.outcome.is_error and not conv.outcome.interrupted
    thinking = _by_id(iter_cursor(db, include_thinking=True))[COMPOSER]
    assert thinking.messages[1].content == "<thinking>Run them first.</thinking>\n\nLet me run the tests."
    assert detect.detect_format(db) == "cursor"


def test_cursor_database_is_opened_read_only(tmp_path: Path):
    db = _global_db(tmp_path / "state.vscdb", _agent_rows())
    db.chmod(0o444)
    try:
        assert len(_conversations(iter_cursor(db))) == 1
    finally:
        db.chmod(0o644)
    copy = tmp_path / "copy.vscdb"
    shutil.copy(CURSOR, copy)
    before = copy.read_bytes()
    list(iter_cursor(copy))
    assert copy.read_bytes() == before and not list(tmp_path.glob("copy.vscdb-*"))


def test_cursor_other_databases_score_zero(tmp_path: Path):
    vscode = tmp_path / "state.vscdb"  # VS Code's own state database: same tables, none of Cursor's chat keys
    connection = sqlite3.connect(vscode)
    connection.execute("CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB)")
    connection.execute("INSERT INTO ItemTable VALUES ('workbench.explorer.treeViewState', '{}')")
    connection.commit()
    connection.close()
    assert cursor_sniff_file(vscode) == 0 and detect.detect_format(vscode) is None
    text = tmp_path / "notes.vscdb"
    text.write_text("not a database")
    assert cursor_sniff_file(text) == 0


def test_cursor_user_folder_walk_imports_each_database(tmp_path: Path):
    user = tmp_path / "Cursor" / "User"
    _global_db((user / "globalStorage").mkdir(parents=True) or user / "globalStorage" / "state.vscdb", _agent_rows())
    (user / "workspaceStorage" / "f87f6e0b2cf1ae8645cc0c5ffaa99529").mkdir(parents=True)
    shutil.copy(CURSOR, user / "workspaceStorage" / "f87f6e0b2cf1ae8645cc0c5ffaa99529" / "state.vscdb")
    records = list(detect.iter_memory([tmp_path]))
    assert not [r for r in records if isinstance(r, ImportProblem)]
    assert len(_conversations(records)) == 1 + 8
