"""Cloud jobs end to end through the MCP tools: the spending guard, elicitation, idempotency, following the job.

OpenAI is the fake of tests/openai_fake.py (every body checked against OpenAI's published OpenAPI spec); the rest is
the real server, orchestrator and ledger.
"""

from __future__ import annotations

import dataclasses

import json

import pytest
from mcp import Client, types

from openai_fake import FakeOpenAI, serving
from model_customization.jobs import orchestrator
from model_customization.jobs.spending import ConfirmationNeeded
from model_customization.server.app import build_server

API_KEY = "sk-test-guard-SECRET-0123456789"
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake(ws, monkeypatch: pytest.MonkeyPatch):
    with serving(monkeypatch, API_KEY, ws=ws) as server:
        yield server


@pytest.fixture
def dataset_id(ws, demo_paths) -> str:
    from model_customization.datasets.build import build_dataset

    return build_dataset(ws, demo_paths).dataset_id


def _posts(fake: FakeOpenAI, template: str) -> int:
    return sum(1 for method, path in fake.calls if method == "POST" and path == template)


def _structured(result: types.CallToolResult) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def _set_budgets(monkeypatch, ws, per_job: float, per_day: float):
    from dataclasses import replace

    ws.settings = replace(ws.settings, budget_per_job_usd=per_job, budget_per_day_usd=per_day)


async def test_over_budget_is_refused_with_the_quote_and_nothing_uploaded(ws, fake, dataset_id):
    async with Client(build_server(ws=ws)) as client:
        quote = _structured(await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "openai", "dry_run": True}))
        assert quote["status"] == "dry_run" and quote["job_id"] is None
        cost = quote["quote"]["estimated_cost_usd"]
        assert cost > 0 and quote["quote"]["billed_tokens"] > 0
        refused = await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "openai"})
    assert refused.is_error
    text = refused.content[0].text
    assert "per-job budget of $0.00" in text and f"confirm_cost_usd={cost}" in text
    assert _posts(fake, "/files") == 0 and _posts(fake, "/fine_tuning/jobs") == 0
    assert ws.store.jobs.all() == [] and ws.store.spending.since(0) == 0


async def test_confirmed_by_argument_runs_to_a_registered_model(ws, fake, dataset_id):
    async with Client(build_server(ws=ws)) as client:
        cost = _structured(await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "openai", "dry_run": True}))["quote"]["estimated_cost_usd"]
        low = await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "openai", "confirm_cost_usd": cost / 2})
        assert low.is_error and "below the quote" in low.content[0].text
        job = _structured(
            await client.call_tool(
                "start_job",
                {"dataset_id": dataset_id, "provider": "openai", "confirm_cost_usd": cost, "options": {"suffix": "guarded", "metadata": {"team": "eval"}}},
            )
        )
        assert job["spend"] == {"quoted_usd": cost, "committed_usd": cost, "actual_usd": None, "approved_by": "argument"}
        assert job["remote_id"].startswith("ftjob-")
        # A retry (e.g. after a lost reply) returns the same job: no second upload, no second job.
        again = _structured(await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "openai", "confirm_cost_usd": cost, "options": {"suffix": "guarded", "metadata": {"team": "eval"}}}))
        assert again["job_id"] == job["job_id"]
        assert _posts(fake, "/fine_tuning/jobs") == 1
        created = [body for method, template, body in fake.request_bodies if (method, template) == ("POST", "/fine_tuning/jobs")][0]
        assert created["suffix"] == "guarded" and created["metadata"]["team"] == "eval"
        assert created["metadata"]["mc_idempotency_key"].startswith("mc-")
        statuses = []
        for _ in range(10):
            status = _structured(await client.call_tool("check_job", {"job_id": job["job_id"]}))
            statuses.append(status["status"])
            if status["status"] == "succeeded":
                break
        assert statuses[-1] == "succeeded" and "running" in statuses
        assert status["model_id"].startswith("ft:gpt-4.1-mini")
        assert status["spend"]["actual_usd"] is not None
        assert status["train_loss"] is not None and status["step"] > 0
        listed = _structured(await client.call_tool("list_jobs", {}))["jobs"]
        assert [j["status"] for j in listed] == ["succeeded"]
        # The tuned model answers through prompt_model (chat completions on the same fake), within budgets the operator
        # raised for chat (the job's own cost already counts today).
        ws.settings = dataclasses.replace(ws.settings, budget_per_job_usd=1.0, budget_per_day_usd=1000.0)
        answer = _structured(await client.call_tool("prompt_model", {"model": status["model_id"], "prompt": "hello"}))
        assert answer["text"] == f"reply from {status['model_id']}"
    model = ws.store.models.get(status["model_id"])
    assert (model["provider"], model["job_id"], model["dataset_id"]) == ("openai", job["job_id"], dataset_id)
    # The key never reaches the ledger.
    dumped = json.dumps([ws.store.jobs.all(), ws.store.jobs.events(job["job_id"], None)], default=str)
    assert API_KEY not in dumped


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # input-required round trip (2026-07-28) and a mid-call request
async def test_confirmed_by_elicitation(ws, fake, dataset_id, mode):
    asked: list[str] = []

    async def accept(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})

    async with Client(build_server(ws=ws), elicitation_callback=accept, mode=mode) as client:
        job = _structured(await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "openai"}))
    assert len(asked) == 1 and "Allow an openai fine-tuning job costing at most $" in asked[0]
    assert job["spend"]["approved_by"] == "elicitation"
    assert _posts(fake, "/fine_tuning/jobs") == 1


