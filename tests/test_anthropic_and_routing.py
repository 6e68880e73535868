"""Claude through the Messages API (the SDK against a fake endpoint), the chat router, prompt_model and a judge.

The Anthropic SDK talks to tests/anthropic_fake.py through its own HTTP client (httpx2 MockTransport): the fake
refuses whatever the real API would refuse (wrong key, roles that do not alternate, sampling parameters at API
version 2026-10-21...) and answers with payloads the SDK's Message model accepts.
"""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import anthropic
import pytest
from anthropic_fake import ApiErrorReply, FakeAnthropic
from mcp import Client

from model_customization.errors import UserError
from model_customization.providers.chat import chat, resolve_chat_model
from model_customization.server.app import build_server

KEY = "sk-ant-test-0123456789"
RETRY_SOON = {"retry-after": "0.01"}  # the SDK honours retry-after; keeps the retry tests fast


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):
    from model_customization.providers.anthropic.client import use_http_client

    fake_api = FakeAnthropic(api_key=KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    use_http_client(fake_api.http_client())
    yield fake_api
    use_http_client(None)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- Anthropic: the request that arrives, the answer that comes back -------------------------------------------


def test_prompt_reaches_the_messages_api_with_system_and_max_tokens(ws, fake):
    messages = [
        {"role": "system", "content": "You are OpsBot."},
        {"role": "user", "content": "Triage: [db] ERROR down"},
        {"role": "system", "content": "Answer in one line."},
        {"role": "user", "content": "Be brief."},
    ]
    result = chat(ws, "claude-haiku-4-5", messages, max_tokens=50)

    assert fake.accepted == [
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 50,
            "system": "You are OpsBot.\n\nAnswer in one line.",
            # neighbouring user turns merged: the API wants user/assistant alternating
            "messages": [{"role": "user", "content": "Triage: [db] ERROR down\n\nBe brief."}],
        }
    ]
    headers = fake.headers[-1]
    assert headers["anthropic-version"] == "2026-10-21"
    assert headers["authorization"] == f"Bearer {KEY}"

    assert result["provider"] == "anthropic"
    assert result["model"] == "claude-haiku-4-5"
    assert result["text"] == "echo: Triage: [db] ERROR down\n\nBe brief."
    # The fake counts one token per word (+3 per request): 7 system words + 6 message words.
    assert result["prompt_tokens"] == 7 + 6 + 3
    assert result["completion_tokens"] == len(result["text"].split())
    assert result["stop_reason"] == "stop"
    assert result["seconds"] >= 0
    assert KEY not in json.dumps(result)


def test_answer_cut_by_max_tokens_says_length(ws, fake):
    fake.responder = lambda body: "one two three four five six seven eight"
    result = chat(ws, "anthropic:claude-sonnet-5", [{"role": "user", "content": "count"}], max_tokens=3)
    assert fake.accepted[-1]["model"] == "claude-sonnet-5"  # the prefix is ours, not part of the model id
    assert fake.accepted[-1]["max_tokens"] == 3
    assert result["text"] == "one two three"
    assert result["completion_tokens"] == 3
    assert result["stop_reason"] == "length"


def test_temperature_is_refused_before_any_request_because_the_api_has_none(ws, fake):
    with pytest.raises(UserError, match="temperature") as refused:
        chat(ws, "claude-haiku-4-5", [{"role": "user", "content": "hi"}], temperature=0.7)
    assert "leave temperature at 0" in str(refused.value).lower()
    assert fake.requests == []
    # Why: the API version the SDK speaks refuses sampling parameters, even at their old default.
    from model_customization.providers.anthropic.client import anthropic_client

    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        anthropic_client().messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}], extra_body={"temperature": 1.0}
        )


