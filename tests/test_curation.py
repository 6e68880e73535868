"""Curation building blocks: redaction, near-duplicate detection, conversation filters, per-turn examples."""

from __future__ import annotations

import json
import random
import re
import string
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_customization.datasets.curation import (
    ConversationFilter,
    NearDuplicateFilter,
    count_turns,
    exact_key,
    is_learnable,
    redact_conversation,
    redact_text,
    split_into_turn_examples,
    weight_whole_conversation,
)
from model_customization.datasets.examples import conversation_to_example, example_problem
from model_customization.memory.records import Conversation, Message, Outcome, ToolCall

PLACEHOLDER = re.compile(r"<([A-Z_]+?)_(\d+)>")


# --- a seeded corpus -----------------------------------------------------------------------------------------------


def _luhn_complete(partial: str) -> str:
    for check in "0123456789":
        digits = partial + check
        total = 0
        for index, char in enumerate(reversed(digits)):
            value = int(char) * (2 if index % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def _token(rng: random.Random, alphabet: str, n: int) -> str:
    while True:
        value = "".join(rng.choice(alphabet) for _ in range(n))
        if any(c.isdigit() for c in value) and any(c.isalpha() for c in value):
            return value


@dataclass
class Seeded:
    conversation: Conversation
    values: list[str]  # strings that must not survive redaction
    counts: Counter[str]
    repeated: str  # a secret used in two places: it must get one placeholder


FILLER = (
    "Please check the deploy logs for payments-api on 2026-11-22 at 12:30:45; we run version 1.2.3. "
    "Request id 123e4567-e89b-12d3-a456-426614174000, commit 3f2a9c1b7e5d4f6a8b0c2d1e3f4a5b6c7d8e9f01."
)


def seeded_conversation(i: int) -> Seeded:
    rng = random.Random(1000 + i)
    upper = string.ascii_uppercase + string.digits
    alnum = string.ascii_letters + string.digits
    counts: Counter[str] = Counter()
    values: list[str] = []

    aws = "AKIA" + _token(rng, upper, 16)
    ghp = "ghp_" + _token(rng, alnum, 36)
    slack = "xoxb-" + "".join(rng.choice(string.digits) for _ in range(11)) + "-" + _token(rng, alnum, 24)
    anthropic = "sk-ant-api03-" + _token(rng, alnum, 32)
    bearer = _token(rng, alnum, 40)
    pg_password = _token(rng, alnum, 14)
    email = f"jordan.lee{i}@example.org"
    ops_email = f"ops-team{i}@corp.example.com"
    phones = ["+1 (415) 555-{:04d}", "+44 20 7946 {:04d}", "020 7946 {:04d}", "555-867-{:04d}", "+4915112{:06d}"]
    phone = phones[i % len(phones)].format(1000 + i)
    card_digits = _luhn_complete("4" + "".join(rng.choice(string.digits) for _ in range(14)))
    card = " ".join(card_digits[k : k + 4] for k in range(0, 16, 4))
    ipv4 = f"10.{i}.3.{i + 7}"
    ipv6 = f"2001:db8:{i + 1:x}::7334"
    user = f"dana{i}q"
    key_body = [_token(rng, alnum + "+/", 64) for _ in range(3)]
    private_key = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(key_body) + "\n-----END OPENSSH PRIVATE KEY-----"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ" + _token(rng, alnum, 20) + "In0." + _token(rng, alnum, 43)

    home = [f"/home/{user}/projects/api", f"/Users/{user}/Documents/notes.md", f"C:\\Users\\{user}\\AppData\\x.log"][i % 3]

    system = Message("system", "You are a careful ops assistant.")
    user_msg = Message(
        "user",
        f"{FILLER}\nMy key is {aws} and the token {ghp}. Reach me at {email} or {phone}.\n"
        f"DATABASE_URL=postgres://svc_{i}:{pg_password}@db{i}.internal.example:5432/app\n"
        f"The box is {ipv4} (v6 {ipv6}), repo in {home}.",
    )
    counts.update(secret=2, email=1, phone=1, url_password=1, ip=2, home_path=1)
    call_args = {"path": f"/home/{user}/.ssh/id_ed25519", "content": private_key, "aws_access_key_id": aws, "retries": 3}
    assistant_call = Message(
        "assistant",
        "Let me write the key file.",
        tool_calls=[ToolCall(id=f"call_{i}", name="write_file", arguments=json.dumps(call_args))],
    )
    counts.update(home_path=1, private_key=1, secret=1)
    tool_result = Message("tool", f"wrote 3 lines; card on file {card}; slack {slack}", tool_call_id=f"call_{i}")
    counts.update(card=1, secret=1)
    answer = Message(
        "assistant",
        f"Done. I rotated {aws}; set Authorization: Bearer {bearer} and ANTHROPIC_API_KEY={anthropic}.\n"
        f"Session JWT: {jwt}\nTRIAGE severity=high component=payments-api action=page",
    )
    counts.update(secret=4)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "write_file",
                "description": f"Write a file. Questions to {ops_email}.",
                "parameters": {"type": "object", "properties": {"path": {"type": "string", "description": "Where."}}},
            },
        }
    ]
    counts.update(email=1)
    values += [aws, ghp, slack, anthropic, bearer, pg_password, email, ops_email, phone, card, card_digits, ipv4, ipv6,
               *key_body, jwt, f"/{user}/", f"\\{user}\\"]
    conv = Conversation(
        session_id=f"s{i}",
        messages=[system, user_msg, assistant_call, tool_result, answer],
        source_file=f"/data/memory/session{i}.jsonl",
        source_line=1,
        source_format="openai_chat",
        tools=tools,
        started_at="2026-03-01T10:00:00Z",
    )
    return Seeded(conv, values, counts, aws)


