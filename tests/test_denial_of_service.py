"""Issue 17, class 1 (denial of service), through the real server over stdio: nothing a caller names can hang it
or fill its memory, and every line it is sent gets an answer."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdio_driver import StdioServer, text_of

from model_customization.reading_limits import (
    FileTooLarge,
    NotARegularFile,
    open_regular_file,
    read_regular_bytes,
)

SUITE_LINE = json.dumps({"messages": [{"role": "user", "content": "Say hi"}], "reference": "hi"}) + "\n"


@pytest.fixture
def special_files(tmp_path: Path) -> dict[str, Path]:
    """A FIFO (no writer ever comes), a character device (a link to /dev/zero; the server is started with /dev among
    its roots, as a careless operator could) and a big regular suite file, inside an allowed root (tmp_path)."""
    folder = tmp_path / "attack"
    folder.mkdir()
    fifo = folder / "cases.jsonl"
    os.mkfifo(fifo)
    zero = folder / "zero.jsonl"
    zero.symlink_to("/dev/zero")
    big = folder / "big.jsonl"
    big.write_text(SUITE_LINE * 2000)  # about 150 kB: over the 64 KiB limit the server is started with
    return {"fifo": fifo, "device": zero, "big": big}


def _server(tmp_path: Path) -> StdioServer:
    roots = os.environ["MODEL_CUSTOMIZATION_ALLOWED_ROOTS"] + os.pathsep + "/dev"
    return StdioServer(tmp_path / "home", env={"MODEL_CUSTOMIZATION_MAX_FILE_BYTES": "64KiB", "MODEL_CUSTOMIZATION_ALLOWED_ROOTS": roots})


def test_fifos_devices_and_oversized_files_are_refused_by_kind_over_stdio(tmp_path: Path, special_files: dict[str, Path]):
    """inspect_dataset(path=...), evaluate(suite=...) and set_agent_suite(suite=...) on a FIFO, /dev/zero and an
    oversized file each answer at once with what the file is; the server still answers afterwards."""
    with _server(tmp_path) as server:
        calls = [
            ("inspect_dataset", {"path": str(special_files["fifo"])}, "a FIFO"),
            ("inspect_dataset", {"path": str(special_files["device"])}, "a character device"),
            ("inspect_dataset", {"path": str(special_files["big"])}, "more than the limit of 65,536"),
            ("evaluate", {"models": ["SmolLM2-135M-Instruct", "gpt-4o-mini"], "suite": str(special_files["fifo"])}, "a FIFO"),
            ("evaluate", {"models": ["SmolLM2-135M-Instruct", "gpt-4o-mini"], "suite": str(special_files["device"])}, "a character device"),
            ("evaluate", {"models": ["SmolLM2-135M-Instruct", "gpt-4o-mini"], "suite": str(special_files["big"])}, "more than the limit of 65,536"),
            ("set_agent_suite", {"agent": "bot", "suite": str(special_files["fifo"])}, "a FIFO"),
            ("set_agent_suite", {"agent": "bot", "suite": str(special_files["device"])}, "a character device"),
            ("set_agent_suite", {"agent": "bot", "suite": str(special_files["big"])}, "more than the limit of 65,536"),
        ]
        for name, arguments, kind in calls:
            started = time.monotonic()
            result = server.call_tool(name, arguments, timeout=30)
            assert result["isError"], (name, arguments, result)
            assert kind in text_of(result), (name, text_of(result))
            assert time.monotonic() - started < 30
        assert not server.call_tool("list_datasets", {})["isError"]


def test_a_suite_file_within_the_limit_is_still_read(tmp_path: Path):
    suite = tmp_path / "suite.jsonl"
    suite.write_text(SUITE_LINE * 3)
    with _server(tmp_path) as server:
        result = server.call_tool("set_agent_suite", {"agent": "bot", "suite": str(suite)})
        assert not result["isError"], text_of(result)
        assert result["structuredContent"]["cases"] == 3


def test_the_descriptor_opened_is_judged_not_the_name(tmp_path: Path):
    """A name checked as a regular file and swapped for a FIFO before the open is still refused: the kind is read
    from the opened descriptor, and opening does not wait for a writer."""
    name = tmp_path / "swap.jsonl"
    os.mkfifo(name)
    started = time.monotonic()
    with pytest.raises(NotARegularFile, match="is a FIFO") as refused:
        open_regular_file(name)
    assert refused.value.kind == "a FIFO" and time.monotonic() - started < 5
    with pytest.raises(NotARegularFile, match="a character device"):
        read_regular_bytes("/dev/zero")
    with pytest.raises(NotARegularFile, match="a folder"):
        read_regular_bytes(tmp_path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(min_value=0, max_value=4096), limit=st.integers(min_value=1, max_value=4096))
def test_a_regular_file_is_read_whole_exactly_when_it_fits_the_limit(tmp_path: Path, size: int, limit: int):
    file = tmp_path / f"f-{size}-{limit}"
    file.write_bytes(b"x" * size)
    if size <= limit:
        assert read_regular_bytes(file, max_bytes=limit) == b"x" * size
    else:
        with pytest.raises(FileTooLarge) as refused:
            read_regular_bytes(file, max_bytes=limit)
        assert (refused.value.size, refused.value.limit) == (size, limit) and f"{limit:,}" in str(refused.value)


def test_forty_five_calls_on_a_fifo_at_once_leave_the_server_answering(tmp_path: Path, special_files: dict[str, Path]):
    """About forty blocked reads used to take every worker thread; now each is refused at once, and a cheap tool
    sent after them is answered."""
    with _server(tmp_path) as server:
        ids = []
        for number in range(45):
            request_id = 5000 + number
            tool = "inspect_dataset" if number % 2 else "set_agent_suite"
            arguments = {"path": str(special_files["fifo"])} if tool == "inspect_dataset" else {"agent": "bot", "suite": str(special_files["fifo"])}
            server.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
            ids.append(request_id)
        listed = server.call_tool("list_datasets", {}, timeout=60)
        assert not listed["isError"]
        for request_id in ids:
            reply = server.answer(request_id, timeout=60)
            assert reply["result"]["isError"] and "a FIFO" in text_of(reply["result"])


def test_a_server_whose_client_left_exits_while_a_long_build_still_runs(tmp_path: Path):
    """The client closes stdin during a build that takes far longer than the wait below: the server exits (no
    orphan left behind holding the data home and a CPU)."""
    memory = tmp_path / "memory"
    memory.mkdir()
    with (memory / "chats.jsonl").open("w") as handle:
        for number in range(30000):  # a build of about a minute on a small machine
            words = " ".join(f"w{(number * 7 + k) % 997}" for k in range(40))
            handle.write(json.dumps({"messages": [{"role": "user", "content": f"{number} {words}"}, {"role": "assistant", "content": words}]}) + "\n")
    server = _server(tmp_path)
    server.initialize()
    server.send({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "build_dataset_from_memory", "arguments": {"paths": [str(memory)]}}})
    time.sleep(2)  # the build is under way in a worker thread
    assert server.process.poll() is None
    server.process.stdin.close()
    try:
        server.process.wait(timeout=20)
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
            pytest.fail("the server outlived its client by 20 s")


@pytest.mark.parametrize(
    ("line", "expected_id", "code"),
    [
        (b'{"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {"name": "list_datasets", "arguments": {"x": "\\ud800"}}}\n', 11, -32600),
        (b'{"jsonrpc": "2.0", "id": 12, "method": "tools/call", "params": ["list_datasets", {}]}\n', 12, -32602),
        (b"this is not json\n", None, -32700),
        (b'{"jsonrpc": "2.0", "id": 13, "method": "tools/list", "params": {}\n', None, -32700),
        (b'[{"jsonrpc": "2.0", "id": 14, "method": "tools/list"}]\n', None, -32600),
        (b'{"jsonrpc": "1.0", "id": 15, "method": "tools/list"}\n', 15, -32600),
        (b'{"jsonrpc": "2.0", "id": 16, "method": 5}\n', 16, -32600),
    ],
)
def test_a_malformed_line_gets_a_json_rpc_error_and_the_session_goes_on(tmp_path: Path, line: bytes, expected_id: int | None, code: int):
    with StdioServer(tmp_path / "home") as server:
        server.send_raw(line)
        reply = server.next_message(timeout=30)
        assert reply["id"] == expected_id and reply["error"]["code"] == code, reply
        assert reply["error"]["message"]
        assert "result" in server.request("tools/list")


@settings(max_examples=30, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda raw: raw.decode("utf-8", "replace")), st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=12,
).map(json.dumps)))
def test_every_line_is_either_passed_on_or_answered_with_an_error(line: str):
    """The rule the stdio guard applies to any line: what the SDK parses goes on, a request it cannot parse gets an
    error reply with a valid id (or null), and only notifications and responses may go unanswered."""
    from model_customization.server.stdio_guard import refusal_for_line

    line = line.replace("\n", " ")
    reply = refusal_for_line(line)
    try:
        parsed = json.loads(line)
    except ValueError:
        parsed = ...
    if reply is None:
        quiet = not line.strip() or (isinstance(parsed, dict) and ("method" not in parsed or "id" not in parsed))
        parses = True
        try:
            import mcp_types

            mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        except Exception:  # noqa: BLE001
            parses = False
        assert parses or quiet, line
    else:
        assert reply["jsonrpc"] == "2.0" and reply["error"]["code"] in (-32700, -32600, -32602)
        assert reply["id"] is None or isinstance(reply["id"], (int, str))
        json.dumps(reply, ensure_ascii=False).encode("utf-8")  # the reply itself is valid UTF-8 JSON


def test_a_ten_megabyte_dataset_name_and_a_three_million_character_prompt_are_refused_at_once(tmp_path: Path, demo_paths):
    with StdioServer(tmp_path / "home") as server:
        named = server.call_tool("build_dataset_from_memory", {"paths": [str(p) for p in demo_paths], "name": "n" * 10_000_000}, timeout=60)
        assert named["isError"] and "at most 4096 characters" in text_of(named)
        started = time.monotonic()
        prompted = server.call_tool("prompt_model", {"prompt": "word " * 600_000}, timeout=60)
        assert prompted["isError"] and "at most 1000000 characters" in text_of(prompted)
        assert time.monotonic() - started < 30
        listed = server.call_tool("list_datasets", {})
        assert not listed["isError"] and listed["structuredContent"]["datasets"] == []


@settings(max_examples=25, deadline=None)
@given(length=st.integers(min_value=0, max_value=12_000))
def test_every_request_string_is_bounded_whatever_the_field(length: int):
    """Any string field of any operation's request (a list item and a dict value too) takes at most
    MAX_FIELD_CHARS characters, and a prompt's text at most MAX_TEXT_CHARS."""
    from pydantic import ValidationError

    from model_customization.operations.agents import DeployModelRequest
    from model_customization.operations.bounds import MAX_FIELD_CHARS
    from model_customization.operations.datasets import BuildDatasetRequest
    from model_customization.operations.models import PromptModelRequest

    text = "x" * length
    cases = [
        lambda: BuildDatasetRequest(paths=["a"], name=text),
        lambda: BuildDatasetRequest(paths=[text]),
        lambda: DeployModelRequest(agent=text, model="m"),
        lambda: PromptModelRequest(prompt="hi", agent=text),
    ]
    for build in cases:
        if length <= MAX_FIELD_CHARS:
            build()
        else:
            with pytest.raises(ValidationError, match=f"at most {MAX_FIELD_CHARS} characters"):
                build()
    PromptModelRequest(prompt=text)  # a prompt may be longer than a name


