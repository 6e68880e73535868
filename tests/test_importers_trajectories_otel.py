"""tau-bench, ToolBench, SWE-agent and OpenTelemetry GenAI importers: real files, our fixtures, edge cases, sniffers.

Expected numbers on the real ToolBench / SWE-agent samples were worked out from the raw files with jq, e.g.
``jq '.answer_generation | [.valid_data, .finish_type, (.train_messages[-1] | length),
([.train_messages[-1][]?.role] | group_by(.) | map({(.[0]): length}) | add),
([.train_messages[-1][]? | select(.function_call != null)] | length), (.function | length)]'``,
not by running the importers. The fixtures under tests/fixtures/{trajectories,otel} are hand-written; their READMEs
list what is in them.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from model_customization.memory.formats import score
from model_customization.memory import detect
from model_customization.memory.otel_genai import FORMAT as OTEL_FORMAT
from model_customization.memory.otel_genai import iter_otel_genai
from model_customization.memory.records import Conversation, ImportProblem
from model_customization.memory.trajectories import FORMATS as TRAJECTORY_FORMATS
from model_customization.memory.trajectories import iter_swe_agent, iter_tau_bench, iter_toolbench

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
TAU_JSON = FIXTURES / "trajectories" / "tool-calling-gpt-4o-0.0_range_0-8_user-gpt-4o-llm_0101120000.json"
TAU_JSONL = FIXTURES / "trajectories" / "tau_bench_retail_trials.jsonl"
OTEL_DOC = FIXTURES / "otel" / "weather_agent_trace.json"
OTEL_LINES = FIXTURES / "otel" / "translator_spans.jsonl"

SAMPLES = HERE.parents[1] / "shared" / "fixtures" / "memory-samples"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"real memory samples not found at {SAMPLES}")
TOOLBENCH = SAMPLES / "agent-trajectories-labeled" / "toolbench"
SWE = SAMPLES / "agent-trajectories-labeled" / "swe-agent"

NEW_FORMATS = [*TRAJECTORY_FORMATS, OTEL_FORMAT]


def split(items):
    items = list(items)
    convs = [x for x in items if isinstance(x, Conversation)]
    problems = [x for x in items if isinstance(x, ImportProblem)]
    assert len(convs) + len(problems) == len(items)
    return convs, problems


def roles(conv: Conversation) -> dict[str, int]:
    return dict(Counter(m.role for m in conv.messages))


def n_calls(conv: Conversation) -> int:
    return sum(len(m.tool_calls) for m in conv.messages)


def assert_results_answer_earlier_calls(conv: Conversation) -> None:
    called: set[str] = set()
    for m in conv.messages:
        called.update(tc.id for tc in m.tool_calls)
        if m.role == "tool":
            assert m.tool_call_id in called, (conv.session_id, m.tool_call_id)


def only(items) -> Conversation:
    convs, problems = split(items)
    assert not problems, problems
    assert len(convs) == 1
    return convs[0]


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch):
    """The real entry point with the new formats registered in front, as detect.py will have them."""
    formats = [*NEW_FORMATS, *detect.FORMATS]
    monkeypatch.setattr(detect, "FORMATS", formats)
    monkeypatch.setattr(detect, "_BY_NAME", {f.name: f for f in formats})
    monkeypatch.setattr(detect, "SUPPORTED_FORMATS", tuple(f.name for f in formats))
    return detect


def test_format_names_and_order():
    assert [f.name for f in NEW_FORMATS] == ["tau_bench", "toolbench", "swe_agent", "otel_genai"]
    others = [f for f in detect.FORMATS if f not in NEW_FORMATS]
    assert not {f.name for f in NEW_FORMATS} & {f.name for f in others}


# --------------------------------------------------------------------------------------------------------------
# ToolBench (real files)

TOOLBENCH_EXPECTED = {
    # stem: (messages, roles after mapping function->tool, function calls, tools, reward, finish_type, win)
    "G1_answer_10_ChatGPT_DFS_woFilter_w2": (7, {"system": 1, "user": 1, "assistant": 3, "tool": 2}, 3, 3, 1.0, "give_answer", True),
    "G2_answer_127_ChatGPT_DFS_woFilter_w2": (8, {"system": 1, "user": 2, "assistant": 3, "tool": 2}, 3, 3, 0.0, "give_up", False),
    "G3_answer_21_ChatGPT_DFS_woFilter_w2": (9, {"system": 1, "user": 1, "assistant": 4, "tool": 3}, 4, 10, 1.0, "give_answer", True),
}


@needs_samples
@pytest.mark.parametrize("stem", sorted(TOOLBENCH_EXPECTED))
def test_toolbench_real_files(stem):
    n, role_counts, calls, tools, reward, finish_type, win = TOOLBENCH_EXPECTED[stem]
    conv = only(iter_toolbench(TOOLBENCH / f"{stem}.json"))
    assert conv.source_format == "toolbench"
    assert conv.session_id == stem
    assert conv.task_id == stem.split("_ChatGPT")[0]  # e.g. G1_answer_10
    assert len(conv.messages) == n
    assert roles(conv) == role_counts
    assert n_calls(conv) == calls
    assert len(conv.tools) == tools
    assert all(t["type"] == "function" and t["function"]["name"] for t in conv.tools)
    assert conv.tools[-1]["function"]["name"] == "Finish"
    assert conv.outcome.reward == reward
    assert conv.outcome.successful is (reward == 1.0)
    assert conv.metadata == {"finish_type": finish_type, "valid_data": True, "win": win}
    assert conv.messages[0].role == "system" and conv.messages[0].content.startswith("You are AutoGPT")
    # the conversation ends on the Finish call; every function result answers the call before it
    assert conv.messages[-1].tool_calls[-1].name == "Finish"
    assert_results_answer_earlier_calls(conv)
    raw = json.loads((TOOLBENCH / f"{stem}.json").read_text())["answer_generation"]
    assert conv.messages[1].content == raw["train_messages"][-1][1]["content"]
    assert raw["query"].strip() in conv.messages[1].content


@needs_samples
def test_toolbench_give_up_keeps_mid_chain_user_turn_and_final_args():
    conv = only(iter_toolbench(TOOLBENCH / "G2_answer_127_ChatGPT_DFS_woFilter_w2.json"))
    assert [m.role for m in conv.messages] == ["system", "user", "assistant", "tool", "user", "assistant", "tool", "assistant"]
    assert conv.messages[4].content.startswith("This is not the first time you try this task")
    assert json.loads(conv.messages[-1].tool_calls[0].arguments) == {"return_type": "give_up_and_restart"}
    assert not conv.outcome.successful


@needs_samples
def test_toolbench_invalid_file_without_train_messages_is_a_problem():
    convs, problems = split(iter_toolbench(TOOLBENCH / "G1_answer_69_ChatGPT_DFS_woFilter_w2.json"))
    assert convs == []
    assert len(problems) == 1
    assert problems[0].line == 1
    assert "valid_data is false" in problems[0].message and "train_messages" in problems[0].message


def _toolbench_doc(**ag) -> dict:
    base = {
        "valid_data": True,
        "query": "What is 2+2?",
        "final_answer": "",
        "finish_type": "give_answer",
        "function": [{"name": "Finish", "description": "finish", "parameters": {"type": "object", "properties": {}}}],
        "train_messages": [
            [
                {"role": "system", "content": "You are AutoGPT"},
                {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": None, "function_call": {"name": "Finish", "arguments": "{\"return_type\": \"give_answer\", \"final_answer\": \"4\"}"}},
            ]
        ],
    }
    base.update(ag)
    return {"win": True, "answer_generation": base}


def test_toolbench_outcome_rules_and_task_ids(tmp_path: Path):
    upstream = tmp_path / "G2_answer"
    upstream.mkdir()
    f = upstream / "42_ChatGPT_DFS_woFilter_w2.json"
    f.write_text(json.dumps(_toolbench_doc(valid_data=False)))
    conv = only(iter_toolbench(f))
    assert conv.task_id == "G2_answer_42"  # the same id as the flat name G2_answer_42_ChatGPT_... gives
    assert conv.outcome.reward == 0.0 and conv.metadata["valid_data"] is False

    f = tmp_path / "odd name.json"
    f.write_text(json.dumps(_toolbench_doc()))
    conv = only(iter_toolbench(f))
    assert (conv.task_id, conv.outcome.reward, conv.metadata["finish_type"]) == ("odd name", 1.0, "give_answer")

    f.write_text(json.dumps({"answer_generation": {**_toolbench_doc()["answer_generation"], "query_id": 7031}}))
    assert only(iter_toolbench(f)).task_id == "7031"


def test_toolbench_broken_inputs(tmp_path: Path):
    bad_json = tmp_path / "G1_answer_1_ChatGPT_DFS_woFilter_w2.json"
    bad_json.write_text('{"answer_generation": {\n  "valid_data": tru')
    (p,) = split(iter_toolbench(bad_json))[1]
    assert p.line == 2 and p.message.startswith("invalid JSON")

    bad_msg = tmp_path / "G1_answer_2_ChatGPT_DFS_woFilter_w2.json"
    doc = _toolbench_doc()
    doc["answer_generation"]["train_messages"][-1].append({"role": "observer", "content": "?"})
    bad_msg.write_text(json.dumps(doc))
    convs, problems = split(iter_toolbench(bad_msg))
    assert convs == [] and "train_messages[0]" in problems[0].message and "unknown role" in problems[0].message

    not_list = tmp_path / "G1_answer_3_ChatGPT_DFS_woFilter_w2.json"
    not_list.write_text(json.dumps(_toolbench_doc(train_messages={"oops": 1})))
    (p,) = split(iter_toolbench(not_list))[1]
    assert "must be a list" in p.message


# --------------------------------------------------------------------------------------------------------------
# SWE-agent (real files)


@needs_samples
def test_swe_agent_function_calling_demo():
    conv = only(iter_swe_agent(SWE / "function_calling_simple.traj"))
    assert conv.source_format == "swe_agent"
    assert conv.session_id == conv.task_id == "function_calling_simple"
    assert len(conv.messages) == 12
    assert roles(conv) == {"system": 1, "user": 1, "assistant": 5, "tool": 5}
    assert n_calls(conv) == 5
    assert [m.tool_call_id for m in conv.messages if m.role == "tool"] == [
        "call_PbWErNIge3YTrli3fiVvmIid",
        "call_upNLxh7rBcDH9w5XiNdoAS0I",
        "call_hIiDKXAXZl4qMHV6RRXvil4u",
        "call_5O339epJ3rKjEal3Kuvpj9bM",
        "call_6zuFhIfpOAi1jAiD2QHMmh6S",
    ]
    assert_results_answer_earlier_calls(conv)
    assert conv.outcome.reward is None and conv.metadata == {}  # a demonstration has no info


@needs_samples
def test_swe_agent_submitted_run_has_no_reward():
    conv = only(iter_swe_agent(SWE / "pydicom__pydicom-1458.traj"))
    assert conv.task_id == "pydicom__pydicom-1458"
    assert len(conv.messages) == 26
    assert roles(conv) == {"system": 1, "user": 13, "assistant": 12}
    assert n_calls(conv) == 0  # this older agent writes its commands inside the text
    assert conv.outcome.reward is None
    assert conv.metadata == {"exit_status": "submitted", "submitted_patch": True}


def test_swe_agent_trajectory_only_and_broken(tmp_path: Path):
    f = tmp_path / "astropy__astropy-12907.traj"
    f.write_text(
        json.dumps(
            {
                "trajectory": [
                    {"action": "ls", "observation": "setup.py\nastropy", "response": "Let me look.\n```\nls\n```", "thought": "Let me look."},
                    {"action": "submit", "observation": "diff --git ...", "response": "```\nsubmit\n```", "thought": ""},
                ],
                "info": {"exit_status": "exit_cost", "submission": None},
            }
        )
    )
    conv = only(iter_swe_agent(f))
    assert [m.role for m in conv.messages] == ["assistant", "user", "assistant", "user"]
    assert conv.messages[1].content == "setup.py\nastropy"
    assert conv.metadata == {"exit_status": "exit_cost", "submitted_patch": False}

    f.write_text(json.dumps({"history": [{"role": "system", "content": "x", "agent": "main"}, "not a message"], "info": {}}))
    convs, problems = split(iter_swe_agent(f))
    assert convs == [] and problems[0].line == 1 and "history message 2" in problems[0].message


# --------------------------------------------------------------------------------------------------------------
# tau-bench (our fixtures)


def test_tau_bench_results_array():
    convs, problems = split(iter_tau_bench(TAU_JSON))
    stem = TAU_JSON.stem
    assert [c.session_id for c in convs] == [f"{stem}:task3:trial0", f"{stem}:task3:trial1"]
    assert [c.source_line for c in convs] == [2, 133]  # the lines where each result's object opens
    assert [c.task_id for c in convs] == ["3", "3"]
    assert [c.outcome.reward for c in convs] == [1.0, 0.0]
    assert [c.metadata for c in convs] == [{"trial": 0}, {"trial": 1}]
    assert [len(c.messages) for c in convs] == [12, 6]
    assert [n_calls(c) for c in convs] == [2, 1]
    assert roles(convs[0]) == {"system": 1, "user": 4, "assistant": 5, "tool": 2}
    for c in convs:
        assert c.source_format == "tau_bench" and c.tools is None
        assert_results_answer_earlier_calls(c)
    assert convs[0].messages[4].tool_calls[0].name == "find_user_id_by_email"
    assert json.loads(convs[0].messages[4].tool_calls[0].arguments) == {"email": "mei.kovacs@example.com"}
    # the crashed run (traj [], info.error) is reported at its own line, with the error
    assert len(problems) == 1
    assert problems[0].line == 223
    assert "task 7 trial 0" in problems[0].message and "RateLimitError" in problems[0].message


def test_tau_bench_jsonl():
    convs = split(iter_tau_bench(TAU_JSONL))[0]
    assert [(c.session_id, c.source_line, c.task_id, c.outcome.reward, len(c.messages)) for c in convs] == [
        ("tau_bench_retail_trials:task12:trial2", 1, "12", 1.0, 4),
        ("tau_bench_retail_trials:task12:trial3", 2, "12", 0.0, 5),
    ]


def _tau(task_id=1, trial=0, reward=1.0, traj=None, **extra) -> dict:
    if traj is None:
        traj = [{"role": "system", "content": "wiki"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    return {"task_id": task_id, "reward": reward, "info": {}, "traj": traj, "trial": trial, **extra}


def test_tau_bench_edge_cases_jsonl(tmp_path: Path):
    lines = [
        json.dumps(_tau()),
        json.dumps({"task_id": 2, "reward": 1.0, "info": {}, "trial": 0}),  # missing traj
        json.dumps(_tau(task_id=3, traj="system: hi")),  # non-list traj
        json.dumps(_tau(task_id=4, traj=[{"role": "system", "content": "x"}, {"role": "narrator", "content": "y"}])),
        json.dumps(_tau(task_id=5, traj=[{"role": "user", "content": "x"}, "hello"])),
        '{"task_id": 6, "traj": [',
        "[1, 2]",
        json.dumps(_tau(task_id=7, reward="high")),
        "",
        json.dumps({"reward": 0.0, "info": {}, "traj": [{"role": "user", "content": "no ids"}]}),
        json.dumps(_tau(task_id=9, trial=None, reward=None)),
    ]
    f = tmp_path / "results.jsonl"
    f.write_text("\n".join(lines) + "\n")
    convs, problems = split(iter_tau_bench(f))
    assert [(c.source_line, c.session_id, c.task_id, c.outcome.reward) for c in convs] == [
        (1, "results:task1:trial0", "1", 1.0),
        (10, "results:9", None, 0.0),  # 9th result (blank lines are not counted)
        (11, "results:10", "9", None),
    ]
    assert convs[2].metadata == {}
    by_line = {p.line: p.message for p in problems}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8]
    assert "missing 'traj'" in by_line[2]
    assert "'traj' must be a list" in by_line[3] and "a string" in by_line[3]
    assert "task 4" in by_line[4] and "unknown role 'narrator'" in by_line[4]
    assert "message 2" in by_line[5]
    assert by_line[6].startswith("invalid JSON")
    assert "expected a JSON object" in by_line[7]
    assert "'reward' must be a number" in by_line[8]


def test_tau_bench_array_edge_cases(tmp_path: Path):
    f = tmp_path / "results.json"
    good = json.dumps(_tau(task_id=1), indent=2)
    f.write_text("[\n" + good + ",\n" + json.dumps(_tau(task_id=2, traj={"role": "user"})) + ",\n  42,\n  {\"task_id\": 3, \"traj\": [}\n]\n")
    convs, problems = split(iter_tau_bench(f))
    assert [c.task_id for c in convs] == ["1"] and convs[0].source_line == 2
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (2 + good.count("\n") + 1, "task 2 trial 0"),
        (2 + good.count("\n") + 2, "result 3"),
        (2 + good.count("\n") + 3, "invalid JSON"),
    ]
    assert "rest of the file skipped" in problems[-1].message

    f.write_text("[]")
    assert list(iter_tau_bench(f)) == []
    f.write_text(json.dumps(_tau(task_id=11), indent=2))  # a single result document
    assert only(iter_tau_bench(f)).session_id == "results:task11:trial0"
    f.write_text(json.dumps(_tau(task_id=12)) + "\n" + json.dumps(_tau(task_id=13)) + "\n")  # JSONL named .json
    assert [c.task_id for c in split(iter_tau_bench(f))[0]] == ["12", "13"]


# --------------------------------------------------------------------------------------------------------------
# OpenTelemetry GenAI (our fixtures)


def test_otel_agent_trace_folds_chat_spans():
    conv = only(iter_otel_genai(OTEL_DOC))
    assert conv.source_format == "otel_genai"
    assert conv.session_id == "5b8efff798038103d269b633813fc60c:f0a2c3e4d5b6a798"
    assert [m.role for m in conv.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert conv.messages[0].content == "You are a helpful weather assistant. Use the tools to answer."
    call = conv.messages[2].tool_calls[0]
    assert (call.id, call.name, json.loads(call.arguments)) == ("call_VSPygqKTWdrhaFErNvMV18Yl", "get_weather", {"location": "Paris"})
    assert conv.messages[3].tool_call_id == call.id and conv.messages[3].content == "rainy, 57°F"
    assert conv.messages[4].content.startswith("It's rainy in Paris")
    assert conv.started_at == "2025-01-01T10:00:00.100000Z"  # the first chat span's start
    assert conv.metadata == {
        "spans": 2,
        "model": "gpt-4o-mini-2024-07-18",
        "operation": "chat",
        "span_name": "chat gpt-4o-mini",
        "finish_reason": "stop",
    }
    text = OTEL_DOC.read_text().splitlines()
    assert '"f0a2c3e4d5b6a798"' in text[conv.source_line - 1]


def test_otel_jsonl_structured_values_bad_json_and_ignored_spans():
    convs, problems = split(iter_otel_genai(OTEL_LINES))
    assert len(problems) == 1
    assert problems[0].line == 2
    assert "53995c3f42cd8ad8" in problems[0].message and "gen_ai.input.messages is not valid JSON" in problems[0].message
    # the HTTP span (no GenAI attributes) is neither a conversation nor a problem; line 1 and 3 are one chat
    assert len(convs) == 1
    conv = convs[0]
    assert conv.session_id == "0af7651916cd43dd8448eb211c80319c:1c2d3e4f5a6b7c8d"
    assert conv.source_line == 3
    assert [(m.role, m.content) for m in conv.messages] == [
        ("system", "You translate English to French."),
        ("user", "Good morning, how are you?"),
        ("assistant", "Bonjour, comment allez-vous ?"),  # the reasoning part is dropped
        ("user", "And 'see you tomorrow'?"),
        ("assistant", "À demain !"),
    ]
    assert conv.started_at == "2025-01-02T10:00:00.000000Z"  # from an integer startTimeUnixNano on line 1
    assert conv.metadata["spans"] == 2 and conv.metadata["model"] == "gemini-2.0-flash"


def _span(span_id, inputs=None, outputs=None, trace="t1", extra_attrs=(), start="1700000000000000000", **kw):
    attrs = [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}, *extra_attrs]
    if inputs is not None:
        attrs.append({"key": "gen_ai.input.messages", "value": {"stringValue": inputs if isinstance(inputs, str) else json.dumps(inputs)}})
    if outputs is not None:
        attrs.append({"key": "gen_ai.output.messages", "value": {"stringValue": outputs if isinstance(outputs, str) else json.dumps(outputs)}})
    return {"traceId": trace, "spanId": span_id, "name": "chat m", "startTimeUnixNano": start, "attributes": attrs, **kw}


def _export(*spans, key="scopeSpans") -> dict:
    return {"resourceSpans": [{"resource": {}, key: [{"scope": {"name": "x"}, "spans": list(spans)}]}]}


def _user(text):
    return {"role": "user", "parts": [{"type": "text", "content": text}]}


def _assistant(text):
    return {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}


def test_otel_edge_cases(tmp_path: Path):
    multi = [
        _user("weather in Paris and Rome?"),
        {"role": "assistant", "parts": [
            {"type": "tool_call", "id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}},
            {"type": "tool_call", "id": "c2", "name": "get_weather", "arguments": "{\"city\": \"Rome\"}"},
        ]},
        {"role": "tool", "parts": [
            {"type": "tool_call_response", "id": "c1", "response": {"temp": 14}},
            {"type": "tool_call_response", "id": "c2", "response": "sunny"},
        ]},
        {"role": "user", "parts": [{"type": "text", "content": "see"}, {"type": "image", "mime_type": "image/png"}]},
    ]
    spans = [
        _span("s1", multi, [_assistant("Paris 14°, Rome sunny.")]),
        _span("s2", [_user("a different question")], [_assistant("a different answer")]),  # same trace, not a prefix
        _span("s3", "{not json", [_assistant("x")]),
        _span("s4", {"role": "user"}, None),  # not a list
        _span("s5", [{"role": "wizard", "parts": []}]),
        _span("s6", None, None, extra_attrs=[{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "3"}}]),
        _span("s7", [_user("only output missing")], None, trace="t2",
              extra_attrs=[{"key": "gen_ai.request.model", "value": {"stringValue": "m-1"}},
                           {"key": "gen_ai.system_instructions", "value": {"arrayValue": {"values": [
                               {"kvlistValue": {"values": [{"key": "type", "value": {"stringValue": "text"}},
                                                           {"key": "content", "value": {"stringValue": "Be brief."}}]}}]}}}]),
        _span("s8", [_user("dup")], [_assistant("dup")], trace="t3"),
        _span("s9", [_user("dup")], [_assistant("dup")], trace="t3"),  # an identical span: folded into the first
    ]
    f = tmp_path / "spans.json"
    f.write_text(json.dumps(_export(*spans[:4]), indent=1) + "\n")
    convs, problems = split(iter_otel_genai(f))
    assert [c.session_id for c in convs] == ["t1:s1", "t1:s2"]
    c = convs[0]
    assert [m.role for m in c.messages] == ["user", "assistant", "tool", "tool", "user", "assistant"]
    assert [(tc.id, json.loads(tc.arguments)) for tc in c.messages[1].tool_calls] == [("c1", {"city": "Paris"}), ("c2", {"city": "Rome"})]
    assert [(m.tool_call_id, m.content) for m in c.messages[2:4]] == [("c1", '{"temp": 14}'), ("c2", "sunny")]
    assert c.messages[4].content == "see\n[image]"
    assert c.started_at == "2023-11-14T22:13:20.000000Z"
    assert sorted(p.message.split(" ")[1] for p in problems) == ["s3", "s4"]
    assert all(f.read_text().splitlines()[p.line - 1].strip().endswith(f'"{p.message.split(" ")[1]}",') for p in problems)
    assert "must be a list of messages" in next(p.message for p in problems if " s4 " in p.message)

    f = tmp_path / "more.jsonl"
    f.write_text(
        "\n".join(
            [
                json.dumps(_export(*spans[4:7], key="instrumentationLibrarySpans")),
                "not json",
                json.dumps({"resourceLogs": []}),
                json.dumps(_export(*spans[7:])),
            ]
        )
    )
    convs, problems = split(iter_otel_genai(f))
    assert [(p.line, "unknown role 'wizard'" in p.message) for p in problems][:1] == [(1, True)]
    assert [p.line for p in problems] == [1, 2, 3]
    assert problems[1].message.startswith("invalid JSON") and "resourceSpans" in problems[2].message
    assert [c.session_id for c in convs] == ["t2:s7", "t3:s8"]
    assert [(m.role, m.content) for m in convs[0].messages] == [("system", "Be brief."), ("user", "only output missing")]
    assert convs[0].metadata["model"] == "m-1" and "finish_reason" not in convs[0].metadata
    assert convs[1].metadata["spans"] == 2


# --------------------------------------------------------------------------------------------------------------
# Sniffers and the real entry point

EXPECTED_REAL = {"toolbench": "toolbench", "swe-agent": "swe_agent"}


def _sniff_new(path: Path, formats=NEW_FORMATS) -> list[str]:
    """Which of ``formats`` claim a file, judged the way detect.py judges (document first, then the first lines)."""
    claimed = []
    document = None
    if path.suffix.lower() in detect.DOCUMENT_SUFFIXES:
        try:
            document = json.loads(path.read_bytes().decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            document = None
    lines = []
    for raw in path.read_bytes().splitlines()[:200]:
        if raw.strip():
            try:
                lines.append(json.loads(raw))
            except (UnicodeDecodeError, json.JSONDecodeError):
                pass
        if len(lines) >= 20:
            break
    for fmt in formats:
        hit = document is not None and fmt.sniff_document is not None and score(fmt.sniff_document, document) > 0
        hit = hit or (fmt.sniff_line is not None and any(score(fmt.sniff_line, obj) > 0 for obj in lines))
        if hit:
            claimed.append(fmt.name)
    return claimed


@needs_samples
def test_new_sniffers_claim_only_their_real_samples():
    files = sorted(p for p in SAMPLES.rglob("*") if p.is_file() and p.suffix.lower() in detect.MEMORY_SUFFIXES)
    assert len(files) > 20
    for path in files:
        folder = path.parent.name
        expected = [EXPECTED_REAL[folder]] if folder in EXPECTED_REAL else []
        assert _sniff_new(path) == expected, path


def test_new_sniffers_on_our_fixtures():
    assert _sniff_new(TAU_JSON) == ["tau_bench"]
    assert _sniff_new(TAU_JSONL) == ["tau_bench"]
    assert _sniff_new(OTEL_DOC) == ["otel_genai"]
    assert _sniff_new(OTEL_LINES) == ["otel_genai"]


def test_existing_sniffers_do_not_claim_our_fixtures():
    others = [f for f in detect.FORMATS if f not in NEW_FORMATS]  # whatever else detect.py registers
    assert {"openai_chat", "claude_code"} <= {f.name for f in others}
    for path in (TAU_JSON, TAU_JSONL, OTEL_DOC, OTEL_LINES):
        assert _sniff_new(path, others) == [], path


@needs_samples
def test_entry_point_with_new_formats_registered(registered, tmp_path: Path):
    assert registered.detect_format(TAU_JSON) == "tau_bench"
    assert registered.detect_format(TAU_JSONL) == "tau_bench"
    assert registered.detect_format(OTEL_DOC) == "otel_genai"
    assert registered.detect_format(OTEL_LINES) == "otel_genai"
    for path in sorted((SAMPLES / "agent-trajectories-labeled").rglob("*")):
        if path.is_file() and path.suffix in (".json", ".traj"):
            assert registered.detect_format(path) == EXPECTED_REAL[path.parent.name]

    records = list(registered.iter_memory([SAMPLES / "agent-trajectories-labeled", FIXTURES / "trajectories", FIXTURES / "otel"]))
    convs, problems = split(records)
    assert Counter(c.source_format for c in convs) == {"toolbench": 3, "swe_agent": 2, "tau_bench": 4, "otel_genai": 2}
    assert sorted((Path(p.file).name, p.line) for p in problems) == [
        ("G1_answer_69_ChatGPT_DFS_woFilter_w2.json", 1),
        ("tool-calling-gpt-4o-0.0_range_0-8_user-gpt-4o-llm_0101120000.json", 223),
        ("translator_spans.jsonl", 2),
    ]


@needs_samples
def test_registering_does_not_change_existing_detection(registered, monkeypatch: pytest.MonkeyPatch):
    files = sorted(p for p in SAMPLES.rglob("*") if p.is_file() and p.suffix.lower() in detect.MEMORY_SUFFIXES)
    with_new = {p: registered.detect_format(p) for p in files}
    monkeypatch.undo()
    without = {p: detect.detect_format(p) for p in files}
    for p in files:
        if without[p] is not None:
            assert with_new[p] == without[p], p
        else:
            assert with_new[p] in (None, "toolbench", "swe_agent"), p
