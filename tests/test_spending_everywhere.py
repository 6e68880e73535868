"""Every paid call is quoted, counted and approved by the operator's budgets or a person (issue 17, section 4).

Driven through the MCP server (clients with and without elicitation) and the CLI, with the cloud side faked at its
HTTP boundary (tests/anthropic_fake.py, tests/openai_fake.py)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from anthropic_fake import FakeAnthropic
from mcp import Client
from mcp.types import ElicitResult

from model_customization.server.app import build_server

KEY = "sk-ant-test-0123456789"
BUDGETS = ("MODEL_CUSTOMIZATION_BUDGET_PER_JOB_USD", "MODEL_CUSTOMIZATION_BUDGET_PER_DAY_USD")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def claude(ws, monkeypatch: pytest.MonkeyPatch):
    from model_customization.providers.anthropic.client import use_http_client

    fake_api = FakeAnthropic(api_key=KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("MODEL_CUSTOMIZATION_ALLOW_ARGUMENT_CONFIRMATION", raising=False)
    monkeypatch.delenv("MODEL_CUSTOMIZATION_CHAT_PRICES", raising=False)
    ws.settings = dataclasses.replace(ws.settings, budget_per_job_usd=0.0, budget_per_day_usd=0.0, allow_argument_confirmation=False)
    use_http_client(fake_api.http_client())
    yield fake_api
    use_http_client(None)


def _reopen(ws):
    """The workspace's settings are read when it opens: a test that changes them opens it again."""
    from model_customization.workspace import Workspace

    return Workspace.open(ws.settings.home)


def _text(result) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def _rows(ws) -> list[dict]:
    from sqlalchemy import select

    from model_customization.store.schema import spend

    with ws.store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(spend)).mappings()]


PROMPT = {"model": "claude-haiku-4-5", "prompt": "Triage: [cdn] INFO ok", "max_tokens": 20}


@pytest.mark.anyio
async def test_prompt_model_over_budget_without_a_person_sends_nothing_and_says_what_the_operator_can_do(ws, claude):
    async with Client(build_server(ws=ws)) as client:  # declares no elicitation
        refused = await client.call_tool("prompt_model", PROMPT)
    assert refused.is_error
    text = _text(refused)
    assert "MODEL_CUSTOMIZATION_BUDGET_PER_JOB_USD" in text and "a person must confirm" in text
    assert "elicitation" in text and "terminal" in text
    assert claude.requests == [] and _rows(ws) == []


@pytest.mark.anyio
async def test_prompt_model_asks_the_user_with_the_quote_and_counts_what_it_cost(ws, claude):
    asked: list[str] = []

    async def accept(context, params):
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    async with Client(build_server(ws=ws), elicitation_callback=accept) as client:
        result = await client.call_tool("prompt_model", PROMPT)
    assert not result.is_error, _text(result)
    assert len(asked) == 1 and "claude-haiku-4-5" in asked[0] and "$" in asked[0]
    [row] = _rows(ws)
    assert row["approved_by"] == "elicitation" and row["provider"] == "anthropic"
    # The quote is an upper bound (every prompt byte a token, max_tokens answered); the bill comes from the usage.
    answer = result.structured_content
    billed = (answer["prompt_tokens"] * 1.0 + answer["completion_tokens"] * 5.0) / 1_000_000
    assert row["actual_usd"] == pytest.approx(billed)
    assert row["quoted_usd"] >= 20 * 5.0 / 1_000_000 and row["quoted_usd"] >= row["actual_usd"]


@pytest.mark.anyio
@pytest.mark.parametrize("answer", [ElicitResult(action="decline"), ElicitResult(action="accept", content={"confirm": False})])
async def test_prompt_model_the_user_says_no_and_nothing_is_sent(ws, claude, answer):
    async def respond(context, params):
        return answer

    async with Client(build_server(ws=ws), elicitation_callback=respond) as client:
        refused = await client.call_tool("prompt_model", PROMPT)
    assert refused.is_error and "did not confirm" in _text(refused)
    assert claude.requests == [] and _rows(ws) == []


@pytest.mark.anyio
async def test_prompt_model_within_the_budgets_runs_without_asking_and_is_counted(ws, claude, monkeypatch):
    ws.settings = dataclasses.replace(ws.settings, budget_per_job_usd=1.0, budget_per_day_usd=1.0)

    async def must_not_ask(context, params):
        raise AssertionError("asked within the budgets")

    async with Client(build_server(ws=ws), elicitation_callback=must_not_ask) as client:
        result = await client.call_tool("prompt_model", PROMPT)
    assert not result.is_error, _text(result)
    [row] = _rows(ws)
    assert row["approved_by"] == "budget" and 0 < row["actual_usd"] <= row["committed_usd"]


