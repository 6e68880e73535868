"""find_memory: the agent memories in a fake home, per agent and folder, through the domain, the MCP tool and the CLI.

Expected counts, bytes and dates come from the files the tests write (sizes from the file system, times set with
os.utime), never from find_memory's own reading.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mcp import Client
from typer.testing import CliRunner

from model_customization.cli import app
from model_customization.config import ALLOWED_ROOTS_ENV, HOME_ENV
from model_customization.memory import detect, discovery
from model_customization.memory.discovery import find_memory
from model_customization.memory.formats import MemoryFormat
from model_customization.paths import (
    DEFAULT_AGENT_MEMORY_DIRS,
    allowed_roots,
    default_agent_memory_dirs,
    holds_credentials,
    is_allowed,
)
from model_customization.server.app import build_server

FIXTURES = Path(__file__).parent / "fixtures"
CLAUDE_SESSION = FIXTURES / "cass_memory" / "projects" / "sample-project" / "1af7fc5e-8455-4414-9ccd-011d40f70b2a.jsonl"
CASS_OUTCOMES = FIXTURES / "cass_memory" / "cass-memory" / "outcomes.jsonl"


def _lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


# One sample per format with an agent: (the file or folder, where under the format's first location it goes, the
# sessions it holds counted by hand or from the file). Other agents' samples are added here as their formats land.
OPENCODE_STORAGE = FIXTURES / "opencode" / "storage"
CODEX_ROLLOUT = FIXTURES / "codex_cli" / "rollout-2026-05-11T11-26-55-019e1625-789d-76c0-80ab-3724b5ddb799.jsonl"
GEMINI_SESSION = FIXTURES / "gemini_cli" / "session-2025-12-01T21-45-5b959dae.json"
CLINE_TASKS = FIXTURES / "cline"
OPENHANDS_V1 = FIXTURES / "openhands" / "v1-conversations" / "11111111222233334444555555555555"
OPENHANDS_V0 = FIXTURES / "openhands" / "v0-sessions" / "5f3c0a4e9b2d4e7f8a1b6c9d0e2f4a6b"
CURSOR_STORE = FIXTURES / "cursor" / "workspace-state.vscdb"
AIDER_HISTORY = FIXTURES / "aider" / "chat-history.md"


def _cursor_chats(store: Path) -> int:
    """Chats holding messages in a 2024 workspace store, read with sqlite3 and json: composers with a conversation and
    chat-panel tabs with bubbles."""
    import sqlite3

    connection = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = dict(connection.execute("SELECT key, value FROM ItemTable").fetchall())
    finally:
        connection.close()
    composers = json.loads(rows.get("composer.composerData") or "{}").get("allComposers") or []
    tabs = json.loads(rows.get("workbench.panel.aichat.view.aichat.chatdata") or "{}").get("tabs") or []
    return sum(1 for c in composers if c.get("conversation")) + sum(1 for t in tabs if t.get("bubbles"))
SAMPLES: dict[str, tuple[Path, str, int]] = {
    "claude_code": (CLAUDE_SESSION, "-home-alice-demo/" + CLAUDE_SESSION.name, 1),  # one transcript file, one session
    "letta": (FIXTURES / "letta" / "agent_file_current.af", "agent.af", 1),  # one agent file
    # OpenCode: one JSON file per session under storage/session/<project>/
    "opencode": (OPENCODE_STORAGE, "storage", len(list((OPENCODE_STORAGE / "session").rglob("ses_*.json")))),
    "cass_memory_outcomes": (CASS_OUTCOMES, "", _lines(CASS_OUTCOMES)),  # the location is the log itself: one record a line
    # One rollout file, one session file, one task or conversation folder: one session each.
    "codex_cli": (CODEX_ROLLOUT, "2026/05/11/" + CODEX_ROLLOUT.name, 1),
    "gemini_cli": (GEMINI_SESSION, "5b959dae0hash/chats/" + GEMINI_SESSION.name, 1),
    "cline": (CLINE_TASKS / "saoudrizwan.claude-dev" / "tasks" / "1764950400000", "1764950400000", 1),
    "roo_code": (CLINE_TASKS / "rooveterinaryinc.roo-cline" / "tasks" / "0196c0b2-5a3e-7c41-9d3e-2f8b7a6c1e90", "0196c0b2-5a3e-7c41-9d3e-2f8b7a6c1e90", 1),
    "kilo_code": (CLINE_TASKS / "kilocode.kilo-code" / "tasks" / "b3f1c2d4-0a9e-4c7b-8e21-6d5f4a3b2c10", "b3f1c2d4-0a9e-4c7b-8e21-6d5f4a3b2c10", 1),
    "openhands_v1": (OPENHANDS_V1, OPENHANDS_V1.name, 1),
    "openhands": (OPENHANDS_V0, OPENHANDS_V0.name, 1),  # one V0 session folder (events/<id>.json)
    "cursor": (CURSOR_STORE, "state.vscdb", _cursor_chats(CURSOR_STORE)),  # one store, many chats
}
WHEN = datetime(2025, 9, 3, 0, 47, 19, tzinfo=UTC).timestamp()
LATER = datetime(2025, 9, 7, 9, 52, 3, tzinfo=UTC).timestamp()
SECRET = "sk-ant-oat01-do-not-read-me"


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def first_location(fmt: MemoryFormat, home: Path) -> Path:
    location = fmt.locations[0].replace("*", "x")  # a glob's one concrete match
    return home / location[2:] if location.startswith("~/") else Path(location)


def place(fmt: MemoryFormat, home: Path) -> Path:
    """The format's sample at its first location in the fake home; its files' times set to WHEN."""
    sample, below, _ = SAMPLES[fmt.name]
    location = first_location(fmt, home)
    target = location / below if below else location
    target.parent.mkdir(parents=True, exist_ok=True)
    if sample.is_dir():
        shutil.copytree(sample, target)
    else:
        shutil.copy(sample, target)
    for file in [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()]:
        os.utime(file, (WHEN, WHEN))
    return location


def sample_formats() -> list[MemoryFormat]:
    return [fmt for fmt in detect.FORMATS if fmt.agent and fmt.name in SAMPLES]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake home with the default allowed roots (no MODEL_CUSTOMIZATION_ALLOWED_ROOTS), worked in from elsewhere."""
    fake = tmp_path / "alice"
    fake.mkdir()
    monkeypatch.setenv("HOME", str(fake))
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "data-home"))
    monkeypatch.delenv(ALLOWED_ROOTS_ENV)
    monkeypatch.delenv("CASS_MEMORY_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return fake


def test_agent_formats_with_locations_have_samples_here():
    located = {fmt.name for fmt in detect.FORMATS if fmt.agent and fmt.locations}
    assert {"claude_code", "cass_memory_outcomes"} <= located
    assert {fmt.name for fmt in sample_formats()} == located & set(SAMPLES)


def test_each_agent_in_the_fake_home_is_listed_with_its_counts(home: Path):
    formats = sample_formats()
    assert {fmt.name for fmt in formats} >= {"claude_code", "cass_memory_outcomes"}
    (home / ".local" / "share" / "opencode").mkdir(parents=True)
    (home / ".local" / "share" / "opencode" / "auth.json").write_text(json.dumps({"anthropic": {"type": "api", "key": SECRET}}))
    placed = {fmt.name: place(fmt, home) for fmt in formats}
    found = find_memory()
    by_format = {location.format: location for location in found.locations}
    assert set(by_format) == set(placed)  # absent locations are not listed...
    assert set(map(str, placed.values())) <= set(found.looked_in)  # ...but were looked in
    for name, location in placed.items():
        listed = by_format[name]
        files = [location] if location.is_file() else [p for p in location.rglob("*") if p.is_file() and p.name != "auth.json"]
        assert listed.folder == str(location)
        expected_paths = [location / "storage"] if name == "opencode" else [location]  # never the folder with auth.json
        assert listed.paths == [str(p) for p in expected_paths], name
        assert listed.agent == next(fmt.agent for fmt in formats if fmt.name == name)
        assert listed.sessions == SAMPLES[name][2], name
        assert listed.files == len(files) and listed.bytes == sum(p.stat().st_size for p in files), name
        assert listed.first_date == listed.last_date == iso(WHEN), name
        assert listed.complete and listed.allowed and listed.how_to_allow is None, name  # the default roots cover it
    assert found.next_step.startswith("Build a dataset") and "build_dataset_from_memory" in found.next_step
    assert SECRET not in found.model_dump_json() and "auth.json" not in found.model_dump_json()


def test_dates_counts_and_an_agent_filter(home: Path):
    project = home / ".claude" / "projects" / "-home-alice-demo"
    project.mkdir(parents=True)
    for name, moment in (("a.jsonl", WHEN), ("b.jsonl", LATER)):
        shutil.copy(CLAUDE_SESSION, project / name)
        os.utime(project / name, (moment, moment))
    (project / "notes.txt").write_text("not a transcript")
    (project / "other.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')  # OpenAI chat, not Claude Code
    (listed,) = find_memory(agent="claude code").locations
    assert (listed.sessions, listed.files, listed.bytes) == (2, 2, 2 * CLAUDE_SESSION.stat().st_size)
    assert (listed.first_date, listed.last_date) == (iso(WHEN), iso(LATER))
    assert find_memory(agent="no such agent").locations == []


def test_credentials_beside_transcripts_are_never_opened_counted_or_named(home: Path, monkeypatch: pytest.MonkeyPatch):
    place(next(fmt for fmt in detect.FORMATS if fmt.name == "claude_code"), home)
    secrets = [
        home / ".claude" / ".credentials.json",
        home / ".claude" / "projects" / "auth.json",
        home / ".claude" / "projects" / "-home-alice-demo" / "oauth_token.jsonl",
        home / ".cass-memory" / "config.json",
    ]
    for secret in secrets:
        secret.parent.mkdir(parents=True, exist_ok=True)
        # Claude Code-looking lines, so that only the name can keep them out.
        secret.write_text(json.dumps({"type": "user", "sessionId": "s", "uuid": "u", "apiKey": SECRET}) + "\n")
    opened: list[Path] = []
    real_open = pathlib.Path.open

    def recording_open(self, *args, **kwargs):
        opened.append(Path(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", recording_open)
    found = find_memory()
    text = found.model_dump_json()
    assert SECRET not in text and not any(secret.name in text for secret in secrets)
    assert not set(opened) & set(secrets)
    (listed,) = [location for location in found.locations if location.format == "claude_code"]
    assert listed.sessions == 1
    # The agents' own credentials files are outside the default allowed roots.
    roots = allowed_roots()
    assert not is_allowed(secrets[0], roots) and not is_allowed(secrets[-1], roots)
    assert (home / ".claude").resolve() not in roots and (home / ".cass-memory").resolve() not in roots


def test_a_folder_outside_the_allowed_roots_is_listed_with_how_to_allow_it(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    location = place(next(fmt for fmt in detect.FORMATS if fmt.name == "claude_code"), home)
    monkeypatch.setenv(ALLOWED_ROOTS_ENV, str(tmp_path / "somewhere-else"))
    (listed,) = [loc for loc in find_memory().locations if loc.format == "claude_code"]
    assert listed.allowed is False and listed.sessions == 1  # shown, not refused
    advice = listed.how_to_allow
    assert advice and ALLOWED_ROOTS_ENV in advice and "allowed_roots = [" in advice and str(location) in advice
    # The advice is exact: the value it gives allows the folder and keeps the roots allowed before.
    value = advice.split(f"{ALLOWED_ROOTS_ENV}=", 1)[1].split(" in the server's environment", 1)[0]
    monkeypatch.setenv(ALLOWED_ROOTS_ENV, value)
    assert is_allowed(location) and is_allowed(tmp_path / "somewhere-else")
    assert all(loc.allowed for loc in find_memory().locations if loc.format == "claude_code")


def test_counting_stops_at_its_budget_and_links_out_are_not_followed(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    project = home / ".claude" / "projects" / "p"
    project.mkdir(parents=True)
    for name in ("a.jsonl", "b.jsonl", "c.jsonl"):
        shutil.copy(CLAUDE_SESSION, project / name)
    outside = tmp_path / "outside.jsonl"
    shutil.copy(CLAUDE_SESSION, outside)
    (project / "link.jsonl").symlink_to(outside)
    (project / "inside-link.jsonl").symlink_to(project / "a.jsonl")
    (listed,) = find_memory(agent="Claude Code").locations
    assert listed.sessions == 4 and listed.complete  # a, b, c and the link that stays inside
    assert "1 symbolic link(s) leading out of the folder not followed" in listed.note

    # A location that is itself a link (projects kept on another disk) stands for its target.
    moved = tmp_path / "other-disk" / "projects"
    moved.parent.mkdir()
    (home / ".claude" / "projects").rename(moved)
    (home / ".claude" / "projects").symlink_to(moved, target_is_directory=True)
    (listed,) = find_memory(agent="Claude Code").locations
    assert listed.sessions == 4 and listed.folder == str(home / ".claude" / "projects")

    monkeypatch.setattr(discovery, "MAX_ENTRIES_PER_LOCATION", 3)  # the folder p, then two of its files
    (listed,) = find_memory(agent="Claude Code").locations
    assert listed.complete is False and listed.sessions == 2 and "stopped counting after 3 entries" in listed.note


def test_default_roots_cover_each_format_location_but_never_credentials(home: Path, monkeypatch: pytest.MonkeyPatch):
    for kept in DEFAULT_AGENT_MEMORY_DIRS:  # the entries before the registry are still there
        assert str(Path(kept).expanduser()) in default_agent_memory_dirs()
    (home / ".config" / "Code-x" / "tasks").mkdir(parents=True)
    risky = MemoryFormat(
        "risky",
        lambda path: iter(()),
        agent="Risky",
        locations=("~", "~/.codex", "~/.local/share/opencode", "~/.codex/sessions", "~/.config/Code*/tasks", "~/.cass-memory"),
    )
    monkeypatch.setattr(detect, "FORMATS", [*detect.FORMATS, risky])
    dirs = default_agent_memory_dirs()
    for refused in ("", ".codex", ".local/share/opencode", ".cass-memory"):  # each holds (or is above) credentials
        assert str(home / refused).rstrip("/") not in dirs, refused  # (no entries of theirs exist here)
    assert str(home / ".codex" / "sessions") in dirs
    opencode = home / ".local" / "share" / "opencode"
    (opencode / "storage").mkdir(parents=True)
    (opencode / "auth.json").write_text("{}")
    (opencode / "opencode.db").write_bytes(b"")
    dirs = default_agent_memory_dirs()  # a folder holding credentials stands for its other entries
    assert str(opencode / "storage") in dirs and str(opencode / "opencode.db") in dirs
    assert str(opencode) not in dirs and str(opencode / "auth.json") not in dirs
    assert str(home / ".config" / "Code-x" / "tasks") in dirs  # a glob, matched on this machine
    for fmt in detect.FORMATS:
        for location in fmt.locations:
            if "*" not in location and fmt.name != "risky" and not holds_credentials(Path(location).expanduser()):
                assert str(Path(location).expanduser()) in dirs, location


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_tool_through_the_mcp_server(home: Path, ws):
    place(next(fmt for fmt in detect.FORMATS if fmt.name == "claude_code"), home)
    async with Client(build_server(ws=ws)) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "find_memory")
        result = await client.call_tool("find_memory", {})
        filtered = await client.call_tool("find_memory", {"agent": "cass-memory"})
    assert tool.annotations.read_only_hint is True and tool.annotations.destructive_hint is False
    assert "specialise yourself" in tool.description
    assert tool.output_schema and "locations" in tool.output_schema["properties"]
    assert not result.is_error
    expected = find_memory().model_dump()
    assert result.structured_content == expected
    assert [loc["format"] for loc in result.structured_content["locations"]] == ["claude_code"]
    assert filtered.structured_content["locations"] == []


def test_the_cli_command(home: Path, tmp_path: Path):
    location = place(next(fmt for fmt in detect.FORMATS if fmt.name == "claude_code"), home)
    runner = CliRunner()
    as_json = runner.invoke(app, ["memory", "find", "--json", "--home", str(tmp_path / "data-home")])
    assert as_json.exit_code == 0, as_json.output
    found = json.loads(as_json.stdout)
    assert [(loc["format"], loc["folder"], loc["sessions"]) for loc in found["locations"]] == [("claude_code", str(location), 1)]
    as_text = runner.invoke(app, ["memory", "find", "--agent", "Claude Code", "--home", str(tmp_path / "data-home")], env={"COLUMNS": "250"})
    assert as_text.exit_code == 0, as_text.output
    assert str(location) in as_text.output and "Claude Code" in as_text.output


def test_an_aider_history_in_the_project_being_worked_on_is_listed(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Aider writes its history into the project (at the repository's top), not into a folder of its own: find_memory
    looks in the working directory and the folders above it, short of the home folder."""
    project = tmp_path / "work"  # the fixture's working directory
    history = project / ".aider.chat.history.md"
    shutil.copy(AIDER_HISTORY, history)
    os.utime(history, (WHEN, WHEN))
    sessions = sum(1 for line in history.read_text(encoding="utf-8").splitlines() if line.startswith("# aider chat started at"))
    assert sessions > 1
    (project / "src" / "pkg").mkdir(parents=True)
    monkeypatch.chdir(project / "src" / "pkg")  # working below the project's top
    (listed,) = find_memory(agent="aider").locations
    assert (listed.format, listed.folder, listed.paths) == ("aider", str(history), [str(history)])
    assert (listed.sessions, listed.files, listed.bytes) == (sessions, 1, history.stat().st_size)
    assert listed.first_date == listed.last_date == iso(WHEN)
    # The default roots hold the working directory, not the folders above it: listed, with how to allow it.
    assert not listed.allowed and listed.how_to_allow and str(history) in listed.how_to_allow
    monkeypatch.chdir(project)
    (listed,) = find_memory(agent="aider").locations
    assert listed.allowed and listed.sessions == sessions
    monkeypatch.chdir(home)  # nothing is looked for above the home folder, nor in it
    assert find_memory(agent="aider").locations == []