@pytest.mark.parametrize("answer", [("accept", {"confirm": False}), ("decline", None), ("cancel", None)])
async def test_an_elicitation_that_does_not_confirm_starts_nothing(ws, fake, dataset_id, answer):
    async def respond(context, params):
        return types.ElicitResult(action=answer[0], content=answer[1])

    async with Client(build_server(ws=ws), elicitation_callback=respond) as client:
        result = await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "openai"})
    assert result.is_error and "did not confirm" in result.content[0].text
    assert _posts(fake, "/files") == 0 and _posts(fake, "/fine_tuning/jobs") == 0
    assert ws.store.jobs.all() == []


def test_daily_cap_across_several_jobs(ws, fake, dataset_id, monkeypatch):
    cost = orchestrator.start_job(ws, dataset_id, provider="openai", dry_run=True)["quote"]["estimated_cost_usd"]
    _set_budgets(monkeypatch, ws, per_job=cost * 1.5, per_day=cost * 2.5)
    first = orchestrator.start_job(ws, dataset_id, provider="openai")
    second = orchestrator.start_job(ws, dataset_id, provider="openai", hyperparameters={"n_epochs": 3}, idempotency_key="second-run")
    assert first["spend"]["approved_by"] == second["spend"]["approved_by"] == "budget"
    with pytest.raises(ConfirmationNeeded, match="already committed today would pass the daily budget"):
        orchestrator.start_job(ws, dataset_id, provider="openai", idempotency_key="third-run")
    assert _posts(fake, "/fine_tuning/jobs") == 2
    third = orchestrator.start_job(ws, dataset_id, provider="openai", idempotency_key="third-run", confirm_cost_usd=cost)
    assert third["spend"]["approved_by"] == "argument"
    assert ws.store.spending.since(0) == pytest.approx(3 * cost)


def test_refusals_before_spending_leave_nothing(ws, fake, dataset_id, monkeypatch):
    # A permission-denied organisation: refused before any upload, nothing recorded.
    fake.fail("GET", "/fine_tuning/jobs", 403, times=5, code="permission_denied", message="You do not have access to fine-tuning.")
    with pytest.raises(Exception, match="(?i)fine-tun"):
        orchestrator.start_job(ws, dataset_id, provider="openai", confirm_cost_usd=100)
    assert _posts(fake, "/files") == 0 and ws.store.jobs.all() == []


def test_cancel_and_an_unknown_status_through_the_orchestrator(ws, fake, dataset_id):
    fake.scripts.append(["validating_files", {"status": "defrosting", "off_spec": True}, "running", "running", "running"])
    job = orchestrator.start_job(ws, dataset_id, provider="openai", confirm_cost_usd=100)
    seen = [job["status"]] + [orchestrator.check_job(ws, job["job_id"])["status"] for _ in range(2)]
    assert "defrosting" in seen, seen  # kept verbatim, never a crash
    warnings = [e["message"] for e in ws.store.jobs.events(job["job_id"], None) if e["level"] == "warning"]
    assert any("'defrosting'" in w and "does not know" in w for w in warnings)
    cancelled = orchestrator.cancel_job(ws, job["job_id"])
    assert cancelled["status"] == "cancelled" and cancelled["remote_status"] == "cancelled"


def test_a_provider_that_cannot_be_reached_leaves_the_last_known_state(ws, fake, dataset_id):
    job = orchestrator.start_job(ws, dataset_id, provider="openai", confirm_cost_usd=100)
    fake.drop_connection("GET", "/fine_tuning/jobs/{fine_tuning_job_id}", after_processing=False, times=50)
    fake.fail("GET", "/fine_tuning/jobs/{fine_tuning_job_id}", 503, times=50)
    checked = orchestrator.check_job(ws, job["job_id"])
    assert checked["status"] == job["status"]  # unchanged, no crash
    assert any("could not" in e["message"] and e["level"] == "warning" for e in checked["events"])
    assert API_KEY not in json.dumps(checked)
