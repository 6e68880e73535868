"""ChatGPT export and ShareGPT importers, against real files written by others and small hand-made edge cases.

The expected numbers on the real samples were worked out from the raw files with a throw-away script that only
walks and counts (nodes on the current_node chain by author.role / content_type / recipient / hidden flag;
ShareGPT turns by ``from``, tools strings that are not ``"[]"``, KTO labels), not by running the importers:

* amazon-nova: chain of 8 nodes = root, hidden empty system, user_editable_context, user, empty assistant,
  assistant -> web (code), hidden empty tool result from web, assistant answer.
* csv-data-analysis: 6 = root, hidden empty system, user_editable_context, user, tool ``a8km123`` (o1 "Thought for
  27 seconds" recap, recipient all, answering no call), assistant answer.
* node-js: 8 = root, hidden empty system, hidden empty system with ``user_context_message_data``, user, empty
  assistant, assistant, user, assistant.
* seoul-weather: 12 = root, hidden empty system, hidden custom-instructions system, user, empty assistant,
  assistant -> browser ``search(...)``, tether_browsing_display, assistant -> browser ``mclick(...)``,
  3 x tether_quote, assistant answer.
* None of the 4 has a branch (every node has at most one child); the 3 real feedback entries name conversations
  that are not among the samples.
* fastchat: 500 records, 1000 human + 1000 gpt turns, ids ``identity_<n>``.
* glaive: 300 records, 746 human, 746 gpt, 211 function_call (never two in a row), 211 observation; tools is a
  JSON string in all 300, ``"[]"`` in 109, 1 function in 163, 2 in 28.
* kto: 300 records, 487 user + 487 assistant messages, label true 150 / false 150.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from helpers import assert_tool_results_answer_earlier_calls, n_tool_calls, roles

from model_customization.memory.formats import score
from model_customization.memory import chatgpt_export, detect, sharegpt
from model_customization.memory.chatgpt_export import FEEDBACK_FORMAT, SHARED_INDEX_FORMAT, iter_chatgpt_export
from model_customization.memory.chatgpt_export import FORMAT as CHATGPT_FORMAT
from model_customization.memory.records import Conversation, ImportProblem, PreferencePair
from model_customization.memory.sharegpt import FORMAT as SHAREGPT_FORMAT
from model_customization.memory.sharegpt import iter_sharegpt

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "memory-samples"
needs_samples = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason=f"real memory samples not found at {SAMPLES} (checkout of ../shared missing)"
)
CHATGPT = SAMPLES / "chatgpt-export"
SHAREGPT = SAMPLES / "sharegpt"
NEW_FORMATS = [SHAREGPT_FORMAT, CHATGPT_FORMAT, FEEDBACK_FORMAT, SHARED_INDEX_FORMAT]


def split(items):
    items = list(items)
    convs = [x for x in items if isinstance(x, Conversation)]
    pairs = [x for x in items if isinstance(x, PreferencePair)]
    problems = [x for x in items if isinstance(x, ImportProblem)]
    assert len(convs) + len(pairs) + len(problems) == len(items)
    return convs, pairs, problems


@pytest.fixture
def registered(monkeypatch):
    """The real entry point with the new formats registered as recommended: sharegpt first, export files last."""
    formats = [SHAREGPT_FORMAT, *detect.FORMATS, CHATGPT_FORMAT, FEEDBACK_FORMAT, SHARED_INDEX_FORMAT]
    monkeypatch.setattr(detect, "FORMATS", formats)
    monkeypatch.setattr(detect, "_BY_NAME", {f.name: f for f in formats})
    return formats


# --- ChatGPT export, real samples -----------------------------------------------------------------------------------

SAMPLE_EXPECTED = {
    # file: (messages per role, tool calls, tool messages, started_at)
    "amazon-nova-model-strengths.json": (
        {"system": 1, "user": 1, "assistant": 2, "tool": 1},
        1,
        "2024-12-04T06:38:59.556Z",
    ),
    "csv-data-analysis-insights.json": ({"system": 1, "user": 1, "assistant": 1}, 0, "2024-11-29T02:02:50.392Z"),
    "node-js-network-libraries.json": ({"system": 1, "user": 2, "assistant": 2}, 0, "2024-07-29T13:48:37.348Z"),
    "seoul-weather-early-october.json": (
        {"system": 1, "user": 1, "assistant": 3, "tool": 2},
        2,
        "2024-09-30T12:28:06.485Z",
    ),
}


@needs_samples
@pytest.mark.parametrize("name", sorted(SAMPLE_EXPECTED))
def test_chatgpt_sample(name):
    path = CHATGPT / "samples" / name
    raw = json.loads(path.read_text(encoding="utf-8"))
    convs, pairs, problems = split(iter_chatgpt_export(path))
    assert problems == [] and pairs == []
    assert len(convs) == 1
    c = convs[0]
    expected_roles, calls, started = SAMPLE_EXPECTED[name]
    assert roles(convs) == expected_roles
    assert n_tool_calls(convs) == calls
    assert c.session_id == raw["id"] and c.source_line == 1 and c.source_format == "chatgpt_export"
    assert c.started_at == started
    assert c.metadata["title"] == raw["title"]
    assert c.outcome.rating is None and c.outcome.successful
    assert c.messages[0].role == "system" and c.messages[0].content  # the custom instructions
    assert c.messages[1].role == "user"
    assert c.messages[-1].role == "assistant" and c.messages[-1].content
    assert all(m.content or m.tool_calls or m.role == "tool" for m in c.messages)
    assert_tool_results_answer_earlier_calls(c)


@needs_samples
def test_chatgpt_web_and_browser_tool_calls():
    [nova] = split(iter_chatgpt_export(CHATGPT / "samples" / "amazon-nova-model-strengths.json"))[0]
    call_msg = nova.messages[2]
    assert call_msg.role == "assistant" and call_msg.content == ""  # the empty assistant message before it is gone
    [call] = call_msg.tool_calls
    assert call.name == "web" and call.id.startswith("call_fe8fe67a")
    assert json.loads(call.arguments)["input"].startswith("search(")
    # the web result is hidden and empty in the export, but kept: the call must have an answer
    assert (nova.messages[3].role, nova.messages[3].content, nova.messages[3].tool_call_id) == ("tool", "", call.id)
    answer = nova.messages[4].content
    assert not any("\ue200" <= ch <= "\ue204" for ch in answer)  # citation markup removed
    assert "turn0search3" not in answer and answer.startswith("Amazon's Nova models")

    [seoul] = split(iter_chatgpt_export(CHATGPT / "samples" / "seoul-weather-early-october.json"))[0]
    search, display, mclick, quotes = seoul.messages[2:6]
    assert [tc.name for tc in search.tool_calls] == ["browser"]
    assert json.loads(search.tool_calls[0].arguments) == {
        "input": 'search("average temperature in Seoul early October")'
    }
    assert display.tool_call_id == search.tool_calls[0].id and display.content.startswith("# 【0†")
    assert json.loads(mclick.tool_calls[0].arguments) == {"input": "mclick([0, 3, 2, 9, 1])"}
    # three tether_quote results of the one mclick call are merged into one tool message
    assert quotes.tool_call_id == mclick.tool_calls[0].id
    assert quotes.content.count("https://") == 3
    assert quotes.content.startswith("Seoul Weather in October")


@needs_samples
def test_chatgpt_o1_thinking_recap_is_not_a_tool_message():
    [c] = split(iter_chatgpt_export(CHATGPT / "samples" / "csv-data-analysis-insights.json"))[0]
    assert [m.role for m in c.messages] == ["system", "user", "assistant"]
    assert c.metadata["model"] == "o1-preview"


@needs_samples
def test_chatgpt_custom_instructions_both_shapes():
    # user_editable_context (content) and an empty system message with user_context_message_data (metadata)
    [nova] = split(iter_chatgpt_export(CHATGPT / "samples" / "amazon-nova-model-strengths.json"))[0]
    [node] = split(iter_chatgpt_export(CHATGPT / "samples" / "node-js-network-libraries.json"))[0]
    assert nova.messages[0].content.startswith("The user provided the additional info about how they would like")
    assert node.messages[0].content.startswith("Be terse.")
    assert "```Be terse. Speak directly.\n" in nova.messages[0].content  # the instructions changed between chats


@needs_samples
def test_chatgpt_export_folder_as_conversations_json_with_real_feedback(tmp_path):
    conversations = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((CHATGPT / "samples").glob("*.json"))]
    (tmp_path / "conversations.json").write_text(json.dumps(conversations), encoding="utf-8")
    shutil.copy(CHATGPT / "message_feedback.json", tmp_path)
    shutil.copy(CHATGPT / "shared_conversations.json", tmp_path)
    convs, pairs, problems = split(iter_chatgpt_export(tmp_path / "conversations.json"))
    assert problems == [] and pairs == []
    assert [c.source_line for c in convs] == [1, 2, 3, 4]
    assert roles(convs) == {"system": 4, "user": 5, "assistant": 8, "tool": 3}
    # the 3 real ratings belong to conversations that are not in the samples
    assert all(c.outcome.rating is None and "feedback_unmatched" not in c.metadata for c in convs)


@needs_samples
def test_chatgpt_export_folder_through_the_entry_point(registered):
    convs, pairs, problems = split(detect.iter_memory([CHATGPT]))
    assert problems == [] and pairs == []  # feedback and share index are recognised, yield nothing
    assert len(convs) == 4
    assert detect.detect_format(CHATGPT / "message_feedback.json") == "chatgpt_feedback"
    assert detect.detect_format(CHATGPT / "shared_conversations.json") == "chatgpt_shared_index"
    assert list(FEEDBACK_FORMAT.iterate(CHATGPT / "message_feedback.json")) == []
    assert list(SHARED_INDEX_FORMAT.iterate(CHATGPT / "shared_conversations.json")) == []


# --- ShareGPT, real samples -----------------------------------------------------------------------------------------


@needs_samples
def test_sharegpt_fastchat():
    convs, pairs, problems = split(iter_sharegpt(SHAREGPT / "fastchat_dummy_conversation.json"))
    assert problems == [] and pairs == []
    assert len(convs) == 500
    assert roles(convs) == {"user": 1000, "assistant": 1000}
    assert Counter(len(c.messages) for c in convs) == {2: 167, 4: 166, 6: 167}
    assert convs[0].session_id == "identity_0" and convs[0].source_line == 1
    assert convs[-1].source_line == 500
    assert all(c.tools is None and c.outcome.rating is None and c.source_format == "sharegpt" for c in convs)


@needs_samples
def test_sharegpt_glaive_tool_calls_and_tools_as_string():
    path = SHAREGPT / "llamafactory_glaive_toolcall_en_demo.json"
    convs, pairs, problems = split(iter_sharegpt(path))
    assert problems == [] and pairs == []
    assert len(convs) == 300
    assert roles(convs) == {"user": 746, "assistant": 746 + 211, "tool": 211}
    assert n_tool_calls(convs) == 211
    assert Counter(len(c.tools or []) for c in convs) == {0: 109, 1: 163, 2: 28}
    assert all(c.tools is None for c in convs if not c.tools)  # "[]" means no tools
    assert all(t["type"] == "function" and "name" in t["function"] for c in convs for t in c.tools or [])
    assert convs[0].session_id == "llamafactory_glaive_toolcall_en_demo:1"
    c = convs[3]
    call = c.messages[1].tool_calls[0]
    assert (call.id, call.name, json.loads(call.arguments)) == (
        "call_2",
        "calculate_area",
        {"shape": "rectangle", "dimensions": [5, 3]},
    )
    assert (c.messages[2].role, c.messages[2].content, c.messages[2].tool_call_id) == ("tool", '{"area": 15}', "call_2")
    for c in convs:
        assert_tool_results_answer_earlier_calls(c)


@needs_samples
def test_sharegpt_kto_labels():
    convs, pairs, problems = split(iter_sharegpt(SHAREGPT / "llamafactory_kto_en_demo.json"))
    assert problems == [] and pairs == []
    assert len(convs) == 300
    assert roles(convs) == {"user": 487, "assistant": 487}
    assert Counter(c.outcome.rating for c in convs) == {1: 150, -1: 150}
    assert convs[0].session_id == "llamafactory_kto_en_demo:1"


@needs_samples
def test_sharegpt_through_the_entry_point(registered):
    convs, pairs, problems = split(detect.iter_memory([SHAREGPT]))
    assert problems == [] and pairs == []
    assert len(convs) == 1100 and {c.source_format for c in convs} == {"sharegpt"}


# --- Sniffers against every sample ----------------------------------------------------------------------------------


def _sample_files():
    return sorted(p for p in SAMPLES.rglob("*") if p.is_file() and p.suffix.lower() in detect.MEMORY_SUFFIXES)


def _claims(fmt, path: Path) -> bool:
    data = path.read_bytes()
    if fmt.sniff_document is not None and path.suffix.lower() in detect.DOCUMENT_SUFFIXES:
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            doc = None
        if doc is not None and score(fmt.sniff_document, doc) > 0:
            return True
    if fmt.sniff_line is not None:
        for raw in data.splitlines()[:20]:
            try:
                obj = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if score(fmt.sniff_line, obj) > 0:
                return True
    return False


@needs_samples
def test_sniffers_claim_only_their_own_samples():
    claimed = {
        fmt.name: sorted(p.relative_to(SAMPLES).as_posix() for p in _sample_files() if _claims(fmt, p))
        for fmt in NEW_FORMATS
    }
    assert claimed == {
        "sharegpt": [
            "sharegpt/fastchat_dummy_conversation.json",
            "sharegpt/llamafactory_glaive_toolcall_en_demo.json",
            "sharegpt/llamafactory_kto_en_demo.json",
        ],
        "chatgpt_export": [
            "chatgpt-export/samples/amazon-nova-model-strengths.json",
            "chatgpt-export/samples/csv-data-analysis-insights.json",
            "chatgpt-export/samples/node-js-network-libraries.json",
            "chatgpt-export/samples/seoul-weather-early-october.json",
        ],
        "chatgpt_feedback": ["chatgpt-export/message_feedback.json"],
        "chatgpt_shared_index": ["chatgpt-export/shared_conversations.json"],
    }


@needs_samples
def test_the_full_registry_detects_each_sample_as_intended():
    expected = {p: "chatgpt_export" for p in (CHATGPT / "samples").glob("*.json")}
    expected[CHATGPT / "message_feedback.json"] = "chatgpt_feedback"
    expected[CHATGPT / "shared_conversations.json"] = "chatgpt_shared_index"
    expected.update({p: "sharegpt" for p in SHAREGPT.glob("*.json")})
    assert len(expected) == 9
    for path, name in expected.items():
        assert detect.detect_format(path) == name, path


def test_kto_jsonl_needs_sharegpt_before_openai_chat(tmp_path, registered):
    # openai_chat's line sniffer claims any line with a "messages" list, labelled KTO lines included: sharegpt
    # must be tried first or the labels are lost.
    line = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "label": False}
    path = tmp_path / "kto.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    assert detect._format_of(line) == "openai_chat"
    assert detect.detect_format(path) == "sharegpt"
    [c] = split(detect.iter_memory([path]))[0]
    assert c.outcome.rating == -1


# --- ChatGPT export, hand-made edge cases ---------------------------------------------------------------------------


def msg(role, text="", *, recipient="all", ctype=None, name=None, hidden=False, **extra):
    content = {"content_type": ctype or "text"}
    if ctype in (None, "text", "multimodal_text"):
        content["parts"] = text if isinstance(text, list) else [text]
    elif ctype == "user_editable_context":
        content.update(extra.pop("content"))
    else:
        content["text"] = text
    metadata = dict(extra.pop("metadata", {}))
    if hidden:
        metadata["is_visually_hidden_from_conversation"] = True
    return {
        "author": {"role": role, "name": name, "metadata": {}},
        "content": content,
        "recipient": recipient,
        "metadata": metadata,
        **extra,
    }


def conversation(nodes, current, conv_id="conv-1", **extra):
    """nodes: [(node id, parent id, message or None)]; children are derived."""
    mapping = {
        nid: {"id": nid, "message": (dict(m, id=nid) if m else None), "parent": p, "children": []}
        for nid, p, m in nodes
    }
    for nid, p, _ in nodes:
        if p in mapping:
            mapping[p]["children"].append(nid)
    return {
        "id": conv_id,
        "title": "t",
        "create_time": 1700000000.5,
        "mapping": mapping,
        "current_node": current,
        **extra,
    }


def write_export(folder: Path, conversations, feedback=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "conversations.json"
    path.write_text(json.dumps(conversations), encoding="utf-8")
    if feedback is not None:
        (folder / "message_feedback.json").write_text(json.dumps(feedback), encoding="utf-8")
    return path


def fb(conv_id, message_id, rating, *, as_id=False):
    entry = {"conversation_id": conv_id, "rating": rating, "content": "{}", "user_id": "user-x"}
    if as_id:
        entry["id"] = message_id  # real exports: no message_id field, the entry's id names the message
    else:
        entry.update(id=f"fb-{message_id}", message_id=message_id)
    return entry


def regeneration():
    """root -> sys -> u1 -> {a1 (first answer), a2 (regenerated, current)}."""
    return conversation(
        [
            ("root", None, None),
            ("sys", "root", msg("system", "", hidden=True)),
            ("u1", "sys", msg("user", "What is 2+2?")),
            ("a1", "u1", msg("assistant", "5")),
            ("a2", "u1", msg("assistant", "4")),
        ],
        current="a2",
    )


def test_regeneration_only_current_branch_and_preference_pair(tmp_path):
    path = write_export(
        tmp_path, [regeneration()], [fb("conv-1", "a1", "thumbs_down"), fb("conv-1", "a2", "thumbs_up")]
    )
    convs, pairs, problems = split(iter_chatgpt_export(path))
    assert problems == []
    [c] = convs
    assert [(m.role, m.content) for m in c.messages] == [("user", "What is 2+2?"), ("assistant", "4")]
    assert c.outcome.rating == 1  # only a2 is on the thread
    assert c.started_at == "2023-11-14T22:13:20.500Z"
    [pair] = pairs
    assert [(m.role, m.content) for m in pair.prompt] == [("user", "What is 2+2?")]
    assert (pair.preferred.content, pair.non_preferred.content) == ("4", "5")
    assert (pair.session_id, pair.source_line, pair.source_format) == ("conv-1", 1, "chatgpt_export")


def test_feedback_by_entry_id_and_down_wins(tmp_path):
    conv = regeneration()
    path = write_export(
        tmp_path,
        [conv],
        [
            fb("conv-1", "a2", "thumbs_up", as_id=True),
            fb("conv-1", "a2", "thumbs_down", as_id=True),
            fb("conv-1", "gone", "thumbs_up"),
        ],
    )
    convs, pairs, problems = split(iter_chatgpt_export(path))
    assert problems == [] and pairs == []  # a1 is not rated: no pair
    assert convs[0].outcome.rating == -1
    assert convs[0].metadata["feedback_unmatched"] == 1


def test_same_ratings_give_no_pair_and_no_feedback_file(tmp_path):
    path = write_export(
        tmp_path / "a", [regeneration()], [fb("conv-1", "a1", "thumbs_up"), fb("conv-1", "a2", "thumbs_up")]
    )
    assert split(iter_chatgpt_export(path))[1] == []
    path = write_export(tmp_path / "b", [regeneration()])
    convs, pairs, problems = split(iter_chatgpt_export(path))
    assert (len(convs), pairs, problems) == (1, [], [])
    assert convs[0].outcome.rating is None


def test_edit_branch_is_dropped(tmp_path):
    conv = conversation(
        [
            ("root", None, None),
            ("u1", "root", msg("user", "first try")),
            ("a1", "u1", msg("assistant", "answer to first try")),
            ("u1b", "root", msg("user", "edited prompt")),
            ("a1b", "u1b", msg("assistant", "answer to edit")),
            ("u2", "a1b", msg("user", "thanks")),
            ("a2", "u2", msg("assistant", "welcome")),
        ],
        current="a2",
    )
    [c] = split(iter_chatgpt_export(write_export(tmp_path, [conv])))[0]
    assert [m.content for m in c.messages] == ["edited prompt", "answer to edit", "thanks", "welcome"]


def test_tool_turn_via_recipient(tmp_path):
    conv = conversation(
        [
            ("root", None, None),
            ("u1", "root", msg("user", "draw a cat and compute 6*7")),
            ("a0", "u1", msg("assistant", "Sure.")),
            ("c1", "a0", msg("assistant", '{"prompt": "a cat", "size": "1024x1024"}', recipient="dalle.text2im")),
            (
                "t1",
                "c1",
                msg(
                    "tool",
                    [{"content_type": "image_asset_pointer", "asset_pointer": "file-service://x"}],
                    ctype="multimodal_text",
                    name="dalle.text2im",
                ),
            ),
            ("c2", "t1", msg("assistant", "print(6*7)", ctype="code", recipient="python")),
            ("t2", "c2", msg("tool", "42", ctype="execution_output", name="python")),
            ("c3", "t2", msg("assistant", "1/0", ctype="code", recipient="python")),
            (
                "t3",
                "c3",
                msg(
                    "tool",
                    "ZeroDivisionError",
                    ctype="execution_output",
                    name="python",
                    metadata={"aggregate_result": {"status": "failed_with_in_kernel_exception"}},
                ),
            ),
            (
                "a1",
                "t3",
                msg("assistant", ["Here it is: 42", {"content_type": "image_asset_pointer"}], ctype="multimodal_text"),
            ),
        ],
        current="a1",
    )
    [c] = split(iter_chatgpt_export(write_export(tmp_path, [conv])))[0]
    assert [m.role for m in c.messages] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    first = c.messages[1]
    assert first.content == "Sure."  # the call joins the text turn right before it
    [dalle] = first.tool_calls
    assert (dalle.id, dalle.name, json.loads(dalle.arguments)) == (
        "call_c1",
        "dalle.text2im",
        {"prompt": "a cat", "size": "1024x1024"},
    )
    assert (c.messages[2].content, c.messages[2].tool_call_id) == ("[image]", "call_c1")
    py = c.messages[3].tool_calls[0]
    assert (py.name, json.loads(py.arguments)) == ("python", {"input": "print(6*7)"})
    assert (c.messages[4].content, c.messages[4].tool_call_id) == ("42", "call_c2")
    assert c.messages[-1].content == "Here it is: 42\n[image]"
    assert c.outcome.is_error is True
    assert_tool_results_answer_earlier_calls(c)


def test_malformed_conversations_are_reported_and_the_rest_continue(tmp_path):
    good = regeneration()
    cycle = conversation(
        [("x", "y", msg("user", "hi")), ("y", "x", msg("assistant", "ho"))], current="x", conv_id="c-cycle"
    )
    broken = conversation([("u1", "missing", msg("user", "hi"))], current="u1", conv_id="c-broken")
    unknown_current = conversation([("u1", None, msg("user", "hi"))], current="nope", conv_id="c-cur")
    no_reply = conversation([("u1", None, msg("user", "hi"))], current="u1", conv_id="c-noreply")
    items = [good, {"title": "no mapping"}, cycle, broken, "not an object", unknown_current, no_reply, good]
    convs, pairs, problems = split(iter_chatgpt_export(write_export(tmp_path, items)))
    assert [c.source_line for c in convs] == [1, 8]
    assert [p.line for p in problems] == [2, 3, 4, 5, 6, 7]
    messages = [p.message for p in problems]
    assert messages[0] == "conversation #2: no 'mapping'"
    assert messages[1].startswith("conversation #3: cycle in the parent links")
    assert messages[2].startswith("conversation #4: broken parent chain") and "'missing'" in messages[2]
    assert messages[3].startswith("conversation #5: expected an object")
    assert messages[4].startswith("conversation #6: broken parent chain: current_node 'nope'")
    assert messages[5].startswith("conversation #7: no user message and assistant reply")
    assert all(p.file == str(tmp_path / "conversations.json") for p in problems)


def test_single_conversation_file_and_session_id_fallback(tmp_path):
    conv = regeneration()
    del conv["id"]
    conv["conversation_id"] = "from-conversation-id"
    path = tmp_path / "one.json"
    path.write_text(json.dumps(conv), encoding="utf-8")
    [c] = split(iter_chatgpt_export(path))[0]
    assert c.session_id == "from-conversation-id" and c.source_line == 1
    del conv["conversation_id"]
    path.write_text(json.dumps([conv, conv]), encoding="utf-8")
    assert [c.session_id for c in split(iter_chatgpt_export(path))[0]] == ["one:1", "one:2"]


def test_hidden_context_and_custom_instructions(tmp_path):
    conv = conversation(
        [
            ("root", None, None),
            ("s0", "root", msg("system", "", hidden=True)),
            (
                "s1",
                "s0",
                msg(
                    "system",
                    "",
                    hidden=True,
                    metadata={
                        "is_user_system_message": True,
                        "user_context_message_data": {
                            "about_user_message": "I like cats.",
                            "about_model_message": "Be brief.",
                        },
                    },
                ),
            ),
            ("mem", "s1", msg("system", "remembered facts", ctype="model_editable_context", hidden=True)),
            ("u1", "mem", msg("user", "hi")),
            ("th", "u1", msg("assistant", "thinking...", ctype="thoughts")),
            ("a1", "th", msg("assistant", "hello", metadata={"finish_details": {"type": "interrupted"}})),
        ],
        current="a1",
    )
    uec = conversation(
        [
            (
                "u0",
                None,
                msg(
                    "user",
                    ctype="user_editable_context",
                    hidden=True,
                    content={"user_profile": "", "user_instructions": "Answer in French."},
                ),
            ),
            ("u1", "u0", msg("user", "hi")),
            ("a1", "u1", msg("assistant", "salut")),
        ],
        current="a1",
        conv_id="c2",
    )
    empty_uec = conversation(
        [
            (
                "u0",
                None,
                msg(
                    "user",
                    ctype="user_editable_context",
                    hidden=True,
                    content={"user_profile": "", "user_instructions": ""},
                ),
            ),
            ("u1", "u0", msg("user", "hi")),
            ("a1", "u1", msg("assistant", "hey")),
        ],
        current="a1",
        conv_id="c3",
    )
    c1, c2, c3 = split(iter_chatgpt_export(write_export(tmp_path, [conv, uec, empty_uec])))[0]
    assert [(m.role, m.content) for m in c1.messages] == [
        ("system", "I like cats.\n\nBe brief."),
        ("user", "hi"),
        ("assistant", "hello"),
    ]
    assert c1.outcome.interrupted is True
    assert [(m.role, m.content) for m in c2.messages] == [
        ("system", "Answer in French."),
        ("user", "hi"),
        ("assistant", "salut"),
    ]
    assert [m.role for m in c3.messages] == ["user", "assistant"]


def test_unreadable_feedback_file_is_reported(tmp_path):
    path = write_export(tmp_path, [regeneration()])
    (tmp_path / "message_feedback.json").write_text("{oops", encoding="utf-8")
    convs, _, problems = split(iter_chatgpt_export(path))
    assert len(convs) == 1
    [p] = problems
    assert p.file.endswith("message_feedback.json") and p.line == 0 and "feedback file not read" in p.message


def test_invalid_json_document(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text('[{"mapping": ', encoding="utf-8")
    convs, _, [p] = split(iter_chatgpt_export(path))
    assert convs == [] and p.message.startswith("invalid JSON")


def test_chatgpt_sniffers_on_hand_made_documents():
    assert chatgpt_export.sniff_document(regeneration())
    assert chatgpt_export.sniff_document([regeneration()])
    assert not chatgpt_export.sniff_document([{"conversations": []}])
    assert chatgpt_export.sniff_feedback_document([fb("c", "m", "thumbs_up")])
    assert chatgpt_export.sniff_feedback_document([])  # an export's empty file: claimed, yields nothing
    assert not chatgpt_export.sniff_feedback_document([regeneration()])
    assert chatgpt_export.sniff_shared_index_document(
        [{"id": "s", "conversation_id": "c", "title": "t", "is_anonymous": True}]
    )
    assert not chatgpt_export.sniff_shared_index_document([])
    assert not chatgpt_export.sniff_shared_index_document([fb("c", "m", "thumbs_up")])


# --- ShareGPT, hand-made edge cases ---------------------------------------------------------------------------------


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def turn(frm, value):
    return {"from": frm, "value": value if isinstance(value, str) else json.dumps(value)}


def test_sharegpt_function_call_observation_pairing_and_tools_string(tmp_path):
    record = {
        "id": 7,
        "system": "You are helpful.",
        "tools": json.dumps(
            [
                {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
                {"type": "function", "function": {"name": "get_date"}},
            ]
        ),
        "conversations": [
            turn("human", "time and date?"),
            turn("function_call", {"name": "get_time", "arguments": {}}),
            turn("function_call", {"name": "get_date", "arguments": '{"tz": "UTC"}'}),
            turn("observation", {"time": "12:00"}),
            turn("tool", {"date": "2024-01-01"}),
            turn("gpt", "12:00 on 2024-01-01"),
        ],
    }
    [c] = split(iter_sharegpt(write_json(tmp_path / "tools.json", [record])))[0]
    assert c.session_id == "7"
    assert [m.role for m in c.messages] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    calls = c.messages[2].tool_calls  # consecutive function_call turns: one assistant turn
    assert [(tc.id, tc.name, tc.arguments) for tc in calls] == [
        ("call_2", "get_time", "{}"),
        ("call_3", "get_date", '{"tz": "UTC"}'),
    ]
    assert [m.tool_call_id for m in c.messages[3:5]] == ["call_2", "call_3"]
    assert c.tools == [
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
        {"type": "function", "function": {"name": "get_date"}},
    ]
    assert_tool_results_answer_earlier_calls(c)


def test_sharegpt_bad_records_are_reported(tmp_path):
    ok = {"conversations": [turn("human", "a"), turn("gpt", "b")]}
    items = [
        ok,
        {"conversations": [turn("human", "a"), turn("bard", "b")]},
        {"conversations": [turn("human", "a"), turn("function_call", "not json")]},
        {"conversations": [turn("human", "a"), turn("observation", "{}")]},
        {"conversations": [turn("human", "a")], "tools": "[{oops"},
        {"messages": [{"role": "user", "content": "a"}], "label": "yes"},
        {"conversations": []},
        ok,
    ]
    convs, _, problems = split(iter_sharegpt(write_json(tmp_path / "bad.json", items)))
    assert [c.source_line for c in convs] == [1, 8]
    assert [c.session_id for c in convs] == ["bad:1", "bad:8"]
    assert [p.line for p in problems] == [2, 3, 4, 5, 6, 7]
    assert problems[0].message.startswith("conversation #2: turn 2: unknown 'from' value 'bard'")
    assert "function_call value is not JSON" in problems[1].message
    assert "'observation' without a function_call" in problems[2].message
    assert "'tools' is a string but not JSON" in problems[3].message
    assert "'label' must be true or false" in problems[4].message
    assert problems[5].message == "conversation #7: 'conversations' is empty"


def test_sharegpt_kto_labels_hand_made(tmp_path):
    items = [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}], "label": True},
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "bad"},
            ],
            "label": False,
        },
    ]
    convs, _, problems = split(iter_sharegpt(write_json(tmp_path / "kto.json", items)))
    assert problems == []
    assert [c.outcome.rating for c in convs] == [1, -1]
    assert [m.role for m in convs[1].messages] == ["system", "user", "assistant"]


def test_sharegpt_jsonl(tmp_path, registered):
    lines = [
        json.dumps({"id": "a", "conversations": [turn("user", "hi"), turn("assistant", "hello")]}),
        "",
        "{oops",
        json.dumps({"conversations": [turn("human", "x"), turn("gpt", "y")]}),
    ]
    for name in ("data.jsonl", "data_lines.json"):  # JSON Lines under a .json name is read line by line too
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        assert detect.detect_format(path) == "sharegpt"
        convs, _, problems = split(detect.iter_memory([path]))
        assert [(c.session_id, c.source_line) for c in convs] == [("a", 1), (f"{path.stem}:4", 4)]
        assert [(p.line, p.message.startswith("invalid JSON")) for p in problems] == [(3, True)]


def test_sharegpt_sniffers_on_hand_made_records():
    assert sharegpt.sniff_line({"conversations": [{"from": "human", "value": "x"}]})
    assert sharegpt.sniff_line({"messages": [{"role": "user", "content": "x"}], "label": True})
    assert not sharegpt.sniff_line({"messages": [{"role": "user", "content": "x"}]})  # plain OpenAI chat
    assert not sharegpt.sniff_line({"conversations": []})
    assert sharegpt.sniff_document([{"conversations": [{"from": "gpt", "value": "x"}]}])
    assert sharegpt.sniff_document({"conversations": [{"from": "gpt", "value": "x"}]})  # a single record
    assert not sharegpt.sniff_document([{"messages": [{"role": "user", "content": "x"}]}])