def test_a_prompt_past_the_embedded_models_context_is_refused_before_generating(tmp_path: Path, model_cache: Path):
    """20,000 tokens against an 8,192-token context used to run for minutes and answer garbage."""
    with StdioServer(tmp_path / "home", env={"MODEL_CUSTOMIZATION_MODEL_CACHE": str(model_cache)}) as server:
        started = time.monotonic()
        result = server.call_tool("prompt_model", {"prompt": " ".join(f"item{n}" for n in range(10_000))}, timeout=300)
        assert result["isError"], result
        message = text_of(result)
        assert "reads at most 8,192" in message and "Shorten the prompt" in message
        assert time.monotonic() - started < 240


def test_the_dataset_card_resource_lists_the_first_sources_with_a_count_and_pages_the_rest(tmp_path: Path):
    memory = tmp_path / "memory"
    memory.mkdir()
    for number in range(150):
        line = {"messages": [{"role": "user", "content": f"question {number}"}, {"role": "assistant", "content": f"answer number {number} here"}]}
        (memory / f"chat-{number:03}.jsonl").write_text(json.dumps(line) + "\n")
    with StdioServer(tmp_path / "home") as server:
        built = server.call_tool("build_dataset_from_memory", {"paths": [str(memory)], "near_duplicate_threshold": None}, timeout=120)
        assert not built["isError"], text_of(built)
        dataset_id = built["structuredContent"]["dataset_id"]
        card = json.loads(server.request("resources/read", {"uri": f"datasets://{dataset_id}"})["result"]["contents"][0]["text"])
        assert len(card["sources"]) == 100 and card["sources_count"] == 150
        assert card["sources_rest"].startswith(f"datasets://{dataset_id}/sources/1")
        page = json.loads(server.request("resources/read", {"uri": f"datasets://{dataset_id}/sources/1"})["result"]["contents"][0]["text"])
        assert page["count"] == 150 and len(page["sources"]) == 150 and page["next"] is None
        assert {Path(s["path"]).name for s in page["sources"]} == {f"chat-{n:03}.jsonl" for n in range(150)}
        markdown = server.request("resources/read", {"uri": f"datasets://{dataset_id}/card.md"})["result"]["contents"][0]["text"]
        assert "50 more source files" in markdown, markdown[markdown.find("## Sources") - 200:][:300] + markdown[-1500:]
        assert markdown.count("| `") == 200  # 100 rows of two cells


def test_a_config_file_that_is_a_fifo_is_refused_unread(tmp_path: Path):
    from model_customization.config import ConfigError, read_config_file

    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is a FIFO, not a regular file"):
        read_config_file(fifo)
