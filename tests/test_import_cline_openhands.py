"""Cline / Roo Code / Kilo Code tasks and OpenHands V0 / V1 sessions: real files where they exist, hand-written task
folders and a V1 folder otherwise (tests/fixtures/{cline,openhands}/SOURCES.md says which is which).

Expected counts are read from the fixture files with ``json`` here, or hand-counted and written down with how, never
taken from the importers themselves.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from model_customization.memory.cline import iter_cline
from model_customization.memory.detect import detect_format, iter_memory
from model_customization.memory.openhands import iter_openhands, iter_openhands_v1
from model_customization.memory.records import Conversation, ImportProblem

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CLINE = FIXTURES / "cline"
CLINE_TASK = CLINE / "saoudrizwan.claude-dev" / "tasks" / "1764950400000"
ROO_TASK = CLINE / "rooveterinaryinc.roo-cline" / "tasks" / "0196c0b2-5a3e-7c41-9d3e-2f8b7a6c1e90"
KILO_TASK = CLINE / "kilocode.kilo-code" / "tasks" / "b3f1c2d4-0a9e-4c7b-8e21-6d5f4a3b2c10"
SDK_DIR = CLINE / "sdk-session" / "1784094124598_rruoq"
SDK_MESSAGES = SDK_DIR / "1784094124598_rruoq.messages.json"
SDK_MANIFEST = SDK_DIR / "1784094124598_rruoq.json"
OPENHANDS = FIXTURES / "openhands"
V0_FILES = sorted(OPENHANDS.glob("*.json"))
V1_FOLDER = OPENHANDS / "v1-conversations" / "11111111222233334444555555555555"
V1_LINES = OPENHANDS / "v1_events.jsonl"


def _load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _only(records) -> Conversation:
    records = list(records)
    problems = [r for r in records if isinstance(r, ImportProblem)]
    assert not problems, problems
    assert len(records) == 1, records
    return records[0]


def _blocks(entries, kind):
    return [b for m in entries if isinstance(m.get("content"), list) for b in m["content"] if b.get("type") == kind]


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _assert_paired(conv: Conversation) -> None:
    """Every tool message answers a call made by an assistant message before it, and no call is answered twice."""
    called: set[str] = set()
    answered: list[str] = []
    for message in conv.messages:
        if message.role == "assistant":
            called.update(c.id for c in message.tool_calls)
        elif message.role == "tool":
            assert message.tool_call_id in called, message
            answered.append(message.tool_call_id)
    assert len(answered) == len(set(answered))


# ---------------------------------------------------------------------------------------------------------------
# Cline family


def test_cline_task_folder_native_tools():
    api = _load(CLINE_TASK / "api_conversation_history.json")
    ui = _load(CLINE_TASK / "ui_messages.json")
    meta = _load(CLINE_TASK / "task_metadata.json")
    conv = _only(iter_cline(CLINE_TASK))

    assert conv.session_id == "1764950400000" and conv.source_format == "cline" and conv.metadata["agent"] == "cline"
    calls = [c for m in conv.messages for c in m.tool_calls]
    uses = _blocks(api, "tool_use")
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [(b["id"], b["name"], b["input"]) for b in uses]
    results = _blocks(api, "tool_result")
    tool_messages = [m for m in conv.messages if m.role == "tool"]
    assert [m.tool_call_id for m in tool_messages] == [b["tool_use_id"] for b in results]
    _assert_paired(conv)
    # Hand-counted: the task and the feedback given when the edit was denied; the rest of the user turns are tool
    # results and environment details.
    assert [m.content for m in conv.messages if m.role == "user"] == ["Add a --verbose flag to cli.py", "Also accept -v as the short form."]
    env_blocks = [b for b in _blocks(api, "text") if "<environment_details>" in b["text"]]
    assert conv.metadata["environment_details_removed"] == len(env_blocks)
    assert not any("environment_details" in m.content for m in conv.messages)
    assert conv.metadata["cwd"] == "/home/dev/projects/tool"
    assert conv.metadata["model"] == meta["model_usage"][-1]["model_id"]
    assert conv.metadata["model_provider"] == meta["model_usage"][-1]["model_provider_id"]
    assert conv.metadata["agent_version"] == meta["environment_history"][-1]["cline_version"]
    assert conv.started_at == _iso_ms(ui[0]["ts"])
    assert conv.outcome.user_rejected and not conv.outcome.is_error and not conv.outcome.interrupted
    assert conv.messages[-1].role == "assistant" and conv.messages[-1].tool_calls[-1].name == "attempt_completion"
    assert not any("<thinking>" in m.content for m in conv.messages)


def test_cline_thinking_only_on_request():
    api = _load(CLINE_TASK / "api_conversation_history.json")
    thought = _blocks(api, "thinking")[0]["thinking"]
    conv = _only(iter_cline(CLINE_TASK, include_thinking=True))
    first_answer = next(m for m in conv.messages if m.role == "assistant")
    assert first_answer.content.startswith(f"<thinking>{thought}</thinking>")


def test_roo_code_xml_tools_resumption_and_error():
    api = _load(ROO_TASK / "api_conversation_history.json")
    conv = _only(iter_cline(ROO_TASK))
    assert conv.source_format == "roo_code" and conv.metadata["agent"] == "roo_code"
    # XML-era tool calls stay in the assistant's text, as the model wrote them; there are no native calls to pair.
    assert not any(m.tool_calls for m in conv.messages)
    assistant_texts = [m.content for m in conv.messages if m.role == "assistant"]
    assert assistant_texts == ["\n\n".join(b["text"] for b in m["content"]) for m in api if m["role"] == "assistant"]
    assert "<read_file>" in assistant_texts[0] and "Harbour Walks" in assistant_texts[-1]
    users = [m.content for m in conv.messages if m.role == "user"]
    assert users[0] == "What does the page title say?"
    assert "I fixed the permissions, try again." in users
    assert not any("[TASK RESUMPTION]" in u for u in users)
    assert conv.outcome.interrupted and conv.outcome.is_error
    assert conv.metadata["cwd"] == "/home/dev/projects/site"
    assert conv.started_at == _iso_ms(_load(ROO_TASK / "ui_messages.json")[0]["ts"])
    item = _load(ROO_TASK / "history_item.json")
    assert conv.parent_session_id == item["parentTaskId"] and conv.metadata["mode"] == item["mode"]
    assert detect_format(ROO_TASK / "history_item.json") == "cline_side_file"


def test_resumption_in_one_block_keeps_the_users_words(tmp_path):
    # Cline before 3.x wrote the resumption notice and the user's new message in one text block (src/core/Cline.ts).
    entries = _load(ROO_TASK / "api_conversation_history.json")
    notice, said, env = entries[3]["content"]
    entries[3]["content"] = [{"type": "text", "text": notice["text"] + "\n\n" + said["text"]}, env]
    task = tmp_path / "1747000000000"
    task.mkdir()
    (task / "api_conversation_history.json").write_text(json.dumps(entries))
    conv = _only(iter_cline(task))
    assert conv.outcome.interrupted
    assert "I fixed the permissions, try again." in [m.content for m in conv.messages if m.role == "user"]
    assert not any("TASK RESUMPTION" in m.content for m in conv.messages)


def test_kilo_code_failed_command():
    api = _load(KILO_TASK / "api_conversation_history.json")
    conv = _only(iter_cline(KILO_TASK))
    assert conv.source_format == "kilo_code"
    assert conv.outcome.is_error and not conv.outcome.user_rejected
    assert conv.messages[-1].role == "assistant" and conv.messages[-1].content == api[-1]["content"][0]["text"]
    _assert_paired(conv)


def test_bare_anthropic_list_is_only_a_guess(tmp_path):
    from model_customization.memory.cline import sniff_document

    assert sniff_document([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]) == 0.5
    assert sniff_document(_load(CLINE_TASK / "api_conversation_history.json")) > 0.9
    assert sniff_document([{"role": "system", "content": "x"}]) == 0.0  # Anthropic histories have no system turns


def test_api_history_alone_and_copied_folder(tmp_path):
    alone = _only(iter_cline(KILO_TASK / "api_conversation_history.json"))
    assert alone.source_format == "kilo_code" and alone.session_id == KILO_TASK.name  # agent and id from its folder
    copy = tmp_path / "1764950400000"
    shutil.copytree(CLINE_TASK, copy)
    conv = _only(iter_cline(copy))
    assert conv.source_format == "cline"  # no extension id in the path: Cline
    assert detect_format(copy) == "cline"


def test_cline_sdk_session():
    doc = _load(SDK_MESSAGES)
    manifest = _load(SDK_MANIFEST)
    conv = _only(iter_cline(SDK_MESSAGES))
    assert conv.session_id == doc["sessionId"]
    assert conv.messages[0].role == "system" and conv.messages[0].content == doc["system_prompt"]
    uses = _blocks(doc["messages"], "tool_use")
    assert [c.id for m in conv.messages for c in m.tool_calls] == [b["id"] for b in uses]
    assert [m.tool_call_id for m in conv.messages if m.role == "tool"] == [b["tool_use_id"] for b in _blocks(doc["messages"], "tool_result")]
    _assert_paired(conv)
    typed = [m for m in doc["messages"] if m["role"] == "user" and any(b["type"] == "text" for b in m["content"])]
    assert sum(m.role == "user" for m in conv.messages) == len(typed)
    assert conv.started_at == _iso_ms(doc["messages"][0]["ts"])
    assert conv.metadata["model"] == doc["messages"][-1]["modelInfo"]["id"]
    assert conv.metadata["cwd"] == manifest["cwd"]
    assert conv.messages[-1].role == "assistant" and conv.messages[-1].content == doc["messages"][-1]["content"][0]["text"]


def test_cline_detection_and_walk():
    for task, name in ((CLINE_TASK, "cline"), (ROO_TASK, "roo_code"), (KILO_TASK, "kilo_code")):
        assert detect_format(task) == name
        assert detect_format(task / "api_conversation_history.json") == name  # the file alone: the agent from its path
        assert detect_format(task / "ui_messages.json") == "cline_side_file"
    assert detect_format(CLINE_TASK / "task_metadata.json") == "cline_side_file"
    assert detect_format(SDK_MESSAGES) == "cline"
    assert detect_format(SDK_MANIFEST) == "cline_side_file"
    assert detect_format(SDK_DIR / "1784094124598_rruoq.compaction.json") == "cline_side_file"  # not a second copy
    records = list(iter_memory([CLINE]))
    assert not [r for r in records if isinstance(r, ImportProblem)]
    # Hand-counted: three task folders (one per agent) and two SDK message files; side files yield nothing.
    assert Counter(r.source_format for r in records) == {"cline": 3, "roo_code": 1, "kilo_code": 1}


def test_task_history_index_is_a_side_file(tmp_path):
    # ~/.cline/data/tasks/taskHistory.json sits beside the task folders: the index the history view lists.
    index = tmp_path / "taskHistory.json"
    index.write_text(json.dumps([{"id": "1764950400000", "ulid": "01KB", "ts": 1764950439200, "task": "Add a --verbose flag to cli.py", "tokensIn": 9120, "tokensOut": 88, "totalCost": 0.0287, "size": 20480, "cwdOnTaskInitialization": "/home/dev/projects/tool"}]))
    assert detect_format(index) == "cline_side_file"
    assert list(iter_memory([index])) == []


def test_cline_bad_input_costs_only_itself(tmp_path):
    task = tmp_path / "saoudrizwan.claude-dev" / "tasks" / "1"
    task.mkdir(parents=True)
    entries = _load(CLINE_TASK / "api_conversation_history.json")
    (task / "api_conversation_history.json").write_text(json.dumps([*entries[:3], "oops", {"role": "bot", "content": "x"}, *entries[3:]]))
    records = list(iter_cline(task))
    problems = [r for r in records if isinstance(r, ImportProblem)]
    assert [p.message.split(":")[0] for p in problems] == ["message 4", "message 5"]
    conv = next(r for r in records if isinstance(r, Conversation))
    assert sum(len(m.tool_calls) for m in conv.messages) == len(_blocks(entries, "tool_use"))

    (task / "api_conversation_history.json").write_text('[{"role": "user", "content": "hi"}')
    problem = _only_problem(iter_cline(task))
    assert "invalid JSON" in problem.message


def _only_problem(records) -> ImportProblem:
    records = list(records)
    assert len(records) == 1 and isinstance(records[0], ImportProblem), records
    return records[0]


# ---------------------------------------------------------------------------------------------------------------
# OpenHands V0


def _v0_expectations(events):
    calls = [e for e in events if "action" in e and e.get("source") == "agent" and e.get("tool_call_metadata")]
    call_ids = {e["tool_call_metadata"]["tool_call_id"] for e in calls}
    results = [e for e in events if "observation" in e and (e.get("tool_call_metadata") or {}).get("tool_call_id") in call_ids]
    users = [e for e in events if e.get("action") == "message" and e.get("source") == "user"]
    model = next(e["tool_call_metadata"]["model_response"]["model"] for e in calls)
    return calls, results, users, model


@pytest.mark.parametrize("path", V0_FILES, ids=lambda p: p.stem)
def test_openhands_v0_trajectories(path):
    events = _load(path)
    calls, results, users, model = _v0_expectations(events)
    conv = _only(iter_openhands(path))
    assert conv.source_format == "openhands" and conv.session_id == path.stem
    assert [c.id for m in conv.messages for c in m.tool_calls] == [e["tool_call_metadata"]["tool_call_id"] for e in calls]
    assert [m.tool_call_id for m in conv.messages if m.role == "tool"] == [e["tool_call_metadata"]["tool_call_id"] for e in results]
    _assert_paired(conv)
    assert [m.content for m in conv.messages if m.role == "user"] == [e["args"]["content"] for e in users]
    assert conv.metadata["model"] == model
    assert conv.started_at == events[0]["timestamp"]
    assert conv.messages[-1].role == "assistant"
    assert not conv.outcome.is_error and not conv.outcome.user_rejected


def test_openhands_v0_final_answer_and_arguments():
    events = _load(OPENHANDS / "basic.json")
    finish = events[-1]
    conv = _only(iter_openhands(OPENHANDS / "basic.json"))
    last = conv.messages[-1]
    assert last.tool_calls[0].name == "finish"
    assert last.content == finish["args"]["thought"]  # the model's final words, not the UI's default message
    edit_call = conv.messages[1].tool_calls[0]
    stored = events[1]["tool_call_metadata"]["model_response"]["choices"][0]["message"]["tool_calls"][0]
    assert edit_call.arguments == stored["function"]["arguments"]


def test_openhands_v0_evaluation_output_and_session_folder(tmp_path):
    events = _load(OPENHANDS / "basic.json")
    calls, results, users, _ = _v0_expectations(events)
    pairs = [[events[0], {"id": 1, "source": "user", "observation": "null", "content": "", "extras": {}, "message": ""}]]
    output = tmp_path / "output.jsonl"
    output.write_text(
        json.dumps({"instance_id": "django__django-11099", "history": events, "metadata": {"llm_config": {"model": "litellm/claude"}}})
        + "\n{broken\n"
        + json.dumps({"instance_id": "old-run-1", "history": pairs + [[e] for e in events[1:]]})
        + "\n"
    )
    assert detect_format(output) == "openhands"
    records = list(iter_openhands(output))
    assert [type(r).__name__ for r in records] == ["Conversation", "ImportProblem", "Conversation"]
    first, problem, old = records
    assert first.task_id == "django__django-11099" and first.session_id == "output:django__django-11099"
    assert sum(len(m.tool_calls) for m in first.messages) == len(calls)
    assert problem.line == 2
    assert sum(m.role == "tool" for m in old.messages) == len(results)

    session = tmp_path / "sessions" / "abc123"
    (session / "events").mkdir(parents=True)
    for n, event in enumerate(events):
        (session / "events" / f"{n}.json").write_text(json.dumps(event))
    (session / "metadata.json").write_text(json.dumps({"conversation_id": "abc123", "title": "2048 game", "llm_model": "x"}))
    assert detect_format(session) == "openhands"
    conv = _only(iter_memory([tmp_path / "sessions"]))
    assert conv.session_id == "abc123" and conv.metadata["title"] == "2048 game"
    assert sum(m.role == "user" for m in conv.messages) == len(users)


def test_openhands_v0_system_action(tmp_path):
    # Newer V0 trajectories open with a SystemMessageAction (openhands/events/action/message.py).
    events = _load(OPENHANDS / "basic_interactions.json")
    tool = {"type": "function", "function": {"name": "finish", "description": "Finish the interaction.", "parameters": {"type": "object", "properties": {}}}}
    system = {"id": -1, "timestamp": "2025-02-01T00:14:10", "source": "agent", "message": "You are OpenHands agent.", "action": "system", "args": {"content": "You are OpenHands agent.", "tools": [tool], "openhands_version": "0.39.0", "agent_class": "CodeActAgent"}}
    path = tmp_path / "with_system.json"
    path.write_text(json.dumps([system, *events]))
    conv = _only(iter_openhands(path))
    assert conv.messages[0].role == "system" and conv.messages[0].content == "You are OpenHands agent."
    assert conv.tools == [tool] and conv.metadata["agent_version"] == "0.39.0"


def test_openhands_v0_outcome_signals(tmp_path):
    events = _load(OPENHANDS / "wrong_initial_state.json")
    call = events[1]
    rejected = {"id": 99, "timestamp": "2025-01-27T23:17:00", "source": "user", "message": "Action has been rejected by the user! Task was interrupted.", "observation": "user_rejected", "content": "Action has been rejected by the user! Task was interrupted.", "extras": {}, "cause": call["id"], "tool_call_metadata": call["tool_call_metadata"]}
    error = {"id": 100, "timestamp": "2025-01-27T23:17:01", "source": "environment", "message": "", "observation": "agent_state_changed", "content": "", "extras": {"agent_state": "error"}}
    path = tmp_path / "rejected.json"
    path.write_text(json.dumps([events[0], call, rejected, error]))
    conv = _only(iter_openhands(path))
    assert conv.outcome.user_rejected and conv.outcome.is_error
    assert conv.messages[-1].role == "tool" and conv.messages[-1].tool_call_id == call["tool_call_metadata"]["tool_call_id"]


# ---------------------------------------------------------------------------------------------------------------
# OpenHands V1


def _v1_events():
    return [_load(p) for p in sorted((V1_FOLDER / "events").glob("event-*.json"))]


def test_openhands_v1_folder():
    events = _v1_events()
    state = _load(V1_FOLDER / "base_state.json")
    conv = _only(iter_openhands_v1(V1_FOLDER))
    assert conv.source_format == "openhands_v1" and conv.session_id == state["id"]
    system = next(e for e in events if e["kind"] == "SystemPromptEvent")
    assert conv.messages[0].role == "system" and conv.messages[0].content == system["system_prompt"]["text"]
    actions = [e for e in events if e["kind"] == "ActionEvent"]
    assert [c.id for m in conv.messages for c in m.tool_calls] == [e["tool_call_id"] for e in actions]
    # Actions of one model response are one assistant message (the README edit and the test run were parallel).
    assistants = [m for m in conv.messages if m.role == "assistant"]
    assert len(assistants) == len({e["llm_response_id"] for e in actions})
    assert [c.id for c in assistants[2].tool_calls] == ["call_03", "call_04"]
    answers = [e for e in events if e["kind"] in ("ObservationEvent", "UserRejectObservation", "AgentErrorEvent")]
    assert [m.tool_call_id for m in conv.messages if m.role == "tool"] == [e["tool_call_id"] for e in answers]
    _assert_paired(conv)
    users = [e["llm_message"]["content"][0]["text"] for e in events if e["kind"] == "MessageEvent" and e["source"] == "user"]
    assert [m.content for m in conv.messages if m.role == "user"] == users
    finish = next(e for e in actions if e["action"]["kind"] == "FinishAction")
    assert assistants[-1].content == finish["action"]["message"]
    assert conv.metadata["model"] == state["agent"]["llm"]["model"]
    assert conv.metadata["cwd"] == state["workspace"]["working_dir"]
    assert conv.started_at == events[0]["timestamp"]
    assert conv.outcome.user_rejected and conv.outcome.is_error
    assert not any("<thinking>" in m.content for m in conv.messages)
    with_thinking = _only(iter_openhands_v1(V1_FOLDER, include_thinking=True))
    first = next(m for m in with_thinking.messages if m.role == "assistant")
    assert first.content.startswith(f"<thinking>{actions[0]['reasoning_content']}</thinking>")


def test_openhands_v1_event_lines_real():
    events = [json.loads(line) for line in V1_LINES.read_text().splitlines() if line.strip()]
    actions = [e for e in events if e["kind"] == "ActionEvent"]
    action_ids = {e["tool_call_id"] for e in actions}
    paired = [e for e in events if e["kind"] == "ObservationEvent" and e["tool_call_id"] in action_ids]
    conv = _only(iter_openhands_v1(V1_LINES))
    assert [c.id for m in conv.messages for c in m.tool_calls] == [e["tool_call_id"] for e in actions]
    # One observation in this trimmed log answers a call that is not in it: it has nothing to pair with.
    assert [m.tool_call_id for m in conv.messages if m.role == "tool"] == [e["tool_call_id"] for e in paired]
    _assert_paired(conv)
    assert conv.outcome.is_error  # the first command was refused (is_error observation)
    stats = next(e for e in events if e.get("key") == "stats")
    assert conv.metadata["model"] == stats["value"]["usage_to_metrics"]["default"]["model_name"]


def test_openhands_v1_bad_event_file(tmp_path):
    folder = tmp_path / "conversations" / "abc"
    shutil.copytree(V1_FOLDER, folder)
    broken = sorted((folder / "events").glob("event-*.json"))[3]
    broken.write_text("{not json")
    records = list(iter_openhands_v1(folder))
    problems = [r for r in records if isinstance(r, ImportProblem)]
    assert [p.file for p in problems] == [str(broken)]
    assert sum(isinstance(r, Conversation) for r in records) == 1
    walked = list(iter_memory([tmp_path / "conversations"]))  # the persistence root: each conversation folder whole
    assert [type(r).__name__ for r in walked] == ["ImportProblem", "Conversation"]


def test_openhands_detection_and_walk():
    for path in V0_FILES:
        assert detect_format(path) == "openhands"
    assert detect_format(V1_FOLDER) == "openhands_v1"
    assert detect_format(V1_LINES) == "openhands_v1"
    # A V1 folder's parts met alone are recognised (a walk does not report them) and yield nothing.
    assert detect_format(V1_FOLDER / "base_state.json") == "openhands_side_file"
    first_event = min((V1_FOLDER / "events").iterdir())
    assert detect_format(first_event) == "openhands_side_file"
    assert list(iter_memory([V1_FOLDER / "events"])) == []
    records = list(iter_memory([OPENHANDS]))
    assert not [r for r in records if isinstance(r, ImportProblem)]
    # Hand-counted: four V0 trajectories, one V0 session folder, one V1 folder, one V1 event log.
    assert Counter(r.source_format for r in records) == {"openhands": len(V0_FILES) + 1, "openhands_v1": 2}


def test_a_v0_session_folder_imports_like_the_trajectory_it_was_laid_out_from():
    """v0-sessions/<id>/events/<id>.json holds basic.json's events one a file, as the V0 app's file store keeps them."""
    folder = OPENHANDS / "v0-sessions" / "5f3c0a4e9b2d4e7f8a1b6c9d0e2f4a6b"
    assert sorted(int(p.stem) for p in (folder / "events").iterdir()) == [e["id"] for e in _load(OPENHANDS / "basic.json")]
    assert detect_format(folder) == "openhands"
    [from_folder] = list(iter_memory([folder]))
    [from_list] = list(iter_memory([OPENHANDS / "basic.json"]))
    assert from_folder.messages == from_list.messages and from_folder.source_format == "openhands"


def test_session_counts_for_find_memory(tmp_path):
    from model_customization.memory.openhands import FORMAT

    output = tmp_path / "output.jsonl"
    events = _load(OPENHANDS / "basic.json")
    output.write_text("".join(json.dumps({"instance_id": f"i{n}", "history": events}) + "\n" for n in range(3)))
    assert FORMAT.count_sessions(output) == 3
    assert FORMAT.count_sessions(OPENHANDS / "basic.json") == 1
