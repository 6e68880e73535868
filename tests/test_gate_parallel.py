"""The gate's fast paths give the one-process answers: the pool of workers over batches of lines (same findings,
order, duplicates and numbers), and token counts from the tokenizer's own count (same as len(encode))."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from forking import refuse_every_second_fork
from hypothesis import given, settings
from hypothesis import strategies as st

from model_customization.datasets import tokens
from model_customization.datasets.inspect import inspect_dataset


def _mixed_file(path: Path) -> dict[str, int]:
    """A file with every kind of line the gate judges; returns the line numbers the test looks at."""
    lines: list[bytes] = []
    marks: dict[str, int] = {}

    def add(line: bytes | str, mark: str | None = None) -> None:
        lines.append(line.encode() if isinstance(line, str) else line)
        if mark:
            marks[mark] = len(lines)

    def chat(i: int, words: int = 20) -> dict:
        return {"messages": [
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": f"question {i} " + "about the cache " * words},
            {"role": "assistant", "content": f"answer {i} " + "it expires after ten minutes " * words},
        ]}  # fmt: skip

    add(json.dumps(chat(0)), "first")
    for i in range(1, 400):
        if i == 7:
            add('{"messages": [', "invalid_json")
        elif i == 11:
            add("", None)
            add("   ", None)
        elif i == 13:
            add(json.dumps(chat(i, words=400)), "too_long")  # over the line limit the test sets
        elif i == 17:
            add(b'{"messages": "caf\xe9"}', "not_utf8")
        elif i == 19:
            add(json.dumps({"messages": [{"role": "robot", "content": ""}, {"role": "assistant", "content": "x", "weight": 2}], "extra": 1}), "bad_row")
        elif i == 23:
            add("[1, 2]", "data_type")
        elif i == 29:
            bad_call = {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
            add(json.dumps({"messages": [{"role": "user", "content": "t"}, bad_call, {"role": "tool", "tool_call_id": "c9", "content": "r"}, {"role": "assistant", "content": "ok"}]}))
        elif i == 31:
            add(json.dumps({"input": {"messages": [{"role": "user", "content": "q"}]}, "preferred_output": [{"role": "assistant", "content": "good"}], "non_preferred_output": [{"role": "assistant", "content": "bad"}]}))
        elif i == 37:
            add(json.dumps(chat(i)).replace("question 37", "question \\ud83d 37"), "lone_surrogate")  # an emoji cut in half
        elif i == 41:
            add(json.dumps(chat(i)).replace("question 41", "question \\ud83d\\ude00 41"), "surrogate_pair")  # a whole one
        elif i == 350:
            add(json.dumps(chat(0)), "duplicate_far")  # the first line again, many batches later
        elif i == 351:
            row = chat(5)
            add(json.dumps({"messages": [{k: m[k] for k in reversed(list(m))} for m in row["messages"]]}, indent=1).replace("\n", " "), "duplicate_reordered")
        elif i % 50 == 0:
            add(lines[-1], None)  # the line before again: a duplicate next to it, often across a batch boundary
        else:
            add(json.dumps(chat(i)))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return marks


@pytest.mark.parametrize("provider", ["openai", "bedrock"])
def test_the_pool_of_workers_gives_the_one_process_report(ws, tmp_path, monkeypatch, provider):
    file = tmp_path / "mixed.jsonl"
    marks = _mixed_file(file)
    monkeypatch.setenv("MODEL_CUSTOMIZATION_ALLOWED_ROOTS", str(tmp_path))
    monkeypatch.setenv("MODEL_CUSTOMIZATION_MAX_LINE_BYTES", "8000")
    monkeypatch.setattr("model_customization.datasets.inspect.MAX_FINDINGS", 10**6)  # compare every finding

    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 1 << 60)
    one_process = inspect_dataset(ws, path=str(file), provider=provider)

    pools = []
    real = tokens._parallel_results
    monkeypatch.setattr(tokens, "_parallel_results", lambda *a: pools.append(1) or real(*a))
    monkeypatch.setattr(tokens, "_worker_count", lambda: 2)  # also on a one-core machine
    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(tokens, "BATCH_BYTES", 3000)  # many batches: about ten lines each
    tokens._cache.clear()
    pooled = inspect_dataset(ws, path=str(file), provider=provider)

    assert pools == [1]
    assert json.dumps(pooled) == json.dumps(one_process)  # same findings, same order (dicts too), same numbers
    found = {(f["line"], f["code"]) for f in pooled["findings"]}
    for mark, code in [("invalid_json", "invalid_json"), ("not_utf8", "invalid_json"), ("too_long", "line_too_long"), ("data_type", "data_type"), ("bad_row", "unrecognized_role"), ("lone_surrogate", "not_unicode")]:
        assert (marks[mark], code) in found
    assert not any(line == marks["surrogate_pair"] for line, _ in found)
    duplicates = {f["line"]: f["message"] for f in pooled["findings"] if f["code"] == "duplicate_example"}
    assert f"train line {marks['first']}:" in duplicates[marks["duplicate_far"]]
    assert marks["duplicate_reordered"] in duplicates
    assert pooled["token_stats"]["train"]["examples"] > 380


def test_the_workers_share_the_counts_of_long_texts(ws, tmp_path, monkeypatch):
    """Each worker of a gate's pool starts with the pool's table of long texts' counts (a system prompt counted by
    one is not counted again by the other), and the table is freed with the pool; the report is the same."""
    import os

    long_prompt = "You review pull requests for the payments team. " * 120  # over 4096 characters: counted by digest
    file = tmp_path / "long.jsonl"
    file.write_text("".join(json.dumps({"messages": [
        {"role": "system", "content": long_prompt},
        {"role": "user", "content": f"review change {i}"},
        {"role": "assistant", "content": f"change {i} looks fine"},
    ]}) + "\n" for i in range(60)))  # fmt: skip
    monkeypatch.setenv("MODEL_CUSTOMIZATION_ALLOWED_ROOTS", str(tmp_path))
    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 1 << 60)
    one_process = inspect_dataset(ws, path=str(file), provider="openai")

    seen = tmp_path / "workers.txt"
    real_start = tokens._start_worker

    def start(*job):
        real_start(*job)
        with open(seen, "a") as out:  # in the worker
            out.write(f"{os.getpid()} {type(tokens._shared_counts).__name__}\n")

    monkeypatch.setattr(tokens, "_start_worker", start)
    monkeypatch.setattr(tokens, "_worker_count", lambda: 2)
    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(tokens, "BATCH_BYTES", 20000)
    tokens._long_cache.clear()
    pooled = inspect_dataset(ws, path=str(file), provider="openai")
    assert json.dumps(pooled) == json.dumps(one_process)
    workers = seen.read_text().split("\n")[:-1]
    assert len(workers) == 2 and all(line.endswith(" SharedCounts") for line in workers)
    assert tokens._shared_counts is None  # this process never used it: only its workers


def test_two_gates_at_once_each_keep_their_own_rules(ws, tmp_path, monkeypatch):
    # A server runs tools in threads: two pools at the same time must each give their workers their own check.
    from concurrent.futures import ThreadPoolExecutor

    file = tmp_path / "mixed.jsonl"
    _mixed_file(file)
    monkeypatch.setenv("MODEL_CUSTOMIZATION_ALLOWED_ROOTS", str(tmp_path))
    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 1 << 60)
    alone = {p: inspect_dataset(ws, path=str(file), provider=p) for p in ("openai", "bedrock")}
    monkeypatch.setattr(tokens, "_worker_count", lambda: 2)
    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(tokens, "BATCH_BYTES", 3000)
    with ThreadPoolExecutor(2) as threads:
        together = dict(zip(alone, threads.map(lambda p: inspect_dataset(ws, path=str(file), provider=p), alone), strict=True))
    assert {p: json.dumps(r) for p, r in together.items()} == {p: json.dumps(r) for p, r in alone.items()}


def test_a_refused_fork_gives_the_one_process_report(ws, tmp_path, monkeypatch):
    # A library's at-fork guard may refuse a fork (filelock does while another thread changes a descriptor's
    # ownership, as when two gates fork at once): the gate measures in this process instead, with the same report.
    import os

    file = tmp_path / "mixed.jsonl"
    _mixed_file(file)
    monkeypatch.setenv("MODEL_CUSTOMIZATION_ALLOWED_ROOTS", str(tmp_path))
    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 1 << 60)
    one_process = inspect_dataset(ws, path=str(file), provider="openai")

    refused = []

    def refuse() -> int:
        refused.append(1)
        raise RuntimeError("os.fork is unsafe while filelock is changing descriptor ownership")

    monkeypatch.setattr(os, "fork", refuse)
    monkeypatch.setattr(tokens, "_worker_count", lambda: 2)
    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(tokens, "BATCH_BYTES", 3000)
    tokens._cache.clear()
    assert json.dumps(inspect_dataset(ws, path=str(file), provider="openai")) == json.dumps(one_process)
    assert len(refused) >= 4  # each attempt to start the workers was refused before the fallback


def test_a_fork_refused_halfway_leaves_no_worker_behind(ws, tmp_path, monkeypatch):
    # Two gates forking at once: the first worker of a pool forks, the second is refused. The one forked must not be
    # left waiting for work (the interpreter would wait for it at exit, forever).
    import multiprocessing

    file = tmp_path / "mixed.jsonl"
    _mixed_file(file)
    monkeypatch.setenv("MODEL_CUSTOMIZATION_ALLOWED_ROOTS", str(tmp_path))
    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 1 << 60)
    one_process = inspect_dataset(ws, path=str(file), provider="openai")

    before = {p.pid for p in multiprocessing.active_children()}
    forks = refuse_every_second_fork(monkeypatch)
    monkeypatch.setattr(tokens, "_worker_count", lambda: 2)
    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(tokens, "BATCH_BYTES", 3000)
    tokens._cache.clear()
    assert json.dumps(inspect_dataset(ws, path=str(file), provider="openai")) == json.dumps(one_process)
    assert len(forks) >= 8  # four pools, each with one worker forked and one refused, before the fallback
    left = [p for p in multiprocessing.active_children() if p.pid not in before]
    assert left == [], f"workers left running: {left}"


def test_a_stored_dataset_is_measured_the_same_by_the_pool(ws, tmp_path, monkeypatch, demo_paths):
    from model_customization.datasets.build import build_dataset

    built = build_dataset(ws, demo_paths, seed=0)
    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 1 << 60)
    one_process = inspect_dataset(ws, dataset_id=built.dataset_id, provider="openai")
    monkeypatch.setattr(tokens, "_worker_count", lambda: 2)
    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(tokens, "BATCH_BYTES", 2000)
    tokens._cache.clear()
    assert json.dumps(inspect_dataset(ws, dataset_id=built.dataset_id, provider="openai")) == json.dumps(one_process)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40) | st.sampled_from(["\ud800", "\udfff", " ", "  \n", "é", "日本", "🙂", "'s", "token "]), max_size=30).map("".join))
def test_counting_equals_the_length_of_the_encoding(text):
    # Lone surrogates included: encode_ordinary replaces them, and the count must do the same.
    for name in ("o200k_base", "cl100k_base"):
        assert tokens._count_text(text, name) == len(tokens._encoding(name).encode_ordinary(text))


_LINE_PIECES = st.sampled_from([b"", b"\n", b"x", b"{}", b"abc" * 7, b"y" * 40, b"\r", b"\n\n"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_LINE_PIECES, max_size=40).map(b"".join),
    st.integers(1, 50),  # the line limit
    st.integers(1, 64),  # the parent's scan block
    st.integers(1, 200),  # the size of a worker's range
)
def test_ranges_of_lines_read_the_lines_the_one_process_reader_reads(tmp_path_factory, data, max_line_bytes, scan_bytes, range_bytes):
    # The workers read the file by ranges of whole lines that the parent cut; together they must give exactly the
    # lines (and line numbers, and overlong lines' lengths) that one process reading line by line gives, whatever
    # the block and range sizes, with or without a last newline, with lines longer than a block or than the limit.
    import os

    from model_customization.paths import iter_limited_lines

    file = tmp_path_factory.mktemp("ranges") / "f.jsonl"
    file.write_bytes(data)
    with file.open("rb") as handle:
        expected = list(iter_limited_lines(handle, max_line_bytes))
    real_scan = tokens._SCAN_BYTES
    tokens._SCAN_BYTES = scan_bytes
    try:
        got = []
        descriptor = os.open(file, os.O_RDONLY)
        try:
            for item in tokens._line_ranges("train", descriptor, max_line_bytes, range_bytes):
                if item[0] == "overlong":
                    got.append((item[2], item[3]))
                else:
                    _, _, fd, start, length, first_line = item
                    assert length <= range_bytes + max_line_bytes + scan_bytes  # memory stays bounded: no range holds an overlong line
                    got.extend(tokens._range_lines(fd, start, length, first_line, max_line_bytes))
        finally:
            os.close(descriptor)
    finally:
        tokens._SCAN_BYTES = real_scan
    assert got == expected