@pytest.mark.anyio
async def test_an_unknown_price_is_asked_about_as_unknown_and_then_counts_as_unbounded(ws, claude):
    asked: list[str] = []

    async def accept(context, params):
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    async with Client(build_server(ws=ws), elicitation_callback=accept) as client:
        result = await client.call_tool("prompt_model", {**PROMPT, "model": "anthropic:claude-unpriced-9"})
    assert not result.is_error, _text(result)
    assert "unknown amount" in asked[0]
    [row] = _rows(ws)
    assert row["quoted_usd"] is None and row["actual_usd"] is None
    assert math.isinf(ws.store.spending.since(0))


# --- evaluate (answers, a judge, a pairwise judge) and constitutional generation ---------------------------------------
def _suite(tmp_path) -> str:
    import json

    path = tmp_path / "suite.jsonl"
    cases = [{"messages": [{"role": "user", "content": f"Triage: [svc{n}] ERROR disk full"}], "reference": "page the on-call"} for n in range(2)]
    path.write_text("".join(json.dumps(case) + "\n" for case in cases), encoding="utf-8")
    return str(path)


EVALUATION = {"models": ["claude-haiku-4-5", "anthropic:claude-sonnet-4-5"], "judge": "claude-haiku-4-5", "pairwise_judge": "claude-sonnet-4-5", "max_tokens": 16}


@pytest.mark.anyio
async def test_evaluate_with_judges_sends_nothing_over_budget_without_a_person(ws, claude, tmp_path):
    async with Client(build_server(ws=ws)) as client:
        refused = await client.call_tool("evaluate", {**EVALUATION, "suite": _suite(tmp_path)})
    assert refused.is_error and "a person must confirm" in _text(refused)
    assert claude.requests == [] and _rows(ws) == [] and ws.store.evaluations.all() == []


@pytest.mark.anyio
async def test_evaluate_quotes_answers_judge_and_both_pairwise_orders_as_one_and_counts_them(ws, claude, tmp_path):
    asked: list[str] = []

    async def accept(context, params):
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    async with Client(build_server(ws=ws), elicitation_callback=accept) as client:
        result = await client.call_tool("evaluate", {**EVALUATION, "suite": _suite(tmp_path)})
    assert not result.is_error, _text(result)
    assert len(asked) == 1 and "evaluation" in asked[0]
    # 2 cases x 2 models answers, 2 x 2 judge ratings, 2 cases x 1 pair x 2 orders: every one of them counted.
    assert len(claude.requests) == 12
    [row] = _rows(ws)
    assert row["approved_by"] == "elicitation" and row["provider"] == "anthropic"
    assert 0 < row["actual_usd"] <= row["quoted_usd"] == row["committed_usd"]


@pytest.mark.anyio
async def test_constitutional_generation_on_a_cloud_model_is_quoted_asked_and_counted(ws, claude):
    arguments = {"principles": ["Be kind.", "Be brief."], "model": "claude-haiku-4-5", "prompts": ["How do I restart nginx?", "Explain DNS."], "max_tokens": 32}
    async with Client(build_server(ws=ws)) as client:
        refused = await client.call_tool("generate_constitutional_dataset", arguments)
    assert refused.is_error and "a person must confirm" in _text(refused)
    assert claude.requests == [] and _rows(ws) == []

    async def accept(context, params):
        return ElicitResult(action="accept", content={"confirm": True})

    async with Client(build_server(ws=ws), elicitation_callback=accept) as client:
        result = await client.call_tool("generate_constitutional_dataset", arguments)
    assert not result.is_error, _text(result)
    assert len(claude.requests) == result.structured_content["model_calls"] == 2 * (1 + 2 * 2)
    [row] = _rows(ws)
    assert row["approved_by"] == "elicitation" and 0 < row["actual_usd"] <= row["committed_usd"]


# --- fine-tuning jobs and provisioned throughput: what an argument can and cannot approve ---------------------------
UNPRICED_BASE = "gpt-5-mini-2026-03-01"  # available to the key, but in no price table here


@pytest.fixture
def openai_api(ws, monkeypatch: pytest.MonkeyPatch):
    from openai_fake import serving

    with serving(monkeypatch, "sk-test-spending-0123456789", ws=ws) as server:
        server.add_model(UNPRICED_BASE)
        yield server


@pytest.fixture
def dataset_id(ws, demo_paths) -> str:
    from model_customization.datasets.build import build_dataset

    return build_dataset(ws, demo_paths).dataset_id


def _created(api) -> int:
    return sum(1 for method, path in api.calls if method == "POST" and path in ("/files", "/fine_tuning/jobs"))


