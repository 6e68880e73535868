"""Issue 17, class 3: a secret survives nowhere, whatever field or shape it hides in.

Each example the issue gives is driven through the interface where it was seen: MCP in process (build, inspect,
evaluate, resources, prompts), the CLI as a subprocess (store URL errors) and a real streamable-HTTP server (its
access log). Everything the build, the card and the ledger keep is scanned as bytes, so a field added later that
bypasses the redaction choke points (datasets/redaction.py redact_conversation and redact_record) fails here too.
The property tests at the end generate secrets in the shapes the detectors know and hide them in keys, values, tool
definitions, file and dataset names, wrapped lines and base64.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
from anthropic_fake import FakeAnthropic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client, types

from model_customization.datasets.build import build_dataset
from model_customization.datasets.redaction import redact_conversation, redact_text
from model_customization.memory.records import Conversation, Message, ToolCall
from model_customization.server.app import build_server

# Secrets in the shapes the detectors know, one per place the issue found them kept verbatim.
KEY_IN_ARGUMENT_KEY = "sk-proj-Kx2Lm9Vt4Wz8Yb1Nc6Df3Gh5Jk0Ls2Mn4PqRt7"
KEY_IN_TOOL_USE_KEY = "ghp_Q8sT2uV4wX6yZ8aB0cD2eF4gH6iJ8kL0mN2p"
SCHEMA_DEFAULT = "Zq8mW2rT9vX4kL7pN3bY"  # no vendor shape: a secret because its property is named api_key
SCHEMA_ENUM_KEY = "xoxb-2048-1024-Lr7Tq3Wm8Zv2Xc5Bn9Kd"
PROPERTY_NAME_KEY = "AKIAQ7XKWPLM4RTN2BZ3"
SPOKEN_PASSWORD = "Tr0ub4dor&3xQ"
SPOKEN_API_KEY = "q9W3e8R7t6Y5u4I3o2P1"
BASE64_HIDDEN_KEY = "sk-ant-api03-Bb5Jj7Kk9Ll1Mm3Nn5Pp7Qq9Rr1Ss3Tt5Uu7Vv9Ww1Xx3Yy5Zz7-Aa1Bb3CcQQ"
WRAPPED_KEY = "glpat-Hx4Jk7Lm2Np5Qr8St1Vw3Y"
FILE_NAME_KEY = "ghp_F1leN4meT0kenAbCdEfGhIjKlMnOpQrStUv12"
DATASET_NAME_KEY = "sk-proj-N4meOfTheDataset9Xx2Cc4Vv6Bb8Nn0Mm1Qq3"

BUILD_SECRETS = {
    "argument key": KEY_IN_ARGUMENT_KEY,
    "tool_use input key": KEY_IN_TOOL_USE_KEY,
    "schema default": SCHEMA_DEFAULT,
    "schema enum": SCHEMA_ENUM_KEY,
    "property name": PROPERTY_NAME_KEY,
    "spoken password": SPOKEN_PASSWORD,
    "spoken api key": SPOKEN_API_KEY,
    "base64": BASE64_HIDDEN_KEY,
    "base64 encoded": base64.b64encode(f"OPENAI_API_KEY={BASE64_HIDDEN_KEY}".encode()).decode(),
    "wrapped": WRAPPED_KEY,
    "file name": FILE_NAME_KEY,
    "dataset name": DATASET_NAME_KEY,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _leaks(blob: bytes | str, secrets: dict[str, str]) -> list[str]:
    data = blob.encode("utf-8", "replace") if isinstance(blob, str) else blob
    found = []
    for name, value in secrets.items():
        forms = {value, json.dumps(value)[1:-1], value.replace("/", "\\/")}
        if any(form.encode() in data for form in forms):
            found.append(name)
    return found


def _files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _chat_line() -> dict[str, Any]:
    """An OpenAI chat line with a secret as a tool-call argument's key, in a tool definition, and in prose."""
    arguments = {"url": "https://api.example.test/v1", "headers": {KEY_IN_ARGUMENT_KEY: "Authorization"}}
    wrapped = WRAPPED_KEY[:14] + "\n" + WRAPPED_KEY[14:]
    encoded = BUILD_SECRETS["base64 encoded"]
    return {
        "messages": [
            {"role": "system", "content": "You are DeployBot."},
            {"role": "user", "content": f"my password is {SPOKEN_PASSWORD} and the api key: {SPOKEN_API_KEY}; call the API"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "http_get", "arguments": json.dumps(arguments)}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": f"env dump: {encoded}\ntoken pasted with a break:\n{wrapped}\nok"},
            {"role": "assistant", "content": "The request went through."},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "http_get",
                    "description": "GET a URL with headers.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "url": {"type": "string"},
                            "api_key": {"type": "string", "default": SCHEMA_DEFAULT},
                            "workspace_token": {"type": "string", "enum": [SCHEMA_ENUM_KEY, "none"]},
                            PROPERTY_NAME_KEY: {"type": "string", "description": "legacy"},
                        },
                        "required": ["url"],
                    },
                },
            }
        ],
    }


