"""Claude Code's local-command lines (issue 16, fault 1): noise is dropped, a slash command's request survives.

Real files: tests/fixtures/claude_code/ (see SOURCES.md there). The expected numbers were counted by hand from the raw
lines (listed in the comments), or are read from the fixture with json in the test, never from the importer.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

from helpers import assert_tool_results_answer_earlier_calls

from model_customization.memory.claude_code import iter_claude_code
from model_customization.memory.detect import detect_format
from model_customization.memory.records import Conversation, ImportProblem

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "claude_code"
TOOL_HEAVY = FIXTURES / "tool_heavy.jsonl"
SUBAGENT = FIXTURES / "subagent.jsonl"

# Every tag Claude Code wraps local-command noise in, and the 1.x caveat text.
NOISE = (
    "<local-command-caveat>", "<command-name>", "<command-message>", "<command-args>", "<local-command-stdout>",
    "<local-command-stderr>", "<bash-input>", "<bash-stdout>", "<bash-stderr>", "Caveat: The messages below",
)


def conversations(path: Path) -> list[Conversation]:
    items = list(iter_claude_code(path))
    assert [x for x in items if isinstance(x, ImportProblem)] == []
    return [x for x in items if isinstance(x, Conversation)]


def raw_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def user_text(record: dict) -> str:
    content = record["message"]["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content if b["type"] == "text")


def test_caveat_mcp_and_its_output_are_not_user_turns():
    records = raw_lines(TOOL_HEAVY)
    # The fixture really holds the 2.x noise as user lines: 20 the caveat (isMeta), 21 /mcp, 22 its stdout.
    noisy = [n for n, r in enumerate(records, 1) if r["type"] == "user" and user_text(r).startswith("<")]
    assert noisy == [20, 21, 22]
    assert records[19]["isMeta"] is True and "<command-name>/mcp</command-name>" in user_text(records[20])

    (c,) = conversations(TOOL_HEAVY)
    users = [m.content for m in c.messages if m.role == "user"]
    # user lines with typed text: 4 and 26; 18 and 39 are interrupt markers; the rest hold tool results
    assert users == [
        "start phoenix in background",
        (
            "scrolling back in xterm.js still does not work (maybe because outer web catches it)? "
            "websearch xterm.js tmux interactions"
        ),
    ]
    for m in c.messages:
        if m.role == "user":
            assert not any(tag in m.content for tag in NOISE), m.content
    # assistant lines 5 | 12-13 | 27-30 | 34, 37: four message ids; tool_result lines 11, 17, 32, 33, 36, 38
    assert [m.role for m in c.messages] == [
        "user", "assistant", "tool", "assistant", "tool",
        "user", "assistant", "tool", "tool", "assistant", "tool", "tool",
    ]
    assert_tool_results_answer_earlier_calls(c)
    # no two user turns in a row anywhere (the fault made the caveat, /mcp and the next prompt three in a row)
    roles = [m.role for m in c.messages]
    assert all(not (a == b == "user") for a, b in itertools.pairwise(roles))
    assert c.outcome.interrupted and not c.outcome.is_error
    assert c.started_at == "2026-02-10T22:57:54.684Z" and c.source_line == 4
    assert detect_format(TOOL_HEAVY) == "claude_code"


def test_custom_command_keeps_the_request_as_typed_and_its_expansion():
    records = raw_lines(SUBAGENT)
    command = user_text(records[3])  # line 4: the /handgemacht:create-beads line
    args = re.search(r"<command-args>(.*)</command-args>", command, re.DOTALL).group(1)
    expansion = user_text(records[4])  # line 5: the skill's text, written by Claude Code (isMeta)
    assert records[4]["isMeta"] is True and args.startswith("websearch to learn how")

    (c,) = conversations(SUBAGENT)
    users = [m.content for m in c.messages if m.role == "user"]
    # line 4 + its expansion on line 5 are one turn; line 71 "create the beads" the second; 69 is an interrupt
    assert users == [f"/handgemacht:create-beads {args}\n\n{expansion}", "create the beads"]
    assert c.messages[0].role == "user"
    for text in users:
        assert not any(tag in text for tag in NOISE)


# --- hand-made lines, in the shapes the real files and Claude Code's writers use --------------------------------------


def _line(uuid: str, parent: str | None, kind: str, content, **extra) -> str:
    message = {"role": kind, "content": content}
    if kind == "assistant":
        message |= {"id": f"msg_{uuid}", "model": "claude-sonnet-4-5"}
    record = {"type": kind, "uuid": uuid, "parentUuid": parent, "sessionId": "s", "timestamp": "2026-03-01T10:00:00Z",
              "message": message, **extra}
    return json.dumps(record)


def _write(tmp_path: Path, rows: list[tuple]) -> Path:
    lines, parent = [], None
    for k, (kind, content, *extra) in enumerate(rows):
        uuid = f"u{k}"
        lines.append(_line(uuid, parent, kind, content, **(extra[0] if extra else {})))
        parent = uuid
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _users(path: Path) -> list[str]:
    (c,) = conversations(path)
    return [m.content for m in c.messages if m.role == "user"]


ANSWER = [{"type": "text", "text": "Done."}]
CAVEAT_2_1_296 = (  # the caveat's wording in 2.1.296
    "<local-command-caveat>The command below was run directly in Claude Code, not sent to you as a request, and its "
    "output goes straight to the user. It's recorded here as context for later messages.</local-command-caveat>"
)


def test_a_local_command_is_dropped_by_structure_whatever_its_name(tmp_path):
    rows = [
        # the wording of the 2.1.296 caveat, and a command no built-in list knows: the caveat decides
        ("user", CAVEAT_2_1_296, {"isMeta": True}),
        ("user", "<command-name>/brand-new</command-name>\n <command-message>brand-new</command-message>\n <command-args>x</command-args>"),
        # a command whose output follows in the next line, with no caveat before it
        ("user", "<command-name>/other-new</command-name>\n<command-args></command-args>"),
        ("user", "<local-command-stderr>failed</local-command-stderr>"),
        # command and output as two text blocks of one line
        ("user", [{"type": "text", "text": "<command-name>/mcp</command-name>"},
                  {"type": "text", "text": "<local-command-stdout>MCP dialog dismissed</local-command-stdout>"}]),
        # 1.x: a plain caveat, and a built-in command known by name alone
        ("user", "Caveat: The messages below were generated by the user while running local commands. DO NOT respond."),
        ("user", "<command-name>/clear</command-name>"),
        ("user", "fix the login bug"),
        ("assistant", ANSWER),
    ]
    assert _users(_write(tmp_path, rows)) == ["fix the login bug"]


def test_shell_escape_is_context_for_the_next_prompt(tmp_path):
    rows = [
        ("user", "<local-command-caveat>Caveat: local commands.</local-command-caveat>", {"isMeta": True}),
        ("user", "<bash-input>git status</bash-input>"),
        ("user", "<bash-stdout>On branch main\nnothing to commit</bash-stdout><bash-stderr></bash-stderr>"),
        ("user", "why is it clean?"),
        ("assistant", ANSWER),
        ("user", "<bash-input>ls nope</bash-input>"),
        ("user", "<bash-stdout></bash-stdout><bash-stderr>ls: nope: No such file</bash-stderr>"),
    ]
    # the second escape has no prompt after it: nothing to attach it to
    assert _users(_write(tmp_path, rows)) == ["! git status\nOn branch main\nnothing to commit\n\nwhy is it clean?"]


def test_prompt_commands_and_quoted_tags_stay(tmp_path):
    rows = [
        ("user", "<command-message>review is running…</command-message>\n<command-name>/review</command-name>\n<command-args>#29</command-args>"),
        ("user", [{"type": "text", "text": "Review pull request 29."}], {"isMeta": True}),
        ("assistant", ANSWER),
        ("user", "why does <command-name> show up in my prompt?"),
        ("assistant", ANSWER),
        ("user", "<command-name>init</command-name>"),  # old versions wrote the name without its slash
        ("assistant", ANSWER),
    ]
    assert _users(_write(tmp_path, rows)) == [
        "/review #29\n\nReview pull request 29.",
        "why does <command-name> show up in my prompt?",
        "/init",
    ]


def test_a_session_of_only_local_commands_is_skipped(tmp_path):
    rows = [
        ("user", "<local-command-caveat>Caveat: local commands.</local-command-caveat>", {"isMeta": True}),
        ("user", "<command-name>/model</command-name>\n<command-args></command-args>"),
        ("user", "<local-command-stdout>Set model to opus</local-command-stdout>"),
    ]
    assert conversations(_write(tmp_path, rows)) == []