CORPUS = [seeded_conversation(i) for i in range(36)]


def serialised(conv: Conversation) -> str:
    example = conversation_to_example(conv)
    return json.dumps(example, ensure_ascii=False)


def test_seeded_corpus_leaves_no_secret_behind():
    for seeded in CORPUS:
        redacted, counts = redact_conversation(seeded.conversation)
        text = serialised(redacted)
        raw = text.replace("\\\\", "\\")
        for value in seeded.values:
            assert value not in raw, (seeded.conversation.session_id, value)
        assert counts == seeded.counts, (seeded.conversation.session_id, counts, seeded.counts)


def test_redaction_does_not_mutate_input_and_keeps_structure():
    seeded = CORPUS[0]
    before = serialised(seeded.conversation)
    redacted, _ = redact_conversation(seeded.conversation)
    assert serialised(seeded.conversation) == before
    assert [m.role for m in redacted.messages] == [m.role for m in seeded.conversation.messages]
    assert redacted.messages[2].tool_calls[0].id == "call_0"
    assert redacted.messages[3].tool_call_id == "call_0"
    assert redacted.session_id == "s0" and redacted.source_file == seeded.conversation.source_file


def test_same_value_same_placeholder_and_numbering_restarts():
    for seeded in CORPUS[:6]:
        redacted, _ = redact_conversation(seeded.conversation)
        user, call, answer = redacted.messages[1].content, redacted.messages[2].tool_calls[0], redacted.messages[4].content
        aws_in_user = re.search(r"My key is (<SECRET_\d+>)", user).group(1)
        assert re.search(r"I rotated (<SECRET_\d+>)", answer).group(1) == aws_in_user
        arguments = json.loads(call.arguments)  # still valid JSON
        assert arguments["aws_access_key_id"] == aws_in_user
        assert arguments["retries"] == 3
        assert arguments["content"] == "<PRIVATE_KEY_1>"
        assert aws_in_user == "<SECRET_1>"  # numbering starts at 1 in every conversation
        assert "<EMAIL_1>" in user and "<EMAIL_2>" in json.dumps(redacted.tools)
        assert "<IP_1>" in user and "<IP_2>" in user
        user_placeholder = re.search(r"(?:/home/|/Users/|\\Users\\)(<USER_\d+>)", user).group(1)
        assert user_placeholder == "<USER_1>"
        assert arguments["path"].startswith("/home/<USER_1>/")  # the same user name, the same placeholder
        assert "TRIAGE severity=high component=payments-api action=page" in answer
        assert "postgres://svc_" in user and ":<PASSWORD_1>@db" in user  # user kept, password gone


