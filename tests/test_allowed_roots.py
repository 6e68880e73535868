"""Allowed roots, size limits and the config file (issue 7).

Each way out of the roots (`..`, an absolute path elsewhere, a symbolic link to a file or a folder, also one met
while walking a folder) is refused; a root that is itself a link works; over-long lines and over-sized files are
reported by file and line; the config file supplies roots and keys without ever winning over the environment or
echoing a key. Checked through the domain, the CLI and the MCP server.
"""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest
from mcp import Client
from typer.testing import CliRunner

from model_customization.cli import app
from model_customization.config import ALLOWED_ROOTS_ENV, CONFIG_ENV, ConfigError, apply_config_file, load_settings, read_config_file
from model_customization.datasets.build import build_dataset
from model_customization.deployments import set_agent_suite
from model_customization.errors import UserError
from model_customization.evaluation.runner import load_suite
from model_customization.memory.detect import iter_memory
from model_customization.memory.records import Conversation, ImportProblem
from model_customization.paths import (
    DEMO_DATA_DIR,
    allowed_roots,
    check_readable,
    check_writable_dir,
    iter_limited_lines,
    memory_limits,
    parse_size,
)
from model_customization.server.app import build_server

SECRET = "sk-test-0123456789abcdefSECRETVALUE"


def sessions(path: Path, count: int = 6, tag: str = "a") -> Path:
    """A small OpenAI chat JSONL file of distinct sessions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"messages": [{"role": "user", "content": f"question {tag}{i} about topic {i * 7}"}, {"role": "assistant", "content": f"answer {tag}{i}: {i * 13} units"}]})
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The only allowed root for the test (besides the demo data); `outside` is its sibling."""
    folder = tmp_path / "root"
    folder.mkdir()
    monkeypatch.setenv(ALLOWED_ROOTS_ENV, str(folder))
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    return sessions(tmp_path / "outside" / "secret.jsonl", tag="x")


def build(ws, paths):
    return build_dataset(ws, paths, near_duplicate_threshold=None, validation_fraction=0.2, test_fraction=0.2)


# --- escapes ----------------------------------------------------------------------------------------------------


def test_each_escape_is_refused_naming_the_path_and_the_roots(ws, root: Path, outside: Path) -> None:
    sessions(root / "mine.jsonl")
    (root / "link.jsonl").symlink_to(outside)
    (root / "linked-folder").symlink_to(outside.parent, target_is_directory=True)
    escapes = {
        "dotdot": (str(root / ".." / "outside" / "secret.jsonl"), "'..'"),
        "absolute": (str(outside), "is outside the allowed roots"),
        "missing-absolute": ("/etc/nonexistent-file.jsonl", "is outside the allowed roots"),  # refused before any existence check
        "file-link": (str(root / "link.jsonl"), "symbolic link"),
        "folder-link": (str(root / "linked-folder"), "symbolic link"),
        "through-folder-link": (str(root / "linked-folder" / "secret.jsonl"), "symbolic link"),
    }
    for kind, (given, why) in escapes.items():
        with pytest.raises(UserError) as caught:
            build(ws, [given])
        message = str(caught.value)
        assert type(caught.value) is UserError, kind  # not NotFoundError: nothing about existence leaks
        assert given in message and why in message and str(root) in message, (kind, message)
        assert ALLOWED_ROOTS_ENV in message and "allowed_roots" in message, kind
    assert not ws.store.datasets.all()  # nothing was imported
    # Inside the root, even with a '..' that stays inside, is fine.
    assert build(ws, [str(root / "sub" / ".." / "mine.jsonl")]).counts["train"] > 0


