"""The shipped demo memory (log triage): reproducible, well formed, and every answer follows the rule."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from model_customization.demo_data import (
    DEMO_DATA_DIR,
    demo_memory_paths,
    extract_log_line,
    triage_answer,
)
from model_customization.demo_data.generate import SYSTEM_PROMPT, generate

CLAUDE_DIR = DEMO_DATA_DIR / "claude_code"
OPENAI_FILE = DEMO_DATA_DIR / "openai" / "triage_sessions.jsonl"
ANSWER_RE = re.compile(r"TRIAGE severity=(high|medium|low) component=\S+ action=(page|ticket|ignore)")
ISO_MS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
COMMON_FIELDS = ("type", "uuid", "parentUuid", "isSidechain", "sessionId", "timestamp", "cwd", "version", "userType")


def _data_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.jsonl"))}


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _claude_files() -> list[Path]:
    return sorted(CLAUDE_DIR.glob("*.jsonl"))


def _claude_conversation(lines: list[dict]) -> tuple[str, str, bool]:
    """(log line the session is about, final assistant answer, whether a tool was used)."""
    texts, answer, used_tool = [], None, False
    for line in lines:
        if line["type"] == "user":
            content = line["message"]["content"]
            if isinstance(content, str):
                texts.append(content)
            else:
                texts.extend(block["content"] for block in content if block["type"] == "tool_result")
        elif line["type"] == "assistant":
            for block in line["message"]["content"]:
                if block["type"] == "text":
                    answer = block["text"]
                elif block["type"] == "tool_use":
                    used_tool = True
    logs = [m.group(0) for t in texts for m in [re.search(r"\S+ \[[^\]]+\] [A-Z]+ [^\n]*", t)] if m]
    assert len(logs) == 1, texts
    assert answer is not None
    return extract_log_line(logs[0]), answer, used_tool


def _level(log_line: str) -> str:
    return re.search(r"\] (ERROR|FATAL|WARN|INFO|DEBUG) ", log_line).group(1)


def _all_conversations() -> dict[str, list[tuple[str, str]]]:
    claude = [_claude_conversation(_read_jsonl(p))[:2] for p in _claude_files()]
    openai = []
    for record in _read_jsonl(OPENAI_FILE):
        messages = record["messages"]
        openai.append((extract_log_line(messages[1]["content"]), messages[2]["content"]))
    return {"claude_code": claude, "openai": openai}


# (a) reproducible -------------------------------------------------------------------------------------------


def test_committed_files_equal_generator_output(tmp_path):
    generate(tmp_path)
    assert _data_files(tmp_path) == _data_files(DEMO_DATA_DIR)


def test_generator_is_deterministic_and_overwrites(tmp_path):
    generate(tmp_path, seed=3, n_claude=8, n_openai=5)
    first = _data_files(tmp_path)
    generate(tmp_path, seed=3, n_claude=8, n_openai=5)
    assert _data_files(tmp_path) == first
    generate(tmp_path, seed=4, n_claude=6, n_openai=5)
    assert len(list((tmp_path / "claude_code").glob("*.jsonl"))) == 6  # stale sessions removed
    assert _data_files(tmp_path) != first


def test_generator_runs_as_module(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "model_customization.demo_data.generate", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    assert _data_files(tmp_path) == _data_files(DEMO_DATA_DIR)


def test_demo_memory_paths():
    paths = demo_memory_paths()
    assert paths == [CLAUDE_DIR, DEMO_DATA_DIR / "openai"]
    assert all(p.is_dir() and any(p.glob("*.jsonl")) for p in paths)


# (b) every answer follows the rule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("2026-03-14T09:12:44Z [payments-api] ERROR upstream timeout after 30s",
         "TRIAGE severity=high component=payments-api action=page"),
        ("2026-03-14T09:12:44.120Z [db-primary] FATAL checksum mismatch in block 7",
         "TRIAGE severity=high component=db-primary action=page"),
        ("2026-03-14T09:12:44Z [cdn-edge] WARN GC pause 300ms",
         "TRIAGE severity=medium component=cdn-edge action=ticket"),
        ("2026-03-14T09:12:44Z [auth-service] INFO health check passed",
         "TRIAGE severity=low component=auth-service action=ignore"),
        ("Triage this: 2026-03-14T09:12:44Z [billing-worker] DEBUG session sess-1 expired\nthanks",
         "TRIAGE severity=low component=billing-worker action=ignore"),
    ],
)
def test_triage_answer_rule(line, expected):
    assert triage_answer(line) == expected


def test_triage_answer_rejects_non_log_text():
    with pytest.raises(ValueError):
        triage_answer("hello there")
    with pytest.raises(ValueError):
        extract_log_line("[x] nothing with a timestamp")


@pytest.mark.parametrize("fmt", ["claude_code", "openai"])
def test_every_answer_follows_the_rule(fmt):
    conversations = _all_conversations()[fmt]
    assert conversations
    for log_line, answer in conversations:
        assert ANSWER_RE.fullmatch(answer), answer
        assert answer == triage_answer(log_line), log_line


def test_tool_sessions_read_the_right_file():
    for path in _claude_files():
        lines = _read_jsonl(path)
        log_line, _, used_tool = _claude_conversation(lines)
        if not used_tool:
            continue
        component = re.search(r"\[([^\]]+)\]", log_line).group(1)
        log_path = f"/var/log/app/{component}.log"
        chat = [line for line in lines if line["type"] in ("user", "assistant")]
        assert [line["type"] for line in chat] == ["user", "assistant", "user", "assistant"]
        assert log_path in chat[0]["message"]["content"]
        (tool_use,) = chat[1]["message"]["content"]
        assert tool_use["type"] == "tool_use" and tool_use["name"] == "Bash"
        assert tool_use["input"] == {"command": f"tail -n 1 {log_path}", "description": "Read last log line"}
        assert chat[1]["message"]["stop_reason"] == "tool_use"
        (result,) = chat[2]["message"]["content"]
        assert result == {"tool_use_id": tool_use["id"], "type": "tool_result", "content": log_line, "is_error": False}
        assert chat[2]["toolUseResult"]["stdout"] == log_line


def test_log_lines_are_unique():
    lines = [log for convs in _all_conversations().values() for log, _ in convs]
    assert len(lines) == len(set(lines))
    user_texts = [r["messages"][1]["content"] for r in _read_jsonl(OPENAI_FILE)]
    assert len(user_texts) == len(set(user_texts))


# (c) well-formed files ---------------------------------------------------------------------------------------


def test_claude_code_lines_are_well_formed():
    session_ids = set()
    for path in _claude_files():
        lines = _read_jsonl(path)
        assert lines
        chained = [line for line in lines if "uuid" in line]
        session_id = chained[0]["sessionId"]
        assert path.name == f"{session_id}.jsonl" and UUID_RE.fullmatch(session_id)
        session_ids.add(session_id)
        parent = None
        for line in chained:
            for field in COMMON_FIELDS:
                assert field in line, (path.name, field)
            assert line["parentUuid"] == parent, path.name
            assert line["sessionId"] == session_id
            assert line["isSidechain"] is False and line["userType"] == "external"
            assert line["version"] == "2.0.14" and line["cwd"] == "/home/demo/ops"
            assert UUID_RE.fullmatch(line["uuid"])
            assert ISO_MS_RE.fullmatch(line["timestamp"])
            parent = line["uuid"]
        timestamps = [line["timestamp"] for line in chained]
        assert timestamps == sorted(timestamps)
        for line in lines:
            if line["type"] == "user":
                assert line["message"]["role"] == "user"
            elif line["type"] == "assistant":
                message = line["message"]
                assert message["id"].startswith("msg_") and line["requestId"].startswith("req_")
                assert message["type"] == "message" and message["role"] == "assistant"
                assert message["model"] == "claude-sonnet-4-5"
                assert message["stop_reason"] in ("end_turn", "tool_use")
                assert {"input_tokens", "output_tokens"} <= set(message["usage"])
                assert isinstance(message["content"], list) and message["content"]
            else:
                assert line["type"] in ("file-history-snapshot", "system"), line["type"]
        final = [line for line in lines if line["type"] == "assistant"][-1]
        assert final["message"]["stop_reason"] == "end_turn"
    assert len(session_ids) == len(_claude_files())


def test_exactly_one_claude_file_has_lines_to_skip():
    with_extra = []
    for path in _claude_files():
        types = Counter(line["type"] for line in _read_jsonl(path))
        if set(types) - {"user", "assistant"}:
            with_extra.append(types)
    assert len(with_extra) == 1
    assert with_extra[0]["file-history-snapshot"] == 1 and with_extra[0]["system"] == 1


def test_openai_lines_are_well_formed():
    for record in _read_jsonl(OPENAI_FILE):
        assert list(record) == ["messages"]
        messages = record["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant"]
        assert all(set(m) == {"role", "content"} and isinstance(m["content"], str) for m in messages)
        assert messages[0]["content"] == SYSTEM_PROMPT


def test_conversations_are_short():
    # ~4 characters per token: the whole conversation stays well under ~120 tokens.
    for record in _read_jsonl(OPENAI_FILE):
        assert sum(len(m["content"]) for m in record["messages"]) <= 300
    for path in _claude_files():
        log_line, answer, _ = _claude_conversation(_read_jsonl(path))
        assert len(log_line) + len(answer) <= 220


# (d) counts and balance -------------------------------------------------------------------------------------


def test_counts_and_level_balance():
    claude_files = _claude_files()
    assert len(claude_files) == 80
    assert len(_read_jsonl(OPENAI_FILE)) == 80
    tool_sessions = sum(_claude_conversation(_read_jsonl(p))[2] for p in claude_files)
    assert tool_sessions == 20
    for fmt, conversations in _all_conversations().items():
        levels = Counter(_level(log) for log, _ in conversations)
        n = len(conversations)
        high = (levels["ERROR"] + levels["FATAL"]) / n
        medium = levels["WARN"] / n
        low = (levels["INFO"] + levels["DEBUG"]) / n
        assert 0.30 <= high <= 0.40, (fmt, levels)
        assert 0.25 <= medium <= 0.35, (fmt, levels)
        assert 0.30 <= low <= 0.40, (fmt, levels)
        assert all(levels[level] > 0 for level in ("ERROR", "FATAL", "WARN", "INFO", "DEBUG")), (fmt, levels)


def test_variety():
    conversations = [log for convs in _all_conversations().values() for log, _ in convs]
    components = {re.search(r"\[([^\]]+)\]", log).group(1) for log in conversations}
    assert len(components) >= 25
    user_texts = [r["messages"][1]["content"] for r in _read_jsonl(OPENAI_FILE)]
    openers = {text.replace(extract_log_line(text), "{log}") for text in user_texts}
    assert len(openers) >= 12


def test_total_size_is_small():
    assert sum(len(b) for b in _data_files(DEMO_DATA_DIR).values()) < 300_000