def test_tool_arguments_that_are_not_json_are_redacted_as_text():
    conv = Conversation(
        "s",
        [
            Message("user", "hi"),
            Message("assistant", "", tool_calls=[ToolCall("c1", "shell", "echo alice@example.com {not json")]),
            Message("tool", "ok", tool_call_id="c1"),
        ],
        "f.jsonl",
        1,
        "openai_chat",
    )
    redacted, counts = redact_conversation(conv)
    assert redacted.messages[1].tool_calls[0].arguments == "echo <EMAIL_1> {not json"
    assert counts == Counter(email=1)


def test_unchanged_json_arguments_keep_their_formatting():
    arguments = '{ "query" :  "select 1" }'
    conv = Conversation(
        "s",
        [Message("user", "q"), Message("assistant", "", tool_calls=[ToolCall("c", "sql", arguments)])],
        "f",
        1,
        "openai_chat",
    )
    redacted, counts = redact_conversation(conv)
    assert redacted.messages[1].tool_calls[0].arguments == arguments and not counts


def test_secret_found_once_is_removed_everywhere_in_the_conversation():
    conv = Conversation(
        "s",
        [
            Message("user", 'config: password = "Tr0ub4dor&3x"'),
            Message("assistant", "I will not repeat Tr0ub4dor&3x anywhere."),
        ],
        "f",
        1,
        "openai_chat",
    )
    redacted, counts = redact_conversation(conv)
    assert "Tr0ub4dor" not in serialised(redacted)
    assert redacted.messages[1].content == "I will not repeat <SECRET_1> anywhere."
    assert counts == Counter(secret=2)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7d\n-----END RSA PRIVATE KEY-----", "private_key"),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n(truncated", "private_key"),
        ("https://admin:hunter2hunter2@example.com/x", "url_password"),
        ("Authorization: Bearer abcDEF123456ghiJKL", "secret"),
        ("OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t", "secret"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "secret"),
        ("the password: c0rrectHorse!", "secret"),
        ('{"client_secret": "q8w7e6r5t4y3u2i1"}', "secret"),
        ("write to jane_doe+filter@mail.example.co.uk today", "email"),
        ("call +33 1 42 68 53 00 now", "phone"),
        ("call (212) 555-0147 now", "phone"),
        ("call 07700 900123 now", "phone"),
        ("paid with 5555-5555-5555-4444", "card"),
        ("paid with 378282246310005", "card"),
        ("paid with 3782 822463 10005", "card"),
        ("555-867-5309 4111 1111 1111 1111", None),
        ("server 203.0.113.9 is down", "ip"),
        ("HOST=192.168.4.20", "ip"),
        ("ssh deploy@10.1.2.3", "ip"),
        ("server fe80::1ff:fe23:4567:890a%eth0 is down", "ip"),
        ("open /Users/mei.lin/Desktop", "home_path"),
        (r"open C:\Users\Pat\Desktop", "home_path"),
    ],
)
def test_each_kind_is_found(text, kind):
    out, counts = redact_text(text)
    if kind is None:  # a phone next to a card: both found in one pass
        assert out == "<PHONE_1> <CARD_1>" and counts == Counter(phone=1, card=1)
        return
    assert counts == Counter({kind: 1}), (out, counts)
    assert out != text