def test_links_met_while_walking_a_folder_are_reported_not_followed(ws, root: Path, outside: Path) -> None:
    folder = root / "memory"
    sessions(folder / "good.jsonl", tag="g")
    (folder / "escape.jsonl").symlink_to(outside)
    (folder / "escape-dir").symlink_to(outside.parent, target_is_directory=True)
    (folder / "deeper").mkdir()
    (folder / "deeper" / "loop").symlink_to(folder, target_is_directory=True)  # inside the root: followed, once
    sessions(root / "elsewhere-inside" / "more.jsonl", tag="m")
    (folder / "inside-link").symlink_to(root / "elsewhere-inside", target_is_directory=True)

    records = list(iter_memory([folder]))
    problems = {p.file: p for p in records if isinstance(p, ImportProblem)}
    assert set(problems) == {str(folder / "escape.jsonl"), str(folder / "escape-dir")}
    assert all(p.line == 0 and "outside the allowed roots" in p.message and ALLOWED_ROOTS_ENV in p.message for p in problems.values())
    read = {Path(r.source_file).name for r in records if isinstance(r, Conversation)}
    assert read == {"good.jsonl", "more.jsonl"}  # nothing from outside; the loop did not repeat anything
    assert not any("secret" in r.source_file or "question x" in json.dumps(r.messages[0].content) for r in records if isinstance(r, Conversation))

    result = build(ws, [folder])
    assert any(str(folder / "escape-dir") in p and "not followed" in p for p in result.problems)
    assert result.counts["train"] + result.counts["validation"] + result.counts["test"] == 12


def test_a_root_given_as_a_link_works(ws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tmp_path / "real-memory"
    sessions(real / "s.jsonl")
    link = tmp_path / "memory-link"
    link.symlink_to(real, target_is_directory=True)
    monkeypatch.setenv(ALLOWED_ROOTS_ENV, str(link))
    assert real.resolve() in allowed_roots()
    assert check_readable(link / "s.jsonl") == (real / "s.jsonl").resolve()
    assert check_readable(real / "s.jsonl") == (real / "s.jsonl").resolve()
    assert build(ws, [link]).counts["train"] > 0
    with pytest.raises(UserError):
        check_readable(tmp_path / "other.jsonl")


def test_defaults_are_the_working_directory_agent_folders_and_demo_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ws) -> None:
    monkeypatch.delenv(ALLOWED_ROOTS_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.chdir(tmp_path / "home")
    roots = allowed_roots()
    assert roots[0] == (tmp_path / "home").resolve()
    assert (tmp_path / "user" / ".claude" / "projects").resolve() in roots
    assert (tmp_path / "user" / ".codex" / "sessions").resolve() in roots
    assert (tmp_path / "user" / ".claude").resolve() not in roots  # it also holds credentials
    assert DEMO_DATA_DIR in roots
    sessions(tmp_path / "home" / "notes" / "s.jsonl")
    assert build(ws, ["notes/s.jsonl"]).counts["train"] > 0  # relative to the working directory
    with pytest.raises(UserError):
        build(ws, [str(tmp_path / "elsewhere.jsonl")])

    # A server started in / (Claude Desktop does) or in the home folder does not open all of it.
    for too_wide in (Path("/"), tmp_path / "user"):
        too_wide.mkdir(exist_ok=True)
        monkeypatch.chdir(too_wide)
        assert too_wide.resolve() not in allowed_roots() and (tmp_path / "user" / ".letta").resolve() in allowed_roots()

    monkeypatch.setenv(ALLOWED_ROOTS_ENV, os.pathsep.join([str(tmp_path / "a"), "~/b"]))  # replaces the defaults
    assert allowed_roots() == [(tmp_path / "a").resolve(), (tmp_path / "user" / "b").resolve(), DEMO_DATA_DIR]


def test_the_demo_data_is_always_readable(ws, root: Path) -> None:
    from model_customization.demo_data import demo_memory_paths

    assert build_dataset(ws, demo_memory_paths()).counts["train"] > 0


def test_suites_exports_and_inspection_are_fenced_too(ws, root: Path, tmp_path: Path) -> None:
    suite = tmp_path / "outside" / "suite.jsonl"
    suite.parent.mkdir()
    suite.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}], "reference": "hello"}) + "\n")
    with pytest.raises(UserError, match="Suite file .* outside the allowed roots"):
        load_suite(suite)
    with pytest.raises(UserError, match="outside the allowed roots"):
        set_agent_suite(ws, "triage", suite=str(suite))
    inside = root / "suite.jsonl"
    inside.write_text(suite.read_text())
    assert len(load_suite(inside)) == 1

    assert check_writable_dir(ws.settings.home / "exports" / "x", home=ws.settings.home) == (ws.settings.home / "exports" / "x").resolve()
    assert check_writable_dir(root / "out", home=ws.settings.home) == (root / "out").resolve()
    with pytest.raises(UserError, match="output_dir .* outside the allowed roots.*Choose a folder inside"):
        check_writable_dir(tmp_path / "elsewhere", home=ws.settings.home, what="output_dir")