def test_conversation_is_reshaped_into_alternating_turns(ws, fake):
    from model_customization.providers.anthropic.chat import to_messages_request

    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "4 C"},
        {"role": "tool", "content": "wind 3 m/s"},  # plain-text form, as evaluation prompts carry tool results
        {"role": "user", "content": ""},  # empty turns are dropped
        {"role": "assistant", "content": [{"type": "text", "text": "It is "}]},  # a final assistant turn is continued
    ]
    system, turns = to_messages_request(messages)
    assert system == "sys"
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]
    assert turns[1]["content"] == '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
    assert turns[2]["content"] == "<tool_result>\n4 C\n</tool_result>\n\n<tool_result>\nwind 3 m/s\n</tool_result>"
    assert turns[3]["content"] == "It is"  # the API refuses a final assistant turn ending in whitespace

    chat(ws, "claude-haiku-4-5", messages, max_tokens=10)  # and the fake, checking like the API, accepts it
    assert fake.accepted[-1]["messages"] == turns

    with pytest.raises(UserError, match="begin with a user message"):
        to_messages_request([{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "hi"}])
    with pytest.raises(UserError, match="at least one user message"):
        to_messages_request([{"role": "system", "content": "only a system prompt"}])
    with pytest.raises(UserError, match="image_url"):
        to_messages_request([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
    with pytest.raises(UserError, match="role 'developer'"):
        to_messages_request([{"role": "developer", "content": "x"}])


# --- Anthropic: keys and API errors ------------------------------------------------------------------------------


def test_missing_key_is_a_user_error_that_names_the_variable(ws, fake, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(UserError, match="ANTHROPIC_API_KEY"):
        chat(ws, "claude-haiku-4-5", [{"role": "user", "content": "hi"}])
    monkeypatch.setenv("ANTHROPIC_API_KEY", "   ")
    with pytest.raises(UserError, match="ANTHROPIC_API_KEY"):
        chat(ws, "claude-haiku-4-5", [{"role": "user", "content": "hi"}])
    assert fake.requests == []


def test_rejected_key_gives_anthropics_message_and_never_the_key(ws, fake, monkeypatch):
    wrong = "sk-ant-wrong-key-987654321"
    monkeypatch.setenv("ANTHROPIC_API_KEY", wrong)
    with pytest.raises(UserError) as refused:
        chat(ws, "claude-haiku-4-5", [{"role": "user", "content": "hi"}])
    text = str(refused.value)
    assert "invalid x-api-key" in text and "401" in text
    assert "Check ANTHROPIC_API_KEY" in text
    assert wrong not in text and "wrong-key" not in text
    assert len(fake.requests) == 1  # a 401 is not retried


def test_rate_limit_is_retried_by_the_sdk(ws, fake):
    fake.fail_next(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", headers=RETRY_SOON)
    result = chat(ws, "claude-haiku-4-5", [{"role": "user", "content": "hi"}])
    assert result["text"] == "echo: hi"
    assert len(fake.requests) == 2


def test_overload_that_persists_ends_in_a_clear_error(ws, fake):
    fake.fail_next(529, "overloaded_error", "Overloaded", times=5, headers=RETRY_SOON)
    with pytest.raises(UserError) as failed:
        chat(ws, "claude-haiku-4-5", [{"role": "user", "content": "hi"}])
    assert "overloaded" in str(failed.value).lower() and "529" in str(failed.value)
    assert len(fake.requests) == 3  # the first try and the SDK's two retries


def test_unknown_model_is_not_retried_and_says_what_to_use(ws, fake):
    fake.fail_next(404, "not_found_error", "model: claude-nope-9")
    with pytest.raises(UserError) as failed:
        chat(ws, "claude-nope-9", [{"role": "user", "content": "hi"}])
    assert "claude-nope-9" in str(failed.value) and "not_found_error" in str(failed.value)
    assert len(fake.requests) == 1


# --- the router ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("claude-sonnet-5", ("anthropic", "claude-sonnet-5")),
        ("anthropic:claude-haiku-4-5", ("anthropic", "claude-haiku-4-5")),
        ("openai:my-deployment", ("openai", "my-deployment")),
        ("bedrock:triage-custom", ("bedrock", "triage-custom")),
        ("local:claude-lookalike-folder", ("local", "claude-lookalike-folder")),
        ("ft:gpt-4o-mini-2024-07-18:acme::AbC123", ("openai", "ft:gpt-4o-mini-2024-07-18:acme::AbC123")),
        ("gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("chatgpt-4o-latest", ("openai", "chatgpt-4o-latest")),
        ("o1", ("openai", "o1")),
        ("o3-mini", ("openai", "o3-mini")),
        ("o4-mini", ("openai", "o4-mini")),
        ("anthropic.claude-3-haiku-20240307-v1:0", ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0")),
        ("us.amazon.nova-lite-v1:0", ("bedrock", "us.amazon.nova-lite-v1:0")),
        ("arn:aws:bedrock:us-east-1:123456789012:custom-model/x", ("bedrock", "arn:aws:bedrock:us-east-1:123456789012:custom-model/x")),
        ("SmolLM2-135M-Instruct", ("local", "SmolLM2-135M-Instruct")),
        ("ft-0123abcd", ("local", "ft-0123abcd")),
        ("/models/my-llama", ("local", "/models/my-llama")),
        ("o3x", ("local", "o3x")),
        ("gpt4all-folder", ("local", "gpt4all-folder")),
    ],
)
def test_routing_table(ws, given, expected):
    assert resolve_chat_model(ws, given) == expected


def test_registered_models_route_to_their_provider_before_name_rules(ws):
    for model_id, provider in [("triage-prod", "bedrock"), ("gpt-lookalike", "local"), ("claude-tuned-elsewhere", "openai")]:
        ws.store.models.add(
            {"id": model_id, "provider": provider, "kind": "tuned", "base_model": "b", "path": None, "job_id": None, "dataset_id": None, "details": None}
        )
    assert resolve_chat_model(ws, "triage-prod") == ("bedrock", "triage-prod")
    assert resolve_chat_model(ws, "gpt-lookalike") == ("local", "gpt-lookalike")
    assert resolve_chat_model(ws, "claude-tuned-elsewhere") == ("openai", "claude-tuned-elsewhere")
    with pytest.raises(UserError, match="no model"):
        resolve_chat_model(ws, "anthropic:")
    with pytest.raises(UserError, match="No model given"):
        resolve_chat_model(ws, "  ")


@pytest.mark.parametrize("provider", ["openai", "bedrock"])
def test_router_hands_openai_and_bedrock_models_to_their_chat_module(ws, monkeypatch, provider):
    calls: list[dict[str, Any]] = []

    def provider_chat(ws_arg, model, messages, *, max_tokens, temperature, seed, **endpoint):
        assert ws_arg is ws and set(endpoint) <= {"endpoint"}  # an OpenAI-compatible provider names its endpoint
        calls.append({"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature, "seed": seed})
        return {"model": model, "text": "fine", "prompt_tokens": 5, "completion_tokens": 1, "seconds": 0.1}

    module = types.ModuleType(f"model_customization.providers.{provider}.chat")
    module.chat = provider_chat
    monkeypatch.setitem(sys.modules, module.__name__, module)

    name = "gpt-4o-mini" if provider == "openai" else "anthropic.claude-3-haiku-20240307-v1:0"
    conversation = [{"role": "user", "content": "run it"}, {"role": "assistant", "content": "<tool_call>x</tool_call>"}, {"role": "tool", "content": "done"}]
    result = chat(ws, name, conversation, max_tokens=12, temperature=0.5, seed=7)
    assert calls == [
        {
            "model": name,
            # a tool result without its call id is passed on as user text: no API takes it as a tool message
            "messages": [conversation[0], conversation[1], {"role": "user", "content": "<tool_result>\ndone\n</tool_result>"}],
            "max_tokens": 12,
            "temperature": 0.5,
            "seed": 7,
        }
    ]
    notice = result.pop("notice", None)  # gpt-4o-mini shuts down on 2027-01-14 (OpenAI's deprecations page)
    assert (notice is not None and "2027-01-14" in notice) == (provider == "openai")
    assert result == {"model": name, "text": "fine", "prompt_tokens": 5, "completion_tokens": 1, "seconds": 0.1, "provider": provider, "stop_reason": None}


def test_router_runs_local_models_on_this_machine(ws, tiny_model):
    result = chat(ws, f"local:{tiny_model}", [{"role": "user", "content": "hello"}], max_tokens=4)
    assert result["provider"] == "local"
    assert result["model"] == str(Path(tiny_model).resolve())
    assert 1 <= result["completion_tokens"] <= 4
    assert result["stop_reason"] == ("length" if result["completion_tokens"] == 4 else "stop")
    with pytest.raises(UserError, match="temperature"):
        chat(ws, str(tiny_model), [{"role": "user", "content": "hello"}], temperature=3)


# --- the judge's reply parser --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("Score: 8", 8),
        ("score:10", 10),
        ("**Score:** 3/10", 3),
        ("Score - 6 out of 10", 6),
        ("The answer misses the component. Score: 4", 4),
        ("I would rate it 7 out of 10.", 7),
        ("9", 9),
        ("  1.\n", 1),
        ("Rating: 5", 5),
        ("Score: 7\n\nReason: close to the reference, Score: 7", 7),
    ],
)
def test_judge_replies_that_parse(reply, rating):
    from model_customization.evaluation.runner import parse_judge_rating

    assert parse_judge_rating(reply) == rating


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty"),
        ("I cannot grade this answer.", "no 'Score: N'"),
        ("Score: 11", "outside 1-10"),
        ("Score: 0", "outside 1-10"),
        ("Score: 7.5", "not a whole number"),
        ("Score: 3 ... on reflection, Score: 6", "conflicting"),
        ("between 2 and 9", "no 'Score: N'"),
    ],
)
def test_judge_replies_that_do_not_parse_say_why(reply, reason):
    from model_customization.evaluation.runner import parse_judge_rating

    with pytest.raises(ValueError, match=reason):
        parse_judge_rating(reply)


# --- through MCP ---------------------------------------------------------------------------------------------------


def _text(result) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


@pytest.mark.anyio
async def test_prompt_model_tool_prompts_claude(ws, fake, monkeypatch):
    async with Client(build_server(ws=ws)) as client:
        result = await client.call_tool(
            "prompt_model", {"model": "claude-haiku-4-5", "prompt": "Triage: [cdn] INFO ok", "system": "Be terse.", "max_tokens": 20}
        )
        assert not result.is_error, _text(result)
        answer = result.structured_content
        assert answer["provider"] == "anthropic" and answer["model"] == "claude-haiku-4-5"
        assert answer["text"] == "echo: Triage: [cdn] INFO ok"
        assert answer["stop_reason"] == "stop"
        assert fake.accepted[-1] == {
            "model": "claude-haiku-4-5",
            "max_tokens": 20,
            "system": "Be terse.",
            "messages": [{"role": "user", "content": "Triage: [cdn] INFO ok"}],
        }

        refused = await client.call_tool("prompt_model", {"model": "claude-haiku-4-5", "prompt": "hi", "temperature": 0.9})
        assert refused.is_error and "temperature" in _text(refused)

        monkeypatch.delenv("ANTHROPIC_API_KEY")
        missing = await client.call_tool("prompt_model", {"model": "anthropic:claude-haiku-4-5", "prompt": "hi"})
        assert missing.is_error and "ANTHROPIC_API_KEY" in _text(missing)
    assert len(fake.requests) == 1


def _triage_dataset(ws) -> str:
    from model_customization.datasets.build import store_examples

    def example(log: str, answer: str) -> dict[str, Any]:
        return {"messages": [{"role": "system", "content": "You are OpsBot."}, {"role": "user", "content": f"Triage: {log}"}, {"role": "assistant", "content": answer}]}

    examples = [
        ("train", example("[api] WARN slow", "TRIAGE severity=low component=api action=ignore")),
        ("test", example("[db] ERROR down", "TRIAGE severity=high component=db action=page")),
        ("test", example("[cdn] INFO ok", "TRIAGE severity=low component=cdn action=ignore")),
        ("test", example("[payments] ERROR timeout", "TRIAGE severity=high component=payments action=page")),
    ]
    card_fields = {"conversations_read": 4, "sources": [], "formats": {}, "dropped": {}, "unreadable": {"count": 0, "first": []}, "options": {}}
    dataset_id, _, _ = store_examples(ws, examples, name="triage", method="sft", card_fields=card_fields)
    return dataset_id


@pytest.mark.anyio
@pytest.mark.timeout(180)
async def test_evaluate_with_a_claude_judge_records_every_score_and_every_failure(ws, fake, tiny_model):
    dataset_id = _triage_dataset(ws)
    local_id = str(Path(tiny_model).resolve())
    # Claude the candidate answers "ANSWER <component>"; Claude the judge rates by (candidate, component).
    judge_replies: dict[tuple[str, str], Any] = {
        (local_id, "db"): "Score: 2",
        (local_id, "cdn"): "**Score:** 3/10",
        (local_id, "payments"): "I cannot grade this answer.",
        ("claude-haiku-4-5", "db"): "Score: 10",
        ("claude-haiku-4-5", "cdn"): "Score: 8",
        ("claude-haiku-4-5", "payments"): ApiErrorReply(400, "invalid_request_error", "prompt is too long"),
    }
    judged: list[tuple[str, str]] = []

    def component(text: str) -> str:
        return next(w for w in text.split() if w.startswith("[")).strip("[]")

    def responder(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        if body["model"] == "claude-haiku-4-5":
            return f"ANSWER {component(prompt)}"
        assert body["model"] == "claude-sonnet-5"
        conversation = prompt.split("<conversation>\n")[1].split("\n</conversation>")[0]
        candidate = prompt.split("<candidate_answer>\n")[1].split("\n</candidate_answer>")[0]
        key = ("claude-haiku-4-5" if candidate.startswith("ANSWER ") else local_id, component(conversation))
        judged.append(key)
        reply = judge_replies[key]
        if isinstance(reply, Exception):
            raise reply
        return reply

    fake.responder = responder
    progress: list[tuple[float, float | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total))

    async with Client(build_server(ws=ws)) as client:
        result = await client.call_tool(
            "evaluate",
            {"dataset_id": dataset_id, "models": [str(tiny_model), "claude-haiku-4-5"], "max_tokens": 8, "judge": "anthropic:claude-sonnet-5"},
            progress_callback=on_progress,
        )
        assert not result.is_error, _text(result)
        report = result.structured_content
        evaluation = json.loads((await client.read_resource(report["resource_uri"])).contents[0].text)

    assert report["cases"] == 3 and report["judge"] == "anthropic:claude-sonnet-5"
    assert set(report["scores"]) == {local_id, "claude-haiku-4-5"}
    local, claude = report["scores"][local_id], report["scores"]["claude-haiku-4-5"]
    assert local["judge_score"] == pytest.approx(round(((2 - 1) / 9 + (3 - 1) / 9) / 2, 4))  # mean over judged cases
    assert local["judge_errors"] == 1
    assert claude["judge_score"] == pytest.approx(round((1.0 + 7 / 9) / 2, 4))
    assert claude["judge_errors"] == 1
    assert claude["exact_match"] == 0.0 and 0 < claude["token_f1"] < 1  # "ANSWER db" shares the component word
    assert progress[-1] == (15, 15)  # 3 cases x 2 models, generated then judged, and the local model's 3 reference likelihoods
    assert sorted(judged) == sorted(judge_replies)  # every answer was judged exactly once

    # Claude the candidate was asked one case at a time, with the evaluation's max_tokens and the case's prompt.
    candidate_requests = [b for b in fake.accepted if b["model"] == "claude-haiku-4-5"]
    assert len(candidate_requests) == 3
    assert {"model": "claude-haiku-4-5", "max_tokens": 8, "system": "You are OpsBot.", "messages": [{"role": "user", "content": "Triage: [db] ERROR down"}]} in candidate_requests
    # The judge saw the conversation, the reference and the candidate's answer, with the rubric as its system prompt.
    judge_requests = [b for b in fake.requests if b["model"] == "claude-sonnet-5"]
    assert len(judge_requests) == 6
    db_judged = next(b for b in judge_requests if "ANSWER db" in b["messages"][0]["content"])
    assert "Score: N" in db_judged["system"] and "1 (wrong" in db_judged["system"]
    assert "TRIAGE severity=high component=db action=page" in db_judged["messages"][0]["content"]
    assert "Triage: [db] ERROR down" in db_judged["messages"][0]["content"]
    assert db_judged["max_tokens"] == 1024
    assert all("temperature" not in b for b in fake.requests)

    assert evaluation["judge"]["model"] == "anthropic:claude-sonnet-5"
    by_component = {component(c["prompt"][-1]["content"]): c["outputs"] for c in evaluation["per_case"]}
    assert set(by_component) == {"db", "cdn", "payments"}
    assert [by_component[c]["claude-haiku-4-5"]["text"] for c in ("db", "cdn", "payments")] == ["ANSWER db", "ANSWER cdn", "ANSWER payments"]
    local_outputs = [by_component[c][local_id] for c in ("db", "cdn", "payments")]
    assert [o["judge_rating"] for o in local_outputs] == [2, 3, None]
    assert [o["judge_score"] for o in local_outputs] == [round(1 / 9, 4), round(2 / 9, 4), None]
    assert local_outputs[2]["judge_reply"] == "I cannot grade this answer."
    assert "Score: N" in local_outputs[2]["judge_error"]
    claude_outputs = [by_component[c]["claude-haiku-4-5"] for c in ("db", "cdn", "payments")]
    assert [o["judge_score"] for o in claude_outputs] == [1.0, round(7 / 9, 4), None]
    assert claude_outputs[2]["judge_reply"] is None
    assert "judge call failed" in claude_outputs[2]["judge_error"] and "prompt is too long" in claude_outputs[2]["judge_error"]
    assert all(o["judge_error"] is None for o in local_outputs[:2] + claude_outputs[:2])


def test_evaluate_refuses_a_judge_without_key_before_generating(ws, fake, monkeypatch, tiny_model):
    from model_customization.evaluation.runner import evaluate

    dataset_id = _triage_dataset(ws)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(UserError, match="ANTHROPIC_API_KEY"):
        evaluate(ws, dataset_id, [str(tiny_model), "SmolLM2-135M-Instruct"], judge="claude-sonnet-5")
    with pytest.raises(UserError, match="same model"):
        evaluate(ws, dataset_id, [str(tiny_model), f"local:{tiny_model}"])
    assert fake.requests == [] and ws.store.evaluations.all() == []


def test_a_cloud_model_that_cannot_answer_stops_the_evaluation_and_says_which(ws, fake, tiny_model):
    from model_customization.evaluation.runner import evaluate

    dataset_id = _triage_dataset(ws)
    fake.fail_next(404, "not_found_error", "model: claude-gone")
    with pytest.raises(UserError) as failed:
        evaluate(ws, dataset_id, [str(tiny_model), "claude-gone"], max_tokens=4)
    message = str(failed.value)
    assert re.search(r"claude-gone could not answer case \d+:", message) and "not_found_error" in message
    # What was done is kept and the evaluation can be resumed once the cause is fixed.
    [stored] = ws.store.evaluations.all()
    assert stored["status"] == "interrupted" and "claude-gone" in stored["error"]
    assert f"resume={stored['id']!r}" in message
