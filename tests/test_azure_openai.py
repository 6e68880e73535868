"""The azure-openai provider against the stateful fake serving Azure OpenAI's v1 API (tests/openai_fake.py, flavour
"azure"): every request and response is checked against ../shared/specs/azure-openai-v1.json. The scenarios are the
OpenAI provider's: availability before any upload, the spending guard (by argument and by elicitation, through the
MCP tools), idempotent retry after a lost reply (Azure's job list has no metadata filter), unknown statuses, cancel,
an unreachable service, success to a registered model, chat through a deployment, the api-key header and the key
kept out of every error.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from typing import Any

import pytest
from mcp import Client, types

from openai_fake import AZURE_API_PREFIX, FakeOpenAI, SpecViolation, azure_spec_validator, serving
from model_customization.errors import NotFoundError, UserError
from model_customization.jobs import orchestrator

API_KEY = "azure-key-DO-NOT-LEAK-0123456789abcdef"
BASE = "gpt-4.1-mini-2025-04-14"


@pytest.fixture
def fake(ws, monkeypatch: pytest.MonkeyPatch):
    with serving(monkeypatch, API_KEY, ws=ws, flavour="azure") as server:
        yield server


@pytest.fixture
def provider():
    from model_customization.providers.registry import get_provider

    return get_provider("azure-openai")


@pytest.fixture
def dataset_id(ws, demo_paths) -> str:
    from model_customization.datasets.build import build_dataset

    return build_dataset(ws, demo_paths).dataset_id


def _posts(fake: FakeOpenAI, template: str) -> int:
    return sum(1 for method, path in fake.calls if method == "POST" and path == template)


def _created_jobs(fake: FakeOpenAI) -> list[dict[str, Any]]:
    return [body for method, template, body in fake.request_bodies if (method, template) == ("POST", "/fine_tuning/jobs")]


def _structured(result: types.CallToolResult) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


# --- the validator holds the fake to Azure's spec ------------------------------------------------------------------
def test_the_azure_validator_rejects_bodies_that_break_the_spec():
    validator = azure_spec_validator()
    upload = validator.request_ref("POST", "/files", "multipart/form-data")
    good = {"file": "{}", "purpose": "fine-tune", "expires_after": {"seconds": 2_592_000, "anchor": "created_at"}}
    assert validator.errors(upload, good) == []
    assert validator.errors(upload, {"file": "{}", "purpose": "fine-tune"})  # Azure requires expires_after
    assert validator.errors(upload, {**good, "expires_after": {"seconds": 60, "anchor": "now"}})
    create = validator.request_ref("POST", "/fine_tuning/jobs", "application/json")
    assert validator.errors(create, {"model": BASE, "training_file": "file-1", "metadata": {"mc_idempotency_key": "k"}}) == []
    assert validator.errors(create, {"model": BASE, "training_file": "file-1", "metadata": {"k": 1}})
    error = validator.component_ref("AzureErrorResponse")
    assert validator.errors(error, {"error": {"code": "x", "message": "m", "type": "error"}}) == []
    assert validator.errors(error, {"error": {"code": "x", "message": "m", "type": "invalid_request_error"}})
    # The job list takes only after and limit: a metadata filter is not part of Azure's API.
    assert validator.query_errors("GET", "/fine_tuning/jobs", [("metadata[mc_idempotency_key]", "k")])


def test_a_request_that_breaks_azures_spec_fails_the_test(fake):
    from model_customization.providers.openai.client import openai_client
    from model_customization.providers.openai.endpoints import AZURE_OPENAI

    client = openai_client(AZURE_OPENAI, max_retries=0)
    with pytest.raises(SpecViolation, match="expires_after"):
        client.files.create(file=("x.jsonl", b"{}\n", "application/jsonl"), purpose="fine-tune")  # no expiry
    assert not [f for f in fake.files.values() if f["object"]["filename"] == "x.jsonl"]
    fake.violations.clear()


# --- the whole way -------------------------------------------------------------------------------------------------
def test_success_to_a_registered_model_with_the_api_key_header(ws, fake, provider, dataset_id):
    job = orchestrator.start_job(ws, dataset_id, provider="azure-openai", confirm_cost_usd=100, options={"suffix": "triage"})
    assert job["provider"] == "azure-openai" and job["base_model"] == BASE and job["remote_id"].startswith("ftjob-")
    (request,) = _created_jobs(fake)
    assert request["metadata"]["mc_idempotency_key"].startswith("mc-") and request["suffix"] == "triage"
    # Files went up with the expiry Azure requires, under its /openai/v1 prefix, with the key in api-key only.
    uploads = [body for method, template, body in fake.request_bodies if (method, template) == ("POST", "/files")]
    assert len(uploads) == 2 and all(u["expires_after"] == {"seconds": 30 * 24 * 3600, "anchor": "created_at"} for u in uploads)
    assert fake.auth_headers and all(h == {"api-key": API_KEY} for h in fake.auth_headers)
    # The idempotency lookup read the job list without a metadata filter (Azure has none) and compared metadata.
    assert all(not any(k.startswith("metadata") for k, _ in query) for _, template, query in fake.queries if template == "/fine_tuning/jobs")
    for _ in range(12):
        checked = orchestrator.check_job(ws, job["job_id"])
        if checked["status"] == "succeeded":
            break
    assert checked["status"] == "succeeded", checked
    model = ws.store.models.get(checked["model_id"])
    assert checked["model_id"] == f"{BASE}.ft-{job['remote_id'][-6:]}-triage"
    assert (model["provider"], model["job_id"], model["dataset_id"], model["base_model"]) == ("azure-openai", job["job_id"], dataset_id, BASE)
    spend = ws.store.spending.for_job(job["job_id"])
    assert spend["actual_usd"] is not None and spend["actual_usd"] > 0
    assert API_KEY not in json.dumps([ws.store.jobs.all(), ws.store.jobs.events(job["job_id"], None), ws.store.models.all()], default=str)


def test_the_base_url_accepts_the_resource_with_or_without_the_v1_path(monkeypatch):
    from model_customization.providers.openai.endpoints import AZURE_OPENAI

    for given in ("https://r.openai.azure.com", "https://r.openai.azure.com/", "https://r.openai.azure.com/openai/v1/", "https://r.openai.azure.com/openai"):
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", given)
        assert AZURE_OPENAI.resolved_base_url() == "https://r.openai.azure.com/openai/v1"
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT")
    with pytest.raises(UserError, match="AZURE_OPENAI_ENDPOINT is not set"):
        AZURE_OPENAI.resolved_base_url()


# --- availability before any upload ----------------------------------------------------------------------------------
def test_refused_before_upload_when_unavailable(ws, fake, provider, dataset_id, monkeypatch):
    fake.fail("GET", "/fine_tuning/jobs", 403, times=-1, code="PermissionDenied", message="This resource may not fine-tune.")
    with pytest.raises(UserError, match="may not use fine-tuning.*Providers that still train:.*'local'") as caught:
        orchestrator.start_job(ws, dataset_id, provider="azure-openai", confirm_cost_usd=100)
    assert "'azure-openai'" not in str(caught.value).split("Providers that still train:")[1]
    fake.faults.clear()
    with pytest.raises(UserError, match="does not fine-tune 'gpt-3.5-turbo'.*gpt-oss-20b"):
        provider.check_available(ws, "gpt-3.5-turbo", "sft")
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    with pytest.raises(UserError, match="AZURE_OPENAI_API_KEY is not set"):
        provider.check_available(ws, None, "sft")
    assert _posts(fake, "/files") == 0 and _posts(fake, "/fine_tuning/jobs") == 0 and ws.store.jobs.all() == []


def test_training_dates_per_model_family(ws, fake, provider, monkeypatch):
    from model_customization.providers.openai import training

    monkeypatch.setattr(training, "_today", lambda: date(2027, 4, 1))
    with pytest.raises(UserError, match=r"stops fine-tuning the gpt-4o family from 2027-04-01.*Providers that still train") as caught:
        provider.check_available(ws, "gpt-4o-2024-08-06", "sft")
    assert "'local'" in str(caught.value)
    assert provider.check_available(ws, None, "sft") == BASE  # gpt-4.1 trains until 2027-04-14
    monkeypatch.setattr(training, "_today", lambda: date(2027, 4, 14))
    with pytest.raises(UserError, match="gpt-4.1-mini family from 2027-04-14"):
        provider.check_available(ws, "gpt-4.1-mini", "sft")
    assert provider.check_available(ws, "gpt-oss-20b", "sft") == "gpt-oss-20b"  # open models on Foundry: no end date known


# --- the spending guard through the MCP tools ------------------------------------------------------------------------
@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_over_budget_refused_with_nothing_uploaded_then_confirmed_by_argument(ws, fake, dataset_id):
    from model_customization.server.app import build_server

    async with Client(build_server(ws=ws)) as client:
        quote = _structured(await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "azure-openai", "dry_run": True}))
        cost = quote["quote"]["estimated_cost_usd"]
        assert cost > 0 and quote["provider"] == "azure-openai"
        refused = await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "azure-openai"})
        assert refused.is_error and f"confirm_cost_usd={cost}" in refused.content[0].text
        assert _posts(fake, "/files") == 0 and _posts(fake, "/fine_tuning/jobs") == 0 and ws.store.jobs.all() == []
        job = _structured(await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "azure-openai", "confirm_cost_usd": cost}))
        assert job["spend"]["approved_by"] == "argument" and _posts(fake, "/fine_tuning/jobs") == 1


@pytest.mark.anyio
async def test_confirmed_by_elicitation(ws, fake, dataset_id):
    from model_customization.server.app import build_server

    asked: list[str] = []

    async def accept(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})

    async with Client(build_server(ws=ws), elicitation_callback=accept) as client:
        job = _structured(await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "azure-openai"}))
    assert len(asked) == 1 and "azure-openai fine-tuning job costing at most $" in asked[0]
    assert job["spend"]["approved_by"] == "elicitation" and _posts(fake, "/fine_tuning/jobs") == 1


# --- idempotency, statuses, cancel, an unreachable service -------------------------------------------------------------
def test_idempotent_retry_after_a_lost_reply(ws, fake, dataset_id):
    fake.drop_connection("POST", "/fine_tuning/jobs", after_processing=True)
    job = orchestrator.start_job(ws, dataset_id, provider="azure-openai", confirm_cost_usd=100)
    assert _posts(fake, "/fine_tuning/jobs") == 1 and job["remote_id"] in fake.jobs
    assert any("reply was lost" in e["message"] for e in ws.store.jobs.events(job["job_id"], None))
    again = orchestrator.start_job(ws, dataset_id, provider="azure-openai", confirm_cost_usd=100)
    assert again["job_id"] == job["job_id"] and _posts(fake, "/fine_tuning/jobs") == 1


def test_unknown_status_kept_verbatim_then_cancel(ws, fake, dataset_id):
    fake.scripts.append(["validating_files", {"status": "pending", "off_spec": True}, "running", "running"])
    job = orchestrator.start_job(ws, dataset_id, provider="azure-openai", confirm_cost_usd=100)
    seen = [job["status"]] + [orchestrator.check_job(ws, job["job_id"])["status"] for _ in range(2)]
    assert "pending" in seen, seen
    assert any("'pending'" in e["message"] and e["level"] == "warning" for e in ws.store.jobs.events(job["job_id"], None))
    cancelled = orchestrator.cancel_job(ws, job["job_id"])
    assert cancelled["status"] == "cancelled" and fake.count("POST", f"/fine_tuning/jobs/{job['remote_id']}/cancel") == 1


def test_unreachable_keeps_the_last_known_state_and_no_key_in_errors(ws, fake, dataset_id):
    job = orchestrator.start_job(ws, dataset_id, provider="azure-openai", confirm_cost_usd=100)
    fake.drop_connection("GET", "/fine_tuning/jobs/{fine_tuning_job_id}", after_processing=False, times=50)
    checked = orchestrator.check_job(ws, job["job_id"])
    assert checked["status"] == job["status"]
    assert any("could not" in e["message"] and e["level"] == "warning" for e in checked["events"])
    assert API_KEY not in json.dumps(checked)


def test_the_key_never_appears_in_errors(ws, fake, provider):
    fake.fail("GET", "/fine_tuning/jobs", 401, message=f"Access denied: key {API_KEY} is invalid.", code="401")
    with pytest.raises(UserError) as caught:
        provider.check_available(ws, None, "sft")
    assert API_KEY not in str(caught.value) and "[AZURE_OPENAI_API_KEY]" in str(caught.value) and "Check AZURE_OPENAI_API_KEY" in str(caught.value)


# --- chat through a deployment ----------------------------------------------------------------------------------------
def test_chat_through_a_deployment(ws, fake, monkeypatch, tmp_path):
    from model_customization.providers.chat import chat
    from model_customization.providers.registry import clear_cache

    monkeypatch.setenv("MODEL_CUSTOMIZATION_CHAT_PRICES", json.dumps({"triage-prod": [0.4, 1.6], f"{BASE}.ft-abc123": [0.8, 3.2]}))
    ws.settings = dataclasses.replace(ws.settings, budget_per_job_usd=1.0, budget_per_day_usd=100.0)  # chat within budgets
    fake.deploy("triage-prod", f"{BASE}.ft-abc123")
    fake.chat_reply = lambda model, messages: f"{model} answers"
    reply = chat(ws, "azure-openai:triage-prod", [{"role": "user", "content": "hello"}], max_tokens=16)
    assert reply["provider"] == "azure-openai" and reply["text"] == "triage-prod answers"
    body = [b for m, t, b in fake.request_bodies if t == "/chat/completions"][-1]
    assert body["model"] == "triage-prod" and body["max_completion_tokens"] == 16
    # A tuned model's id is not a deployment: the refusal says how to deploy it and how to name the deployment.
    ws.store.models.add({"id": f"{BASE}.ft-abc123", "provider": "azure-openai", "kind": "tuned", "base_model": BASE, "path": None, "job_id": None, "dataset_id": None, "details": None})
    with pytest.raises(NotFoundError, match="no deployment.*azure-openai:<deployment name>.*deployments"):
        chat(ws, f"{BASE}.ft-abc123", [{"role": "user", "content": "hello"}], max_tokens=16)
    # Mapped in the config file, the tuned model's own id reaches its deployment.
    config = tmp_path / "config.toml"
    config.write_text(f'[openai_compatible.azure-openai.deployments]\n"{BASE}.ft-abc123" = "triage-prod"\n')
    config.chmod(0o600)
    monkeypatch.setenv("MODEL_CUSTOMIZATION_CONFIG", str(config))
    clear_cache()
    reply = chat(ws, f"{BASE}.ft-abc123", [{"role": "user", "content": "hello"}], max_tokens=16)
    assert reply["text"] == "triage-prod answers"
    assert fake.auth_headers[-1] == {"api-key": API_KEY}
    assert AZURE_API_PREFIX == "/openai/v1"