@pytest.mark.parametrize(
    "text",
    [
        "released on 2026-11-22 at 12:30:45",
        "upgrade to version 1.2.3, then 10.4.0 and v10.4.0.1 and version 10.4.0.1 and pkg==10.4.0.1",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "commit 3f2a9c1b7e5d4f6a8b0c2d1e3f4a5b6c7d8e9f01 (short 3f2a9c1)",
        'sha = "3f2a9c1b7e5d4f6a8b0c2d1e3f4a5b6c7d8e9f01"',
        "card 4111 1111 1111 1112 fails Luhn",
        "order 1234567812345678 and timestamp 1700000000000",
        "TRIAGE severity=high component=payments-api action=page",
        "TRIAGE severity=low component=image-resizer action=ignore",
        "bind 0.0.0.0:8080, connect 127.0.0.1, netmask 255.255.255.0, ::1",
        "mac 00:1a:2b:3c:4d:5e, c++ std::vector<int>, rust a::b::c",
        "git clone git@github.com:org/repo.git; /home/Shared and C:\\Users\\Public\\x",
        "def login(password: str, token_count: int = 5) -> bool:\n    return check(password)\n",
        "import os\nfor i in range(10):\n    print(f'{i:04d}', os.path.join('/tmp', 'x'))\n",
        "sk-learn-is-not-a-key and the secret is out",
        "call me at ext. 1234, room 555, id 4242424242",
        "coords 51.5074, -0.1278 and ratio 3.14159",
        "email me @alice on slack; decorator @dataclass",
    ],
)
def test_false_positives_are_left_alone(text):
    out, counts = redact_text(text)
    assert out == text and not counts, (out, counts)


def test_placeholders_in_the_input_do_not_collide():
    conv = Conversation(
        "s", [Message("user", "earlier <EMAIL_1> and now bo@example.com"), Message("assistant", "ok")], "f", 1, "x"
    )
    redacted, counts = redact_conversation(conv)
    assert redacted.messages[0].content == "earlier <EMAIL_1> and now <EMAIL_2>"
    assert counts == Counter(email=1)


# --- hypothesis: redaction properties ------------------------------------------------------------------------------

SAMPLES = [
    "AKIAIOSFODNN7EXAMPLE", "ghp_" + "aB3" * 12, "alice@example.com", "+1 (415) 555-0100", "4111 1111 1111 1111",
    "10.0.0.7", "2001:db8::1", "/home/bob/x", "C:\\Users\\eve\\y", "https://u:pw12345678@h.io", "password=Secr3t!!",
    "Bearer abcdefgh12345678", "2026-11-22", "12:30:45", "1.2.3", "TRIAGE severity=low component=x action=ignore",
    "<EMAIL_1>", "<SECRET_3>", "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----", "sk-ant-api03-x1y2z3a4b5c6d7e8f9g0h",
    "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl", "555-867-5309", "def f(x):", '"quoted"', "{", "}", "@", ":", "/", "\\",
    # user and host names (issue 16): learned in one place, swept everywhere
    "\n-rw-r--r-- 1 carol staff 12 Mar  1 x", "\nalice@kestrel:~/app$ ls", "-home-dave-proj", "carol", "kestrel",
    "\n$ whoami\nzed9", "USER=root", "<HOST_2>", "<USER_1>",
]
text_strategy = st.lists(
    st.one_of(st.sampled_from(SAMPLES), st.text(alphabet=string.printable, max_size=12)), max_size=12
).map(lambda parts: " ".join(parts))
arguments_strategy = st.one_of(
    st.dictionaries(st.sampled_from(["path", "password", "query", "n", "token"]), st.one_of(text_strategy, st.integers()), max_size=3).map(json.dumps),
    text_strategy,
)
message_strategy = st.builds(
    lambda role, content, args: Message(
        role, content, tool_calls=[ToolCall("c1", "tool", a) for a in args] if role == "assistant" else []
    ),
    st.sampled_from(["system", "user", "assistant", "tool"]),
    text_strategy,
    st.lists(arguments_strategy, max_size=2),
)
conversation_strategy = st.builds(
    lambda messages, description: Conversation(
        "s", messages, "f.jsonl", 1, "openai_chat",
        tools=[{"type": "function", "function": {"name": "t", "description": description}}],
    ),
    st.lists(message_strategy, min_size=1, max_size=5),
    text_strategy,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversation_strategy)