@pytest.mark.anyio
@pytest.mark.parametrize("arguments_allowed", [False, True])
@pytest.mark.parametrize("amount", [0, 25, 1e6])
async def test_an_unknown_price_is_never_confirmed_by_an_amount(ws, openai_api, dataset_id, arguments_allowed, amount):
    ws.settings = dataclasses.replace(ws.settings, allow_argument_confirmation=arguments_allowed)
    async with Client(build_server(ws=ws)) as client:
        refused = await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "openai", "base_model": UNPRICED_BASE, "confirm_cost_usd": amount})
    assert refused.is_error
    assert "An unknown price cannot be confirmed by an amount" in _text(refused) and "MODEL_CUSTOMIZATION_CHAT_PRICES" not in _text(refused)
    assert _created(openai_api) == 0 and ws.store.jobs.all() == [] and _rows(ws) == []


@pytest.mark.anyio
async def test_a_person_may_accept_an_unknown_price_and_it_then_counts_as_unbounded(ws, openai_api, dataset_id):
    asked: list[str] = []

    async def accept(context, params):
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    async with Client(build_server(ws=ws), elicitation_callback=accept) as client:
        started = await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "openai", "base_model": UNPRICED_BASE})
    assert not started.is_error, _text(started)
    assert "unknown amount" in asked[0]
    [row] = _rows(ws)
    assert row["approved_by"] == "elicitation" and row["quoted_usd"] is None
    assert math.isinf(ws.store.spending.since(0))  # not $0: nothing else runs unasked until the bill is known


@pytest.mark.anyio
async def test_the_agent_cannot_approve_its_own_job_by_argument(ws, openai_api, dataset_id):
    async with Client(build_server(ws=ws)) as client:
        ws.settings = dataclasses.replace(ws.settings, allow_argument_confirmation=False)
        refused = await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "openai", "confirm_cost_usd": 1e6})
    assert refused.is_error and "confirm_cost_usd cannot approve spending on this server" in _text(refused)
    assert "MODEL_CUSTOMIZATION_ALLOW_ARGUMENT_CONFIRMATION=true" in _text(refused)
    assert _created(openai_api) == 0 and _rows(ws) == []

    # A client that can ask its user is asked, whatever the argument says.
    asked: list[str] = []

    async def decline(context, params):
        asked.append(params.message)
        return ElicitResult(action="decline")

    async with Client(build_server(ws=ws), elicitation_callback=decline) as client:
        declined = await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "openai", "confirm_cost_usd": 1e6})
    assert declined.is_error and len(asked) == 1 and _created(openai_api) == 0


@pytest.mark.anyio
async def test_the_budgets_are_not_raised_by_any_argument(ws, openai_api, dataset_id):
    async with Client(build_server(ws=ws)) as client:
        quote = (await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "openai", "dry_run": True})).structured_content["quote"]
        cost = quote["estimated_cost_usd"]
        ws.settings = dataclasses.replace(ws.settings, budget_per_job_usd=cost / 2, budget_per_day_usd=cost * 10, allow_argument_confirmation=False)
        refused = await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "openai", "confirm_cost_usd": cost * 100})
        assert refused.is_error and _created(openai_api) == 0
        ws.settings = dataclasses.replace(ws.settings, budget_per_job_usd=cost * 2)
        started = await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "openai"})
    assert not started.is_error, _text(started)
    assert started.structured_content["spend"]["approved_by"] == "budget"


# --- the CLI: a person at a terminal, or a refusal ----------------------------------------------------------------------
def _cli(ws, *args: str, input: str | None = None):
    from typer.testing import CliRunner

    from model_customization.cli import app

    return CliRunner().invoke(app, [*args, "--home", str(ws.settings.home)], input=input)


def test_cli_prompt_off_a_terminal_is_refused_and_on_one_asks(ws, claude, monkeypatch):
    from model_customization.cli import common

    for name in BUDGETS:  # the CLI opens the data home itself, reading the operator's settings from the environment
        monkeypatch.setenv(name, "0")
    refused = _cli(ws, "model", "prompt", "claude-haiku-4-5", "ping", "--max-tokens", "16")
    assert refused.exit_code == 4 and "a person must confirm" in " ".join(refused.output.split())
    assert claude.requests == [] and _rows(ws) == []

    monkeypatch.setattr(common, "interactive", lambda: True)  # stdin a terminal
    declined = _cli(ws, "model", "prompt", "claude-haiku-4-5", "ping", "--max-tokens", "16", input="n\n")
    assert declined.exit_code == 1 and "did not confirm" in declined.output and claude.requests == []
    accepted = _cli(ws, "model", "prompt", "claude-haiku-4-5", "ping", "--max-tokens", "16", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    [row] = _rows(ws)
    assert row["approved_by"] == "terminal" and len(claude.requests) == 1


def test_the_one_door_to_providers_refuses_a_paid_call_that_carries_no_approval(ws, claude):
    from model_customization.errors import UserError
    from model_customization.providers.chat import chat_with_provider

    with pytest.raises(UserError, match="must be quoted and approved before it is sent"):
        chat_with_provider(ws, "anthropic", "claude-haiku-4-5", [{"role": "user", "content": "hi"}], max_tokens=8)
    assert claude.requests == []
