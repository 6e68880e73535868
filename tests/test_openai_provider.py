"""The OpenAI provider against a stateful fake of OpenAI's API, every body checked against OpenAI's OpenAPI spec.

The provider is driven through its CloudProvider methods in the order providers/base.py documents (check_available,
parse_hyperparameters, quote, find_existing, submit, refresh ...), as the orchestrator calls them. No request leaves
the process: the real SDK talks to tests/openai_fake.py through httpx2.MockTransport.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from openai_fake import FakeOpenAI, SpecViolation, serving, spec_validator

API_KEY = "sk-test-DO-NOT-LEAK-0123456789abcdef"
BASE = "gpt-4.1-mini-2025-04-14"


# --- fixtures and helpers -------------------------------------------------------------------------------------------
@pytest.fixture
def fake(ws, monkeypatch: pytest.MonkeyPatch):
    with serving(monkeypatch, API_KEY, ws=ws) as server:
        yield server


@pytest.fixture
def provider():
    from model_customization.providers.registry import get_provider

    return get_provider("openai")


@pytest.fixture
def dataset_id(ws, demo_paths) -> str:
    from model_customization.datasets.build import build_dataset

    return build_dataset(ws, demo_paths).dataset_id


def start(ws, provider, dataset_id: str, *, base_model: str | None = None, method: str = "sft", hyperparameters: dict | None = None, options: dict | None = None) -> dict[str, Any]:
    """What the orchestrator does for a new cloud job, in the order providers/base.py gives."""
    from model_customization.providers.base import idempotency_key

    base = provider.check_available(ws, base_model, method)
    hp = provider.parse_hyperparameters(method, hyperparameters)
    quote = provider.quote(ws, dataset_id, base, method, hp)
    key = idempotency_key(dataset_id, base, method, hp)
    existing = provider.find_existing(ws, key)
    job_id = "job-" + uuid.uuid4().hex[:8]
    ws.store.jobs.add(
        {"id": job_id, "provider": "openai", "base_model": base, "dataset_id": dataset_id, "method": method, "hyperparameters": hp, "status": "queued", "idempotency_key": key, "details": {"options": options or {}}}
    )
    ws.store.spending.add({"job_id": job_id, "provider": "openai", "quoted_usd": quote["estimated_cost_usd"], "committed_usd": quote["estimated_cost_usd"] or 0.0, "approved_by": "argument"})
    submitted = existing or provider.submit(ws, ws.store.jobs.get(job_id))
    details = {**(ws.store.jobs.get(job_id)["details"] or {}), **submitted["details"]}
    ws.store.jobs.update(job_id, remote_id=submitted["remote_id"], remote_status=submitted["remote_status"], details=details)
    return ws.store.jobs.get(job_id)


def refresh(ws, provider, job_id: str, times: int = 1) -> dict[str, Any]:
    for _ in range(times):
        provider.refresh(ws, ws.store.jobs.get(job_id))
    return ws.store.jobs.get(job_id)


def event_messages(ws, job_id: str) -> list[str]:
    return [e["message"] for e in ws.store.jobs.events(job_id, limit=None)]


def created_jobs(fake: FakeOpenAI) -> list[dict[str, Any]]:
    return [body for method, template, body in fake.request_bodies if (method, template) == ("POST", "/fine_tuning/jobs")]


def training_files(fake: FakeOpenAI) -> list[dict[str, Any]]:
    return [f["object"] for f in fake.files.values() if f["object"]["purpose"] == "fine-tune"]


def assert_no_key(*values: Any) -> None:
    text = json.dumps(values, default=str)
    assert API_KEY not in text


# --- the fake holds to the spec ------------------------------------------------------------------------------------
def test_spec_validator_rejects_bodies_that_break_openais_schema():
    validator = spec_validator()
    create = validator.request_ref("POST", "/fine_tuning/jobs", "application/json")
    good = {"model": BASE, "training_file": "file-1", "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3, "learning_rate_multiplier": 0.5}}}}
    assert validator.errors(create, good) == []
    # OpenAPI 3.0 leftovers read as 2020-12: nullable fields take null, exclusiveMinimum: true means "above 0".
    assert validator.errors(create, {**good, "suffix": None, "validation_file": None, "seed": None}) == []
    assert validator.errors(create, {"training_file": "file-1"})  # no model
    assert validator.errors(create, {**good, "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}})
    assert validator.errors(create, {**good, "method": {"type": "supervised", "supervised": {"hyperparameters": {"learning_rate_multiplier": 0}}}})
    assert validator.errors(create, {**good, "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 2.5}}}})
    assert validator.errors(create, {**good, "metadata": {"k": 1}})
    upload = validator.request_ref("POST", "/files", "multipart/form-data")
    assert validator.errors(upload, {"file": "{}", "purpose": "fine-tune"}) == []
    assert validator.errors(upload, {"file": "{}", "purpose": "training"})
    job = validator.response_ref("GET", "/fine_tuning/jobs/{fine_tuning_job_id}")
    assert validator.errors(job, {"id": "ftjob-1", "object": "fine_tuning.job"})  # required fields missing


def test_a_request_that_breaks_the_spec_fails_the_test(fake: FakeOpenAI):
    import openai

    client = openai.OpenAI(api_key=API_KEY, http_client=fake.http_client(), max_retries=0)
    with pytest.raises(SpecViolation, match="n_epochs"):
        client.fine_tuning.jobs.create(model=BASE, training_file="file-x", method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}})
    assert fake.violations and len(fake.jobs) == 1  # only the history job: the bad request created nothing
    fake.violations.clear()


# --- hyperparameters --------------------------------------------------------------------------------------------------
def test_hyperparameters_follow_openais_ranges(provider):
    from model_customization.errors import UserError

    assert provider.parse_hyperparameters("sft", None) == {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}
    assert provider.parse_hyperparameters("dpo", {"beta": 0.2, "n_epochs": 2}) == {"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": "auto", "beta": 0.2}
    for bad in ({"n_epochs": 51}, {"n_epochs": True}, {"batch_size": 257}, {"learning_rate_multiplier": 0}, {"epochs": 3}):
        with pytest.raises(UserError, match="Invalid OpenAI hyperparameters"):
            provider.parse_hyperparameters("sft", bad)
    with pytest.raises(UserError, match="beta applies to DPO"):
        provider.parse_hyperparameters("sft", {"beta": 0.1})
    with pytest.raises(UserError, match="beta must be"):
        provider.parse_hyperparameters("dpo", {"beta": 2.5})
    # The numeric bounds are the spec's own.
    schemas = spec_validator().spec["components"]["schemas"]
    spec_sft = schemas["FineTuneSupervisedHyperparameters"]["properties"]
    spec_dpo = schemas["FineTuneDPOHyperparameters"]["properties"]
    assert [o for o in spec_sft["n_epochs"]["oneOf"] if o.get("type") == "integer"][0]["maximum"] == 50
    assert [o for o in spec_sft["batch_size"]["oneOf"] if o.get("type") == "integer"][0]["maximum"] == 256
    assert [o for o in spec_dpo["beta"]["oneOf"] if o.get("type") == "number"][0]["maximum"] == 2
    provider.parse_hyperparameters("sft", {"n_epochs": 50, "batch_size": 256})
    provider.parse_hyperparameters("dpo", {"beta": 2})


# --- the whole way -----------------------------------------------------------------------------------------------------
def test_success_to_the_end(ws, fake, provider, dataset_id):
    job = start(ws, provider, dataset_id, options={"suffix": "triage", "seed": 7, "metadata": {"team": "ops"}})
    assert job["base_model"] == BASE
    assert job["remote_id"].startswith("ftjob-") and job["remote_status"] == "validating_files"
    (request,) = created_jobs(fake)
    assert request["model"] == BASE and request["suffix"] == "triage" and request["seed"] == 7
    assert request["method"] == {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}}}
    assert request["metadata"] == {"team": "ops", "mc_idempotency_key": job["idempotency_key"], "mc_job_id": job["id"]}
    assert request["validation_file"] == job["details"]["validation_file"] and request["training_file"] == job["details"]["training_file"]
    assert job["details"]["options"]["suffix"] == "triage"  # the caller's options stay beside the file ids

    # The uploaded training file is exactly the rendered train split.
    from model_customization.datasets.build import read_split
    from model_customization.datasets.render import render_openai

    uploaded = fake.files[request["training_file"]]["content"].decode().splitlines()
    assert [json.loads(line) for line in uploaded] == [render_openai(row) for row in read_split(ws, dataset_id, "train")]

    job = refresh(ws, provider, job["id"])
    assert job["status"] == "queued" and job["remote_status"] == "queued"
    job = refresh(ws, provider, job["id"])
    assert job["status"] == "running" and job["started_at"] and job["total_steps"] == fake.total_steps
    assert 0 < job["step"] < fake.total_steps and job["eta_seconds"] is not None
    job = refresh(ws, provider, job["id"], times=3)
    assert job["status"] == "succeeded" and job["error"] is None

    remote = fake.jobs[job["remote_id"]]["object"]
    metrics = ws.store.jobs.metrics(job["id"])
    assert [m["step"] for m in metrics] == list(range(1, fake.total_steps + 1))
    assert all(m["train_loss"] is not None for m in metrics)
    assert metrics[-1]["epoch"] == pytest.approx(3.0)
    assert [m["step"] for m in metrics if m["validation_loss"] is not None] == [2, 4, 6]  # epoch ends
    assert job["step"] == fake.total_steps and job["train_loss"] == metrics[-1]["train_loss"]

    model = ws.store.models.get(remote["fine_tuned_model"])
    assert model["provider"] == "openai" and model["kind"] == "tuned"
    assert (model["job_id"], model["dataset_id"], model["base_model"]) == (job["id"], dataset_id, BASE)
    assert job["model_id"] == remote["fine_tuned_model"]
    assert [c["step"] for c in job["details"]["checkpoints"]] == [2, 4, 6]
    assert job["details"]["checkpoints"][-1]["fine_tuned_model_checkpoint"].endswith("ckpt-step-6")

    spend = ws.store.spending.for_job(job["id"])
    assert spend["actual_usd"] == pytest.approx(round(remote["trained_tokens"] * 5.0 / 1_000_000, 4))
    messages = event_messages(ws, job["id"])
    assert any(m.startswith("uploaded the train split") for m in messages)
    assert any(m.startswith("uploaded the validation split") for m in messages)
    assert "OpenAI: Fine-tuning job started" in messages and "OpenAI: The job has successfully completed" in messages
    assert not any("Step 1/" in m for m in messages)  # metrics go to the metrics table, not the event log
    assert len([m for m in messages if m == "OpenAI: Fine-tuning job started"]) == 1  # events are read once

    # A further refresh changes nothing.
    before = (len(ws.store.jobs.metrics(job["id"])), len(messages), len(ws.store.models.all()))
    refresh(ws, provider, job["id"])
    assert (len(ws.store.jobs.metrics(job["id"])), len(event_messages(ws, job["id"])), len(ws.store.models.all())) == before
    assert_no_key(ws.store.jobs.get(job["id"]), event_messages(ws, job["id"]), ws.store.models.all(), [f["content"].decode(errors="replace") for f in fake.files.values()])


@pytest.mark.parametrize("base64_encoded", [True, False])
def test_metrics_from_the_result_file_when_events_carry_none(ws, fake, provider, dataset_id, base64_encoded):
    fake.metric_events = False
    fake.result_file_base64 = base64_encoded
    job = start(ws, provider, dataset_id)
    job = refresh(ws, provider, job["id"], times=3)
    assert job["status"] == "running" and ws.store.jobs.metrics(job["id"]) == []
    job = refresh(ws, provider, job["id"], times=2)
    assert job["status"] == "succeeded"
    metrics = ws.store.jobs.metrics(job["id"])
    assert [m["step"] for m in metrics] == list(range(1, fake.total_steps + 1))
    assert [m["step"] for m in metrics if m["validation_loss"] is not None] == [2, 4, 6]
    assert metrics[-1]["epoch"] == pytest.approx(3.0) and metrics[0]["train_loss"] == pytest.approx(2.2 * 0.85 + 0.1, abs=1e-4)


def test_validation_failure_of_the_training_file(ws, fake, provider, dataset_id):
    error = {"code": "invalid_training_file", "message": "The job failed due to an invalid training file: line 3 has no assistant message.", "param": "training_file"}
    fake.scripts.append(["validating_files", {"status": "failed", "error": error}])
    job = start(ws, provider, dataset_id)
    job = refresh(ws, provider, job["id"])
    assert job["status"] == "failed" and job["remote_status"] == "failed"
    assert job["error"] == "invalid_training_file: The job failed due to an invalid training file: line 3 has no assistant message. (training_file)"
    assert job["model_id"] is None and ws.store.jobs.metrics(job["id"]) == []
    assert any("invalid training file" in m for m in event_messages(ws, job["id"]))
    assert ws.store.spending.for_job(job["id"])["actual_usd"] is None


def test_a_failed_job_keeps_openais_error_and_its_metrics(ws, fake, provider, dataset_id):
    fake.scripts.append(["validating_files", "queued", "running", {"status": "failed", "error": {"code": "server_error", "message": "Training diverged.", "param": None}}])
    job = start(ws, provider, dataset_id)
    job = refresh(ws, provider, job["id"], times=3)
    assert job["status"] == "failed" and job["error"] == "server_error: Training diverged."
    assert len(ws.store.jobs.metrics(job["id"])) > 0 and job["model_id"] is None
    assert [e for e in ws.store.jobs.events(job["id"], limit=None) if "Training diverged" in e["message"] and e["level"] == "error"]


def test_cancel(ws, fake, provider, dataset_id):
    job = start(ws, provider, dataset_id)
    job = refresh(ws, provider, job["id"])
    assert job["status"] == "queued"
    provider.cancel(ws, job)
    job = refresh(ws, provider, job["id"])
    assert job["status"] == "cancelled" and job["finished_at"] and fake.count("POST", f"/fine_tuning/jobs/{job['remote_id']}/cancel") == 1
    job = refresh(ws, provider, job["id"])  # OpenAI's clock does not move a cancelled job on
    assert job["status"] == "cancelled" and job["model_id"] is None
    from model_customization.errors import UserError

    with pytest.raises(UserError, match="cannot cancel"):
        provider.cancel(ws, job)


def test_pause_and_resume(ws, fake, provider, dataset_id):
    job = start(ws, provider, dataset_id)
    job = refresh(ws, provider, job["id"], times=2)
    assert job["status"] == "running"
    provider.pause(ws, job)
    job = refresh(ws, provider, job["id"], times=2)
    assert job["status"] == "paused" and job["remote_status"] == "paused"
    assert "paused" in fake.off_spec_served  # OpenAI serves it though its schema's enum lacks it
    provider.resume(ws, job)
    job = refresh(ws, provider, job["id"])
    assert job["status"] == "running"
    job = refresh(ws, provider, job["id"], times=2)
    assert job["status"] == "succeeded"


def test_rate_limited_then_success(ws, fake, provider, dataset_id):
    fake.fail("POST", "/files", 429, code="rate_limit_exceeded", headers={"retry-after-ms": "1"})
    fake.fail("POST", "/fine_tuning/jobs", 429, code="rate_limit_exceeded", headers={"retry-after-ms": "1"})
    fake.fail("GET", "/fine_tuning/jobs/{fine_tuning_job_id}", 429, headers={"retry-after-ms": "1"})  # the SDK retries reads
    job = start(ws, provider, dataset_id)
    assert fake.count("POST", "/files") == 3  # train refused once, then train and validation
    assert len(training_files(fake)) == 2 and len(created_jobs(fake)) == 2 and len(fake.jobs) == 2  # history + ours
    assert any("trying again" in m for m in event_messages(ws, job["id"]))
    job = refresh(ws, provider, job["id"], times=5)
    assert job["status"] == "succeeded"


@pytest.mark.parametrize("after_processing", [True, False])
def test_dropped_connection_during_upload_makes_no_duplicate(ws, fake, provider, dataset_id, after_processing):
    fake.drop_connection("POST", "/files", after_processing=after_processing)
    job = start(ws, provider, dataset_id)
    files = training_files(fake)
    assert len(files) == 2  # one train, one validation: the interrupted upload was not sent twice
    assert {f["id"] for f in files} == {job["details"]["training_file"], job["details"]["validation_file"]}
    assert fake.count("POST", "/files") == (2 if after_processing else 3)
    if after_processing:
        assert any("found in OpenAI's file list" in m for m in event_messages(ws, job["id"]))
    assert refresh(ws, provider, job["id"], times=5)["status"] == "succeeded"


def test_dropped_connection_during_job_creation_finds_the_created_job(ws, fake, provider, dataset_id):
    fake.drop_connection("POST", "/fine_tuning/jobs", after_processing=True)
    job = start(ws, provider, dataset_id)
    assert len(fake.jobs) == 2 and fake.count("POST", "/fine_tuning/jobs") == 1
    assert job["remote_id"] in fake.jobs
    assert any("reply was lost" in m for m in event_messages(ws, job["id"]))


def test_a_failed_lookup_after_a_lost_reply_does_not_create_a_second_job(ws, fake, provider, dataset_id):
    from model_customization.providers.base import idempotency_key

    base = provider.check_available(ws, None, "sft")
    hp = provider.parse_hyperparameters("sft", None)
    key = idempotency_key(dataset_id, base, "sft", hp)
    ws.store.jobs.add({"id": "job-lost", "provider": "openai", "base_model": base, "dataset_id": dataset_id, "method": "sft", "hyperparameters": hp, "status": "queued", "idempotency_key": key, "details": {}})
    fake.drop_connection("POST", "/fine_tuning/jobs", after_processing=True)
    # The first look for the job fails too (the SDK's own retries included): no second create until a look succeeds.
    fake.fail("GET", "/fine_tuning/jobs", 500, times=3, headers={"retry-after-ms": "1"})
    submitted = provider.submit(ws, ws.store.jobs.get("job-lost"))
    assert fake.count("POST", "/fine_tuning/jobs") == 1 and len(fake.jobs) == 2
    assert fake.jobs[submitted["remote_id"]]["object"]["metadata"]["mc_job_id"] == "job-lost"


def test_an_unknown_status_is_kept_verbatim(ws, fake, provider, dataset_id):
    fake.scripts.append(["validating_files", {"status": "reticulating_splines", "off_spec": True}, "running", "succeeded"])
    job = start(ws, provider, dataset_id)
    job = refresh(ws, provider, job["id"])
    assert job["status"] == "reticulating_splines" and job["remote_status"] == "reticulating_splines"
    assert [e for e in ws.store.jobs.events(job["id"], limit=None) if "does not know" in e["message"] and e["level"] == "warning"]
    job = refresh(ws, provider, job["id"], times=2)
    assert job["status"] == "succeeded" and job["model_id"]


# --- idempotency ----------------------------------------------------------------------------------------------------
def test_a_retried_start_finds_the_existing_job(ws, fake, provider, dataset_id):
    first = start(ws, provider, dataset_id)
    found = provider.find_existing(ws, first["idempotency_key"])
    assert found == {"remote_id": first["remote_id"], "remote_status": "validating_files", "details": {"training_file": first["details"]["training_file"], "validation_file": first["details"]["validation_file"]}}
    again = start(ws, provider, dataset_id)  # same dataset, model, method, hyperparameters
    assert again["remote_id"] == first["remote_id"] and len(created_jobs(fake)) == 1
    other = start(ws, provider, dataset_id, hyperparameters={"n_epochs": 2})
    assert other["remote_id"] != first["remote_id"] and len(created_jobs(fake)) == 2
    assert provider.find_existing(ws, "mc-no-such-key") is None
    # The lookup asks OpenAI to filter by metadata rather than reading every job.
    assert ("metadata[mc_idempotency_key]", first["idempotency_key"]) in [pair for _, template, query in fake.queries if template == "/fine_tuning/jobs" for pair in query]


def test_a_failed_job_does_not_block_a_new_start(ws, fake, provider, dataset_id):
    fake.scripts.append(["validating_files", {"status": "failed", "error": {"code": "invalid_training_file", "message": "bad", "param": "training_file"}}])
    first = start(ws, provider, dataset_id)
    refresh(ws, provider, first["id"])
    assert provider.find_existing(ws, first["idempotency_key"]) is None
    second = start(ws, provider, dataset_id)
    assert second["remote_id"] != first["remote_id"]
    # The same content is not uploaded again for the second try.
    assert second["details"]["training_file"] == first["details"]["training_file"] and len(training_files(fake)) == 2


# --- availability before spending -----------------------------------------------------------------------------------
def test_permission_denied_organisation_is_refused_before_any_upload(ws, fake, provider, dataset_id):
    from model_customization.errors import UserError

    fake.fail("GET", "/fine_tuning/jobs", 403, times=-1, message="You do not have access to fine-tuning.")
    with pytest.raises(UserError, match="may not use fine-tuning") as caught:
        start(ws, provider, dataset_id)
    assert "provider 'local'" in str(caught.value) and "2027-01-06" in str(caught.value)
    assert fake.count("POST", "/files") == 0 and fake.count("POST", "/fine_tuning/jobs") == 0


def test_an_organisation_that_never_fine_tuned_is_refused(ws, fake, provider, dataset_id):
    from model_customization.errors import UserError

    fake.jobs.clear()
    with pytest.raises(UserError, match="never run a fine-tuning job"):
        provider.check_available(ws, None, "sft")
    assert fake.count("POST", "/files") == 0


def test_refusals_by_date_and_base_model_come_before_any_call(ws, fake, provider, monkeypatch):
    from model_customization.errors import UserError
    from model_customization.providers.openai import training

    with pytest.raises(UserError, match="retired 'gpt-3.5-turbo-0125' on 2026-10-23.*gpt-4.1-mini"):
        provider.check_available(ws, "gpt-3.5-turbo", "sft")
    monkeypatch.setattr(training, "_today", lambda: date(2027, 1, 6))
    with pytest.raises(UserError, match="stopped accepting new fine-tuning jobs on 2027-01-06"):
        provider.check_available(ws, None, "sft")
    assert fake.calls == []
    monkeypatch.setattr(training, "_today", lambda: date(2026, 10, 22))  # the day before it retired
    fake.add_model("gpt-3.5-turbo-0125")
    assert provider.check_available(ws, "gpt-3.5-turbo", "sft") == "gpt-3.5-turbo-0125"


def test_unknown_and_shut_down_models_are_refused(ws, fake, provider):
    from model_customization.errors import UserError

    with pytest.raises(UserError, match="not available to this API key"):
        provider.check_available(ws, "gpt-9-mini", "sft")
    fake.add_model("gpt-4o-mini-2024-07-18", shutdown_date="2026-11-01")
    with pytest.raises(UserError, match="shut down on 2026-11-01"):
        provider.check_available(ws, "gpt-4o-mini", "sft")
    fake.add_model("my-new-model")
    assert provider.check_available(ws, "my-new-model", "sft") == "my-new-model"  # unknown to our tables: allowed when OpenAI knows it
    assert fake.count("POST", "/files") == 0


def test_a_missing_key_is_refused_first(ws, fake, provider, monkeypatch):
    from model_customization.errors import UserError

    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(UserError, match="OPENAI_API_KEY is not set"):
        provider.check_available(ws, None, "sft")
    assert fake.calls == []


def test_the_key_never_appears_in_errors(ws, fake, provider):
    from model_customization.errors import UserError

    fake.fail("GET", "/models/{model}", 401, message=f"Incorrect API key provided: {API_KEY}.", code="invalid_api_key")
    with pytest.raises(UserError) as caught:
        provider.check_available(ws, None, "sft")
    assert API_KEY not in str(caught.value) and "[OPENAI_API_KEY]" in str(caught.value) and "Check OPENAI_API_KEY" in str(caught.value)


# --- quote -----------------------------------------------------------------------------------------------------------
def test_quote_prices_a_valid_dataset_and_refuses_an_invalid_one(ws, fake, provider, dataset_id):
    from model_customization.datasets.build import get_dataset
    from model_customization.errors import UserError

    hp = provider.parse_hyperparameters("sft", {"n_epochs": 2})
    quote = provider.quote(ws, dataset_id, BASE, "sft", hp)
    assert quote["model"] == BASE and quote["epochs"] == 2 and quote["estimated_cost_usd"] > 0
    assert quote["estimated_cost_usd"] == pytest.approx(quote["billed_tokens"] * 5.0 / 1_000_000, abs=1e-4)
    with pytest.raises(UserError, match="DPO job needs preference pairs"):
        provider.quote(ws, dataset_id, BASE, "dpo", provider.parse_hyperparameters("dpo", None))
    unpriced = provider.quote(ws, dataset_id, "some-compatible-model", "sft", hp)
    assert unpriced["estimated_cost_usd"] is None and "No price is known" in unpriced["note"]

    train = Path(get_dataset(ws, dataset_id)["path"]) / "train.jsonl"
    lines = train.read_text().splitlines()
    train.chmod(0o644)
    train.write_text("\n".join([*lines, json.dumps({"messages": [{"role": "user", "content": "only a question"}]})]) + "\n")
    with pytest.raises(UserError, match=f"not valid for OpenAI.*train line {len(lines) + 1}"):
        provider.quote(ws, dataset_id, BASE, "sft", hp)
    assert fake.count("POST", "/files") == 0


# --- DPO ---------------------------------------------------------------------------------------------------------------
def test_dpo_job(ws, fake, provider, tmp_path):
    from model_customization.datasets.build import build_dataset

    source = tmp_path / "preferences.jsonl"
    rows = []
    for i in range(24):
        rows.append({
            "input": {"messages": [{"role": "system", "content": "Triage log lines."}, {"role": "user", "content": f"2026-01-01T00:00:{i:02d}Z [api-{i}] ERROR upstream timeout {i}"}]},
            "preferred_output": [{"role": "assistant", "content": f"severity: high; action: page (api-{i})"}],
            "non_preferred_output": [{"role": "assistant", "content": "looks fine"}],
        })
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    dataset = build_dataset(ws, [source], method="dpo").dataset_id
    job = start(ws, provider, dataset, method="dpo", hyperparameters={"beta": 0.2})
    (request,) = created_jobs(fake)
    assert request["method"] == {"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto", "beta": 0.2}}}
    uploaded = json.loads(fake.files[request["training_file"]]["content"].decode().splitlines()[0])
    assert set(uploaded) == {"input", "preferred_output", "non_preferred_output"}
    job = refresh(ws, provider, job["id"], times=4)
    assert job["status"] == "succeeded" and ws.store.models.get(job["model_id"])["dataset_id"] == dataset


# --- files -------------------------------------------------------------------------------------------------------------
def test_upload_reuses_the_same_content(ws, fake, dataset_id, tmp_path):
    from model_customization.providers.openai.files import upload_dataset_file
    from model_customization.workspace import Workspace

    first = upload_dataset_file(ws, dataset_id)
    second = upload_dataset_file(ws, dataset_id)
    assert first["file_id"] == second["file_id"] and not first["reused"] and second["reused"] and second["how"] == "reused"
    assert fake.count("POST", "/files") == 1 and first["sha256"] in first["filename"] and first["examples"] == 128

    # Another data home finds the upload by the hash in its filename instead of sending it again.
    other = Workspace.open(tmp_path / "other-home")
    from model_customization.datasets.build import build_dataset
    from model_customization.demo_data import demo_memory_paths

    assert build_dataset(other, demo_memory_paths()).dataset_id == dataset_id
    elsewhere = upload_dataset_file(other, dataset_id)
    assert elsewhere["file_id"] == first["file_id"] and elsewhere["how"] == "found" and fake.count("POST", "/files") == 1
    other.store.close()

    # Deleted on OpenAI's side: the ledger's record is stale, so the content is sent again.
    del fake.files[first["file_id"]]
    third = upload_dataset_file(ws, dataset_id)
    assert third["file_id"] != first["file_id"] and third["how"] == "uploaded" and fake.count("POST", "/files") == 2


def test_files_list_pages_and_delete_forgets(ws, fake, dataset_id):
    from model_customization.errors import NotFoundError
    from model_customization.providers.openai.files import delete_file, list_files, upload_dataset_file

    train = upload_dataset_file(ws, dataset_id, "train")
    validation = upload_dataset_file(ws, dataset_id, "validation")
    page = list_files(ws, limit=1)
    assert page["has_more"] and [f["id"] for f in page["files"]] == [validation["file_id"]]
    assert page["files"][0]["sha256"] == validation["sha256"] and page["files"][0]["uploaded_from_this_data_home"]
    rest = list_files(ws, limit=1, after=page["next_after"])
    assert [f["id"] for f in rest["files"]] == [train["file_id"]] and not rest["has_more"] and rest["next_after"] is None

    assert delete_file(ws, train["file_id"]) == {"id": train["file_id"], "deleted": True}
    assert ws.store.provider_files.find("openai", train["sha256"]) == []
    assert [f["id"] for f in list_files(ws)["files"]] == [validation["file_id"]]
    with pytest.raises(NotFoundError, match="list_files"):
        delete_file(ws, train["file_id"])


# --- listing remote jobs, events, checkpoints --------------------------------------------------------------------------
def test_remote_jobs_events_and_checkpoints(ws, fake, provider, dataset_id):
    from model_customization.errors import NotFoundError
    from model_customization.providers.openai.training import list_remote_jobs, remote_checkpoints, remote_events

    job = start(ws, provider, dataset_id)
    refresh(ws, provider, job["id"], times=4)
    page = list_remote_jobs(ws, limit=1)
    assert [j["id"] for j in page["jobs"]] == [job["remote_id"]] and page["jobs"][0]["ledger_job_id"] == job["id"] and page["has_more"]
    older = list_remote_jobs(ws, limit=1, after=page["next_after"])
    assert older["jobs"][0]["fine_tuned_model"] == "ft:gpt-4o-mini-2024-07-18:fake-org::old001" and not older["has_more"]

    events = remote_events(ws, job["id"], limit=3)
    assert events["job_id"] == job["remote_id"] and len(events["events"]) == 3 and events["has_more"]
    assert events["events"][0]["message"] == "The job has successfully completed"
    more = remote_events(ws, job["remote_id"], limit=3, after=events["next_after"])
    assert more["events"][0]["type"] == "metrics" and more["events"][0]["data"]["step"] == 5

    checkpoints = remote_checkpoints(ws, job["id"])["checkpoints"]
    assert [c["step"] for c in checkpoints] == [2, 4, 6] and checkpoints[0]["metrics"]["train_loss"] > 0
    with pytest.raises(NotFoundError):
        remote_events(ws, "nonsense")
    with pytest.raises(NotFoundError):
        remote_checkpoints(ws, "ftjob-missing")


# --- chat ---------------------------------------------------------------------------------------------------------------
def test_chat_through_chat_completions(ws, fake, monkeypatch):
    from model_customization.errors import NotFoundError
    from model_customization.providers.openai.chat import chat

    fake.chat_reply = lambda model, messages: f"{model} read {len(messages)} messages"
    messages = [{"role": "system", "content": "Triage log lines."}, {"role": "user", "content": "2026-01-01T00:00:00Z [db] ERROR disk full"}, {"role": "assistant", "content": "x", "weight": 0}]
    reply = chat(ws, BASE, messages[:2], max_tokens=32, temperature=0.0, seed=3)
    assert reply["text"] == f"{BASE} read 2 messages" and reply["model"] == BASE
    assert reply["prompt_tokens"] > 0 and reply["completion_tokens"] == 4 and reply["seconds"] >= 0 and reply["stop_reason"] == "stop"
    body = [b for m, t, b in fake.request_bodies if t == "/chat/completions"][-1]
    assert body["max_completion_tokens"] == 32 and body["seed"] == 3 and "max_tokens" not in body
    chat(ws, BASE, messages, max_tokens=8, temperature=0.5, seed=None)
    body = [b for m, t, b in fake.request_bodies if t == "/chat/completions"][-1]
    assert "weight" not in body["messages"][-1] and "seed" not in body
    with pytest.raises(NotFoundError, match="no model"):
        chat(ws, "ft:gpt-4.1-mini-2025-04-14:nobody::gone", messages[:2], max_tokens=8, temperature=0.0, seed=None)

    # An OpenAI-compatible server: its own base URL, and the older max_tokens.
    monkeypatch.setenv("MODEL_CUSTOMIZATION_OPENAI_BASE_URL", "http://localhost:8000/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://ignored.example/v1")
    chat(ws, BASE, messages[:2], max_tokens=16, temperature=0.0, seed=None)
    body = [b for m, t, b in fake.request_bodies if t == "/chat/completions"][-1]
    assert body["max_tokens"] == 16 and "max_completion_tokens" not in body


def test_sdk_is_not_imported_by_the_hyperparameters_module():
    import subprocess
    import sys

    code = "import sys, model_customization.providers.openai.hyperparameters as h; print(sorted(m for m in ('openai', 'httpx2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
