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

from model_customization.reading_limits import FileTooLarge, NotARegularFile, open_regular_file, read_regular_bytes

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