def test_redaction_is_idempotent_and_keeps_roles(conv):
    once, _ = redact_conversation(conv)
    twice, counts_twice = redact_conversation(once)
    assert twice == once
    assert not counts_twice
    assert len(once.messages) == len(conv.messages)
    assert [m.role for m in once.messages] == [m.role for m in conv.messages]
    for before, after in zip(conv.messages, once.messages):
        assert len(before.tool_calls) == len(after.tool_calls)
        for b, a in zip(before.tool_calls, after.tool_calls):
            try:
                json.loads(b.arguments)
            except ValueError:
                continue
            json.loads(a.arguments)  # valid JSON stays valid JSON


# --- filters -------------------------------------------------------------------------------------------------------


def _conv(roles, *, started_at=None, outcome=None, tool=False, source="/m/a.jsonl", fmt="openai_chat"):
    messages = []
    for role in roles:
        calls = [ToolCall("c", "t", "{}")] if tool and role == "assistant" else []
        messages.append(Message(role, "x", tool_calls=calls))
    return Conversation("s", messages, source, 1, fmt, started_at=started_at, outcome=outcome or Outcome())


def test_turn_counting_definition():
    assert count_turns(_conv(["system", "user", "assistant"])) == 1
    assert count_turns(_conv(["user", "user", "assistant"])) == 1  # consecutive user messages are one request
    assert count_turns(_conv(["user", "assistant", "tool", "assistant", "user"])) == 1  # unanswered user is no turn
    assert count_turns(_conv(["user", "assistant", "user", "assistant"])) == 2
    assert count_turns(_conv(["assistant", "user"])) == 0


def test_filter_reasons():
    t0 = "2026-03-01T10:00:00Z"
    assert ConversationFilter(outcome="successful").reason(_conv(["user", "assistant"], outcome=Outcome(is_error=True))) == "outcome"
    assert ConversationFilter(outcome="failed").reason(_conv(["user", "assistant"])) == "outcome"
    assert ConversationFilter(min_turns=2).reason(_conv(["user", "assistant"])) == "too_few_turns"
    assert ConversationFilter(max_turns=0).reason(_conv(["user", "assistant"])) == "too_many_turns"
    since = datetime(2026, 3, 2, tzinfo=timezone.utc)
    assert ConversationFilter(since=since).reason(_conv(["user", "assistant"], started_at=t0)) == "before_since"
    assert ConversationFilter(until=datetime(2026, 2, 1)).reason(_conv(["user", "assistant"], started_at=t0)) == "after_until"
    assert ConversationFilter(since=since).reason(_conv(["user", "assistant"])) is None  # no date: kept
    assert ConversationFilter(since=since).reason(_conv(["user", "assistant"], started_at="yesterday")) is None
    assert ConversationFilter(since=datetime(2026, 3, 1, 10)).reason(_conv(["user", "assistant"], started_at=t0)) is None  # inclusive
    assert ConversationFilter(tool_calls="without").reason(_conv(["user", "assistant"], tool=True)) == "has_tool_calls"
    assert ConversationFilter(tool_calls="with").reason(_conv(["user", "assistant"])) == "no_tool_calls"
    assert ConversationFilter(sources=["claude_code"]).reason(_conv(["user", "assistant"])) == "source"
    assert ConversationFilter(sources=["*.jsonl"]).reason(_conv(["user", "assistant"])) is None
    assert ConversationFilter(sources=["/m/*"]).reason(_conv(["user", "assistant"])) is None
    assert ConversationFilter(sources=["openai_*"]).reason(_conv(["user", "assistant"])) is None
    with pytest.raises(ValueError):
        ConversationFilter(min_turns=3, max_turns=1)
    with pytest.raises(ValueError):
        ConversationFilter(outcome="good")  # type: ignore[arg-type]


BASE = datetime(2026, 3, 1, tzinfo=timezone.utc)


