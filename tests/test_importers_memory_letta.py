"""MCP memory graph and Letta agent file importers.

The real MCP memory sample holds a real person's facts: the tests below only count and compare, and never put its
text into an assertion message. Its expected numbers (2 entity lines, 0 relation lines, 31 and 28 observations,
all distinct names, every observation already ending with a full stop) were worked out from the raw file with a
throw-away script that only counted, not by running the importer. The Letta fixtures are our own
(tests/fixtures/letta/SOURCES.md says what they are modelled on).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_customization.memory.formats import score
from model_customization.memory import detect
from model_customization.memory import letta, mcp_memory
from model_customization.memory.letta import iter_letta
from model_customization.memory.mcp_memory import SYSTEM_PROMPT, iter_mcp_memory
from model_customization.memory.records import Conversation, ImportProblem

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "memory-samples"
MCP_SAMPLE = SAMPLES / "mcp-memory" / "anoblet_copilot_memory.jsonl"
LETTA = Path(__file__).resolve().parent / "fixtures" / "letta"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"real memory samples not found at {SAMPLES}")

NEW_FORMATS = [mcp_memory.FORMAT, letta.FORMAT]
# The formats detect knew before these two; works the same once they are registered in detect.py.
ORIGINAL_FORMATS = [f for f in detect.FORMATS if f.name not in {f.name for f in NEW_FORMATS}]


def split(items):
    items = list(items)
    convs = [x for x in items if isinstance(x, Conversation)]
    problems = [x for x in items if isinstance(x, ImportProblem)]
    assert len(convs) + len(problems) == len(items)
    return convs, problems


def use_formats(monkeypatch, formats) -> None:
    monkeypatch.setattr(detect, "FORMATS", list(formats))
    monkeypatch.setattr(detect, "_BY_NAME", {f.name: f for f in formats})
    monkeypatch.setattr(detect, "SUPPORTED_FORMATS", tuple(f.name for f in formats))


@pytest.fixture
def registered(monkeypatch):
    """The two formats registered in detect, as they will be (after the existing ones)."""
    use_formats(monkeypatch, ORIGINAL_FORMATS + NEW_FORMATS)


def write_lines(path: Path, objs: list) -> Path:
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs), encoding="utf-8")
    return path


def entity(name, etype="person", obs=(), **extra):
    return {"type": "entity", "name": name, "entityType": etype, "observations": list(obs), **extra}


def relation(src, dst, kind, **extra):
    return {"type": "relation", "from": src, "to": dst, "relationType": kind, **extra}


def qa(conv: Conversation) -> tuple[str, str]:
    assert [m.role for m in conv.messages] == ["system", "user", "assistant"]
    assert conv.messages[0].content == SYSTEM_PROMPT
    return conv.messages[1].content, conv.messages[2].content


# --- MCP memory: the real sample --------------------------------------------------------------------------------


@needs_samples
def test_mcp_real_sample_counts(registered):
    raw = [json.loads(line) for line in MCP_SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    entities = [o for o in raw if o.get("type") == "entity"]
    assert len(raw) == 2 and len(entities) == 2  # worked out beforehand: 2 entities, 0 relations
    assert [len(e["observations"]) for e in entities] == [31, 28]

    convs, problems = split(detect.iter_memory([MCP_SAMPLE]))
    assert problems == []
    # 2 entity questions; no relations, so no relation questions of either kind.
    assert len(convs) == 2
    assert [c.metadata["kind"] for c in convs] == ["entity", "entity"]
    assert [c.metadata["observations"] for c in convs] == [31, 28]
    assert [c.metadata["merged_records"] for c in convs] == [1, 1]
    assert [c.source_line for c in convs] == [1, 2]
    assert all(c.source_format == "mcp_memory" for c in convs)
    for conv, ent in zip(convs, entities):
        question, answer = qa(conv)
        assert conv.session_id == f"{MCP_SAMPLE.stem}:entity:{ent['name']}"
        assert question == f"What do you know about {ent['name']}?"
        # Counts only, so a failure never prints the person's facts.
        missing = sum(obs.strip() not in answer for obs in ent["observations"])
        assert missing == 0
        assert answer.startswith(f"{ent['name']} is a")
        # One type sentence + every observation, in order.
        positions = [answer.index(obs.strip()) for obs in ent["observations"]]
        assert positions == sorted(positions)


@needs_samples
def test_mcp_real_sample_detected(monkeypatch):
    use_formats(monkeypatch, ORIGINAL_FORMATS)
    assert detect.detect_format(MCP_SAMPLE) is None
    use_formats(monkeypatch, ORIGINAL_FORMATS + NEW_FORMATS)
    assert detect.detect_format(MCP_SAMPLE) == "mcp_memory"


# --- MCP memory: hand-written cases -----------------------------------------------------------------------------


def test_mcp_templates(tmp_path):
    path = write_lines(
        tmp_path / "memory.jsonl",
        [
            entity("Alice", "person", ["Works on compilers", "Likes tea."]),
            entity("Acme", "organization", ["Makes anvils!"]),
            relation("Alice", "Acme", "works_at"),
            relation("Alice", "Acme", "is_shareholder_of"),
            relation("Acme", "Alice", "employs"),
        ],
    )
    convs, problems = split(iter_mcp_memory(path))
    assert problems == []
    by_id = {c.session_id: c for c in convs}
    assert list(by_id) == [
        "memory:entity:Alice",
        "memory:entity:Alice:relations",
        "memory:entity:Acme",
        "memory:entity:Acme:relations",
        "memory:relation:1",
        "memory:relation:2",
    ]
    assert qa(by_id["memory:entity:Alice"]) == (
        "What do you know about Alice?",
        "Alice is a person. Works on compilers. Likes tea.",
    )
    assert qa(by_id["memory:entity:Acme"])[1] == "Acme is an organization. Makes anvils!"
    assert qa(by_id["memory:entity:Alice:relations"]) == (
        "How is Alice related to other things?",
        "Alice works at Acme.\nAlice is shareholder of Acme.\nAcme employs Alice.",
    )
    assert qa(by_id["memory:relation:1"]) == (
        "What is the relation between Alice and Acme?",
        "Alice works at Acme.\nAlice is shareholder of Acme.",
    )
    assert qa(by_id["memory:relation:2"]) == ("What is the relation between Acme and Alice?", "Acme employs Alice.")
    assert by_id["memory:relation:1"].source_line == 3
    assert by_id["memory:relation:2"].source_line == 5


def test_mcp_duplicate_entities_merged_and_duplicate_relations_dropped(tmp_path):
    path = write_lines(
        tmp_path / "memory.jsonl",
        [
            entity("Bob", "person", ["Lives in Oslo", "Plays chess"]),
            entity("Carol", "", []),
            entity("Bob", "engineer", ["Plays chess", "Owns a bike"]),
            relation("Bob", "Carol", "knows"),
            relation("Bob", "Carol", "knows"),
            entity("Carol", "user", ["Writes poems"]),
        ],
    )
    convs, problems = split(iter_mcp_memory(path))
    assert problems == []
    by_id = {c.session_id: c for c in convs}
    bob = by_id["memory:entity:Bob"]
    assert qa(bob)[1] == "Bob is a person. Lives in Oslo. Plays chess. Owns a bike."
    assert bob.metadata["merged_records"] == 2 and bob.metadata["lines"] == [1, 3]
    assert bob.source_line == 1
    carol = by_id["memory:entity:Carol"]
    assert qa(carol)[1] == "Carol is a user. Writes poems."  # first *non-empty* type; "a user", not "an user"
    assert carol.metadata["merged_records"] == 2
    relation_questions = [c for c in convs if c.metadata["kind"] == "relation"]
    assert len(relation_questions) == 1 and qa(relation_questions[0])[1] == "Bob knows Carol."
    assert qa(by_id["memory:entity:Bob:relations"])[1] == "Bob knows Carol."


def test_mcp_legacy_document(tmp_path, registered):
    doc = {
        "entities": [
            {"name": "Dana", "entityType": "person", "observations": ["Speaks Welsh"]},
            {"type": "entity", "name": "Dana", "entityType": "person", "observations": ["Speaks Welsh", "Runs"]},
            {"entityType": "person", "observations": []},
        ],
        "relations": [{"from": "Dana", "to": "Eve", "relationType": "mentors"}],
    }
    path = tmp_path / "memory.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    assert detect.detect_format(path) == "mcp_memory"
    convs, problems = split(detect.iter_memory([path]))
    assert [(p.line, p.message) for p in problems] == [(0, "entities[2]: entity without a 'name'")]
    assert [c.session_id for c in convs] == [
        "memory:entity:Dana",
        "memory:entity:Dana:relations",
        "memory:relation:1",
    ]
    assert qa(convs[0])[1] == "Dana is a person. Speaks Welsh. Runs."
    assert convs[0].metadata["merged_records"] == 2
    assert all(c.source_line == 1 for c in convs)


def test_mcp_old_memory_json_holding_lines(tmp_path, registered):
    """Older servers wrote the JSONL lines to a file called memory.json."""
    path = write_lines(tmp_path / "memory.json", [entity("Finn", "dog", ["Barks"]), relation("Finn", "Gus", "chases")])
    assert detect.detect_format(path) == "mcp_memory"
    convs, problems = split(detect.iter_memory([path]))
    assert problems == [] and len(convs) == 3
    single = write_lines(tmp_path / "one.json", [entity("Finn", "dog", ["Barks"])])
    assert detect.detect_format(single) == "mcp_memory"
    assert [c.session_id for c in split(detect.iter_memory([single]))[0]] == ["one:entity:Finn"]


def test_mcp_unknown_fields_tolerated(tmp_path):
    path = write_lines(
        tmp_path / "memory.jsonl",
        [
            entity("Hal", "computer", ["Sings songs"], createdAt="2025-01-01", importance=3),
            relation("Hal", "Ida", "talks_to", confidence=0.9),
        ],
    )
    convs, problems = split(iter_mcp_memory(path))
    assert problems == [] and len(convs) == 3
    assert qa(convs[0])[1] == "Hal is a computer. Sings songs."


def test_mcp_bad_lines_become_problems_and_the_rest_continues(tmp_path):
    path = write_lines(
        tmp_path / "memory.jsonl",
        [
            entity("Jo", "person", ["Bakes bread"]),
            {"type": "note", "text": "free text"},
            {"type": "entity", "entityType": "person", "observations": ["orphan"]},
            '{"type": "entity", "name": "Ka',
            {"name": "Lu"},
            relation("Jo", "", "likes"),
            {"type": "entity", "name": "Mo", "entityType": "person", "observations": "not a list"},
            entity("Ned", "person", ["ok", 5]),
            "[1, 2]",
            entity("Oz", "wizard", ["Lives in a city"]),
        ],
    )
    convs, problems = split(iter_mcp_memory(path))
    assert [c.session_id for c in convs] == ["memory:entity:Jo", "memory:entity:Oz"]
    assert [p.line for p in problems] == [2, 3, 4, 5, 6, 7, 8, 9]
    messages = [p.message for p in problems]
    assert messages[0] == "unknown type 'note' (expected 'entity' or 'relation')"
    assert messages[1] == "entity without a 'name'"
    assert messages[2].startswith("invalid JSON")
    assert messages[3] == "missing 'type' (expected 'entity' or 'relation')"
    assert messages[4] == "relation without 'to'"
    assert messages[5] == "entity 'Mo': 'observations' must be a list"
    assert messages[6] == "entity 'Ned': observation 2 is not a string"
    assert messages[7] == "expected a JSON object, got a list"


def test_mcp_relation_to_unknown_entity(tmp_path):
    lines = [entity("Pat", "person", []), relation("Pat", "Quux Corp", "founded")]
    path = write_lines(tmp_path / "memory.jsonl", lines)
    convs, problems = split(iter_mcp_memory(path))
    assert problems == []
    by_id = {c.session_id: c for c in convs}
    assert qa(by_id["memory:entity:Pat"])[1] == "Pat is a person."
    assert qa(by_id["memory:entity:Pat:relations"])[1] == "Pat founded Quux Corp."
    rel = by_id["memory:relation:1"]
    assert qa(rel) == ("What is the relation between Pat and Quux Corp?", "Pat founded Quux Corp.")
    assert rel.metadata["unknown_entities"] == ["Quux Corp"]
    # Neither endpoint known: still the relation question, and no entity questions.
    path = write_lines(tmp_path / "only.jsonl", [relation("X", "Y", "part_of")])
    convs, problems = split(iter_mcp_memory(path))
    assert problems == [] and [qa(c)[1] for c in convs] == ["X part of Y."]


# --- Letta -------------------------------------------------------------------------------------------------------


def test_letta_current_schema(registered):
    path = LETTA / "agent_file_current.af"
    assert detect.detect_format(path) == "letta"
    convs, problems = split(detect.iter_memory([path]))
    assert problems == []
    assert [c.session_id for c in convs] == ["agent_file_current:agent-0", "agent_file_current:agent-1"]
    trip, gloss = convs

    # send_message -> plain assistant text; inner thoughts and the send_message results are gone.
    assert [m.role for m in trip.messages] == [
        "system", "user", "assistant", "tool", "assistant", "user", "assistant", "tool", "assistant",
    ]
    system = trip.messages[0].content
    assert system.startswith("You are Trip Helper")
    assert "<human>\nName: Sam Example\nPrefers short answers.\n</human>" in system
    assert "<persona>\nI am Trip Helper." in system
    assert "memory_blocks" not in system  # the stored, compiled system message is not used
    call = trip.messages[2]
    assert call.content == "" and [(c.id, c.name) for c in call.tool_calls] == [("call-a1", "check_train_times")]
    assert json.loads(call.tool_calls[0].arguments)["origin"] == "Lyon"
    assert trip.messages[3].tool_call_id == "call-a1"
    assert trip.messages[4].content.startswith("Sorry, the timetable service is not answering")
    assert trip.messages[4].tool_calls == []
    assert trip.messages[6].content == ""  # a reasoning part next to a tool call is dropped
    assert trip.messages[8].content == "Noted: window seats from now on. I'll check the trains again shortly."
    assert not any("send_message" in tc.name for m in trip.messages for tc in m.tool_calls)
    assert not any("heartbeat" in m.content or "system_alert" in m.content for m in trip.messages)
    # tool_returns status "error" -> is_error.
    assert trip.outcome.is_error and not trip.outcome.successful
    assert trip.metadata["skipped_automated"] == 2  # one heartbeat, one system alert
    assert trip.metadata["skipped_reply_results"] == 2
    assert [t["function"]["name"] for t in trip.tools] == ["check_train_times", "core_memory_append"]
    assert trip.started_at == "2025-05-02T09:00:00+00:00"
    assert trip.metadata["agent_name"] == "trip_helper"

    # letta_v1_agent: plain-text replies; the text next to a tool call is visible, reasoning parts are dropped.
    assert [m.role for m in gloss.messages] == ["system", "user", "assistant", "user", "assistant", "tool", "assistant"]
    assert gloss.messages[2].content.startswith("An operation is idempotent")
    assert "short definition" not in gloss.messages[2].content
    assert gloss.messages[4].content == "Let me check the glossary."
    assert gloss.messages[4].tool_calls[0].name == "lookup_glossary"
    assert not gloss.outcome.is_error
    assert [t["function"]["name"] for t in gloss.tools] == ["lookup_glossary"]
    assert "<persona>\nI am Glossary Bot." in gloss.messages[0].content
    assert "Trip Helper" not in gloss.messages[0].content  # only the agent's own blocks


def test_letta_legacy_schema(registered):
    path = LETTA / "agent_file_legacy.af"
    assert detect.detect_format(path) == "letta"
    convs, problems = split(detect.iter_memory([path]))
    assert problems == []
    (conv,) = convs
    assert conv.session_id == "agent_file_legacy:plant_pal"
    assert conv.metadata["schema"] == "legacy" and conv.metadata["letta_version"] == "0.6.47"
    assert [(m.role, m.content) for m in conv.messages[1:]] == [
        ("assistant", "More human than human is our motto."),
        ("user", "Hi! What is a good name for a houseplant?"),  # unpacked from {"type": "user_message", ...}
        ("assistant", "How about Leaf Erikson or Fernando?"),
        ("user", "Remember that my cactus is called Spike."),
        ("assistant", ""),
        ("tool", '{"status": "OK", "message": "None", "time": "2025-04-01 03:47:27 AM UTC+0000"}'),
        ("assistant", "Got it, Spike the cactus is now in my memory."),
        ("assistant", "Waiting for the user to say more."),  # inner thoughts kept: the only content
    ]
    assert conv.messages[5].tool_calls[0].name == "core_memory_append"
    assert conv.messages[6].tool_call_id == conv.messages[5].tool_calls[0].id
    assert conv.metadata["skipped_automated"] == 2  # login + heartbeat
    system = conv.messages[0].content
    assert system.startswith("You are Letta") and "<human>\nFirst name: Robin" in system
    assert [t["function"]["name"] for t in conv.tools] == ["core_memory_append"]
    assert not conv.outcome.is_error


def test_letta_double_encoded(registered):
    path = LETTA / "agent_file_double_encoded.af"
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), str)
    assert detect.detect_format(path) == "letta"
    convs, problems = split(detect.iter_memory([path]))
    assert problems == []
    assert [c.session_id for c in convs] == ["agent_file_double_encoded:agent-7"]
    assert convs[0].messages[-1].content.startswith("The glossary says")


def _agent(messages, **extra):
    agent = {"id": "agent-x", "name": "x", "agent_type": "memgpt_agent", "system": "Be kind.", "messages": messages}
    return {**agent, **extra}


def _m(role, content, **extra):
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    return {"role": role, "content": parts, **extra}


def test_letta_error_returns_and_packed_failures(tmp_path):
    arguments = '{"q": "select 1", "inner_thoughts": "hm"}'
    call = {"id": "c1", "type": "function", "function": {"name": "run_sql", "arguments": arguments}}
    ok_doc = {"agents": [_agent([
        _m("user", "run it"),
        _m("assistant", "thinking", tool_calls=[call]),
        _m("tool", '{"status": "Failed", "message": "boom", "time": "now"}', tool_call_id="c1"),
    ])]}
    path = tmp_path / "packed.af"
    path.write_text(json.dumps(ok_doc), encoding="utf-8")
    (conv,) = split(iter_letta(path))[0]
    assert conv.outcome.is_error
    assert json.loads(conv.messages[2].tool_calls[0].arguments) == {"q": "select 1"}  # inner_thoughts argument dropped

    returns_doc = {"agents": [_agent([
        _m("user", "run both"),
        _m("assistant", None, tool_calls=[
            {"id": "a", "type": "function", "function": {"name": "t1", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "t2", "arguments": "{}"}},
        ]),
        _m("tool", None, tool_returns=[
            {"tool_call_id": "a", "status": "success", "func_response": "fine"},
            {"tool_call_id": "b", "status": "error", "func_response": "nope"},
        ]),
    ])]}
    path.write_text(json.dumps(returns_doc), encoding="utf-8")
    (conv,) = split(iter_letta(path))[0]
    tool_messages = [(m.role, m.content, m.tool_call_id) for m in conv.messages[3:]]
    assert tool_messages == [("tool", "fine", "a"), ("tool", "nope", "b")]
    assert conv.outcome.is_error


def test_letta_malformed_agent_is_a_problem_and_others_continue(tmp_path):
    doc = {
        "agents": [
            _agent([_m("user", "hello"), _m("assistant", "hi there")]),
            "not an agent",
            _agent({"oops": 1}, name="broken"),
            _agent([_m("user", "x"), _m("wizard", "y")], id="agent-w", name="weird"),
            _agent([_m("system", "only a prompt")], id="agent-e", name="empty"),
            _agent([_m("user", "fine"), _m("assistant", "also fine")], id="agent-z", name="z"),
        ]
    }
    path = tmp_path / "mixed.af"
    path.write_text(json.dumps(doc), encoding="utf-8")
    convs, problems = split(iter_letta(path))
    assert [c.session_id for c in convs] == ["mixed:agent-x", "mixed:agent-z"]
    assert [(p.line, p.message) for p in problems] == [
        (0, "agent 1: expected an object"),
        (0, "agent 2 ('broken'): 'messages' must be a list"),
        (0, "agent 3 ('weird'): message 2: unknown role 'wizard'"),
        (0, "agent 4 ('empty'): no messages besides the system prompt; nothing to import"),
    ]
    assert convs[0].messages[0].content == "Be kind."


def test_letta_file_level_problems(tmp_path):
    bad = tmp_path / "bad.af"
    bad.write_text('{"agents": [', encoding="utf-8")
    (problem,) = split(iter_letta(bad))[1]
    assert problem.line == 0 and problem.message.startswith("invalid JSON")
    other = tmp_path / "other.af"
    other.write_text(json.dumps({"hello": "world"}), encoding="utf-8")
    (problem,) = split(iter_letta(other))[1]
    assert problem.line == 0 and problem.message.startswith("not a Letta agent file")
    empty = tmp_path / "empty.af"
    empty.write_text(json.dumps({"agents": []}), encoding="utf-8")
    assert [p.message for p in split(iter_letta(empty))[1]] == ["agent file without agents"]


def test_letta_long_system_prompt_truncated(tmp_path):
    doc = {"agents": [_agent([_m("user", "hi"), _m("assistant", "hello")], system="s" * 5000, block_ids=["b"])],
           "blocks": [{"id": "b", "label": "human", "value": "v" * 2500}]}
    path = tmp_path / "long.af"
    path.write_text(json.dumps(doc), encoding="utf-8")
    (conv,) = split(iter_letta(path))[0]
    assert conv.metadata["truncated"] == {"system": 5000, "block:human": 2500}
    system = conv.messages[0].content
    assert system.startswith("s" * 4000 + "\n\n<human>\n" + "v" * 2000 + "\n</human>")
    assert len(system) == 4000 + 2 + len("<human>\n") + 2000 + len("\n</human>")


# --- sniffers ---------------------------------------------------------------------------------------------------


def _sniff_inputs(path: Path):
    """What detect would hand the sniffers: the parsed document (document suffixes) and the first parsed lines."""
    documents, lines = [], []
    data = path.read_bytes()
    if path.suffix.lower() in detect.DOCUMENT_SUFFIXES:
        try:
            documents.append(json.loads(data.decode("utf-8-sig")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            pass
    for raw in data.splitlines()[:40]:
        try:
            lines.append(json.loads(raw.decode("utf-8-sig")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
    return documents, lines


def _claims(fmt, path: Path) -> bool:
    documents, lines = _sniff_inputs(path)
    by_doc = fmt.sniff_document is not None and any(score(fmt.sniff_document, d) > 0 for d in documents)
    by_line = fmt.sniff_line is not None and any(score(fmt.sniff_line, o) > 0 for o in lines)
    return by_doc or by_line


@needs_samples
def test_new_sniffers_claim_only_their_samples(monkeypatch):
    files = sorted(p for p in SAMPLES.rglob("*") if p.is_file() and p.suffix.lower() in detect.MEMORY_SUFFIXES)
    assert len(files) > 15
    use_formats(monkeypatch, ORIGINAL_FORMATS)
    before = {p: detect.detect_format(p) for p in files}
    claimed = {fmt.name: [p for p in files if _claims(fmt, p)] for fmt in NEW_FORMATS}
    assert claimed == {"mcp_memory": [MCP_SAMPLE], "letta": []}

    use_formats(monkeypatch, ORIGINAL_FORMATS + NEW_FORMATS)
    after = {p: detect.detect_format(p) for p in files}
    changed = {p: (before[p], after[p]) for p in files if before[p] != after[p]}
    assert changed == {MCP_SAMPLE: (None, "mcp_memory")}


def test_existing_sniffers_do_not_claim_our_fixtures(tmp_path, monkeypatch):
    mcp_lines = write_lines(tmp_path / "memory.jsonl", [entity("A", "b", ["c"]), relation("A", "B", "knows")])
    mcp_doc = tmp_path / "graph.json"
    graph = {"entities": [{"name": "A", "entityType": "b", "observations": []}], "relations": []}
    mcp_doc.write_text(json.dumps(graph), encoding="utf-8")
    compact_legacy = tmp_path / "compact.af"  # one line: looks like {"messages": [...]} to a line sniffer
    compact_legacy.write_text(json.dumps(json.loads((LETTA / "agent_file_legacy.af").read_text())), encoding="utf-8")
    ours = [*sorted(LETTA.glob("*.af")), mcp_lines, mcp_doc]
    assert len(ours) == 5
    use_formats(monkeypatch, ORIGINAL_FORMATS)
    for path in ours:
        assert detect.detect_format(path) is None, path
        assert not any(_claims(fmt, path) for fmt in ORIGINAL_FORMATS), path
    # The compact legacy file is the one overlap: OpenAI's line sniffer takes its single line ({"messages": [...]}).
    # Document sniffers run before line sniffers, so once letta is registered it wins.
    use_formats(monkeypatch, ORIGINAL_FORMATS + NEW_FORMATS)
    assert [detect.detect_format(p) for p in ours] == ["letta"] * 3 + ["mcp_memory"] * 2
    assert detect.detect_format(compact_legacy) == "letta"


def test_sniffers_reject_near_misses():
    assert not mcp_memory.sniff_line({"type": "entity"})
    assert not mcp_memory.sniff_line({"type": "relation", "from": "a", "to": "b"})
    assert not mcp_memory.sniff_line({"type": "user", "sessionId": "s"})
    assert not mcp_memory.sniff_document({"entities": []})
    assert mcp_memory.sniff_document({"entities": [], "relations": []})
    assert not mcp_memory.sniff_document({"entities": [{"text": "Paris", "label": "GPE"}]})
    assert not letta.sniff_document({"agents": [{"nickname": "x"}]})
    assert not letta.sniff_document({"messages": [{"role": "user", "content": "hi"}]})
    assert not letta.sniff_document("just a string")
    assert letta.sniff_document(json.dumps({"agents": [{"name": "a", "messages": [], "llm_config": {}}]}))