def _claude_code_lines(session: str) -> list[dict[str, Any]]:
    """A Claude Code session whose tool_use input has a token as a key."""
    base = {"isSidechain": False, "userType": "external", "cwd": "/srv/ops", "sessionId": session, "version": "2.0.14", "gitBranch": "main"}
    return [
        {**base, "type": "user", "uuid": "u1", "parentUuid": None, "timestamp": "2026-03-08T07:54:05.470Z",
         "message": {"role": "user", "content": "set the header for the registry"}},
        {**base, "type": "assistant", "uuid": "a1", "parentUuid": "u1", "timestamp": "2026-03-08T07:54:06.000Z",
         "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [
             {"type": "tool_use", "id": "toolu_1", "name": "Write", "input": {"file_path": "/srv/ops/headers.json", "content": "{}", KEY_IN_TOOL_USE_KEY: True}}],
             "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 5}}},
        {**base, "type": "user", "uuid": "u2", "parentUuid": "a1", "timestamp": "2026-03-08T07:54:07.000Z",
         "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "written"}]}},
        {**base, "type": "assistant", "uuid": "a2", "parentUuid": "u2", "timestamp": "2026-03-08T07:54:08.000Z",
         "message": {"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [{"type": "text", "text": "Header written."}],
                     "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 5}}},
    ]


def _write_memory(folder: Path) -> None:
    folder.mkdir(parents=True)
    lines = [_chat_line()] + [
        {"messages": [{"role": "user", "content": f"Incident {i}: disk full on node {i}"}, {"role": "assistant", "content": f"Clear /var/log on node {i}."}]}
        for i in range(6)
    ]
    # The file's own name holds a token: card sources, card.md and review_dataset show file names.
    (folder / f"notes-{FILE_NAME_KEY}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    session = "5a1f7c1e-0d3b-4c8e-9a70-3d2b1e4f6a88"
    claude = folder / "claude" / "-srv-ops"
    claude.mkdir(parents=True)
    (claude / f"{session}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in _claude_code_lines(session)), encoding="utf-8")


async def _call(client: Client, outputs: list[tuple[str, str]], name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    text = " ".join(c.text for c in result.content if isinstance(c, types.TextContent))
    outputs.append((f"tool {name}", text + json.dumps(result.structured_content, default=str)))
    assert not result.is_error, f"{name}: {text}"
    return result.structured_content


async def _read(client: Client, outputs: list[tuple[str, str]], uri: str) -> str:
    result = await client.read_resource(uri)
    text = "".join(c.text for c in result.contents if isinstance(c, types.TextResourceContents))
    outputs.append((f"resource {uri}", text))
    return text


@pytest.mark.anyio
async def test_a_build_keeps_no_secret_from_keys_tool_definitions_words_base64_wrapped_lines_file_or_dataset_names(ws, tmp_path):
    memory = tmp_path / "memory"
    _write_memory(memory)
    outputs: list[tuple[str, str]] = []
    async with Client(build_server(ws=ws)) as client:
        built = await _call(client, outputs, "build_dataset_from_memory", {"paths": [str(memory)], "name": f"deploy notes {DATASET_NAME_KEY}"})
        dataset_id = built["dataset_id"]
        assert sum(built["counts"].values()) >= 2 and built["redactions"].get("secret", 0) >= 8, built
        await _call(client, outputs, "list_datasets", {})
        card = json.loads(await _read(client, outputs, f"datasets://{dataset_id}"))
        await _read(client, outputs, f"datasets://{dataset_id}/card.md")
        await _read(client, outputs, "datasets://index")
        review = await client.get_prompt("review_dataset", {"dataset_id": dataset_id, "samples": "5"})
        outputs.append(("prompt review_dataset", json.dumps([m.content.model_dump() for m in review.messages], default=str)))

    # What is kept is still useful: the file is named with a placeholder, the dataset keeps its words.
    assert card["name"].startswith("deploy notes <SECRET_")
    assert any(s["path"].endswith(".jsonl") and "notes-<SECRET_" in s["path"] for s in card["sources"]), card["sources"]
    stored = _files_under(ws.settings.datasets_dir / dataset_id)
    assert {"train.jsonl", "card.json", "card.md"} <= set(stored)
    examples = b"".join(stored[f"{s}.jsonl"] for s in ("train", "validation", "test") if f"{s}.jsonl" in stored)
    assert b"http_get" in examples and b"DeployBot" in examples  # the seeded conversation was kept, redacted
    for where, blob in [*stored.items(), *((f"ledger {p.name}", p.read_bytes()) for p in ws.settings.home.glob("ledger*")), *outputs]:
        assert not _leaks(blob, BUILD_SECRETS), (where, _leaks(blob, BUILD_SECRETS))


@pytest.mark.anyio
async def test_inspecting_a_raw_file_never_quotes_a_value_the_build_would_redact(ws, tmp_path):
    rows = [
        {"messages": [{"role": KEY_IN_ARGUMENT_KEY, "content": "x"}, {"role": "assistant", "content": "y"}]},  # a role that is a key
        {"messages": [{"role": "user", "content": "hi", KEY_IN_TOOL_USE_KEY: 1}, {"role": "assistant", "content": "ok"}]},  # a key that is a token
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok", "weight": PROPERTY_NAME_KEY}]},  # a bad weight
        {FILE_NAME_KEY: [], "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},  # an unknown example key
    ]
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    secrets = {"role": KEY_IN_ARGUMENT_KEY, "message key": KEY_IN_TOOL_USE_KEY, "weight": PROPERTY_NAME_KEY, "example key": FILE_NAME_KEY}
    outputs: list[tuple[str, str]] = []
    async with Client(build_server(ws=ws)) as client:
        report = await _call(client, outputs, "inspect_dataset", {"path": str(raw), "provider": "openai"})
    codes = {f["code"] for f in report["findings"]}
    assert {"unrecognized_role", "message_unrecognized_key", "invalid_weight"} <= codes, report["findings"]
    assert any("<SECRET_" in f["message"] for f in report["findings"]), report["findings"]  # the finding still says what it saw
    for where, blob in outputs:
        assert not _leaks(blob, secrets), (where, _leaks(blob, secrets))


EVAL_SECRETS = {
    "suite prompt": "sk-proj-Ev4lSu1tePr0mptKey8Xx2Cc4Vv6Bb8Nn0Mm1",
    "suite reference": "ghp_Ev4lRef3renceT0kenAbCdEfGhIjKlMnOpQrS",
    "answer": "AKIAZ7Q3EVALANSW3RXX",
    "spoken in the answer": "Pa55w0rd-in-an-answer",
}


@pytest.mark.anyio
async def test_evaluation_suites_and_answers_are_redacted_in_evals_folder_ledger_and_resources(ws, tmp_path, monkeypatch):
    from model_customization.providers.anthropic.client import use_http_client

    suite = tmp_path / "suite.jsonl"
    cases = [
        {"messages": [{"role": "user", "content": f"Rotate {EVAL_SECRETS['suite prompt']} for service {i}?"}], "reference": f"Rotated; the new one is {EVAL_SECRETS['suite reference']}."}
        for i in range(3)
    ]
    suite.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")

    def answer(body: dict[str, Any]) -> str:
        if body["model"] == "claude-leaky":
            return f"Done. Old key {EVAL_SECRETS['answer']}; my password is {EVAL_SECRETS['spoken in the answer']}"
        return "Rotated."

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
    fake = FakeAnthropic(api_key="sk-ant-test-0123456789", responder=answer)
    http = fake.http_client()
    use_http_client(http)
    outputs: list[tuple[str, str]] = []
    try:
        async with Client(build_server(ws=ws)) as client:
            report = await _call(client, outputs, "evaluate", {"suite": str(suite), "models": ["anthropic:claude-plain", "anthropic:claude-leaky"], "max_tokens": 32})
            eval_id = report["eval_id"]
            detail = json.loads(await _read(client, outputs, f"evals://{eval_id}"))
            await _read(client, outputs, f"evals://{eval_id}/report.md")
            await _read(client, outputs, "evals://index")
    finally:
        use_http_client(None)
        http.close()
    # The answers were scored on what the models said, then stored redacted, keyed by the models' own ids.
    per_case = detail.get("per_case") or detail.get("cases") or []
    assert per_case and all("anthropic:claude-leaky" in row["outputs"] for row in per_case), detail.keys()
    assert "<SECRET_" in json.dumps(per_case)
    stored = _files_under(ws.settings.evals_dir / eval_id)
    assert {"report.json", "cases.jsonl", "report.md"} <= set(stored)
    ledger = [(f"ledger {p.name}", p.read_bytes()) for p in ws.settings.home.glob("ledger*")]
    for where, blob in [*stored.items(), *ledger, *outputs]:
        assert not _leaks(blob, EVAL_SECRETS), (where, _leaks(blob, EVAL_SECRETS))


# --- the store URL: its password never printed -------------------------------------------------------------------
@pytest.mark.parametrize(
    "url, password",
    [
        ("postgresql://bob@127.0.0.1:1/ledger?password=Qz7-query-Secret-99", "Qz7-query-Secret-99"),
        ("postgresql://bob:Wx4@at-Secret@99@127.0.0.1:1/ledger", "Wx4@at-Secret@99"),
        ("postgresql://bob:Pv3@port-Secret@127.0.0.1:notaport/ledger", "Pv3@port-Secret"),
        ("postgresql://bob@127.0.0.1:1/ledger?sslmode=disable&sslpassword=Kk8-ssl-Secret-55", "Kk8-ssl-Secret-55"),
    ],
)
def test_a_store_url_password_is_never_printed_by_the_cli(tmp_path, url, password):
    env = {**os.environ, "MODEL_CUSTOMIZATION_HOME": str(tmp_path / "home"), "MODEL_CUSTOMIZATION_STORE_URL": url}
    done = subprocess.run([sys.executable, "-m", "model_customization", "dataset", "list"], env=env, capture_output=True, text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in output, output
    assert "***" in output and "bob" in output, output  # the URL is still shown, masked
    for piece in [password, *password.split("@")]:
        if len(piece) >= 4:
            assert piece not in output, (piece, output)


# --- the HTTP access log: no query value -------------------------------------------------------------------------
def test_a_token_sent_in_the_query_string_is_not_written_to_the_access_log(tmp_path):
    from test_http_access import INITIALIZE, MCP_HEADERS, _serve

    token = "query-token-5d1e9b7a3c2f4e6a80"
    served = _serve(tmp_path / "home", tmp_path / "server.log", tokens="configured-token-0a9b8c7d6e5f4a3b")
    server = next(served)
    try:
        with httpx2.Client(timeout=10) as http:
            refused = http.post(f"{server.url}?token={token}&access_token={token}", json=INITIALIZE, headers=MCP_HEADERS)
            assert refused.status_code == 401  # a token in the URL is not a credential
            http.get(f"http://127.0.0.1:{server.port}/.well-known/oauth-protected-resource/mcp?api_key={token}")
    finally:
        served.close()
    log = server.output()
    assert "POST /mcp?token=***&access_token=***" in log, log[-2000:]
    assert token not in log


# --- properties --------------------------------------------------------------------------------------------------
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _run(size: int, alphabet: str = _ALNUM) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=size, max_size=size)


# Secrets in the detectors' own shapes (redaction.py _SECRET_PATTERNS), with a digit where a shape needs one.
SECRETS = st.one_of(
    st.builds(lambda a, d: f"sk-proj-{a}{d}", _run(30), st.sampled_from("0123456789")),
    st.builds(lambda a, d: f"sk-ant-api03-{a}{d}", _run(40), st.sampled_from("0123456789")),
    st.builds(lambda a: f"ghp_{a}", _run(36)),
    st.builds(lambda a: f"glpat-{a}", _run(22)),
    st.builds(lambda a: f"hf_{a}", _run(34)),
    st.builds(lambda a: f"AKIA{a}", _run(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")),
    st.builds(lambda a: f"xoxb-{a}", _run(24)),
    st.builds(lambda a, b, c: f"eyJ{a}.eyJ{b}.{c}", _run(12), _run(16), _run(20)),
)
PLACES = ("argument key", "argument value", "tool property name", "tool default", "tool enum", "content", "spoken", "wrapped", "base64", "names only")


def _wrap(secret: str, at: int) -> str:
    cut = 4 + at % (len(secret) - 8)
    return secret[:cut] + "\n" + secret[cut:]


def _conversation(secret: str, place: str, at: int) -> Conversation:
    content, arguments, tools = "Deploy the service.", json.dumps({"region": "eu"}), None
    if place == "argument key":
        arguments = json.dumps({"headers": {secret: "x"}})
    elif place == "argument value":
        arguments = json.dumps({"note": f"use {secret} here"})
    elif place in ("tool property name", "tool default", "tool enum"):
        prop = {"tool property name": {secret: {"type": "string"}}, "tool default": {"api_key": {"type": "string", "default": secret}},
                "tool enum": {"token": {"type": "string", "enum": [secret]}}}[place]
        tools = [{"type": "function", "function": {"name": "deploy", "parameters": {"type": "object", "properties": prop}}}]
    elif place == "content":
        content = f"Deploy with {secret}."
    elif place == "spoken":
        content = f"the api key is {secret}"
    elif place == "wrapped":
        content = f"here it is:\n{_wrap(secret, at)}\nthanks"
    elif place == "base64":
        content = f"echo {base64.b64encode(('TOKEN=' + secret).encode()).decode()} | base64 -d"
    messages = [
        Message("user", content),
        Message("assistant", "", tool_calls=[ToolCall("call_1", "deploy", arguments)]),
        Message("tool", "deployed", tool_call_id="call_1"),
        Message("assistant", "Done."),
    ]
    return Conversation("s1", messages, "memory.jsonl", 1, "openai_chat", tools=tools)


def _dumped(conv: Conversation) -> str:
    return json.dumps([[m.role, m.content, [[c.name, c.arguments] for c in m.tool_calls]] for m in conv.messages] + [conv.tools], ensure_ascii=False)


@settings(max_examples=150, deadline=None)
@given(SECRETS, st.sampled_from([p for p in PLACES if p != "names only"]), st.integers(0, 1000))
def test_a_generated_secret_survives_in_no_place_of_a_conversation_and_redacting_twice_is_once(secret, place, at):
    conv = _conversation(secret, place, at)
    once, counts = redact_conversation(conv)
    assert secret not in _dumped(once) and counts["secret"] >= 1, (place, _dumped(once))
    twice, again = redact_conversation(once)
    assert _dumped(twice) == _dumped(once) and not again


@settings(max_examples=100, deadline=None)
@given(SECRETS, st.sampled_from(["plain", "wrapped", "base64", "spoken", "in a key"]), st.integers(0, 1000))
def test_a_generated_secret_survives_in_no_field_of_a_record(secret, shape, at):
    hidden = {"plain": secret, "wrapped": _wrap(secret, at), "base64": base64.b64encode(secret.encode()).decode(),
              "spoken": f"my password is {secret}", "in a key": secret}[shape]
    record = {"id": "ds-0123456789ab", "name": f"notes {hidden}", "sources": [{"path": f"/data/{hidden}.jsonl", "sha256": "ab" * 32}],
              "new_field": {hidden if shape == "in a key" else "k": [hidden]}}
    from model_customization.datasets.redaction import (
        redact_record,  # the choke point for records (new with issue 17)
    )

    once, _ = redact_record(record)
    assert secret not in json.dumps(once) and hidden not in json.dumps(once)
    assert once["id"] == record["id"] and once["sources"][0]["sha256"] == "ab" * 32  # our own ids and hashes stay
    assert redact_record(once)[0] == once
    assert redact_text(redact_text(hidden)[0])[0] == redact_text(hidden)[0]


def _message_line(message: Message) -> dict[str, Any]:
    """A message as an OpenAI chat file writes it."""
    line: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        line["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in message.tool_calls]
    if message.tool_call_id:
        line["tool_call_id"] = message.tool_call_id
    return line


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(SECRETS, st.sampled_from(PLACES), st.integers(0, 1000))
def test_a_generated_secret_survives_nowhere_a_build_stores_or_returns(ws, tmp_path_factory, secret, place, at):
    folder = tmp_path_factory.mktemp("memory")
    conv = _conversation(secret, place, at)
    line: dict[str, Any] = {"messages": [_message_line(m) for m in conv.messages]}
    if conv.tools:
        line["tools"] = conv.tools
    others = [{"messages": [{"role": "user", "content": f"q{i} {at}"}, {"role": "assistant", "content": f"a{i}"}]} for i in range(4)]
    # The secret also names the file and the dataset.
    (folder / f"mem-{secret}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in [line, *others]), encoding="utf-8")
    result = build_dataset(ws, [folder], name=f"set {secret}")
    stored = _files_under(ws.settings.datasets_dir / result.dataset_id)
    row = ws.store.datasets.get(result.dataset_id)
    returned = json.dumps([result.card, result.problems, result.skipped, row["name"], row["card"]], default=str)
    for where, blob in [*stored.items(), ("returned and ledger row", returned)]:
        assert secret.encode() not in (blob if isinstance(blob, bytes) else blob.encode()), (place, where)


def test_a_suite_error_never_quotes_a_secret_the_suite_holds(ws, tmp_path):
    from model_customization.errors import UserError
    from model_customization.evaluation.suites import load_suite

    suite = tmp_path / "suite.jsonl"
    for case in (
        {"messages": [{"role": "user", "content": "hi"}], "reference": "ok", EVAL_SECRETS["suite prompt"]: 1},  # an unknown key
        {"messages": [{"role": "user", "content": "hi"}], "regex": f"({EVAL_SECRETS['suite reference']}"},  # a regex that does not compile
    ):
        suite.write_text(json.dumps(case) + "\n", encoding="utf-8")
        with pytest.raises(UserError) as refused:
            load_suite(suite)
        assert "suite.jsonl:1" in str(refused.value) and "<SECRET_" in str(refused.value)
        assert not _leaks(str(refused.value), EVAL_SECRETS), str(refused.value)
