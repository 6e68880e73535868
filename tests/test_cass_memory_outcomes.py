"""cass-memory outcome records as outcome signals: joined to the sessions they name, they decide outcome filters.

Fixtures: tests/fixtures/cass_memory (two real Claude Code sessions; hand-written cass-memory files, see SOURCES.md).
Expected values are read from the fixture files with json here, never from the importer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from model_customization.config import ALLOWED_ROOTS_ENV
from model_customization.datasets.build import build_dataset
from model_customization.datasets.filters import ConversationFilter
from model_customization.memory.cass_memory import HOME_ENV, outcome_files
from model_customization.memory.detect import detect_format, iter_memory
from model_customization.memory.records import Conversation, ImportProblem

FIXTURES = Path(__file__).parent / "fixtures" / "cass_memory"
PROJECT = FIXTURES / "projects" / "sample-project"
CASS = FIXTURES / "cass-memory"
SUCCESS_SESSION = PROJECT / "1af7fc5e-8455-4414-9ccd-011d40f70b2a.jsonl"  # named by path (another machine's) in line 1
FAILED_SESSION = PROJECT / "5c0375b4-57a5-4f26-b12d-d022ee4e51b7.jsonl"  # named by id: mixed (line 2), then failure (line 3)


def outcome_lines() -> list[dict]:
    return [json.loads(line) for line in (CASS / "outcomes.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


def session_id_of(transcript: Path) -> str:
    """The sessionId the transcript's own lines carry."""
    ids = {json.loads(line).get("sessionId") for line in transcript.read_text(encoding="utf-8").splitlines() if line.strip()}
    ids.discard(None)
    assert len(ids) == 1, ids
    return ids.pop()


def sidechain_roots(transcript: Path) -> int:
    """Inline subagent threads: isSidechain lines whose parent is not itself a sidechain line."""
    lines = [json.loads(line) for line in transcript.read_text(encoding="utf-8").splitlines() if line.strip()]
    side = {obj["uuid"] for obj in lines if obj.get("isSidechain") and "uuid" in obj}
    return sum(1 for obj in lines if obj.get("isSidechain") and obj.get("parentUuid") not in side)


