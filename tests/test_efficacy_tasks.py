"""The efficacy benchmark's generated memory (benchmarks/efficacy_tasks.py): deterministic, read by our importers,
and built into datasets whose held-out references are what the benchmark scores (no training here)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from model_customization.datasets.build import build_dataset, read_split
from model_customization.datasets.examples import prompt_and_reference
from model_customization.evaluation.metrics import schema_valid, tool_call_scores
from model_customization.memory.detect import detect_format

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import efficacy_tasks  # noqa: E402

TOOL_CALL = re.compile(r"^<tool_call>(.*)</tool_call>$", re.DOTALL)


def _bytes_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.jsonl"))}


def test_generators_are_deterministic_from_the_seed(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        efficacy_tasks.write_tool_call_sessions(tmp_path / name / "tools", seed=seed, n=12)
        efficacy_tasks.write_json_intake_sessions(tmp_path / name / "json", seed=seed, n=12)
    assert _bytes_under(tmp_path / "a") == _bytes_under(tmp_path / "b")
    assert _bytes_under(tmp_path / "a") != _bytes_under(tmp_path / "c")


def test_tool_call_sessions_build_into_examples_that_end_with_the_expected_call(tmp_path, ws):
    files = efficacy_tasks.write_tool_call_sessions(tmp_path / "tools", seed=3, n=40)
    assert len(files) == 40 and all(detect_format(f) == "claude_code" for f in files)
    expected = {}
    for path in files:
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        call = efficacy_tasks.expected_call(lines)
        assert call["name"].startswith(efficacy_tasks.TOOL_PREFIX)
        assert call["arguments"]["environment"] in efficacy_tasks.ENVIRONMENTS
        assert list(call["arguments"])[:2] == ["service", "environment"]
        expected[path.stem] = call

    built = build_dataset(ws, [tmp_path / "tools"], seed=0, validation_fraction=0.1, test_fraction=0.25)
    rows = [row for split in ("train", "validation", "test") for row in read_split(ws, built.dataset_id, split)]
    assert sum(built.counts.values()) == len(rows) >= 35  # a few near-duplicate requests may be dropped
    assert built.counts["test"] >= 6
    calls_seen = set()
    for row in rows:
        last = row["messages"][-1]
        assert last["role"] == "assistant" and len(last["tool_calls"]) == 1, last
        function = last["tool_calls"][0]["function"]
        calls_seen.add((function["name"], function["arguments"]))
        # What evaluation holds out is the rendered call, and the call inside the tags is the expected one.
        _, reference = prompt_and_reference(row)
        inner = TOOL_CALL.match(reference)
        assert inner, reference
        call = json.loads(inner.group(1))
        assert call["name"] == function["name"] and call["arguments"] == json.loads(function["arguments"])
        assert tool_call_scores(inner.group(1), call)["tool_call_exact"] == 1.0
    wanted = {(c["name"], json.dumps(c["arguments"])) for c in expected.values()}
    assert calls_seen <= wanted and len(calls_seen) >= 35
    # Status checks come first in some sessions: those examples carry an earlier call and its result.
    assert any(sum(1 for m in row["messages"] if m.get("tool_calls")) == 2 and any(m["role"] == "tool" for m in row["messages"]) for row in rows)


def test_json_intake_sessions_build_into_examples_whose_answers_meet_the_schema(tmp_path, ws):
    path = efficacy_tasks.write_json_intake_sessions(tmp_path / "json", seed=3, n=40)
    assert detect_format(path) == "openai_chat"
    built = build_dataset(ws, [path], seed=0, validation_fraction=0.1, test_fraction=0.25)
    rows = [row for split in ("train", "validation", "test") for row in read_split(ws, built.dataset_id, split)]
    assert len(rows) == sum(built.counts.values()) == 40 and built.counts["test"] >= 6
    categories = set()
    for row in rows:
        system, user, assistant = row["messages"]
        assert system == {"role": "system", "content": efficacy_tasks.INTAKE_SYSTEM}
        answer = json.loads(assistant["content"])
        assert schema_valid(assistant["content"], efficacy_tasks.INTAKE_SCHEMA) == 1.0
        assert list(answer) == efficacy_tasks.INTAKE_SCHEMA["required"]
        # The fields follow from the e-mail: the id and the product are in it.
        assert answer["customer_id"] in user["content"] and answer["product"] in user["content"]
        assert not answer["refund_requested"] or answer["category"] == "billing"
        categories.add(answer["category"])
    assert categories == set(efficacy_tasks.CATEGORIES)
    # A wrong answer fails the schema, so schema_valid measures something.
    assert schema_valid('{"category": "billing"}', efficacy_tasks.INTAKE_SCHEMA) == 0.0


@pytest.mark.parametrize("bad", ["", "restart it", '<tool_call>{"name": "mcp__deploy__restart_service"}</tool_call>'])
def test_benchmark_scores_a_wrong_call_below_a_right_one(bad):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from efficacy import call_scores

    reference = '<tool_call>{"name": "mcp__deploy__restart_service", "arguments": {"service": "ledger-sync", "environment": "dev"}}</tool_call>'
    assert call_scores(reference, reference)["tool_call_exact"] == 1.0
    assert call_scores(bad, reference)["tool_call_exact"] == 0.0
