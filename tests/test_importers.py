"""Memory importers against real files written by others, and against small hand-made edge cases.

The expected numbers on the real samples were worked out from the raw files with jq / a throw-away script that
only counts (roles, distinct message ids, tool_use blocks, is_error flags), not by running the importers.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from helpers import assert_tool_results_answer_earlier_calls, n_tool_calls, roles

from model_customization.memory.claude_code import iter_claude_code
from model_customization.memory.detect import SUPPORTED_FORMATS, detect_format, iter_memory
from model_customization.memory.openai_chat import iter_openai_chat
from model_customization.memory.records import Conversation, ImportProblem, PreferencePair

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "memory-samples"
needs_samples = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason=f"real memory samples not found at {SAMPLES} (checkout of ../shared missing)"
)
OPENAI = SAMPLES / "openai-finetune"
CLAUDE = SAMPLES / "claude-code"


def split(items, pairs_out=None):
    items = list(items)
    convs = [x for x in items if isinstance(x, Conversation)]
    problems = [x for x in items if isinstance(x, ImportProblem)]
    pairs = [x for x in items if isinstance(x, PreferencePair)]
    assert len(convs) + len(problems) + len(pairs) == len(items)
    if pairs_out is not None:
        pairs_out.extend(pairs)
    return convs, problems


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"".join((ln if isinstance(ln, bytes) else ln.encode()) + b"\n" for ln in lines))
    return path


def chat(*messages, **extra) -> str:
    return json.dumps({"messages": list(messages), **extra})


# --- OpenAI chat JSONL, real samples -------------------------------------------------------------------------------


@needs_samples
def test_openai_sarcastic_factbot():
    path = OPENAI / "disler_example-sarcastic-factbot.jsonl"
    convs, problems = split(iter_openai_chat(path))
    assert problems == []
    assert len(convs) == 10
    assert roles(convs) == {"system": 10, "user": 10, "assistant": 10}
    first = convs[0]
    assert first.session_id == "disler_example-sarcastic-factbot:1"
    assert first.source_line == 1 and first.source_format == "openai_chat"
    assert first.messages[1].content == "What's the capital of France?"
    assert first.messages[2].content == "Paris, as if everyone doesn't know that already."
    # the file has no trailing newline: the last line still counts
    assert convs[-1].source_line == 10
    assert all(c.tools is None and c.outcome.successful for c in convs)


@needs_samples
def test_openai_weather_parallel_tool_calls_and_null_fields():
    path = OPENAI / "mlteam-ai_weather_chat_fine_tuning.jsonl"
    convs, problems = split(iter_openai_chat(path))
    assert problems == []  # the trailing blank line is skipped silently
    assert len(convs) == 10
    assert roles(convs) == {"user": 10, "assistant": 20, "tool": 30}
    assert n_tool_calls(convs) == 30
    for c in convs:
        assert c.tools is not None and len(c.tools) == 1
        assert c.tools[0]["function"]["name"] == "get_current_weather"
        call_msg = c.messages[1]
        assert call_msg.role == "assistant" and call_msg.content == ""  # content: null
        assert [tc.id for tc in call_msg.tool_calls] == [
            "call_rEJCsN62dJMJXkdnZ4eBexmo",
            "call_WPrQPS0pJkJP3GPgMi5dyDEn",
            "call_IXjl0kl9Q6wCwmGBtJ6FF1eL",
        ]
        assert json.loads(call_msg.tool_calls[0].arguments) == {"location": "San Francisco, CA", "unit": "celsius"}
        assert [m.tool_call_id for m in c.messages[2:5]] == [tc.id for tc in call_msg.tool_calls]
        assert c.messages[-1].role == "assistant" and c.messages[-1].tool_calls == []  # tool_calls: null
        assert c.messages[-1].content.startswith("Currently, the weather in San Francisco")
        assert_tool_results_answer_earlier_calls(c)


@needs_samples
def test_openai_stock_tool_calls_without_content():
    path = OPENAI / "microsoft-foundry_stock_toolcall_training.jsonl"
    convs, problems = split(iter_openai_chat(path))
    assert problems == []
    assert len(convs) == 86
    assert roles(convs) == {"system": 86, "user": 86, "assistant": 86}
    assert n_tool_calls(convs) == 36
    names = Counter(tc.name for c in convs for m in c.messages for tc in m.tool_calls)
    assert names == {"get_current_stock_price": 24, "get_last_nday_stock_price": 12}
    calling = [m for c in convs for m in c.messages if m.tool_calls]
    assert len(calling) == 36 and all(m.content == "" for m in calling)  # no content key at all
    first = convs[0].messages[2].tool_calls[0]
    assert (first.id, first.name, json.loads(first.arguments)) == (
        "call_1",
        "get_last_nday_stock_price",
        {"symbol": "BAC", "period": "1mo"},
    )
    assert {len(c.tools) for c in convs} == {2}


@needs_samples
def test_openai_toy_chat_keeps_examples_that_are_bad_for_training():
    # Deliberately invalid *training* examples (no user turn, huge output) are still readable conversations;
    # judging them is the dataset validator's job, not the importer's.
    convs, problems = split(iter_openai_chat(OPENAI / "mlteam-ai_toy_chat_fine_tuning.jsonl"))
    assert problems == []
    assert len(convs) == 10
    assert roles(convs) == {"system": 8, "user": 13, "assistant": 16}
    assert [len(c.messages) for c in convs] == [3, 9, 2, 2, 3, 3, 9, 2, 2, 2]
    assert len(convs[4].messages[2].content) == 26000


@needs_samples
def test_openai_preference_lines_become_preference_pairs():
    path = OPENAI / "dpo" / "microsoft-foundry_orca_dpo_pairs_validation.jsonl"
    pairs: list = []
    convs, problems = split(iter_openai_chat(path), pairs)
    assert convs == [] and problems == []
    assert len(pairs) == 284
    assert [p.source_line for p in pairs] == list(range(1, 285))
    # Every input is a system + user message; both answers are single assistant messages that differ.
    assert all([m.role for m in p.prompt] == ["system", "user"] for p in pairs)
    assert all(p.preferred.role == p.non_preferred.role == "assistant" for p in pairs)
    assert sum(p.preferred.content != p.non_preferred.content for p in pairs) == 284
    assert detect_format(path) == "openai_chat"


def test_openai_preference_line_with_two_answers_is_a_problem(tmp_path):
    bad = {"input": {"messages": [{"role": "user", "content": "q"}]}, "preferred_output": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}], "non_preferred_output": [{"role": "assistant", "content": "c"}]}
    good = {"input": {"messages": [{"role": "user", "content": "q"}]}, "preferred_output": [{"role": "assistant", "content": "a"}], "non_preferred_output": [{"role": "assistant", "content": "c"}]}
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps(bad) + "\n" + json.dumps(good) + "\n")
    pairs: list = []
    _, problems = split(iter_openai_chat(path), pairs)
    assert [(p.line, "exactly one assistant message" in p.message) for p in problems] == [(1, True)]
    assert len(pairs) == 1 and pairs[0].source_line == 2


# --- Claude Code transcripts, real samples -------------------------------------------------------------------------


@needs_samples
def test_claude_code_short_rejections_and_interrupt():
    path = CLAUDE / "marot-spotter" / "short.jsonl"
    convs, problems = split(iter_claude_code(path))
    assert problems == []
    assert len(convs) == 1
    c = convs[0]
    assert c.session_id == "55604662-cf2a-4331-851a-ec234028f8ca"
    assert c.source_format == "claude_code"
    assert c.source_line == 4  # lines 1-3 are a snapshot and hook progress
    assert c.started_at == "2026-02-10T21:11:56.846Z"
    # five assistant lines of one message.id (text "\n\n", thinking, text, tool_use, tool_use) -> one message
    assert [m.role for m in c.messages] == ["user", "assistant", "tool", "tool"]
    assert c.messages[0].content == "mix phx.server doesnt seem to start"
    a = c.messages[1]
    assert a.content == "Let me check the project structure and try running the server to see the error."
    assert [(tc.id, tc.name) for tc in a.tool_calls] == [
        ("toolu_0116Hyi5v8ut7Ffb7d8qV1Sc", "Bash"),
        ("toolu_01FdQ8qTyVyZjE3Kw4dguQGx", "Glob"),
    ]
    assert json.loads(a.tool_calls[0].arguments) == {"command": "mix phx.server 2>&1 | head -80", "timeout": 30000}
    # the first result hangs off a side branch of the parent chain; it must not be lost
    assert [m.tool_call_id for m in c.messages[2:]] == [tc.id for tc in a.tool_calls]
    assert all("doesn't want to proceed" in m.content for m in c.messages[2:])
    assert (c.outcome.is_error, c.outcome.user_rejected, c.outcome.interrupted) == (True, True, True)
    assert not c.outcome.successful


@needs_samples
def test_claude_code_subagent_parallel_calls_and_streamed_merge():
    path = CLAUDE / "marot-spotter" / "subagent.jsonl"
    convs, problems = split(iter_claude_code(path))
    assert problems == []
    assert len(convs) == 1
    c = convs[0]
    # 28 assistant lines carry 12 distinct message ids; 16 tool_use / 16 tool_result blocks; 2 user turns (below)
    assert roles(convs) == {"user": 2, "assistant": 12, "tool": 16}
    assert n_tool_calls(convs) == 16
    assert_tool_results_answer_earlier_calls(c)
    assert len({m.tool_call_id for m in c.messages if m.role == "tool"}) == 16
    # the custom slash command as typed, joined by its expanded (isMeta) prompt, then the later prompt;
    # "[Request interrupted" is a signal, not a turn
    users = [m.content for m in c.messages if m.role == "user"]
    assert users[0].startswith("/handgemacht:create-beads websearch to learn how to fastest setup credo")
    assert "\n\nCreate beads (epic + tasks + dependencies)" in users[0]
    assert users[1] == "create the beads"
    first = next(m for m in c.messages if m.role == "assistant")
    assert [tc.name for tc in first.tool_calls] == ["WebFetch", "WebSearch", "WebSearch", "WebSearch"]
    # a message whose second tool_use was written after the first tool's result (2.x streams tool execution)
    second = [m for m in c.messages if m.role == "assistant"][1]
    assert [tc.name for tc in second.tool_calls] == ["Glob", "WebSearch"]
    assert (c.outcome.is_error, c.outcome.user_rejected, c.outcome.interrupted) == (False, False, True)
    # the Task tool's result comes as a list of text blocks
    task_id = next(tc.id for m in c.messages for tc in m.tool_calls if tc.name == "Task")
    task_result = next(m for m in c.messages if m.tool_call_id == task_id)
    assert task_result.content.startswith("Excellent! Now I have all the inf")


@needs_samples
def test_claude_code_merges_lines_by_message_id():
    path = CLAUDE / "d-kimuson" / "1af7fc5e-8455-4414-9ccd-011d40f70b2a.jsonl"
    convs, problems = split(iter_claude_code(path))
    assert problems == []
    assert len(convs) == 1
    c = convs[0]
    assert c.session_id == "1af7fc5e-8455-4414-9ccd-011d40f70b2a"
    # 15 assistant lines, 7 distinct message ids; /init and the prompt it expanded into (isMeta) are one user turn
    assert roles(convs) == {"user": 1, "assistant": 7, "tool": 12}
    assert n_tool_calls(convs) == 12
    assert c.messages[0].content.startswith("/init\n\nPlease analyze this codebase and create a CLAUDE.md file")
    assert (c.outcome.is_error, c.outcome.user_rejected, c.outcome.interrupted) == (True, False, False)
    assert c.started_at == "2025-09-03T00:47:19.293Z"
    assert_tool_results_answer_earlier_calls(c)


@needs_samples
def test_claude_code_inline_sidechains():
    path = CLAUDE / "d-kimuson" / "5c0375b4-57a5-4f26-b12d-d022ee4e51b7.jsonl"
    convs, problems = split(iter_claude_code(path))
    assert problems == []
    sid = "5c0375b4-57a5-4f26-b12d-d022ee4e51b7"
    assert [c.session_id for c in convs] == [
        sid,
        f"{sid}:sidechain:6340ddef-f656-4b72-a065-82390f637678",
        f"{sid}:sidechain:83e2917c-8940-4df6-a5a5-f2514f0d08c5",
    ]
    main, side1, side2 = convs
    assert roles([main]) == {"user": 1, "assistant": 10, "tool": 13}  # /orchestrator and its expansion: one turn
    assert main.messages[0].content.startswith("/orchestrator @CLAUDE.md を最新の状態にアップデートしてください\n\nSplit")
    assert roles([side1]) == {"user": 1, "assistant": 3, "tool": 2}
    assert roles([side2]) == {"user": 1, "assistant": 7, "tool": 6}
    assert (side1.source_line, side2.source_line) == (16, 26)
    assert side1.messages[0].content.startswith("Examine the package.json file(s)")
    assert (main.outcome.is_error, side1.outcome.is_error, side2.outcome.is_error) == (True, False, True)
    for c in convs:
        assert_tool_results_answer_earlier_calls(c)


@needs_samples
def test_claude_code_large_session_with_summary_and_five_sidechains():
    path = CLAUDE / "d-kimuson" / "fe5e1c67-53e7-4862-81ae-d0e013e3270b.jsonl"
    convs, problems = split(iter_claude_code(path))
    assert problems == []
    assert len(convs) == 6
    # 262 assistant lines / 170 distinct ids; 167 tool_use and 167 tool_result blocks in all
    assert roles(convs) == {"user": 7, "assistant": 170, "tool": 167}  # the main thread's command + expansion: one
    assert n_tool_calls(convs) == 167
    main = convs[0]
    assert main.session_id == "fe5e1c67-53e7-4862-81ae-d0e013e3270b"
    assert main.source_line == 2  # line 1 is the summary
    assert roles([main]) == {"user": 2, "assistant": 9, "tool": 11}
    assert main.messages[-1].role == "assistant"
    last_prompt = [m.content for m in main.messages if m.role == "user"][-1]
    assert last_prompt == "Thanks! Please update CLAUDE.md for current changes"
    sides = convs[1:]
    assert [c.source_line for c in sides] == [16, 38, 125, 229, 295]
    assert [sum(m.role == "tool" for m in c.messages) for c in sides] == [8, 33, 39, 24, 52]
    assert [c.outcome.is_error for c in sides] == [False, True, True, True, True]
    assert not main.outcome.is_error
    for c in convs:
        assert_tool_results_answer_earlier_calls(c)


@needs_samples
def test_claude_code_agent_file_is_its_own_conversation():
    path = CLAUDE / "d-kimuson" / "agent-test-hash-123.jsonl"
    convs, problems = split(iter_claude_code(path))
    assert problems == []
    assert len(convs) == 1
    c = convs[0]
    assert c.session_id == "5c0375b4-57a5-4f26-b12d-d022ee4e51b7:agent-test-hash-123"
    assert [m.role for m in c.messages] == ["user", "assistant"]
    assert c.messages[0].content == "Run the test suite"


@needs_samples
def test_iter_memory_over_the_sample_directories():
    pairs: list = []
    convs, problems = split(iter_memory([CLAUDE, OPENAI]), pairs)
    files = sorted({c.source_file for c in convs} | {p.file for p in problems} | {p.source_file for p in pairs})
    assert files == sorted(str(p) for p in list(CLAUDE.rglob("*.jsonl")) + list(OPENAI.rglob("*.jsonl")))
    # 1 + 3 + 1 + 6 + 1 + 1 Claude Code; 10 + 86 + 10 + 10 + 10 OpenAI
    assert len(convs) == 13 + 126
    assert problems == [] and len(pairs) == 284  # the preference file
    assert detect_format(SAMPLES / "mcp-memory" / "anoblet_copilot_memory.jsonl") == "mcp_memory"


# --- hand-made edge cases ------------------------------------------------------------------------------------------


def test_bad_json_line_is_reported_and_neighbours_survive(tmp_path):
    ok = chat({"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"})
    path = write_lines(tmp_path / "x.jsonl", [ok, '{"messages": [', ok])
    convs, problems = split(iter_openai_chat(path))
    assert [c.source_line for c in convs] == [1, 3]
    assert [c.session_id for c in convs] == ["x:1", "x:3"]
    assert len(problems) == 1
    assert problems[0].line == 2 and "invalid JSON" in problems[0].message
    assert str(problems[0]).startswith(f"{path}:2: ")


def test_invalid_utf8_line(tmp_path):
    ok = chat({"role": "user", "content": "héllo"}, {"role": "assistant", "content": "ok"})
    bad = b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}'
    path = write_lines(tmp_path / "u.jsonl", [ok, bad, ok])
    convs, problems = split(iter_openai_chat(path))
    assert [c.source_line for c in convs] == [1, 3]
    assert convs[0].messages[0].content == "héllo"
    assert [(p.line, "UTF-8" in p.message) for p in problems] == [(2, True)]


def test_invalid_utf8_in_claude_code(tmp_path):
    lines = _cc_session()
    lines.insert(1, b'{"type": "user", "message": "\xc3\x28"}')
    path = write_lines(tmp_path / "s.jsonl", lines)
    convs, problems = split(iter_claude_code(path))
    assert len(convs) == 1 and [p.line for p in problems] == [2]


def test_unreadable_lines_each_say_what_was_wrong(tmp_path):
    good = chat({"role": "user", "content": "a"}, {"role": "assistant", "content": "b"})
    path = write_lines(
        tmp_path / "p.jsonl",
        [
            "[1, 2]",
            '{"messages": []}',
            '{"foo": 1}',
            chat({"role": "robot", "content": "x"}),
            "",
            "   ",
            chat({"role": "assistant", "content": 5}),
            good,
        ],
    )
    convs, problems = split(iter_openai_chat(path))
    assert [c.source_line for c in convs] == [8]
    by_line = {p.line: p.message for p in problems}
    assert sorted(by_line) == [1, 2, 3, 4, 7]  # blank lines 5 and 6 are skipped silently
    assert "expected a JSON object" in by_line[1]
    assert "empty" in by_line[2]
    assert "missing 'messages'" in by_line[3]
    assert "unknown role 'robot'" in by_line[4]
    assert "'content'" in by_line[7]


def test_legacy_function_call_and_weight(tmp_path):
    line = chat(
        {"role": "system", "content": "s"},
        {"role": "user", "content": [{"type": "text", "text": "weather"}, {"type": "text", "text": "in Paris?"}]},
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"role": "function", "name": "get_weather", "content": "22C"},
        {"role": "assistant", "content": "It is 22C.", "weight": 1},
        {"role": "user", "content": "thanks"},
        {"role": "assistant", "content": "bad answer", "weight": 0},
        functions=[{"name": "get_weather", "parameters": {"type": "object"}}],
    )
    convs, problems = split(iter_openai_chat(write_lines(tmp_path / "legacy.jsonl", [line])))
    assert problems == []
    (c,) = convs
    assert [m.role for m in c.messages] == ["system", "user", "assistant", "tool", "assistant", "user", "assistant"]
    assert c.messages[1].content == "weather\nin Paris?"
    (call,) = c.messages[2].tool_calls
    assert (call.name, call.arguments) == ("get_weather", '{"city": "Paris"}')
    assert c.messages[3].tool_call_id == call.id and c.messages[3].content == "22C"
    assert [m.weight for m in c.messages] == [None, None, None, None, 1, None, 0]
    assert c.tools == [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def test_bad_weight_is_a_problem(tmp_path):
    path = write_lines(tmp_path / "w.jsonl", [chat({"role": "assistant", "content": "x", "weight": 0.5})])
    convs, problems = split(iter_openai_chat(path))
    assert convs == [] and "'weight' must be 0 or 1" in problems[0].message


def _cc(kind, uuid, parent, content, **extra) -> str:
    message = {"role": kind, "content": content}
    if "mid" in extra:
        message["id"] = extra.pop("mid")
    return json.dumps(
        {
            "type": kind,
            "uuid": uuid,
            "parentUuid": parent,
            "sessionId": "sess",
            "isSidechain": False,
            "timestamp": f"2025-01-01T00:00:0{uuid[-1]}Z",
            "message": message,
            **extra,
        }
    )


CMD = {"cmd": "ls"}
TEXT_AB = {"type": "text", "text": "a b"}


def _cc_session() -> list[str | bytes]:
    return [
        _cc("user", "u1", None, "list files"),
        _cc("assistant", "a2", "u1", [{"type": "thinking", "thinking": "hmm"}], mid="m1"),
        _cc("assistant", "a3", "a2", [{"type": "tool_use", "id": "t1", "name": "Bash", "input": CMD}], mid="m1"),
        _cc("user", "u4", "a3", [{"type": "tool_result", "tool_use_id": "t1", "content": [TEXT_AB]}]),
        _cc("assistant", "a5", "u4", [{"type": "text", "text": "Two files."}], mid="m2"),
    ]


def test_claude_code_hand_made_session(tmp_path):
    lines = _cc_session()
    lines.insert(0, json.dumps({"type": "summary", "summary": "x", "leafUuid": "zz"}))
    lines.insert(3, "not json")
    convs, problems = split(iter_claude_code(write_lines(tmp_path / "sess.jsonl", lines)))
    assert [(p.line, "invalid JSON" in p.message) for p in problems] == [(4, True)]
    (c,) = convs
    assert [m.role for m in c.messages] == ["user", "assistant", "tool", "assistant"]
    assert c.messages[1].content == "" and c.messages[1].tool_calls[0].arguments == json.dumps({"cmd": "ls"})
    assert c.messages[2].content == "a b" and c.messages[2].tool_call_id == "t1"
    assert c.started_at == "2025-01-01T00:00:01Z" and c.source_line == 2
    assert c.outcome.successful


def test_claude_code_rewound_branch_is_dropped(tmp_path):
    lines = _cc_session() + [
        _cc("user", "u6", "a5", "now delete them"),
        _cc("assistant", "a7", "u6", [{"type": "text", "text": "Deleted."}], mid="m3"),
        # the user rewound to a5 and asked something else: this branch is where the session ended
        _cc("user", "u8", "a5", "[Request interrupted by user]"),
        _cc("user", "u9", "u8", "no, count them"),
        _cc("assistant", "a0", "u9", [{"type": "text", "text": "There are 2."}], mid="m4"),
    ]
    (c,) = split(iter_claude_code(write_lines(tmp_path / "r.jsonl", lines)))[0]
    assert [m.content for m in c.messages if m.role == "user"] == ["list files", "no, count them"]
    assert c.messages[-1].content == "There are 2."
    assert c.outcome.interrupted


def test_claude_code_session_without_exchange_is_skipped(tmp_path):
    lines = [
        json.dumps({"type": "file-history-snapshot", "messageId": "x", "snapshot": {}, "isSnapshotUpdate": False}),
        _cc("user", "u1", None, "<local-command-stdout>Kept model</local-command-stdout>"),
    ]
    path = write_lines(tmp_path / "only-command.jsonl", lines)
    assert detect_format(path) == "claude_code"
    assert split(iter_memory([path])) == ([], [])


def test_empty_and_unrecognised_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    blank = write_lines(tmp_path / "blank.jsonl", ["", "  "])
    other = write_lines(tmp_path / "other.jsonl", ['{"kind": "weather", "city": "x"}', "[1]"])
    convs, problems = split(iter_memory([empty, blank, other]))
    assert convs == []
    assert [(Path(p.file).name, p.message) for p in problems] == [
        ("empty.jsonl", "empty file"),
        ("blank.jsonl", "empty file"),
        ("other.jsonl", f"not a recognised memory format: tried {', '.join(SUPPORTED_FORMATS)}"),
    ]
    assert {"openai_chat", "claude_code"} <= set(SUPPORTED_FORMATS)
    assert detect_format(other) is None


def test_detect_skips_a_broken_first_line(tmp_path):
    ok = chat({"role": "user", "content": "a"}, {"role": "assistant", "content": "b"})
    path = write_lines(tmp_path / "f.jsonl", ["{oops", "", ok])
    assert detect_format(path) == "openai_chat"
    convs, problems = split(iter_memory([path]))
    assert len(convs) == 1 and [p.line for p in problems] == [1]


def test_directory_with_mixed_files(tmp_path):
    ok = chat({"role": "user", "content": "a"}, {"role": "assistant", "content": "b"})
    write_lines(tmp_path / "b_openai.jsonl", [ok, ok])
    sub = tmp_path / "a_project"
    sub.mkdir()
    write_lines(sub / "sess.jsonl", _cc_session())
    write_lines(tmp_path / "c_other.jsonl", ['{"hello": "world"}'])
    (tmp_path / "notes.txt").write_text("not jsonl")
    (tmp_path / "d_empty.jsonl").write_text("")
    items = list(iter_memory([tmp_path]))

    def kind(x):
        return type(x).__name__

    assert items == list(iter_memory([tmp_path]))  # deterministic
    described = [
        (Path(x.source_file if isinstance(x, Conversation) else x.file).relative_to(tmp_path).as_posix(), kind(x))
        for x in items
    ]
    assert described == [
        ("a_project/sess.jsonl", "Conversation"),
        ("b_openai.jsonl", "Conversation"),
        ("b_openai.jsonl", "Conversation"),
        ("c_other.jsonl", "ImportProblem"),
        ("d_empty.jsonl", "ImportProblem"),
    ]
    assert items[0].source_format == "claude_code" and items[1].source_format == "openai_chat"


def test_missing_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        iter_memory([tmp_path / "nope.jsonl"])


@needs_samples
def test_subagents_and_sidechains_link_to_their_parent_session(tmp_path):
    convs, _ = split(iter_claude_code(CLAUDE / "d-kimuson" / "agent-test-hash-123.jsonl"))
    assert [c.parent_session_id for c in convs] == ["5c0375b4-57a5-4f26-b12d-d022ee4e51b7"]
    convs, _ = split(iter_claude_code(CLAUDE / "d-kimuson" / "fe5e1c67-53e7-4862-81ae-d0e013e3270b.jsonl"))
    main = [c for c in convs if ":sidechain:" not in c.session_id]
    sidechains = [c for c in convs if ":sidechain:" in c.session_id]
    assert len(main) == 1 and main[0].parent_session_id is None and sidechains
    assert all(c.parent_session_id == main[0].session_id for c in sidechains)
    # The 2.x layout: <session>/subagents/agent-<id>.jsonl, whose lines may lack a sessionId.
    folder = tmp_path / "abc-session" / "subagents"
    folder.mkdir(parents=True)
    lines = [
        {"type": "user", "uuid": "u1", "parentUuid": None, "message": {"role": "user", "content": "look"}},
        {"type": "assistant", "uuid": "a1", "parentUuid": "u1", "message": {"id": "m1", "role": "assistant", "content": [{"type": "text", "text": "done"}]}},
    ]
    path = folder / "agent-x1.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    [conv] = split(iter_claude_code(path))[0]
    assert conv.parent_session_id == "abc-session"


@needs_samples
def test_thinking_is_dropped_unless_asked_for():
    path = CLAUDE / "marot-spotter" / "subagent.jsonl"
    # The raw file has 4 thinking blocks (grep -c '"thinking"'); by default none reaches a message.
    plain, _ = split(iter_memory([path]))
    assert not any("<thinking>" in m.content for c in plain for m in c.messages)
    with_thinking, _ = split(iter_memory([path], include_thinking=True))
    thoughts = [m for c in with_thinking for m in c.messages if "<thinking>" in m.content]
    assert thoughts and all(m.role == "assistant" for m in thoughts)
    # Everything else is the same: the same sessions and the same number of messages.
    assert [len(c.messages) for c in with_thinking] == [len(c.messages) for c in plain]
    # Options reach only the formats that take them.
    assert len(split(iter_memory([OPENAI / "disler_example-sarcastic-factbot.jsonl"], include_thinking=True))[0]) == 10