def test_the_config_file_is_never_read_as_data(ws, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = root / "config.toml"
    config.write_text(f'[env]\nOPENAI_API_KEY = "{SECRET}"\n')
    config.chmod(0o600)
    monkeypatch.setenv(CONFIG_ENV, str(config))
    with pytest.raises(UserError, match="is the config file") as caught:
        check_readable(config)
    assert SECRET not in str(caught.value)


# --- size limits ------------------------------------------------------------------------------------------------


def test_limited_lines_skip_long_lines_without_holding_them() -> None:
    class Recording(io.BytesIO):
        largest = 0

        def readline(self, size: int | None = -1) -> bytes:
            assert size is not None and 0 < size <= (1 << 20)  # never an unbounded read
            line = super().readline(size)
            Recording.largest = max(Recording.largest, len(line))
            return line

    limit = 10
    data = b"0123456789\n" + b"x" * 11 + b"\n" + b"y" * 5_000_000 + b"\nshort\n" + b"z" * 11
    lines = list(iter_limited_lines(Recording(data), limit))
    assert lines == [(1, b"0123456789\n"), (2, 11), (3, 5_000_000), (4, b"short\n"), (5, 11)]
    assert Recording.largest <= 1 << 20
    assert parse_size("64MiB") == 64 << 20 and parse_size("1 GiB") == 1 << 30 and parse_size("500mb") == 500_000_000


def test_a_huge_line_is_reported_with_file_and_line(ws, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_CUSTOMIZATION_MAX_LINE_BYTES", "1KiB")
    file = sessions(root / "memory.jsonl", count=6)
    huge = json.dumps({"messages": [{"role": "user", "content": "q" * 5000}, {"role": "assistant", "content": "a"}]})
    with file.open("a") as handle:
        handle.write(huge + "\n")
        handle.write(json.dumps({"messages": [{"role": "user", "content": "after the huge line"}, {"role": "assistant", "content": "still read"}]}) + "\n")
    result = build(ws, [file])
    assert result.problems == [f"{file}:7: line of {len(huge)} bytes is longer than the limit of 1024 bytes; skipped (raise MODEL_CUSTOMIZATION_MAX_LINE_BYTES or max_line_bytes in the config file to read it)"]
    assert sum(result.counts.values()) == 7  # the line after it was read

    # Claude Code transcripts and the Inspector's path check report it the same way.
    transcript = root / "claude" / "session.jsonl"
    transcript.parent.mkdir()
    line = {"type": "user", "sessionId": "s1", "uuid": "u1", "parentUuid": None, "message": {"role": "user", "content": "hello"}}
    transcript.write_text(json.dumps(line) + "\n" + json.dumps({**line, "uuid": "u2", "message": {"role": "user", "content": "x" * 3000}}) + "\n")
    problems = [r for r in iter_memory([transcript]) if isinstance(r, ImportProblem)]
    assert [(p.file, p.line) for p in problems] == [(str(transcript), 2)] and "longer than the limit" in problems[0].message
    from model_customization.datasets.inspect import inspect_dataset

    report = inspect_dataset(ws, path=str(file))
    assert any(f["line"] == 7 and f["code"] == "line_too_long" for f in report["findings"])


def test_a_file_over_the_limit_is_reported_and_skipped(ws, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = root / "memory"
    small = sessions(folder / "a-small.jsonl", count=4, tag="s")
    big = sessions(folder / "b-big.jsonl", count=200, tag="b")
    assert small.stat().st_size < 2000 < big.stat().st_size
    monkeypatch.setenv("MODEL_CUSTOMIZATION_MAX_FILE_BYTES", "2000")
    result = build(ws, [folder])
    assert result.problems == [f"{big}:0: file of {big.stat().st_size} bytes is larger than the limit of 2000 bytes; skipped (raise MODEL_CUSTOMIZATION_MAX_FILE_BYTES or max_file_bytes in the config file to read it)"]
    assert sum(result.counts.values()) == 4
    monkeypatch.setenv("MODEL_CUSTOMIZATION_MAX_FILE_BYTES", "lots")
    with pytest.raises(UserError, match="MODEL_CUSTOMIZATION_MAX_FILE_BYTES='lots'"):
        memory_limits()


# --- the config file ----------------------------------------------------------------------------------------------


def write_config(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_config_file_supplies_roots_limits_and_keys_but_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    write_config(
        home / "config.toml",
        f'allowed_roots = ["memory", "~/agent"]\nmax_line_bytes = "2MiB"\n\n[env]\nOPENAI_API_KEY = "{SECRET}"\n'
        'ANTHROPIC_API_KEY = "from-file"\nMODEL_CUSTOMIZATION_MAX_LOCAL_JOBS = 3\n',
    )
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    environ = {"ANTHROPIC_API_KEY": "from-environment"}
    assert apply_config_file(home, environ) == (home / "config.toml").resolve()
    assert environ == {
        "ANTHROPIC_API_KEY": "from-environment",  # already set: the environment wins
        "OPENAI_API_KEY": SECRET,
        "MODEL_CUSTOMIZATION_MAX_LOCAL_JOBS": "3",
        ALLOWED_ROOTS_ENV: os.pathsep.join([str((home / "memory").resolve()), str((tmp_path / "user" / "agent").resolve())]),
        "MODEL_CUSTOMIZATION_MAX_LINE_BYTES": "2MiB",
    }
    assert SECRET not in repr(read_config_file(home / "config.toml"))

    # Through load_settings, as the server, the CLI and each worker do: the process environment gets the values.
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MODEL_CUSTOMIZATION_MAX_LOCAL_JOBS", "MODEL_CUSTOMIZATION_MAX_LINE_BYTES", ALLOWED_ROOTS_ENV):
        monkeypatch.setenv(name, "placeholder")  # recorded, so the test's changes are undone afterwards
        monkeypatch.delenv(name)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-environment")
    settings = load_settings(home)
    assert settings.config_file == (home / "config.toml").resolve() and settings.max_local_jobs == 3
    assert os.environ["OPENAI_API_KEY"] == SECRET and os.environ["ANTHROPIC_API_KEY"] == "from-environment"
    assert (home / "memory").resolve() in allowed_roots() and Path.cwd().resolve() not in allowed_roots()
    assert memory_limits().max_line_bytes == 2 << 20

    # $MODEL_CUSTOMIZATION_CONFIG names another file; one that does not exist is an error, not silently ignored.
    other = write_config(tmp_path / "elsewhere.toml", "max_file_bytes = 4096\n")
    monkeypatch.setenv(CONFIG_ENV, str(other))
    environ = {}
    assert apply_config_file(home, environ) == other.resolve() and environ == {"MODEL_CUSTOMIZATION_MAX_FILE_BYTES": "4096"}
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="missing.toml: no such file"):
        apply_config_file(home, {})


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_a_config_file_with_secrets_others_can_read_is_refused_without_echoing_them(tmp_path: Path) -> None:
    secret_file = write_config(tmp_path / "a" / "config.toml", f'[env]\nOPENAI_API_KEY = "{SECRET}"\nAWS_SECRET_ACCESS_KEY = "{SECRET}"\n', mode=0o640)
    with pytest.raises(ConfigError) as caught:
        apply_config_file(tmp_path / "a", {})
    message = str(caught.value)
    assert SECRET not in message
    assert "AWS_SECRET_ACCESS_KEY, OPENAI_API_KEY" in message and "readable by group or others" in message and f"chmod 600 {secret_file}" in message

    # A password inside a URL counts as a secret too.
    write_config(tmp_path / "b" / "config.toml", f'[env]\nMODEL_CUSTOMIZATION_STORE_URL = "postgresql://app:{SECRET}@db/mc"\n', mode=0o644)
    with pytest.raises(ConfigError, match="MODEL_CUSTOMIZATION_STORE_URL") as caught:
        apply_config_file(tmp_path / "b", {})
    assert SECRET not in str(caught.value)

    # Without secrets, a readable file is fine; a file others can change never is (it can name the worker launcher).
    write_config(tmp_path / "c" / "config.toml", 'max_line_bytes = 1000\n[env]\nMODEL_CUSTOMIZATION_BUDGET_PER_JOB_USD = 5\n', mode=0o644)
    assert apply_config_file(tmp_path / "c", {}) is not None
    (tmp_path / "c" / "config.toml").chmod(0o664)
    with pytest.raises(ConfigError, match="writable by group or others"):
        apply_config_file(tmp_path / "c", {})
    assert stat.S_IMODE((tmp_path / "c" / "config.toml").stat().st_mode) == 0o664


def test_config_mistakes_name_the_key_never_the_value(tmp_path: Path) -> None:
    cases = {
        f'[env]\nPYTHONPATH = "{SECRET}"\n': "env.PYTHONPATH is not a variable the config file may set",
        f'[env]\nMODEL_CUSTOMIZATION_HOME = "{SECRET}"\n': "env.MODEL_CUSTOMIZATION_HOME cannot be set in the config file",
        f'allowed_root = ["{SECRET}"]\n': "unknown setting 'allowed_root'",
        f'allowed_roots = "{SECRET}"\n': "allowed_roots must be a list",
        f'[env]\nOPENAI_API_KEY = ["{SECRET}"]\n': "env.OPENAI_API_KEY must be a string or a number",
        f'allowed_roots = ["/a"]\n[env]\nMODEL_CUSTOMIZATION_ALLOWED_ROOTS = "{SECRET}"\n': "both allowed_roots and env.MODEL_CUSTOMIZATION_ALLOWED_ROOTS",
        f'[env]\nOPENAI_API_KEY = "{SECRET}\n': "is not valid TOML",
    }
    for number, (text, expected) in enumerate(cases.items()):
        write_config(tmp_path / str(number) / "config.toml", text)
        with pytest.raises(ConfigError) as caught:
            apply_config_file(tmp_path / str(number), {})
        assert expected in str(caught.value) and SECRET not in str(caught.value), str(caught.value)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_the_cli_reports_a_bad_config_file_and_enforces_the_roots(tmp_path: Path, root: Path, outside: Path) -> None:
    runner = CliRunner()
    home = tmp_path / "cli-home"
    write_config(home / "config.toml", f'[env]\nOPENAI_API_KEY = "{SECRET}"\n', mode=0o644)
    result = runner.invoke(app, ["dataset", "list", "--home", str(home)])
    assert result.exit_code == 1 and "chmod 600" in result.output and SECRET not in result.output
    assert not isinstance(result.exception, ConfigError)  # a clean message, no traceback
    (home / "config.toml").chmod(0o600)

    result = runner.invoke(app, ["dataset", "build", str(outside), "--home", str(home)])
    assert result.exit_code == 1 and "outside the allowed roots" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["dataset", "build", str(sessions(root / "ok.jsonl")), "--home", str(home), "--json"])
    assert result.exit_code == 0, result.output


# --- through MCP ------------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_mcp_tools_refuse_paths_outside_the_roots(ws, root: Path, outside: Path, anyio_backend: str) -> None:
    async with Client(build_server(ws=ws)) as client:
        for tool, args in (
            ("build_dataset_from_memory", {"paths": [str(outside)]}),
            ("build_dataset_from_memory", {"paths": [str(root / ".." / "outside")]}),
            ("inspect_dataset", {"path": str(outside)}),
        ):
            result = await client.call_tool(tool, args)
            text = "\n".join(getattr(block, "text", "") for block in result.content)
            assert result.is_error, (tool, text)
            assert "outside the allowed roots" in text and ALLOWED_ROOTS_ENV in text and "Traceback" not in text, text
        sessions(root / "ok.jsonl")
        result = await client.call_tool("build_dataset_from_memory", {"paths": [str(root / "ok.jsonl")], "near_duplicate_threshold": None})
        assert not result.is_error, result.content
