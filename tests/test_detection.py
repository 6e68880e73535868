"""Format detection weighs every sniffer; folder walks say what they passed over (issue 16, faults 3 and 4)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from model_customization.datasets.build import build_dataset
from model_customization.errors import UserError
from model_customization.memory import detect
from model_customization.memory.formats import MemoryFormat, score
from model_customization.memory.records import Conversation, ImportProblem, Message, SkippedFile

REPO = Path(__file__).resolve().parents[1]
CLAUDE_SAMPLE = REPO.parent / "shared" / "fixtures" / "memory-samples" / "claude-code"
OPENAI_SAMPLE = REPO.parent / "shared" / "fixtures" / "memory-samples" / "openai-finetune" / "disler_example-sarcastic-factbot.jsonl"


def _one_conversation(path: Path, **_: object):
    yield Conversation("s", [Message("user", "hi"), Message("assistant", "hello")], str(path), 1, "precise")


def _nothing(path: Path, **_: object):
    yield ImportProblem(str(path), 1, "cannot read this")


# --- fault 3: the best fit wins, whatever the order -------------------------------------------------------------


def test_score_reads_bools_numbers_and_failures():
    assert score(lambda _: True, 1) == 1.0
    assert score(lambda _: False, 1) == 0.0
    assert score(lambda _: 0.4, 1) == 0.4
    assert score(lambda _: 7, 1) == 1.0  # clamped
    assert score(lambda _: 1 / 0, 1) == 0.0  # a sniffer that trips does not recognise the input
    assert score(None, 1) == 0.0


def test_a_precise_sniffer_later_in_the_list_beats_a_loose_one_earlier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    loose = MemoryFormat("loose", _nothing, sniff_document=lambda doc: 0.3 if "messages" in doc else 0)
    precise = MemoryFormat("precise", _one_conversation, sniff_document=lambda doc: 0.95 if doc.get("projectHash") else 0)
    monkeypatch.setattr(detect, "FORMATS", [loose, precise])
    monkeypatch.setattr(detect, "_BY_NAME", {"loose": loose, "precise": precise})
    path = tmp_path / "session.json"
    path.write_text(json.dumps({"projectHash": "abc", "messages": [{"type": "user", "content": "hi"}]}))
    verdict = detect.judge(path)
    assert (verdict.format, verdict.runner_up) == ("precise", "loose")
    assert [type(r).__name__ for r in detect.iter_memory([path])] == ["Conversation"]


def test_a_guess_that_reads_nothing_names_itself_and_the_runner_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    loose = MemoryFormat("loose", _nothing, sniff_document=lambda doc: 0.3)
    looser = MemoryFormat("looser", _nothing, sniff_document=lambda doc: 0.1)
    monkeypatch.setattr(detect, "FORMATS", [looser, loose])
    monkeypatch.setattr(detect, "_BY_NAME", {"loose": loose, "looser": looser})
    path = tmp_path / "odd.json"
    path.write_text('{"a": 1}')
    problems = list(detect.iter_memory([path]))
    assert [p.line for p in problems] == [1, 0]
    assert "detected as loose (fit 0.30; runner-up looser (fit 0.10))" in problems[-1].message


def test_a_document_on_one_line_without_roles_is_only_a_loose_openai_guess(tmp_path: Path):
    """The shape of a Gemini CLI session saved on one line: `messages` entries have `type`, not `role`. OpenAI chat
    must claim it only weakly, so that a format knowing the keys wins, and a failure says it was a guess."""
    path = tmp_path / "session.jsonl"
    path.write_text(json.dumps({"sessionId": "x", "messages": [{"id": "1", "type": "user", "content": "hi"}]}) + "\n")
    openai = next(f for f in detect.FORMATS if f.name == "openai_chat")
    assert 0 < score(openai.sniff_line, json.loads(path.read_text())) < 0.5
    good = json.loads(OPENAI_SAMPLE.read_text().splitlines()[0])
    assert score(openai.sniff_line, good) == 1.0


GEMINI_ONE_LINE = REPO / "tests" / "fixtures" / "gemini_cli" / "session-2025-12-01T21-45-5b959dae-one-line.json"


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_a_real_gemini_session_saved_on_one_line_is_gemini_whatever_its_name(tmp_path: Path, suffix: str):
    """Fault 3: on one line, a Gemini CLI session was read as OpenAI chat JSONL and refused ("message 1: unknown role
    None"). Every sniffer is weighed now: Gemini's keys win over a bare `messages` list."""
    path = tmp_path / f"session{suffix}"
    shutil.copy(GEMINI_ONE_LINE, path)
    assert len(path.read_text(encoding="utf-8").strip().splitlines()) == 1
    verdict = detect.judge(path)
    assert verdict.format == "gemini_cli"
    records = list(detect.iter_memory([path]))
    assert [type(r).__name__ for r in records] == ["Conversation"]
    if suffix == ".jsonl":  # judged line by line: OpenAI chat saw the `messages` list too, and came second
        assert verdict.runner_up == "openai_chat" and verdict.runner_up_score < 0.5


def test_without_its_format_the_one_line_session_names_the_guess_and_why_it_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """With no Gemini format to claim it, the file is a loose OpenAI guess; the failure says so instead of only
    "unknown role"."""
    others = [f for f in detect.FORMATS if not f.name.startswith("gemini_cli")]
    monkeypatch.setattr(detect, "FORMATS", others)
    monkeypatch.setattr(detect, "_BY_NAME", {f.name: f for f in others})
    path = tmp_path / "session.jsonl"
    shutil.copy(GEMINI_ONE_LINE, path)
    problems = list(detect.iter_memory([path]))
    assert problems and all(isinstance(p, ImportProblem) for p in problems)
    assert "detected as openai_chat (fit 0.30" in problems[-1].message


@pytest.mark.skipif(not CLAUDE_SAMPLE.is_dir(), reason="needs ../shared")
def test_every_shared_claude_code_sample_is_still_claude_code():
    files = sorted(CLAUDE_SAMPLE.rglob("*.jsonl"))
    assert files and {detect.detect_format(f) for f in files} == {"claude_code"}


# --- fault 4: a walk says what it skipped and why -----------------------------------------------------------------


def test_a_walk_reports_each_file_it_passes_over(tmp_path: Path):
    folder = tmp_path / "memory"
    (folder / ".git" / "objects").mkdir(parents=True)
    (folder / ".git" / "objects" / "ab12").write_bytes(b"\x78\x9c")
    (folder / "notes.txt").write_text("a note\n")
    (folder / "README.md").write_text("# A project\n\nNot a chat history.\n")
    shutil.copy(OPENAI_SAMPLE, folder / "chats.jsonl")
    skipped: list[SkippedFile] = []
    records = list(detect.iter_memory([folder], skipped=skipped))
    assert records and all(isinstance(r, Conversation) for r in records)
    reasons = {Path(s.file).name: s.reason for s in skipped}
    assert set(reasons) == {".git", "notes.txt", "README.md"}
    assert "no memory format reads .txt files" in reasons["notes.txt"]
    assert "recognises" in reasons["README.md"]
    assert ".git" in reasons[".git"]


def test_a_build_from_a_folder_of_unreadable_files_names_them(tmp_path: Path, ws):
    folder = tmp_path / "history"
    folder.mkdir()
    (folder / "session.log").write_text("user: hi\nassistant: hello\n")
    (folder / "chat.md").write_text("# Chat\n\nuser: hi\n")
    with pytest.raises(UserError) as refused:
        build_dataset(ws, [folder])
    message = str(refused.value)
    assert "2 files skipped" in message
    assert "session.log: no memory format reads .log files" in message
    assert "chat.md: no memory format recognises this .md file" in message


def test_a_build_lists_what_it_skipped_beside_what_it_read(tmp_path: Path, ws):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(OPENAI_SAMPLE, folder / "chats.jsonl")
    (folder / "todo.txt").write_text("nothing here\n")
    result = build_dataset(ws, [folder])
    assert result.skipped_count == 1 and result.skipped == [f"{folder / 'todo.txt'}: no memory format reads .txt files"]
    assert result.card["skipped_files"]["count"] == 1


# --- every format named wherever the server describes its inputs ----------------------------------------------------


def test_the_build_tools_paths_description_names_every_readable_format():
    from model_customization.memory.catalog import readable_formats
    from model_customization.operations.datasets import BuildDatasetRequest

    description = BuildDatasetRequest.model_json_schema()["properties"]["paths"]["description"]
    names = [f.name for f in readable_formats()]
    assert "claude_code" in names and "chatgpt_feedback" not in names  # side files are not offered
    assert [n for n in names if n not in description] == []


def test_the_readme_table_has_a_row_per_readable_format():
    from model_customization.memory.catalog import readable_formats

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme.split("memory formats table: written by", 1)[1].split("end of memory formats table", 1)[0]
    assert [f.name for f in readable_formats() if f"| `{f.name}`:" not in table] == []


# --- every committed fixture is detected as its own format ---------------------------------------------------------

SHARED = REPO.parent / "shared" / "fixtures" / "memory-samples"
FIXTURES = REPO / "tests" / "fixtures"
DOCS = {"SOURCES.md", "README.md"}  # the notes beside fixtures, not memory
# (folder relative to its fixtures root, file name or "*") -> the format it must be detected as
SHARED_EXPECTED = {
    ("agent-trajectories-labeled/swe-agent", "*"): "swe_agent",
    ("agent-trajectories-labeled/toolbench", "*"): "toolbench",
    ("chatgpt-export", "message_feedback.json"): "chatgpt_feedback",
    ("chatgpt-export", "shared_conversations.json"): "chatgpt_shared_index",
    ("chatgpt-export/samples", "*"): "chatgpt_export",
    ("claude-code/d-kimuson", "*"): "claude_code",
    ("claude-code/marot-spotter", "*"): "claude_code",
    ("mcp-memory", "*"): "mcp_memory",
    ("openai-finetune", "*"): "openai_chat",
    ("openai-finetune/dpo", "*"): "openai_chat",
    ("sharegpt", "*"): "sharegpt",
}
FIXTURE_EXPECTED = {
    ("claude_code", "*"): "claude_code",
    ("letta", "*"): "letta",
    ("otel", "*"): "otel_genai",
    ("trajectories", "*"): "tau_bench",
    ("aider", "*"): "aider",
    ("codex_cli", "*"): "codex_cli",
    ("gemini_cli", "*"): "gemini_cli",
    ("gemini_cli", "logs.json"): "gemini_cli_side_file",
    ("opencode/storage/session/4b0ea68d7af9a6031a7ffda7ad66e0cb83315750", "*"): "opencode",
    ("opencode/storage/project", "*"): "opencode_side",
    ("cursor", "*"): "cursor",
    ("cline/saoudrizwan.claude-dev/tasks/1764950400000", "*"): "cline_side_file",
    ("cline/saoudrizwan.claude-dev/tasks/1764950400000", "api_conversation_history.json"): "cline",
    ("cline/rooveterinaryinc.roo-cline/tasks/0196c0b2-5a3e-7c41-9d3e-2f8b7a6c1e90", "*"): "cline_side_file",
    ("cline/rooveterinaryinc.roo-cline/tasks/0196c0b2-5a3e-7c41-9d3e-2f8b7a6c1e90", "api_conversation_history.json"): "roo_code",
    ("cline/kilocode.kilo-code/tasks/b3f1c2d4-0a9e-4c7b-8e21-6d5f4a3b2c10", "*"): "cline_side_file",
    ("cline/kilocode.kilo-code/tasks/b3f1c2d4-0a9e-4c7b-8e21-6d5f4a3b2c10", "api_conversation_history.json"): "kilo_code",
    ("cline/sdk-session", "*"): "cline",
    ("cline/sdk-session/1784094124598_rruoq", "1784094124598_rruoq.messages.json"): "cline",
    ("cline/sdk-session/1784094124598_rruoq", "1784094124598_rruoq.json"): "cline_side_file",
    ("cline/sdk-session/1784094124598_rruoq", "1784094124598_rruoq.compaction.json"): "cline_side_file",
    ("openhands", "*"): "openhands",
    ("openhands", "v1_events.jsonl"): "openhands_v1",
    ("openhands/v0-sessions/5f3c0a4e9b2d4e7f8a1b6c9d0e2f4a6b/events", "*"): "openhands_side_file",
    # a V1 conversation folder's files, met alone (the folder itself is openhands_v1)
    ("openhands/v1-conversations/11111111222233334444555555555555", "*"): "openhands_side_file",
    ("openhands/v1-conversations/11111111222233334444555555555555/events", "*"): "openhands_side_file",
    ("cass_memory/projects/sample-project", "*"): "claude_code",
    ("cass_memory/cass-memory", "outcomes.jsonl"): "cass_memory_outcomes",
    ("cass_memory/cass-memory", "processed-sessions.jsonl"): "cass_memory_logs",
    ("cass_memory/cass-memory", "context-log.jsonl"): "cass_memory_logs",
    ("cass_memory/cass-memory/diary", "*"): "cass_memory_diary",
}
# OpenCode's message/<session>/ and part/<message>/ folders: every file in them is a side file of its session.
FIXTURE_EXPECTED.update(
    {(folder.relative_to(FIXTURES).as_posix(), "*"): "opencode_side" for folder in sorted((FIXTURES / "opencode" / "storage").glob("*/*_*"))}
)


def _expected(root: Path, table: dict[tuple[str, str], str]) -> list[tuple[Path, str]]:
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name in DOCS:
            continue
        folder = path.parent.relative_to(root).as_posix()
        expected = table.get((folder, path.name)) or table.get((folder, "*"))
        found.append((path, expected))
    return found


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared")
def test_every_shared_fixture_is_detected_as_its_own_format():
    wrong = [(p.relative_to(SHARED).as_posix(), want, detect.detect_format(p)) for p, want in _expected(SHARED, SHARED_EXPECTED)]
    assert [w for w in wrong if w[1] != w[2]] == []


def test_every_fixture_of_ours_is_detected_as_its_own_format():
    wrong = [(p.relative_to(FIXTURES).as_posix(), want, detect.detect_format(p)) for p, want in _expected(FIXTURES, FIXTURE_EXPECTED)]
    assert len(wrong) >= 7
    assert [w for w in wrong if w[1] != w[2]] == []


def _within(seconds: float, work):
    """Run `work` in a thread; fail (instead of hanging the suite) when it has not finished in time."""
    import threading

    box: list = []
    thread = threading.Thread(target=lambda: box.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked: a special file was opened"
    return box[0]


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_never_opened_given_or_met_on_a_walk(tmp_path: Path):
    import os

    folder = tmp_path / "memory"
    folder.mkdir()
    shutil.copy(OPENAI_SAMPLE, folder / "chats.jsonl")
    os.mkfifo(folder / "pipe.jsonl")
    skipped: list[SkippedFile] = []
    records = _within(20, lambda: list(detect.iter_memory([folder], skipped=skipped)))
    assert records and all(isinstance(r, Conversation) for r in records)
    assert [(Path(s.file).name, s.reason) for s in skipped] == [("pipe.jsonl", "not a regular file (a FIFO): only regular files are read")]
    [problem] = _within(20, lambda: list(detect.iter_memory([folder / "pipe.jsonl"])))
    assert isinstance(problem, ImportProblem) and "not a regular file (a FIFO)" in problem.message


def test_a_database_store_is_read_whatever_the_file_size_limit(monkeypatch: pytest.MonkeyPatch):
    """The size limit keeps text files from being read whole; a SQLite store is read row by row, so it is exempt,
    while a JSON file over the limit is still refused."""
    monkeypatch.setenv("MODEL_CUSTOMIZATION_MAX_FILE_BYTES", "1KiB")
    store = FIXTURES / "cursor" / "workspace-state.vscdb"
    assert store.stat().st_size > 1024
    records = list(detect.iter_memory([store]))
    assert any(isinstance(r, Conversation) for r in records)
    [refused] = list(detect.iter_memory([OPENAI_SAMPLE]))
    assert isinstance(refused, ImportProblem) and "limit" in refused.message
