"""/v1 models and chat completions through the real `openai` SDK against the live server on 127.0.0.1.

Every response the server sends is validated against OpenAI's published spec (tests/v1_live.py). The embedded model
answers (real weights, CPU), so these are marked slow.
"""

from __future__ import annotations

import json

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion

from v1_live import serving

pytestmark = pytest.mark.slow
EMBEDDED = "SmolLM2-135M-Instruct"
ASK = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_cache, embedded_base):
    folder = tmp_path_factory.mktemp("v1-chat")
    with serving(folder / "home", folder / "server.log", env={"MODEL_CUSTOMIZATION_MODEL_CACHE": str(model_cache)}) as live:
        yield live


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def _streamed(client, **request):
    """(text, tool calls, finish_reason, usage) reassembled from the stream's chunks, as a client would."""
    pieces, calls, finish, usage = [], {}, None, None
    for chunk in client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **request):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": call.id, "name": "", "arguments": ""})
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    return "".join(pieces), [calls[i] for i in sorted(calls)], finish, usage


def test_models_lists_the_embedded_base_and_finds_one(client):
    listed = client.models.list()
    assert EMBEDDED in [m.id for m in listed.data]
    assert client.models.retrieve(EMBEDDED).id == EMBEDDED
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("ft-does-not-exist")
    assert "GET /v1/models" in missing.value.body["message"]


def test_streaming_reassembles_to_the_same_answer_and_usage(client):
    whole = client.chat.completions.create(model=EMBEDDED, messages=ASK, max_tokens=24, temperature=0)
    text, calls, finish, usage = _streamed(client, model=EMBEDDED, messages=ASK, max_tokens=24, temperature=0)
    answer = whole.choices[0]
    assert answer.message.content and text == answer.message.content
    assert calls == [] and finish == answer.finish_reason
    assert usage.model_dump() == whole.usage.model_dump()
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    assert whole.model == EMBEDDED and whole.object == "chat.completion"


def test_max_tokens_stop_and_length(client):
    cut = client.chat.completions.create(model=EMBEDDED, messages=ASK, max_completion_tokens=5, temperature=0)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 5
    legacy = client.chat.completions.create(model=EMBEDDED, messages=ASK, max_tokens=5, temperature=0)
    assert legacy.choices[0].message.content == cut.choices[0].message.content
    full = client.chat.completions.create(model=EMBEDDED, messages=ASK, max_tokens=40, temperature=0).choices[0].message.content
    word = full.split()[2]  # a word from inside the answer: the answer ends just before it
    stopped = client.chat.completions.create(model=EMBEDDED, messages=ASK, max_tokens=40, temperature=0, stop=[word])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.content == full[: full.index(word)]
    streamed, _, finish, _ = _streamed(client, model=EMBEDDED, messages=ASK, max_tokens=40, temperature=0, stop=[word])
    assert streamed == full[: full.index(word)] and finish == "stop"


def test_seed_makes_sampling_repeatable(client):
    def sample(seed):
        return client.chat.completions.create(model=EMBEDDED, messages=ASK, max_tokens=24, temperature=1.0, seed=seed).choices[0].message.content

    first = sample(7)
    assert sample(7) == first
    assert len({first, sample(8), sample(9)}) > 1


def test_agent_name_follows_deploy_and_rollback(server, client, tiny_model, monkeypatch):
    from model_customization import deployments
    from model_customization.workspace import Workspace

    ws = Workspace.open(server.home)
    try:
        with pytest.raises(openai.NotFoundError) as nothing:
            client.chat.completions.create(model="agent:support-bot", messages=ASK, max_tokens=4)
        assert "deploy_model" in nothing.value.body["message"]
        deployments.deploy_model(ws, "support-bot", EMBEDDED)
        assert client.chat.completions.create(model="agent:support-bot", messages=ASK, max_tokens=4, temperature=0).model == EMBEDDED
        deployments.deploy_model(ws, "support-bot", str(tiny_model), force=True, reason="test: a second model")
        deployments.deploy_model(ws, "support-bot", EMBEDDED, task="triage", force=True, reason="test: a task of its own")
        assert client.chat.completions.create(model="agent:support-bot", messages=ASK, max_tokens=4, temperature=0).model == str(tiny_model)
        # a task with its own model; an unknown task falls back to the agent's default
        assert client.chat.completions.create(model="agent:support-bot:triage", messages=ASK, max_tokens=4, temperature=0).model == EMBEDDED
        assert client.chat.completions.create(model="agent:support-bot:other", messages=ASK, max_tokens=4, temperature=0).model == str(tiny_model)
        ids = [m.id for m in client.models.list().data]
        assert "agent:support-bot" in ids and "agent:support-bot:triage" in ids
        deployments.rollback(ws, "support-bot")
        assert client.chat.completions.create(model="agent:support-bot", messages=ASK, max_tokens=4, temperature=0).model == EMBEDDED
    finally:
        ws.store.close()