@settings(max_examples=300, deadline=None)
@given(
    roles=st.lists(st.sampled_from(["system", "user", "assistant", "tool"]), max_size=8),
    offset=st.one_of(st.none(), st.integers(-10, 10)),
    outcome=st.builds(Outcome, is_error=st.booleans(), reward=st.one_of(st.none(), st.sampled_from([-1.0, 0.0, 1.0]))),
    tool=st.booleans(),
    fmt=st.sampled_from(["openai_chat", "claude_code"]),
    want_outcome=st.sampled_from(["any", "successful", "failed"]),
    min_turns=st.one_of(st.none(), st.integers(0, 3)),
    extra=st.one_of(st.none(), st.integers(0, 3)),
    since=st.one_of(st.none(), st.integers(-10, 10)),
    span=st.one_of(st.none(), st.integers(0, 10)),
    want_tools=st.sampled_from(["any", "with", "without"]),
    sources=st.one_of(st.none(), st.lists(st.sampled_from(["claude_*", "*.jsonl", "*.json", "openai_chat"]), max_size=2)),
)
def test_filter_matches_direct_computation(roles, offset, outcome, tool, fmt, want_outcome, min_turns, extra, since, span, want_tools, sources):
    started = None if offset is None else (BASE + timedelta(days=offset)).isoformat()
    conv = _conv(roles, started_at=started, outcome=outcome, tool=tool, source="/m/a.jsonl" if fmt == "openai_chat" else "/m/b.json", fmt=fmt)
    max_turns = None if extra is None else (min_turns or 0) + extra
    since_dt = None if since is None else BASE + timedelta(days=since)
    until_dt = None if since_dt is None or span is None else since_dt + timedelta(days=span)
    flt = ConversationFilter(want_outcome, min_turns, max_turns, since_dt, until_dt, want_tools, sources)

    # direct computation
    turns = sum(1 for i, r in enumerate(roles) if r == "assistant" and _latest_non_ignored_is_user(roles, i))
    uses_tools = any(m.tool_calls for m in conv.messages)
    expected = None
    if want_outcome == "successful" and not outcome.successful or want_outcome == "failed" and outcome.successful:
        expected = "outcome"
    elif min_turns is not None and turns < min_turns:
        expected = "too_few_turns"
    elif max_turns is not None and turns > max_turns:
        expected = "too_many_turns"
    elif offset is not None and since is not None and offset < since:
        expected = "before_since"
    elif offset is not None and since is not None and span is not None and offset > since + span:
        expected = "after_until"
    elif want_tools == "without" and uses_tools:
        expected = "has_tool_calls"
    elif want_tools == "with" and not uses_tools:
        expected = "no_tool_calls"
    elif sources is not None and not any(
        (p == "claude_*" and fmt == "claude_code") or (p == "*.jsonl" and fmt == "openai_chat")
        or (p == "*.json" and fmt == "claude_code") or (p == "openai_chat" and fmt == "openai_chat")
        for p in sources
    ):
        expected = "source"
    assert flt.reason(conv) == expected
    assert turns == count_turns(conv)


def _latest_non_ignored_is_user(roles, i):
    """Assistant at i starts a turn when, looking back past system/tool messages, a user message comes before any
    assistant message."""
    for j in range(i - 1, -1, -1):
        if roles[j] == "user":
            return True
        if roles[j] == "assistant":
            return False
    return False


# --- dedupe --------------------------------------------------------------------------------------------------------

WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo "
    "sierra tango uniform victor whiskey xray yankee zulu"
).split()


def _long_text(seed: int, n: int = 400) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) + str(rng.randrange(100)) for _ in range(n))


