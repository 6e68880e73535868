"""The gate's cheaper ways of measuring give exactly the answers of the general way: long texts seen again counted
from a cache keyed by their digest, plain chat rows measured without the format checks as the checks and the
general count measure them, ranges that shrink towards the end of a file and a pool not waited for before work is
sent give the one-process report."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from model_customization.datasets import tokens
from model_customization.datasets.inspect import inspect_dataset
from model_customization.datasets.validate import row_findings


def test_a_long_text_seen_again_is_not_counted_again(monkeypatch):
    # A transcript's tool output read twice: the second time its count comes from the cache of long texts, keyed by
    # a digest (the text itself is not held), and equals the tokenizer's count of the text.
    tokens._cache.clear()
    tokens._long_cache.clear()
    source = "".join(f"def handler_{i}(request):\n    return render(request, 'page_{i}.html')\n\n" for i in range(80))
    assert len(source) >= tokens._LONG_TEXT_CHARS
    calls = []
    real = tokens._counter("o200k_base")
    monkeypatch.setattr(tokens, "_counter", lambda name: lambda text: calls.append(text) or real(text))
    expected = len(tokens._encoding("o200k_base").encode_ordinary(source))
    assert tokens.count_text(source, "o200k_base") == expected
    assert tokens.count_text(source, "o200k_base") == expected
    assert tokens.count_text(source + "x", "o200k_base") == len(tokens._encoding("o200k_base").encode_ordinary(source + "x"))
    assert calls == [source, source + "x"]  # the same text once, a different one counted
    assert source not in tokens._cache["o200k_base"]
    surrogate = source + "\ud800"  # a lone surrogate: digested as it is, counted as encode_ordinary counts it
    assert tokens.count_text(surrogate, "o200k_base") == len(tokens._encoding("o200k_base").encode_ordinary(surrogate))


def test_the_cache_of_long_texts_is_bounded(monkeypatch):
    monkeypatch.setattr(tokens, "_LONG_CACHE_MAX_TEXTS", 3)
    tokens._long_cache.clear()
    texts = [f"{i} " + "word " * 1000 for i in range(7)]
    for text in texts:
        assert tokens.count_text(text, "cl100k_base") == len(tokens._encoding("cl100k_base").encode_ordinary(text))
    assert 0 < len(tokens._long_cache["cl100k_base"]) <= 3


_ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "robot", 3, None])
_CONTENT = st.one_of(st.sampled_from(["", "hi", "The answer is 4.", "line one\nline two"]), st.none(), st.just([{"type": "text", "text": "x"}]), st.integers())
_OPTIONAL_KEYS = {"name": st.sampled_from(["", "ann", 0, 1]), "weight": st.sampled_from([0, 1, 2]), "extra": st.just(1), "tool_calls": st.just([])}
# Mostly messages the fast path takes (so that rows of only such messages are common), with one odd thing at times.
_PLAIN = st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant"]), "content": st.sampled_from(["hi", "The answer is 4."])})
_MESSAGE = st.one_of(
    _PLAIN,
    _PLAIN,
    _PLAIN,
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": st.just("ok")}, optional=_OPTIONAL_KEYS),
    st.fixed_dictionaries({"role": _ROLES, "content": _CONTENT}, optional=_OPTIONAL_KEYS),
    st.sampled_from(["not a message", 7]),
)
_ROW = st.one_of(
    st.fixed_dictionaries({"messages": st.lists(_MESSAGE, min_size=1, max_size=6)}),
    st.fixed_dictionaries({"messages": st.lists(_MESSAGE, max_size=6)}, optional={"tools": st.just([{"type": "function", "function": {"name": "f"}}]), "label": st.booleans(), "input": st.just({})}),
    st.fixed_dictionaries({"messages": st.sampled_from([[], "x", None])}),
    st.sampled_from([[1], "row"]),
)


def _only_plain_messages(row) -> bool:
    if not (isinstance(row, dict) and set(row) == {"messages"} and isinstance(row["messages"], list) and row["messages"]):
        return False
    return all(
        isinstance(m, dict) and set(m) <= {"role", "content", "name"} and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str) and m["content"]
        for m in row["messages"]
    )


@settings(max_examples=500, deadline=None)
@given(_ROW)
def test_a_plain_chat_row_is_measured_as_the_checks_and_the_general_count_measure_it(row):
    fast = tokens._plain_chat_tokens(row, "o200k_base")
    findings = row_findings("train", 1, row)
    if fast is None:
        # Only rows the checks have something to say about, or rows with more than plain messages, go the general way.
        assert findings or not _only_plain_messages(row)
        return
    assert findings == []
    assert fast == tokens.count_chat_tokens(tokens.chat_messages(row), "o200k_base", row.get("tools"))


def test_plain_chat_rows_are_the_common_rows():
    # The fast path must actually take ordinary rows, with names too (or the test above proves nothing).
    row = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?", "name": "ann"}, {"role": "assistant", "content": "4"}]}
    assert tokens._plain_chat_tokens(row, "o200k_base") == tokens.count_chat_tokens(row["messages"], "o200k_base")
    assert tokens._plain_chat_tokens({"messages": row["messages"][:2]}, "o200k_base") is None  # no assistant: checked the general way


def test_ranges_that_shrink_towards_the_end_give_the_one_process_report(ws, tmp_path: Path, monkeypatch):
    lines = []
    for i in range(600):
        if i % 97 == 5:
            lines.append('{"messages": [')  # not JSON
        elif i % 89 == 7:
            lines.append(lines[0])  # a duplicate of the first line, far from it
        else:
            lines.append(json.dumps({"messages": [{"role": "user", "content": f"question {i} " + "why " * (i % 13)}, {"role": "assistant", "content": f"answer {i}\n  indented\nnext line"}]}))
    file = tmp_path / "chat.jsonl"
    file.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("MODEL_CUSTOMIZATION_ALLOWED_ROOTS", str(tmp_path))
    monkeypatch.setattr("model_customization.datasets.inspect.MAX_FINDINGS", 10**6)
    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 1 << 60)
    one_process = inspect_dataset(ws, path=str(file), provider="openai")

    lengths = []
    real = tokens._line_ranges

    def recorded(*args):
        for item in real(*args):
            if item[0] == "range":
                lengths.append(item[4])
            yield item

    monkeypatch.setattr(tokens, "_line_ranges", recorded)
    monkeypatch.setattr(tokens, "_worker_count", lambda: 2)
    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(tokens, "BATCH_BYTES", 8000)
    monkeypatch.setattr(tokens, "_MIN_RANGE_BYTES", 500)
    monkeypatch.setattr(tokens, "_SCAN_BYTES", 256)
    tokens._cache.clear()
    tokens._long_cache.clear()
    pooled = inspect_dataset(ws, path=str(file), provider="openai")

    assert json.dumps(pooled) == json.dumps(one_process)
    assert pooled["finding_counts"]["invalid_json"] == 7 and pooled["finding_counts"]["duplicate_example"] >= 6
    assert max(lengths[:3]) >= 8000 > 2 * max(lengths[-3:])  # full ranges first, small ones at the end
    assert sum(lengths) == file.stat().st_size


def test_workers_that_die_as_they_start_give_the_one_process_report(ws, tmp_path: Path, monkeypatch):
    # The pool is not waited for before the first ranges are sent; a worker that dies as it starts (here: its
    # initializer fails) is found before any result is given, and the file is measured in this process instead.
    file = tmp_path / "chat.jsonl"
    file.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}) + "\n" for i in range(300)))
    monkeypatch.setenv("MODEL_CUSTOMIZATION_ALLOWED_ROOTS", str(tmp_path))
    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 1 << 60)
    one_process = inspect_dataset(ws, path=str(file), provider="openai")

    def dying(*args):
        raise OSError("no memory for the worker")

    pools = []
    real = tokens._parallel_results
    monkeypatch.setattr(tokens, "_parallel_results", lambda *a: pools.append(1) or real(*a))
    monkeypatch.setattr(tokens, "_start_worker", dying)
    monkeypatch.setattr(tokens, "_worker_count", lambda: 2)
    monkeypatch.setattr(tokens, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(tokens, "BATCH_BYTES", 2000)
    assert json.dumps(inspect_dataset(ws, path=str(file), provider="openai")) == json.dumps(one_process)
    assert pools == [1]


def test_bounded_count_caches_hold_no_more_than_asked(monkeypatch):
    # A build's workers count far more distinct texts than the gate: they ask for smaller caches (memory at 1 GB).
    monkeypatch.setattr(tokens, "_CACHE_MAX_CHARS", tokens._CACHE_MAX_CHARS)
    monkeypatch.setattr(tokens, "_LONG_CACHE_MAX_TEXTS", tokens._LONG_CACHE_MAX_TEXTS)
    monkeypatch.setattr(tokens, "_cache_chars", 0)
    tokens._cache.clear()
    tokens._long_cache.clear()
    for i in range(50):
        tokens.count_text(f"short text number {i}", "o200k_base")
    tokens.bound_count_caches(200, 2)
    assert tokens._cache_chars <= 200  # what it held beyond the new bound was let go
    for i in range(60):
        text = f"another short text {i}"
        assert tokens.count_text(text, "o200k_base") == len(tokens._encoding("o200k_base").encode_ordinary(text))
        assert tokens._cache_chars <= 200
    for i in range(5):
        tokens.count_text(f"{i} " + "word " * 1000, "o200k_base")
        assert sum(map(len, tokens._long_cache.values())) <= 2


def test_a_build_worker_starts_with_the_builds_bounds():
    import multiprocessing

    from model_customization.datasets import build

    def child(queue):
        build._start_worker(None)
        queue.put((tokens._CACHE_MAX_CHARS, tokens._LONG_CACHE_MAX_TEXTS))

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=child, args=(queue,))
    process.start()
    bounds = queue.get(timeout=60)
    process.join(timeout=60)
    assert bounds == (build.WORKER_COUNT_CACHE_CHARS, build.WORKER_COUNT_CACHE_LONG_TEXTS)
    assert bounds[0] < tokens._CACHE_MAX_CHARS and bounds[1] < tokens._LONG_CACHE_MAX_TEXTS  # this process keeps the gate's


_COUNT_IN_A_FRESH_PROCESS = """
import json, sys
{before}
from model_customization.datasets import tokens
texts = ["Hello, world!", "def f(x):\\n    return x ** 2\\n", "Ünïcödé 😀 and 漢字", " spaced   out\\t\\n", ""]
counts = [tokens._counter("o200k_base")(t) for t in texts]
package_loaded = "bpe_openai" in sys.modules
import bpe_openai  # imported afterwards, the package works with the extension module already loaded
encoding = bpe_openai.get_encoding("o200k_base")
print(json.dumps({{"counts": counts, "expected": [len(encoding.encode_ordinary(t)) for t in texts],
                  "package_loaded": package_loaded}}))
"""


def _count_in_a_fresh_process(before: str = "") -> dict:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _COUNT_IN_A_FRESH_PROCESS.format(before=before)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_counting_loads_only_the_tokenizer_not_the_package():
    # bpe-openai's package import decodes three encodings' tables in Python (0.75 CPU-s, 70 MB) that counting never
    # uses: the counter loads the Rust module alone, and its counts are the package encoding's.
    result = _count_in_a_fresh_process()
    assert result["counts"] == result["expected"] and result["counts"][0] > 0
    assert result["package_loaded"] is False


def test_counting_falls_back_to_the_package_import_when_the_module_cannot_be_found_alone():
    result = _count_in_a_fresh_process("import importlib.util\nimportlib.util.find_spec = lambda name, *a: None")
    assert result["counts"] == result["expected"]
    assert result["package_loaded"] is True