@pytest.fixture(autouse=True)
def no_global_cass_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cass-memory's global folder points at an empty place unless a test sets it: a developer's own is never read."""
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "no-cass-memory"))


def conversations(records) -> list[Conversation]:
    return [r for r in records if isinstance(r, Conversation)]


def test_the_fixtures_say_what_the_tests_rely_on():
    lines = outcome_lines()
    assert lines[0]["sessionId"].endswith("/sample-project/" + SUCCESS_SESSION.name) and lines[0]["outcome"] == "success"
    assert [line["outcome"] for line in lines[1:3]] == ["mixed", "failure"]
    assert {line["sessionId"] for line in lines[1:3]} == {session_id_of(FAILED_SESSION)}
    assert lines[1]["recordedAt"] < lines[2]["recordedAt"]
    assert session_id_of(SUCCESS_SESSION) == SUCCESS_SESSION.stem


def test_each_conversation_carries_the_verdict_on_its_session():
    records = list(iter_memory([FIXTURES]))
    assert [r for r in records if isinstance(r, ImportProblem)] == []  # outcome, diary and log files are recognised
    convs = conversations(records)
    by_file: dict[str, list[Conversation]] = {}
    for conv in convs:
        by_file.setdefault(Path(conv.source_file).name, []).append(conv)
    assert set(by_file) == {SUCCESS_SESSION.name, FAILED_SESSION.name}

    (succeeded,) = by_file[SUCCESS_SESSION.name]
    # The transcripts record tool errors (the inferred signals say "failed"); the verdict decides.
    assert succeeded.outcome.is_error is True
    assert succeeded.outcome.verdict is True and succeeded.outcome.successful
    cass = succeeded.metadata["cass_outcome"]
    line = outcome_lines()[0]
    assert cass["status"] == "success" and cass["matched_by"] == "path_tail" and cass["session"] == line["sessionId"]
    assert cass["recorded_at"] == line["recordedAt"] and cass["record"].endswith("outcomes.jsonl:1")
    assert (cass["error_count"], cass["had_retries"], cass["auto_graded"], cass["duration_sec"]) == (1, False, True, 420)

    failed = by_file[FAILED_SESSION.name]
    assert len(failed) == 1 + sidechain_roots(FAILED_SESSION)  # the session and its inline subagents
    for conv in failed:
        assert conv.outcome.verdict is False and not conv.outcome.successful
        assert conv.metadata["cass_outcome"]["status"] == "failure"  # recorded after "mixed": the later one wins
        assert conv.metadata["cass_outcome"]["record"].endswith("outcomes.jsonl:3")
    assert {c.metadata["cass_outcome"]["matched_by"] for c in failed} == {"session_id", "parent_session_id"}


def test_without_the_outcome_file_the_sessions_keep_their_own_signals():
    convs = conversations(iter_memory([PROJECT]))
    assert convs and all(c.outcome.verdict is None and "cass_outcome" not in c.metadata for c in convs)


@pytest.mark.parametrize(("outcome", "kept_file"), [("successful", SUCCESS_SESSION), ("failed", FAILED_SESSION)])
def test_outcome_filter_of_a_build_keeps_and_drops_by_the_verdict(ws, outcome: str, kept_file: Path):
    total = 1 + 1 + sidechain_roots(FAILED_SESSION)
    kept = 1 if kept_file == SUCCESS_SESSION else 1 + sidechain_roots(FAILED_SESSION)
    result = build_dataset(
        ws, [str(PROJECT), str(CASS)], validation_fraction=0, test_fraction=0, filters=ConversationFilter(outcome=outcome), near_duplicate_threshold=None
    )
    assert result.counts["train"] == kept
    assert result.dropped.get("filter:outcome", 0) == total - kept


def test_a_session_named_by_its_path_here(tmp_path: Path):
    copy = tmp_path / "elsewhere" / "s.jsonl"  # another folder and name: only the exact path can name it
    copy.parent.mkdir()
    shutil.copy(FAILED_SESSION, copy)
    log = tmp_path / "cass" / "outcomes.jsonl"
    log.parent.mkdir()
    record = {"sessionId": str(copy), "outcome": "success", "rulesUsed": [], "recordedAt": "2025-09-08T00:00:00.000Z", "path": str(log)}
    log.write_text(json.dumps(record) + "\n", encoding="utf-8")
    convs = conversations(iter_memory([copy, log]))
    assert convs and all(c.outcome.successful and c.metadata["cass_outcome"]["matched_by"] == "path" for c in convs)


def test_the_global_folder_is_read_when_it_is_inside_the_allowed_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "cass-home"
    home.mkdir()
    shutil.copy(CASS / "outcomes.jsonl", home / "outcomes.jsonl")
    monkeypatch.setenv(HOME_ENV, str(home))
    monkeypatch.setenv(ALLOWED_ROOTS_ENV, str(FIXTURES))  # the global folder is outside: not read
    assert outcome_files([SUCCESS_SESSION]) == []
    assert conversations(iter_memory([SUCCESS_SESSION]))[0].outcome.verdict is None
    monkeypatch.setenv(ALLOWED_ROOTS_ENV, f"{FIXTURES}{__import__('os').pathsep}{home / 'outcomes.jsonl'}")
    assert outcome_files([SUCCESS_SESSION]) == [home / "outcomes.jsonl"]
    (conv,) = conversations(iter_memory([SUCCESS_SESSION]))
    assert conv.outcome.verdict is True


def test_a_bad_outcome_line_is_reported_and_the_rest_still_applies(tmp_path: Path):
    log = tmp_path / "outcomes.jsonl"
    lines = (CASS / "outcomes.jsonl").read_text(encoding="utf-8").splitlines()
    bad = json.dumps({"sessionId": "x", "outcome": "great", "rulesUsed": [], "recordedAt": "2025-09-09T00:00:00Z"})
    log.write_text("\n".join([lines[0], "{not json", bad, *lines[1:]]) + "\n", encoding="utf-8")
    records = list(iter_memory([PROJECT, log]))
    problems = [(p.line, p.message) for p in records if isinstance(p, ImportProblem)]
    assert [line for line, _ in problems] == [2, 3]
    assert "invalid JSON" in problems[0][1] and "'great' is not one of success, failure, mixed, partial" in problems[1][1]
    assert {c.outcome.verdict for c in conversations(records)} == {True, False}


def test_detection_names_each_cass_memory_file():
    assert detect_format(CASS / "outcomes.jsonl") == "cass_memory_outcomes"
    assert detect_format(CASS / "diary" / "diary-7c2e9a41.json") == "cass_memory_diary"
    assert detect_format(CASS / "processed-sessions.jsonl") == "cass_memory_logs"
    assert detect_format(CASS / "context-log.jsonl") == "cass_memory_logs"
    assert detect_format(SUCCESS_SESSION) == "claude_code"
    assert all(not isinstance(r, ImportProblem) for r in iter_memory([CASS / "diary"]))


def test_the_readme_layout_one_record_per_file(tmp_path: Path):
    """cass-memory's README draws outcomes/YYYY-MM/outcome-<timestamp>.json: read the same way as the log."""
    record = tmp_path / "cass" / "outcomes" / "2025-09" / "outcome-1757241000000.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"sessionId": session_id_of(SUCCESS_SESSION), "outcome": "failure", "rulesUsed": [], "recordedAt": "2025-09-07T10:30:00.000Z"}), encoding="utf-8")
    assert detect_format(record) == "cass_memory_outcomes"
    records = list(iter_memory([SUCCESS_SESSION, tmp_path / "cass"]))
    assert not [r for r in records if isinstance(r, ImportProblem)]
    (conv,) = conversations(records)
    assert conv.outcome.verdict is False and conv.metadata["cass_outcome"]["matched_by"] == "session_id"