# 400 words: true Jaccard after one change is 391/401 = 0.975, 7 standard deviations of the 128-permutation
# estimate above 0.85 (at 150 words it is 0.93, and about 1 in 1000 estimates falls below 0.85).
@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), position=st.integers(0, 399))
def test_one_changed_word_is_a_near_duplicate_of_a_long_text(seed, position):
    text = _long_text(seed)
    words = text.split()
    words[position] = "CHANGED"
    nd = NearDuplicateFilter(threshold=0.85)
    assert nd.is_duplicate("a", text) is False
    assert nd.is_duplicate("b", " ".join(words)) is True
    assert nd.duplicate_of("c", text.upper()) == "a"  # case and spacing do not matter
    assert len(nd) == 1


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000))
def test_unrelated_texts_are_not_duplicates(seed):
    nd = NearDuplicateFilter()
    assert nd.is_duplicate("a", _long_text(seed)) is False
    assert nd.is_duplicate("b", _long_text(seed + 10_001)) is False
    assert nd.is_duplicate("c", "TRIAGE severity=high component=payments-api action=page") is False
    assert nd.is_duplicate("d", "Summarise the incident for the on-call channel.") is False
    assert len(nd) == 4


def test_short_texts_use_character_shingles_and_are_deterministic():
    nd = NearDuplicateFilter()
    assert not nd.is_duplicate("a", "Restart the payments-api pods in the eu-west cluster now please")
    assert nd.is_duplicate("b", "restart the payments-api pods in the eu-west cluster now, please")
    assert not nd.is_duplicate("c", "Rotate the database credentials for the billing service")
    again = NearDuplicateFilter()
    assert again.minhash("same text").digest().tolist() == nd.minhash("same text").digest().tolist()
    with pytest.raises(ValueError):
        nd.is_duplicate("a", "reused key")


def test_exact_key_normalises_case_and_whitespace():
    a = {"messages": [{"role": "user", "content": "Hello   World"}, {"role": "assistant", "content": "Hi\n"}]}
    b = {"messages": [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": "hi"}]}
    c = {"messages": [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": "bye"}]}
    assert exact_key(a) == exact_key(b) != exact_key(c)
    assert len(exact_key(a)) == 64


# --- per-turn examples ---------------------------------------------------------------------------------------------


@st.composite
def chat_examples(draw):
    messages = [{"role": "system", "content": "sys"}] if draw(st.booleans()) else []
    n = 0
    for turn in range(draw(st.integers(1, 4))):
        messages.append({"role": "user", "content": f"question {turn}"})
        for step in range(draw(st.integers(0, 2))):
            n += 1
            call = {"id": f"c{n}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
            messages.append({"role": "tool", "tool_call_id": f"c{n}", "content": "result"})
        answer = {"role": "assistant", "content": draw(st.sampled_from(["answer", "", "  "]))}
        if draw(st.booleans()):
            answer["weight"] = draw(st.sampled_from([0, 1]))
        messages.append(answer)
    example = {"messages": messages}
    if draw(st.booleans()):
        example["tools"] = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    return example


@settings(max_examples=200, deadline=None)
@given(chat_examples())
def test_split_into_turn_examples(example):
    original = json.dumps(example, sort_keys=True)
    learnable = [i for i, m in enumerate(example["messages"]) if is_learnable(m)]
    parts = split_into_turn_examples(example)
    assert json.dumps(example, sort_keys=True) == original  # input untouched
    assert len(parts) == len(learnable)
    for end, part in zip(learnable, parts):
        assert example_problem(part) is None
        assert part["messages"][-1] == example["messages"][end]
        assert len(part["messages"]) == end + 1
        assert all(m["weight"] == 0 for m in part["messages"][:-1] if m["role"] == "assistant")
        assert part.get("tools") == example.get("tools")


@settings(max_examples=100, deadline=None)
@given(chat_examples())
def test_weight_whole_conversation(example):
    weighted = weight_whole_conversation(example)
    for before, after in zip(example["messages"], weighted["messages"]):
        if before["role"] == "assistant":
            assert after["weight"] == (0 if before.get("weight") == 0 else 1)
        else:
            assert "weight" not in after
    if example_problem(example) is None:
        assert example_problem(weighted) is None


def test_split_skips_assistant_before_any_user():
    example = {"messages": [{"role": "assistant", "content": "hello"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    parts = split_into_turn_examples(example)
    assert len(parts) == 1 and parts[0]["messages"][0]["weight"] == 0