def test_tool_results_in_the_conversation_are_accepted(client):
    # An agent loop sends the model's earlier tool call and the tool's result back: both are rendered as the model
    # was trained on them (the call as <tool_call> text, the result as a tool turn), and the model answers.
    messages = [
        {"role": "system", "content": "You are a weather assistant."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
    ]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    answer = client.chat.completions.create(model=EMBEDDED, messages=messages, tools=tools, max_tokens=16, temperature=0)
    assert answer.choices[0].message.content


def test_errors_are_openai_shaped_and_name_the_field(server, client):
    with pytest.raises(openai.BadRequestError) as several:
        client.chat.completions.create(model=EMBEDDED, messages=ASK, n=2)
    assert several.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError) as image:
        client.chat.completions.create(model=EMBEDDED, messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}])
    assert image.value.body["param"] == "messages[0].content[0]"
    with pytest.raises(openai.BadRequestError) as temperature:
        client.chat.completions.create(model=EMBEDDED, messages=ASK, temperature=3)
    assert temperature.value.body["param"] == "temperature"
    with server.http() as http:
        broken = http.post(f"{server.base_url}/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
        assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"


# --- tool calls read back (no model needed: the text a tuned model writes) --------------------------------------
def test_tool_call_text_becomes_sdk_tool_calls():
    from model_customization.serving.chat import StreamedContent, split_tool_calls

    tools = frozenset({"get_weather"})
    text = 'Let me check.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    content, calls = split_tool_calls(text, tools)
    assert content == "Let me check." and [c["name"] for c in calls] == ["get_weather"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    body = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None, "message": {
            "role": "assistant", "content": content, "refusal": None,
            "tool_calls": [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]}}],
    }  # fmt: skip
    parsed = ChatCompletion.model_validate(body)
    assert parsed.choices[0].message.tool_calls[0].function.name == "get_weather"
    # streamed piece by piece, only the content before the call is sent as content, whatever the cut points
    for size in (1, 3, 7):
        stream = StreamedContent(tools)
        sent = "".join(stream.add(text[i : i + size]) for i in range(0, len(text), size)) + stream.finish(content)
        assert sent == content
    # an unknown tool, broken JSON, or no tools offered: the text stays the answer, nothing is lost
    assert split_tool_calls(text.replace("get_weather", "rm_rf"), tools) == (text.replace("get_weather", "rm_rf"), [])
    assert split_tool_calls("<tool_call>{oops</tool_call>", tools)[1] == []
    assert split_tool_calls(text, frozenset()) == (text, [])


def test_foreign_host_and_origin_are_refused_on_v1(server):
    with httpx2.Client() as http:
        for path in ("/v1/models", "/v1/chat/completions"):
            method = http.get if path.endswith("models") else http.post
            assert method(f"http://127.0.0.1:{server.port}{path}", headers={"Host": "attacker.example"}).status_code == 421
            assert method(f"http://127.0.0.1:{server.port}{path}", headers={"Origin": "http://attacker.example"}).status_code == 403
        assert http.get(f"http://127.0.0.1:{server.port}/v1/models", headers={"Host": f"localhost:{server.port}"}).status_code == 200


def test_every_response_above_was_checked_against_the_spec(server):
    # runs last in this module: the hook validated successes, errors and streams alike
    checked = set(server.checked)
    assert {"GET /v1/models 200", "POST /v1/chat/completions 200", "POST /v1/chat/completions 400", "GET /v1/models/ft-does-not-exist 404"} <= checked
