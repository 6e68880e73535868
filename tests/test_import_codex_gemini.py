"""Codex CLI rollouts and Gemini CLI sessions/checkpoints (tests/fixtures/codex_cli, tests/fixtures/gemini_cli; each
folder's SOURCES.md says which files are real and which are hand-written from the owner's source).

Expected numbers for the real files are computed here from the raw JSON, not by the importer; those of the
hand-written files are counted by hand, as the comments say.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from model_customization.memory import detect
from model_customization.memory.codex_cli import iter_codex_cli
from model_customization.memory.gemini_cli import iter_gemini_cli
from model_customization.memory.records import Conversation, ImportProblem

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CODEX = FIXTURES / "codex_cli"
GEMINI = FIXTURES / "gemini_cli"
CODEX_TUI = CODEX / "rollout-2026-05-11T11-26-55-019e1625-789d-76c0-80ab-3724b5ddb799.jsonl"
CODEX_DESKTOP = CODEX / "rollout-2026-05-11T13-28-45-019e1695-0522-7c83-8b39-0dd379793f80.jsonl"
CODEX_OLD = CODEX / "rollout-2025-08-20T13-20-47-5c1f3b2a-8d4e-4f6a-9b7c-2e1d0a9f8b7c.jsonl"
CODEX_TS = CODEX / "rollout-2025-04-20-b7e2c9d0-4f3a-4a8e-9d21-6c5b0e7f1a23.json"
GEMINI_SESSION = GEMINI / "session-2025-12-01T21-45-5b959dae.json"
GEMINI_FILE_OPS = GEMINI / "session-2026-01-16T11-01-file-ops-37b7abef.json"
GEMINI_ONE_LINE = GEMINI / "session-2025-12-01T21-45-5b959dae-one-line.json"
GEMINI_JSONL = GEMINI / "session-2026-05-02T10-15-4f1d2c3b.jsonl"
GEMINI_CHECKPOINT_OLD = GEMINI / "checkpoint-notes.json"
GEMINI_CHECKPOINT_NEW = GEMINI / "checkpoint-rename%20notes.json"


def only_conversation(records) -> Conversation:
    records = list(records)
    problems = [r for r in records if isinstance(r, ImportProblem)]
    assert not problems, problems
    assert len(records) == 1
    return records[0]


def roles(conv: Conversation) -> Counter:
    return Counter(m.role for m in conv.messages)


def assert_tool_results_paired(conv: Conversation) -> None:
    """Every tool message answers a call of the assistant message it follows (tool messages in between)."""
    open_calls: set[str] = set()
    for message in conv.messages:
        if message.role == "assistant":
            open_calls = {c.id for c in message.tool_calls}
        elif message.role == "tool":
            assert message.tool_call_id in open_calls, message.tool_call_id
            open_calls.discard(message.tool_call_id)
        else:
            open_calls = set()


def rollout_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def payloads(lines: list[dict], kind: str, item_type: str | None = None) -> list[dict]:
    return [o["payload"] for o in lines if o.get("type") == kind and (item_type is None or o["payload"].get("type") == item_type)]


# --- Codex CLI ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CODEX_TUI, CODEX_DESKTOP])
def test_codex_real_rollout_messages_tools_and_answer(path):
    lines = rollout_lines(path)
    meta = lines[0]["payload"]
    conv = only_conversation(iter_codex_cli(path))
    prompts = [e["message"] for e in payloads(lines, "event_msg", "user_message")]
    calls = [p for o in ("function_call", "custom_tool_call", "local_shell_call") for p in payloads(lines, "response_item", o)]
    call_ids = {p["call_id"] for p in calls}
    outputs = [p for o in ("function_call_output", "custom_tool_call_output") for p in payloads(lines, "response_item", o)]
    answered = {p["call_id"] for p in outputs} & call_ids
    answers = [p["content"][0]["text"] for p in payloads(lines, "response_item", "message") if p["role"] == "assistant"]

    counts = roles(conv)
    assert counts["user"] == len(prompts)  # each prompt once, though both a response item and an event carry it
    assert [m.content for m in conv.messages if m.role == "user"] == [p for p in prompts]
    assert sum(len(m.tool_calls) for m in conv.messages) == len(calls)
    assert counts["tool"] == len(answered)
    assert_tool_results_paired(conv)
    # Every answer the model wrote appears exactly once; the agent_message events add nothing.
    texts = [m.content for m in conv.messages if m.role == "assistant"]
    for answer in answers:
        assert sum(t.count(answer) for t in texts) == 1
    assert [m for m in conv.messages if m.role == "assistant" and m.content][-1].content == answers[-1]
    assert conv.messages[0].role == "system"
    assert conv.messages[0].content.startswith(meta["base_instructions"]["text"][:200])
    assert conv.session_id == meta["id"]
    assert conv.started_at == meta["timestamp"]
    assert conv.metadata["cwd"] == meta["cwd"]
    assert conv.metadata["agent_version"] == meta["cli_version"]
    assert conv.source_format == "codex_cli"


def test_codex_tui_rollout_context_model_and_failed_commands():
    lines = rollout_lines(CODEX_TUI)
    conv = only_conversation(iter_codex_cli(CODEX_TUI))
    turn = payloads(lines, "turn_context")[0]
    assert conv.metadata["model"] == turn["model"] == "gpt-5.5"
    assert conv.metadata["approval_policy"] == turn["approval_policy"]
    assert conv.metadata["git_branch"] == lines[0]["payload"]["git"]["branch"]
    # The developer message and the AGENTS.md / environment context Codex injected are system context, not prompts.
    developer = payloads(lines, "response_item", "message")[0]
    assert developer["role"] == "developer"
    assert developer["content"][0]["text"][:100] in conv.messages[0].content
    assert "<environment_context>" in conv.messages[0].content
    assert all("<environment_context>" not in m.content for m in conv.messages[1:])
    # `rg` without matches exits 1 in this session (see the exec_command_end events): a non-zero exit is an error.
    assert any(e.get("exit_code") not in (0, None) for e in payloads(lines, "event_msg", "exec_command_end"))
    assert conv.outcome.is_error and not conv.outcome.user_rejected and not conv.outcome.interrupted
    # Web searches have no result to pair: left out and counted.
    assert conv.metadata["web_searches"] == len(payloads(lines, "response_item", "web_search_call"))
    # apply_patch is a free-form custom tool call: its input is kept as {"input": ...}.
    patch = payloads(lines, "response_item", "custom_tool_call")[0]
    call = next(c for m in conv.messages for c in m.tool_calls if c.id == patch["call_id"])
    assert json.loads(call.arguments) == {"input": patch["input"]}


def test_codex_reasoning_is_kept_only_on_request_and_never_encrypted():
    # Old fixture, counted by hand: header, 4 state markers, 2 injected-context user messages, 1 prompt, 1
    # reasoning item with a summary, 2 shell calls with their outputs (the first exits 1), 1 answer.
    plain = only_conversation(iter_codex_cli(CODEX_OLD))
    thinking = only_conversation(iter_codex_cli(CODEX_OLD, include_thinking=True))
    assert roles(plain) == Counter(system=1, user=1, assistant=3, tool=2)
    assert "<thinking>" not in "".join(m.content for m in plain.messages)
    first_assistant = next(m for m in thinking.messages if m.role == "assistant")
    assert first_assistant.content.startswith("<thinking>**Running the failing test**")
    assert [c.id for c in first_assistant.tool_calls] == ["call_1"]
    assert "opaque" not in "".join(m.content for m in thinking.messages)


def test_codex_old_rollout_without_envelope():
    conv = only_conversation(iter_codex_cli(CODEX_OLD))
    assert conv.session_id == "5c1f3b2a-8d4e-4f6a-9b7c-2e1d0a9f8b7c"
    assert conv.started_at == "2025-08-20T13:20:47.060Z"
    assert conv.metadata["cwd"] == "/home/dev/widgets"  # only <environment_context> names it in this version
    assert conv.metadata["git_branch"] == "main"
    system = conv.messages[0].content
    # The meta instructions and the <user_instructions> message carry the same text: it appears once.
    assert system.count("Always run the tests before you finish.") == 1
    assert [m.content for m in conv.messages if m.role == "user"] == ["Why does test_parse fail?"]
    assert [m.tool_call_id for m in conv.messages if m.role == "tool"] == ["call_1", "call_2"]
    assert json.loads(conv.messages[2].tool_calls[0].arguments)["command"][-1] == "pytest -q tests/test_parse.py"
    assert conv.messages[-1].content.startswith("`parse` drops the last field")
    assert conv.outcome.is_error  # call_1's output metadata says exit_code 1


def test_codex_typescript_rollout_document():
    doc = json.loads(CODEX_TS.read_text(encoding="utf-8"))
    conv = only_conversation(iter_codex_cli(CODEX_TS))
    items = doc["items"]
    assert conv.session_id == doc["session"]["id"]
    assert conv.started_at == doc["session"]["timestamp"]
    assert conv.messages[0].content == doc["session"]["instructions"]
    assert roles(conv)["user"] == sum(1 for i in items if i.get("role") == "user")
    assert sum(len(m.tool_calls) for m in conv.messages) == sum(1 for i in items if i["type"] == "function_call")
    assert roles(conv)["tool"] == sum(1 for i in items if i["type"] == "function_call_output")
    assert_tool_results_paired(conv)
    assert conv.messages[-1].content == items[-1]["content"][0]["text"]
    assert not conv.outcome.is_error


def envelope(kind: str, payload: dict, ts: str = "2026-03-01T10:00:00.000Z") -> str:
    return json.dumps({"timestamp": ts, "type": kind, "payload": payload})


def user_item(text: str) -> str:
    return envelope("response_item", {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})


def test_codex_rejection_interruption_and_a_bad_line(tmp_path):
    # Strings as codex-rs writes them: a denied command is answered "exec command rejected by user"; Ctrl-C
    # records a turn_aborted event and (newer versions) a <turn_aborted> user message.
    path = tmp_path / "rollout-2026-03-01T10-00-00-019c9d89-ae90-75e2-9555-7855bac35c45.jsonl"
    call = {"type": "function_call", "name": "shell_command", "arguments": '{"command":"rm -rf dist"}', "call_id": "call_x"}
    path.write_text(
        "\n".join(
            [
                envelope("session_meta", {"id": "019c9d89-ae90-75e2-9555-7855bac35c45", "timestamp": "2026-03-01T10:00:00.000Z", "cwd": "/w"}),
                user_item("clean the build"),
                envelope("event_msg", {"type": "user_message", "message": "clean the build"}),
                envelope("response_item", call),
                "{not json",
                envelope("response_item", {"type": "function_call_output", "call_id": "call_x", "output": "exec command rejected by user"}),
                envelope("event_msg", {"type": "turn_aborted", "reason": "interrupted"}),
                user_item("<turn_aborted>\nThe user interrupted the previous turn.\n</turn_aborted>"),
                user_item("leave dist alone then"),
                envelope("response_item", {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "OK."}]}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    records = list(iter_codex_cli(path))
    problems = [r for r in records if isinstance(r, ImportProblem)]
    convs = [r for r in records if isinstance(r, Conversation)]
    assert [(p.line, p.message.startswith("invalid JSON")) for p in problems] == [(5, True)]
    (conv,) = convs
    assert [m.content for m in conv.messages if m.role == "user"] == ["clean the build", "leave dist alone then"]
    assert conv.outcome.user_rejected and conv.outcome.interrupted and not conv.outcome.is_error
    assert_tool_results_paired(conv)


# --- Gemini CLI --------------------------------------------------------------------------------------------------


def gemini_expectations(doc: dict) -> dict:
    messages = doc["messages"]
    gemini = [m for m in messages if m["type"] == "gemini"]
    calls = [tc for m in gemini for tc in m.get("toolCalls") or []]
    return {
        "users": [m["content"] for m in messages if m["type"] == "user"],
        "assistants": sum(1 for m in gemini if m["content"].strip() or m.get("toolCalls")),
        "calls": len(calls),
        "results": [tc["result"][0]["functionResponse"]["response"]["output"] for tc in calls],
        "answer": [m["content"] for m in gemini if m["content"].strip()][-1],
        "model": gemini[0]["model"],
    }


@pytest.mark.parametrize("path", [GEMINI_SESSION, GEMINI_FILE_OPS, GEMINI_ONE_LINE])
def test_gemini_real_session(path):
    doc = json.loads(path.read_text(encoding="utf-8"))
    want = gemini_expectations(doc)
    conv = only_conversation(iter_gemini_cli(path))
    assert [m.content for m in conv.messages if m.role == "user"] == want["users"]
    assert roles(conv)["assistant"] == want["assistants"]
    assert sum(len(m.tool_calls) for m in conv.messages) == want["calls"]
    assert [m.content for m in conv.messages if m.role == "tool"] == want["results"]
    assert_tool_results_paired(conv)
    assert conv.messages[-1].content == want["answer"]
    assert conv.session_id == doc["sessionId"]
    assert conv.started_at == doc["startTime"]
    assert conv.metadata["model"] == want["model"]
    assert conv.metadata["project_hash"] == doc["projectHash"]
    assert conv.outcome.successful
    first_call = next(m.tool_calls[0] for m in conv.messages if m.tool_calls)
    raw_call = next(tc for m in doc["messages"] for tc in m.get("toolCalls") or [])
    assert (first_call.id, first_call.name, json.loads(first_call.arguments)) == (raw_call["id"], raw_call["name"], raw_call["args"])


def test_gemini_thoughts_only_on_request():
    doc = json.loads(GEMINI_SESSION.read_text(encoding="utf-8"))
    subject = doc["messages"][1]["thoughts"][0]["subject"]
    plain = only_conversation(iter_gemini_cli(GEMINI_SESSION))
    thinking = only_conversation(iter_gemini_cli(GEMINI_SESSION, include_thinking=True))
    assert subject not in "".join(m.content for m in plain.messages)
    assert thinking.messages[1].content.startswith(f"<thinking>{subject}\nI've processed")  # the "\\n\\n" lead dropped
    assert thinking.messages[1].content.endswith(doc["messages"][1]["content"])


def test_gemini_jsonl_log_is_replayed():
    # Hand-counted from the fixture: prompts u1, u3, u4, u6 (u2 is the synthetic functionResponse record, u5 and
    # its answer g6 are rewound); gemini g1, g2, g3, g4, g5, g7; three tool calls, each answered once (g1's record
    # is written twice, first still executing); g3's call was declined, g4's failed, and "Request cancelled."
    conv = only_conversation(iter_gemini_cli(GEMINI_JSONL))
    assert roles(conv) == Counter(user=4, assistant=6, tool=3)
    assert [m.content for m in conv.messages if m.role == "user"] == [
        "How many TODO comments are there in src/?",
        "Delete the build folder.",
        "Then just list what is in it.",
        "Thanks, that is all.",
    ]
    assert [c.name for m in conv.messages for c in m.tool_calls] == ["grep_search", "run_shell_command", "list_directory"]
    assert conv.messages[2].content.startswith('Found 3 matches for pattern "TODO"')
    assert_tool_results_paired(conv)
    assert conv.messages[-1].content == "You're welcome!"
    assert conv.outcome.is_error and conv.outcome.user_rejected and conv.outcome.interrupted
    assert conv.session_id == "4f1d2c3b-5a6e-4b7c-8d9e-0f1a2b3c4d5e"
    assert conv.started_at == "2026-05-02T10:15:03.120Z"
    assert conv.metadata["models"] == ["gemini-2.5-pro", "gemini-2.5-flash"]
    assert conv.metadata["summary"] == "Count TODO comments and look for the build folder"


def test_gemini_checkpoints():
    # checkpoint-notes.json, by hand: context turn + "Got it" reply (system, reply dropped), 2 prompts, a call
    # without id answered by name, 2 answers.
    old = only_conversation(iter_gemini_cli(GEMINI_CHECKPOINT_OLD))
    assert roles(old) == Counter(system=1, user=2, assistant=3, tool=1)
    assert old.messages[0].content.startswith("This is the Gemini CLI.")
    assert "Got it. Thanks for the context!" not in [m.content for m in old.messages]
    assert old.messages[3].tool_call_id == old.messages[2].tool_calls[0].id
    assert old.session_id == "checkpoint:notes"
    new = only_conversation(iter_gemini_cli(GEMINI_CHECKPOINT_NEW, include_thinking=True))
    assert new.session_id == "checkpoint:rename notes"
    assert new.messages[0].content.startswith("<session_context>")
    assert [m.role for m in new.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert new.messages[2].content.startswith("<thinking>**Planning the rename**")
    assert new.messages[3].tool_call_id == "run_shell_command-1777717200000-0"
    assert new.messages[-1].content == "Renamed notes.txt to notes.md."


def test_gemini_subagent_and_project_root(tmp_path):
    project = tmp_path / ".gemini" / "tmp" / "widgets"
    chats = project / "chats" / "parent-session-1"
    chats.mkdir(parents=True)
    (project / ".project_root").write_text("/home/dev/widgets\n", encoding="utf-8")
    lines = [
        {"sessionId": "sub-1", "projectHash": "abc", "startTime": "2026-06-01T08:00:00.000Z", "kind": "subagent"},
        {"id": "a", "timestamp": "2026-06-01T08:00:01.000Z", "type": "user", "content": [{"text": "Find the config loader."}]},
        {"id": "b", "timestamp": "2026-06-01T08:00:02.000Z", "type": "gemini", "content": "It is in config.py.", "model": "gemini-2.5-flash"},
    ]
    path = chats / "sub-1.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    conv = only_conversation(iter_gemini_cli(path))
    assert conv.parent_session_id == "parent-session-1"
    assert conv.metadata["cwd"] == "/home/dev/widgets"
    assert conv.metadata["kind"] == "subagent"


# --- detection ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "name"),
    [
        (CODEX_TUI, "codex_cli"),
        (CODEX_DESKTOP, "codex_cli"),
        (CODEX_OLD, "codex_cli"),
        (CODEX_TS, "codex_cli"),
        (GEMINI_SESSION, "gemini_cli"),
        (GEMINI_FILE_OPS, "gemini_cli"),
        (GEMINI_ONE_LINE, "gemini_cli"),
        (GEMINI_JSONL, "gemini_cli"),
        (GEMINI_CHECKPOINT_OLD, "gemini_cli"),
        (GEMINI_CHECKPOINT_NEW, "gemini_cli"),
        (GEMINI / "logs.json", "gemini_cli_side_file"),
    ],
)
def test_detect_format(path, name):
    assert detect.detect_format(path) == name


def test_one_line_session_under_a_jsonl_name_beats_openai_chat(tmp_path):
    # The fault 3: one line holding {"messages": [...]} without roles was taken for OpenAI chat.
    path = tmp_path / "session.jsonl"
    shutil.copy(GEMINI_ONE_LINE, path)
    verdict = detect.judge(path)
    assert verdict.format == "gemini_cli" and verdict.score >= 0.9
    assert verdict.runner_up == "openai_chat" and verdict.runner_up_score < 0.5
    conv = only_conversation(detect.iter_memory([path]))
    assert conv.source_format == "gemini_cli"


def test_gemini_restore_point_is_a_side_file(tmp_path):
    restore = tmp_path / "2026-05-02T10-16-05_100Z-notes.md-write_file.json"
    restore.write_text(
        json.dumps(
            {
                "history": [{"id": 1, "type": "user", "text": "write notes"}],
                "clientHistory": [{"role": "user", "parts": [{"text": "write notes"}]}],
                "toolCall": {"name": "write_file", "args": {"file_path": "notes.md", "content": "x"}},
                "commitHash": "0f1e2d3c",
            }
        ),
        encoding="utf-8",
    )
    assert detect.detect_format(restore) == "gemini_cli_side_file"
    assert list(detect.iter_memory([restore])) == []


def test_iter_memory_over_the_fixture_folders():
    skipped: list = []
    records = list(detect.iter_memory([CODEX, GEMINI], skipped=skipped))
    assert not [r for r in records if isinstance(r, ImportProblem)]
    by_format = Counter(r.source_format for r in records)
    # codex_cli: 4 rollout files, one session each; gemini_cli: 3 session documents, 1 JSONL log, 2 checkpoints
    # (logs.json is a side file and yields nothing).
    assert by_format == Counter(codex_cli=4, gemini_cli=6)


def test_codex_compressed_rollout_without_a_decoder_says_what_is_missing(tmp_path, monkeypatch):
    from model_customization.memory import codex_cli

    path = tmp_path / "rollout-2026-07-04T00-00-00-11111111-1111-4111-8111-111111111111.jsonl.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd\x00\x00")  # a zstd frame header: the content does not matter here
    monkeypatch.setattr(codex_cli, "_zstd_decompressor", lambda: None)
    assert detect.detect_format(path) == "codex_cli"
    (problem,) = list(detect.iter_memory([path]))
    assert isinstance(problem, ImportProblem) and "zstandard" in problem.message


def test_codex_unknown_envelope_types_are_not_errors(tmp_path):
    path = tmp_path / "rollout.jsonl"
    path.write_text(
        "\n".join(
            [
                envelope("session_meta", {"id": "s-1", "timestamp": "2026-09-01T00:00:00Z"}),
                envelope("some_future_record", {"anything": 1}),
                user_item("hi"),
                envelope("response_item", {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    conv = only_conversation(iter_codex_cli(path))
    assert [m.role for m in conv.messages] == ["user", "assistant"]


def test_codex_subagent_rollout_names_its_parent(tmp_path):
    # Newer codex-rs writes a spawned subagent's rollout with its parent in the session meta's source, followed by
    # a copy of the parent's meta line; the first meta names the file's session.
    path = tmp_path / "rollout-2026-08-18T04-19-27-child.jsonl"
    source = {"subagent": {"thread_spawn": {"parent_thread_id": "parent-session", "depth": 1}}}
    path.write_text(
        "\n".join(
            [
                envelope("session_meta", {"id": "child-session", "cwd": "/tmp/project", "source": source}),
                envelope("session_meta", {"id": "parent-session", "cwd": "/elsewhere", "source": "vscode"}),
                user_item("review docs/"),
                envelope("response_item", {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Two typos."}]}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    conv = only_conversation(iter_codex_cli(path))
    assert (conv.session_id, conv.parent_session_id, conv.metadata["cwd"]) == ("child-session", "parent-session", "/tmp/project")


def test_codex_events_written_before_their_items_are_not_counted_twice(tmp_path):
    path = tmp_path / "rollout.jsonl"
    call = {"type": "function_call", "name": "shell", "arguments": '{"command":["ls"]}', "call_id": "c1"}
    answer = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Two files."}]}
    path.write_text(
        "\n".join(
            [
                envelope("session_meta", {"id": "s-2", "timestamp": "2026-09-01T00:00:00Z"}),
                envelope("event_msg", {"type": "user_message", "message": "what is here?"}),
                envelope("event_msg", {"type": "agent_message", "message": "Two files."}),
                user_item("what is here?"),
                envelope("response_item", call),
                envelope("response_item", {"type": "function_call_output", "call_id": "c1", "output": "a\nb\n"}),
                envelope("response_item", answer),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    conv = only_conversation(iter_codex_cli(path))
    assert [(m.role, m.content) for m in conv.messages] == [
        ("user", "what is here?"),
        ("assistant", ""),
        ("tool", "a\nb\n"),
        ("assistant", "Two files."),
    ]


def test_gemini_a_bad_message_costs_only_itself(tmp_path):
    doc = json.loads(GEMINI_FILE_OPS.read_text(encoding="utf-8"))
    doc["messages"].insert(3, "not a message")
    doc["messages"].insert(5, {"id": "x", "type": "mystery", "content": "?"})
    path = tmp_path / "session-broken.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    records = list(iter_gemini_cli(path))
    problems = [r.message for r in records if isinstance(r, ImportProblem)]
    assert problems == ["message 4: expected an object, got a string", "message 6: unknown type 'mystery'"]
    (conv,) = [r for r in records if isinstance(r, Conversation)]
    assert sum(len(m.tool_calls) for m in conv.messages) == sum(len(m.get("toolCalls") or []) for m in doc["messages"] if isinstance(m, dict))


def test_gemini_thoughts_only_record_leads_the_next_answer(tmp_path):
    lines = [
        {"sessionId": "s-t", "projectHash": "h", "startTime": "2026-07-01T10:00:00.000Z", "kind": "main"},
        {"id": "0", "timestamp": "2026-07-01T10:00:00.000Z", "type": "user", "content": [{"text": "<session_context>\nThis is the Gemini CLI.\n</session_context>"}]},
        {"id": "u", "timestamp": "2026-07-01T10:00:01.000Z", "type": "user", "content": [{"text": "port the "}, {"text": "env loader"}]},
        {"id": "g1", "timestamp": "2026-07-01T10:00:02.000Z", "type": "gemini", "content": "", "thoughts": [{"subject": "plan", "description": "read it first"}]},
        {"id": "g2", "timestamp": "2026-07-01T10:00:03.000Z", "type": "gemini", "content": "Ported.", "model": "gemini-3-pro"},
    ]
    path = tmp_path / "session-2026-07-01T10-00-s-t.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    plain = only_conversation(iter_gemini_cli(path))
    assert [(m.role, m.content) for m in plain.messages] == [
        ("system", "<session_context>\nThis is the Gemini CLI.\n</session_context>"),
        ("user", "port the env loader"),
        ("assistant", "Ported."),
    ]
    thinking = only_conversation(iter_gemini_cli(path, include_thinking=True))
    assert thinking.messages[-1].content == "<thinking>plan\nread it first</thinking>\n\nPorted."
