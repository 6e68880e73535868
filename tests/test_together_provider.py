"""The Together AI provider against a stateful fake of Together's API, every body checked against Together's OpenAPI
description (tests/together_fake.py), driven as the orchestrator drives it and through the MCP tools.

No request leaves the process: the real `together` SDK talks to the fake through httpx.MockTransport.
"""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, types

from together_fake import LLAMA, SMOL, FakeTogether, SpecViolation, serving, spec_validator

API_KEY = "tgp_v1_test-DO-NOT-LEAK-0123456789abcdef"
UPLOAD = "/files/upload"
CREATE = "/fine-tunes"


# --- fixtures and helpers -------------------------------------------------------------------------------------------
@pytest.fixture
def fake(ws, monkeypatch: pytest.MonkeyPatch):
    with serving(monkeypatch, API_KEY, ws=ws) as server:
        yield server


@pytest.fixture
def provider():
    from model_customization.providers.registry import get_provider

    return get_provider("together")


@pytest.fixture
def dataset_id(ws, demo_paths) -> str:
    from model_customization.datasets.build import build_dataset

    return build_dataset(ws, demo_paths).dataset_id


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def start(ws, provider, dataset_id: str, *, base_model: str | None = None, method: str = "sft", hyperparameters: dict | None = None, options: dict | None = None) -> dict[str, Any]:
    """What the orchestrator does for a new cloud job, in the order providers/base.py gives."""
    from model_customization.providers.base import idempotency_key

    base = provider.check_available(ws, base_model, method)
    hp = provider.parse_hyperparameters(method, hyperparameters)
    quote = provider.quote(ws, dataset_id, base, method, hp)
    key = idempotency_key(dataset_id, base, method, hp)
    existing = provider.find_existing(ws, key)
    job_id = "job-" + uuid.uuid4().hex[:12]
    ws.store.jobs.add({"id": job_id, "provider": "together", "base_model": base, "dataset_id": dataset_id, "method": method, "hyperparameters": hp,
                       "status": "queued", "idempotency_key": key, "details": {"options": options or {}}})
    ws.store.spending.add({"job_id": job_id, "provider": "together", "quoted_usd": quote["estimated_cost_usd"], "committed_usd": quote["estimated_cost_usd"] or 0.0, "approved_by": "argument"})
    submitted = existing or provider.submit(ws, ws.store.jobs.get(job_id))
    details = {**(ws.store.jobs.get(job_id)["details"] or {}), **submitted["details"]}
    ws.store.jobs.update(job_id, remote_id=submitted["remote_id"], remote_status=submitted["remote_status"], details=details)
    return ws.store.jobs.get(job_id)


def refresh(ws, provider, job_id: str, times: int = 1) -> dict[str, Any]:
    for _ in range(times):
        provider.refresh(ws, ws.store.jobs.get(job_id))
    return ws.store.jobs.get(job_id)


def messages(ws, job_id: str) -> list[str]:
    return [e["message"] for e in ws.store.jobs.events(job_id, limit=None)]


def preference_dataset(ws, tmp_path: Path) -> str:
    from model_customization.datasets.build import build_dataset

    source = tmp_path / "preferences.jsonl"
    rows = [
        {
            "input": {"messages": [{"role": "system", "content": "Triage log lines."}, {"role": "user", "content": f"2026-01-01T00:00:{i:02d}Z [api-{i}] ERROR upstream timeout {i}"}]},
            "preferred_output": [{"role": "assistant", "content": f"severity: high; action: page (api-{i})"}],
            "non_preferred_output": [{"role": "assistant", "content": "looks fine"}],
        }
        for i in range(24)
    ]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return build_dataset(ws, [source], method="dpo").dataset_id


# --- the fake holds to the spec ------------------------------------------------------------------------------------
def test_the_spec_validator_rejects_wrong_bodies_and_accepts_the_documented_quirks():
    validator = spec_validator()
    create = validator.request_ref("POST", CREATE)
    good = {"model": LLAMA, "training_file": "file-1", "training_method": {"method": "sft", "train_on_inputs": "auto"},
            "training_type": {"type": "Lora", "lora_r": 8, "lora_alpha": 16}, "random_seed": None,
            "lr_scheduler": {"lr_scheduler_type": "cosine", "lr_scheduler_args": {"min_lr_ratio": 0.0, "num_cycles": 0.5}}}
    assert validator.errors(create, good) == []  # nullable seed, "auto", a cosine schedule: as Together takes them
    assert validator.errors(create, {"training_file": "file-1"})  # no model
    assert validator.errors(create, {**good, "n_epochs": "three"})
    assert validator.errors(create, {**good, "batch_size": "min"})
    assert validator.errors(create, {**good, "training_type": {"type": "Lora"}})  # rank and alpha are required
    assert validator.errors(create, {**good, "training_method": {"method": "ppo"}})
    upload = validator.request_ref("POST", UPLOAD, "multipart/form-data")
    assert validator.errors(upload, {"purpose": "fine-tune", "file_name": "a.jsonl", "file": "{}"}) == []
    assert validator.errors(upload, {"purpose": "training", "file_name": "a.jsonl", "file": "{}"})
    assert validator.errors(validator.response_ref("GET", "/files"), {"data": [{"id": "file-1", "object": "file"}]})  # Processed, FileType ...
    event = validator.component_ref("FineTuneEvent")
    assert validator.errors(validator.response_ref("GET", "/fine-tunes/{id}/events"), {"data": [{"object": "fine-tune-event", "message": "x"}]})
    assert not any("level" in e for e in validator.errors(event, {"level": None}))  # a null level is Together's own


def test_a_request_that_breaks_the_spec_fails_the_test(fake: FakeTogether):
    import together

    client = together.Together(api_key=API_KEY, http_client=fake.http_client(), max_retries=0)
    # The SDK wraps whatever its transport raises as a connection error; the violation is its cause, and is also
    # kept in fake.violations, which `serving` asserts empty when every test ends.
    with pytest.raises(together.APIConnectionError) as raised:
        client.post(CREATE, body={"model": LLAMA, "training_file": "file-x", "training_type": {"type": "Lora"}}, cast_to=object)
    assert isinstance(raised.value.__cause__, SpecViolation) and "training_type" in str(raised.value.__cause__)
    assert fake.violations and fake.jobs == {}
    fake.violations.clear()


# --- hyperparameters ------------------------------------------------------------------------------------------------
def test_hyperparameters_follow_togethers_ranges(provider):
    from model_customization.errors import UserError

    sft = provider.parse_hyperparameters("sft", None)
    assert (sft["n_epochs"], sft["learning_rate"], sft["batch_size"], sft["lora"], sft["train_on_inputs"]) == (1, 1e-5, "max", True, "auto")
    assert "dpo_beta" not in sft
    assert provider.parse_hyperparameters("dpo", None)["dpo_beta"] == 0.1
    for bad, field in [({"n_epochs": 0}, "n_epochs"), ({"learning_rate": 0}, "learning_rate"), ({"batch_size": "auto"}, "batch_size"),
                       ({"lora_dropout": 1.0}, "lora_dropout"), ({"n_epochs": True}, "n_epochs"), ({"learning_rate_multiplier": 2}, "not a Together hyperparameter")]:
        with pytest.raises(UserError, match=field):
            provider.parse_hyperparameters("sft", bad)
    with pytest.raises(UserError, match="DPO jobs only"):
        provider.parse_hyperparameters("sft", {"dpo_beta": 0.2})
    with pytest.raises(UserError, match="SFT jobs only"):
        provider.parse_hyperparameters("dpo", {"train_on_inputs": True})
    with pytest.raises(UserError, match="LoRA jobs only"):
        provider.parse_hyperparameters("sft", {"lora": False, "lora_r": 8})
    with pytest.raises(UserError, match="'sft'"):
        provider.parse_hyperparameters("ppo", None)


def test_prices_come_from_the_dated_table_by_size_method_and_type():
    from model_customization.providers.together.pricing import model_size_billions, usd_per_million_tokens

    assert model_size_billions(LLAMA) == 8 and model_size_billions("Qwen/Qwen3-30B-A3B") == 30 and model_size_billions(SMOL) == 0.135
    assert usd_per_million_tokens(LLAMA, "sft", True) == 0.48 and usd_per_million_tokens(LLAMA, "dpo", False) == 1.35
    assert usd_per_million_tokens("meta-llama/Llama-3.3-70B-Instruct-Reference", "sft", True) == 2.90
    assert usd_per_million_tokens("deepseek-ai/DeepSeek-V3", "sft", True) is None  # size unknown: a person decides
    assert usd_per_million_tokens("meta-llama/Llama-4-Scout-17B-16E-Instruct", "sft", True) is None  # total size not in the name


# --- availability before anything is uploaded ------------------------------------------------------------------------
def test_refused_before_any_upload_when_unavailable(ws, fake, provider, dataset_id, monkeypatch):
    from model_customization.errors import UserError

    monkeypatch.delenv("TOGETHER_API_KEY")
    with pytest.raises(UserError, match="TOGETHER_API_KEY is not set.*provider 'local'"):
        provider.check_available(ws, None, "sft")
    assert fake.calls == []
    monkeypatch.setenv("TOGETHER_API_KEY", API_KEY)
    with pytest.raises(UserError, match=r"does not fine-tune 'meta-llama/Llama-9-400B'.*GET /fine-tunes/models/supported.*provider 'local'") as refused:
        provider.check_available(ws, "meta-llama/Llama-9-400B", "sft")
    assert "Did you mean" in str(refused.value)
    assert provider.check_available(ws, LLAMA.lower(), "sft") == LLAMA  # canonical spelling
    hp = provider.parse_hyperparameters("sft", {"n_epochs": 50, "lora_r": 128})
    with pytest.raises(UserError, match="n_epochs 50 is above its maximum 20; lora_r 128 is above its maximum rank 64"):
        provider.quote(ws, dataset_id, LLAMA, "sft", hp)
    with pytest.raises(UserError, match="preference pair"):
        provider.quote(ws, dataset_id, LLAMA, "dpo", provider.parse_hyperparameters("dpo", None))
    assert fake.count("POST", UPLOAD) == 0 and fake.count("POST", CREATE) == 0


def test_without_the_sdk_the_provider_names_the_extra(ws, fake, provider, monkeypatch):
    import sys

    from model_customization.errors import UserError

    monkeypatch.setitem(sys.modules, "together", None)  # as if the together extra were not installed
    with pytest.raises(UserError, match=r"pip install 'model-customization\[together\]'"):
        provider.check_available(ws, None, "sft")
    with pytest.raises(UserError, match="together"):
        provider.chat(ws, LLAMA, [{"role": "user", "content": "hi"}], max_tokens=5, temperature=0, seed=0)
    assert fake.calls == []


def test_quote_is_priced_before_upload_and_by_together_once_the_file_is_there(ws, fake, provider, dataset_id):
    hp = provider.parse_hyperparameters("sft", {"n_epochs": 2})
    quote = provider.quote(ws, dataset_id, LLAMA, "sft", hp)
    assert quote["usd_per_million_tokens"] == 0.48 and quote["billed_tokens"] == 2 * quote["tokens_per_epoch"] > 0
    assert quote["estimated_cost_usd"] == pytest.approx(quote["billed_tokens"] * 0.48 / 1e6, abs=1e-4)
    assert "2025" in quote["prices_read_on"] and fake.count("POST", UPLOAD) == 0
    assert provider.quote(ws, dataset_id, "deepseek-ai/DeepSeek-V3", "sft", hp)["estimated_cost_usd"] is None
    full = provider.quote(ws, dataset_id, LLAMA, "sft", provider.parse_hyperparameters("sft", {"n_epochs": 2, "lora": False}))
    assert full["usd_per_million_tokens"] == 0.54
    start(ws, provider, dataset_id, hyperparameters={"n_epochs": 2})  # uploads the training file
    again = provider.quote(ws, dataset_id, LLAMA, "sft", hp)
    assert again["together_estimate"]["allowed_to_proceed"] is True
    assert again["estimated_cost_usd"] == pytest.approx(again["together_estimate"]["estimated_total_price"], abs=1e-4)
    assert fake.count("POST", "/fine-tunes/estimate-price") == 1


# --- a job from start to end ------------------------------------------------------------------------------------------
def test_a_job_runs_to_a_registered_model_with_metrics_events_and_checkpoints(ws, fake, provider, dataset_id):
    job = start(ws, provider, dataset_id, hyperparameters={"n_epochs": 2, "lora_r": 16, "learning_rate": 2e-5}, options={"suffix": "triage", "seed": 7})
    (request,) = fake.bodies("POST", CREATE)
    assert request["training_method"] == {"method": "sft", "train_on_inputs": "auto"}
    assert request["training_type"] == {"type": "Lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "lora_trainable_modules": "all-linear"}
    assert (request["n_epochs"], request["learning_rate"], request["batch_size"], request["random_seed"]) == (2, 2e-5, "max", 7)
    assert request["suffix"].startswith("triage-mc-") and len(request["suffix"]) <= 40 and "validation_file" in request
    uploaded = fake.files[request["training_file"]]
    first = json.loads(uploaded["content"].decode().splitlines()[0])
    assert set(first) <= {"messages", "tools"} and uploaded["object"]["filename"].endswith(f"-{len(uploaded['content'])}b.jsonl")
    assert job["status"] == "queued" and job["remote_status"] == "pending" and job["remote_id"].startswith("ft-")

    statuses = []
    for _ in range(6):
        job = refresh(ws, provider, job["id"])
        statuses.append((job["status"], job["remote_status"]))
    assert ("queued", "queued") in statuses and ("running", "running") in statuses and ("running", "uploading") in statuses
    assert statuses[-1] == ("succeeded", "completed")
    metrics = ws.store.jobs.metrics(job["id"])
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5, 6] and metrics[0]["train_loss"] > metrics[-1]["train_loss"]
    assert any(m["validation_loss"] is not None for m in metrics) and job["total_steps"] == 6
    texts = messages(ws, job["id"])
    assert any(t.startswith("Together: Training started") for t in texts) and any("Together: Job finished" in t for t in texts)
    assert len([t for t in texts if t.startswith("Together: Fine tune request created")]) == 1  # each event recorded once
    details = job["details"]
    assert [c["step"] for c in details["checkpoints"]] == [3, 6] and details["checkpoints"][0]["name"] == f"{job['remote_id']}:3"
    model = ws.store.models.get(job["model_id"])
    assert (model["provider"], model["job_id"], model["dataset_id"], model["base_model"]) == ("together", job["id"], dataset_id, LLAMA)
    assert "triage-mc-" in job["model_id"]
    assert ws.store.spending.for_job(job["id"])["actual_usd"] == details["actual_cost_usd"] > 0
    assert details["adapter_download"]["status"] == "skipped"  # Llama 3.1 8B cannot be loaded on this machine
    checkpoints = provider.job_checkpoints(ws, job["id"])
    assert [c["step"] for c in checkpoints["checkpoints"]] == [3, 6]


def test_dpo_job_sends_togethers_preference_format(ws, fake, provider, tmp_path):
    dataset = preference_dataset(ws, tmp_path)
    with pytest.raises(Exception, match="conversation"):
        start(ws, provider, dataset, method="sft")
    assert fake.count("POST", UPLOAD) == 0
    job = start(ws, provider, dataset, method="dpo", hyperparameters={"dpo_beta": 0.2, "lora": False})
    (request,) = fake.bodies("POST", CREATE)
    assert request["training_method"] == {"method": "dpo", "dpo_beta": 0.2} and request["training_type"] == {"type": "Full"}
    uploaded = json.loads(fake.files[request["training_file"]]["content"].decode().splitlines()[0])
    assert set(uploaded) == {"input", "preferred_output", "non_preferred_output"} and uploaded["input"]["messages"][-1]["role"] == "user"
    job = refresh(ws, provider, job["id"], times=5)
    assert job["status"] == "succeeded" and ws.store.models.get(job["model_id"])["dataset_id"] == dataset
    assert job["details"]["adapter_download"]["status"] == "skipped"  # full fine-tuning: no adapter


def test_bad_rows_are_refused_with_split_and_line_before_upload(ws, fake, provider, dataset_id):
    from model_customization.datasets.build import get_dataset
    from model_customization.errors import UserError

    train = Path(get_dataset(ws, dataset_id)["path"]) / "train.jsonl"
    lines = train.read_text().splitlines()
    train.chmod(0o644)
    train.write_text("\n".join([*lines, json.dumps({"messages": [{"role": "user", "content": "only a question"}]})]) + "\n")
    with pytest.raises(UserError, match=f"train line {len(lines) + 1}: conversation has no assistant message.*Nothing was uploaded"):
        provider.quote(ws, dataset_id, LLAMA, "sft", provider.parse_hyperparameters("sft", None))
    assert fake.count("POST", UPLOAD) == 0


def test_inspect_dataset_measures_by_togethers_rules(ws, fake, dataset_id, tmp_path):
    from model_customization.datasets.inspect import inspect_dataset

    report = inspect_dataset(ws, dataset_id=dataset_id, provider="together", epochs=2)
    assert report["valid"] and report["model"] == LLAMA and report["tokenizer"].startswith("o200k_base")
    assert report["quote"]["usd_per_million_tokens"] == 0.48 and report["quote"]["billed_tokens"] > 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) + "\n"
                   + json.dumps({"messages": [{"role": "user", "content": "only a question"}]}) + "\n")
    found = inspect_dataset(ws, path=str(bad), provider="together")
    assert not found["valid"] and any(f["line"] == 2 for f in found["findings"] if f["severity"] == "error")
    assert fake.calls == []  # measuring is local: nothing is sent to Together


# --- files ------------------------------------------------------------------------------------------------------------
def test_upload_reuses_the_same_content_even_from_another_data_home(ws, fake, provider, dataset_id, tmp_path):
    from model_customization.providers.together.client import together_client
    from model_customization.providers.together.files import ensure_uploaded, render_split
    from model_customization.workspace import Workspace

    data, _ = render_split(ws, dataset_id, "train", "sft")
    first = ensure_uploaded(ws, together_client(), data, f"{dataset_id}-train")
    second = ensure_uploaded(ws, together_client(), data, f"{dataset_id}-train")
    assert (first.how, second.how, first.file_id) == ("uploaded", "reused", second.file_id)
    other = Workspace.open(tmp_path / "other-home")
    try:
        found = ensure_uploaded(other, together_client(), data, "renamed-hint")
    finally:
        other.store.close()
    assert found.how == "found" and found.file_id == first.file_id
    # A lost reply after the bytes arrived: the retry looks first and takes that file instead of sending a copy.
    fake.drop_connection("POST", UPLOAD, after_processing=True)
    changed = data + b'{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}\n'
    late = ensure_uploaded(ws, together_client(), changed, f"{dataset_id}-train")
    assert late.how == "found" and fake.count("POST", UPLOAD) == 2 and len(fake.files) == 2
    # Two starts of jobs on the same dataset upload each split once.
    start(ws, provider, dataset_id)
    start(ws, provider, dataset_id, hyperparameters={"n_epochs": 2})
    assert fake.count("POST", UPLOAD) == 3  # the validation split, once


# --- idempotency ------------------------------------------------------------------------------------------------------
def test_a_lost_reply_on_create_finds_the_job_instead_of_making_a_second(ws, fake, provider, dataset_id):
    fake.drop_connection("POST", CREATE, after_processing=True)
    job = start(ws, provider, dataset_id, options={"suffix": "retry"})
    assert len(fake.jobs) == 1 and fake.count("POST", CREATE) == 1
    assert job["remote_id"] in fake.jobs
    assert any("created by an earlier try whose reply was lost" in t for t in messages(ws, job["id"]))
    # A start_job from a ledger that never heard of the job (a lost reply to the whole call) adopts it too.
    from model_customization.providers.base import idempotency_key

    hp = provider.parse_hyperparameters("sft", None)
    found = provider.find_existing(ws, idempotency_key(dataset_id, LLAMA, "sft", hp))
    assert found["remote_id"] == job["remote_id"]
    assert provider.find_existing(ws, "some-other-key") is None
    # A server error before anything was created is retried, and makes exactly one job.
    fake.fail("POST", CREATE, 503)
    second = start(ws, provider, dataset_id, hyperparameters={"n_epochs": 3})
    assert len(fake.jobs) == 2 and second["remote_id"] != job["remote_id"]


# --- status, cancel, faults -------------------------------------------------------------------------------------------
def test_an_unknown_status_is_kept_verbatim_and_cancel_stops_the_job(ws, fake, provider, dataset_id):
    fake.scripts.append(["pending", "defrosting", "running", "running"])
    fake.off_spec_statuses.add("defrosting")
    job = start(ws, provider, dataset_id)
    job = refresh(ws, provider, job["id"])
    assert (job["status"], job["remote_status"]) == ("defrosting", "defrosting")
    assert any("'defrosting'" in t and "does not know" in t for t in messages(ws, job["id"]))
    job = refresh(ws, provider, job["id"])
    assert job["status"] == "running"
    provider.cancel(ws, job)
    job = ws.store.jobs.get(job["id"])
    assert (job["status"], job["remote_status"]) == ("cancelled", "cancelled")
    assert fake.jobs[job["remote_id"]]["object"]["status"] == "cancelled"


def test_a_failed_job_records_togethers_reason(ws, fake, provider, dataset_id):
    fake.scripts.append(["pending", "error"])
    job = refresh(ws, provider, start(ws, provider, dataset_id)["id"])
    assert job["status"] == "failed" and "could not be tokenized" in job["error"]


def test_through_the_orchestrator_unreachable_keeps_state_and_cancel_works(ws, fake, dataset_id, monkeypatch):
    from model_customization.jobs import orchestrator

    monkeypatch.setenv("MODEL_CUSTOMIZATION_POLL_BACKOFF_SECONDS", "0")
    job = orchestrator.start_job(ws, dataset_id, provider="together", confirm_cost_usd=100)
    assert job["remote_id"] in fake.jobs
    fake.fail("GET", "/fine-tunes/{id}", 503, times=50)
    checked = orchestrator.check_job(ws, job["job_id"])
    assert checked["status"] == job["status"]
    assert any("unreachable" in e["message"] and e["level"] == "warning" for e in checked["events"])
    fake.faults.clear()
    fake.drop_connection("GET", "/fine-tunes/{id}", after_processing=False, times=50)
    assert orchestrator.check_job(ws, job["job_id"])["status"] == job["status"]
    fake.faults.clear()
    cancelled = orchestrator.cancel_job(ws, job["job_id"])
    assert cancelled["status"] == "cancelled"
    assert API_KEY not in json.dumps([checked, cancelled, ws.store.jobs.events(job["job_id"], None)], default=str)


def test_the_key_never_appears_in_errors(ws, fake, provider, dataset_id):
    from model_customization.errors import UserError

    fake.fail("GET", "/fine-tunes/models/supported", 401, message=f"key {API_KEY} is not valid")
    with pytest.raises(UserError) as refused:
        provider.check_available(ws, None, "sft")
    assert API_KEY not in str(refused.value) and "[TOGETHER_API_KEY]" in str(refused.value) and "Check TOGETHER_API_KEY" in str(refused.value)


# --- chat ---------------------------------------------------------------------------------------------------------------
def test_chat_with_base_and_tuned_models_and_which_names_are_claimed(ws, fake, provider, dataset_id, monkeypatch):
    from model_customization.errors import NotFoundError
    from model_customization.providers.chat import chat, resolve_chat_model

    assert resolve_chat_model(ws, "together:anything/at-all") == ("together", "anything/at-all")
    assert resolve_chat_model(ws, "meta-llama/Llama-3.3-70B-Instruct-Turbo")[0] == "together"
    assert resolve_chat_model(ws, "my-models/some-folder")[0] == "local"  # not a Together organisation: a folder
    assert resolve_chat_model(ws, "gpt-4.1-mini")[0] == "openai"
    ws.settings = dataclasses.replace(ws.settings, budget_per_job_usd=1.0, budget_per_day_usd=1000.0)  # chat within budgets
    monkeypatch.setenv("MODEL_CUSTOMIZATION_CHAT_PRICES", json.dumps({"meta-llama/Llama-3.3-70B-Instruct-Turbo": [0.88, 0.88]}))
    answer = chat(ws, "meta-llama/Llama-3.3-70B-Instruct-Turbo", [{"role": "user", "content": "hello"}], max_tokens=20)
    assert answer["provider"] == "together" and answer["text"] == "together reply from meta-llama/Llama-3.3-70B-Instruct-Turbo"
    assert answer["prompt_tokens"] > 0 and answer["stop_reason"] == "stop"
    (sent,) = fake.bodies("POST", "/chat/completions")
    assert sent["max_tokens"] == 20 and sent["temperature"] == 0.0
    with pytest.raises(NotFoundError, match="Together has no model"):
        provider.chat(ws, "nobody/none", [{"role": "user", "content": "hi"}], max_tokens=5, temperature=0, seed=0)
    job = refresh(ws, provider, start(ws, provider, dataset_id)["id"], times=6)
    monkeypatch.setenv("MODEL_CUSTOMIZATION_CHAT_PRICES", json.dumps({job["model_id"]: [0.2, 0.2]}))
    tuned = chat(ws, job["model_id"], [{"role": "user", "content": "hello"}], max_tokens=10)
    assert tuned["provider"] == "together" and tuned["text"] == f"together reply from {job['model_id']}"


# --- the adapter comes home when its base runs here -----------------------------------------------------------------
def _adapter_archive(embedded_base: Path, folder: Path) -> bytes:
    """A real PEFT LoRA adapter for the embedded model (rank 2, random B so it changes answers), as a tar.gz."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(embedded_base, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(folder / "adapter")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder / "adapter", arcname="ft-output/adapter")
    return buffer.getvalue()


def test_the_adapter_of_a_lora_on_a_base_that_runs_here_comes_home(ws, fake, provider, dataset_id, embedded_base, tmp_path):
    from model_customization.providers.chat import chat

    fake.adapter_archive = _adapter_archive(embedded_base, tmp_path)
    job = start(ws, provider, dataset_id, base_model=SMOL, hyperparameters={"lora_r": 2})
    job = refresh(ws, provider, job["id"], times=6)
    assert job["status"] == "succeeded"
    download = job["details"]["adapter_download"]
    assert download["status"] == "downloaded" and fake.count("GET", "/finetune/download") == 1
    local = ws.store.models.get(download["local_model_id"])
    assert (local["provider"], local["kind"], local["base_model"], local["job_id"], local["dataset_id"]) == ("local", "tuned", "SmolLM2-135M-Instruct", job["id"], dataset_id)
    assert (Path(local["path"]) / "adapter_config.json").is_file()
    answer = chat(ws, download["local_model_id"], [{"role": "user", "content": "Say hi."}], max_tokens=4)
    assert answer["provider"] == "local" and answer["completion_tokens"] > 0
    from model_customization.providers.local.export import export_model

    exported = export_model(ws, download["local_model_id"], ["adapter", "ollama"], str(tmp_path / "export"))
    written = {Path(f["path"]).name for f in exported["files"]}
    assert {"adapter_model.safetensors", "adapter_config.json", "Modelfile"} <= written, written
    assert exported["base_model"] == "SmolLM2-135M-Instruct" and exported["ollama_command"]


def test_an_archive_without_an_adapter_is_refused(tmp_path):
    from model_customization.errors import UserError
    from model_customization.providers.together.adapters import unpack_adapter

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("model/README.md")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(UserError, match="no adapter_config.json"):
        unpack_adapter(buffer.getvalue(), tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists()


# --- through the MCP tools: the spending guard ---------------------------------------------------------------------------
def _structured(result: types.CallToolResult) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


@pytest.mark.anyio
async def test_over_budget_is_refused_then_confirmed_by_argument_through_mcp(ws, fake, dataset_id):
    from model_customization.server.app import build_server

    async with Client(build_server(ws=ws)) as client:
        quote = _structured(await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "together", "dry_run": True}))
        cost = quote["quote"]["estimated_cost_usd"]
        assert quote["status"] == "dry_run" and cost > 0
        refused = await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "together"})
        assert refused.is_error and f"confirm_cost_usd={cost}" in refused.content[0].text
        assert fake.count("POST", UPLOAD) == 0 and fake.count("POST", CREATE) == 0 and ws.store.jobs.all() == []
        arguments = {"dataset_id": dataset_id, "provider": "together", "confirm_cost_usd": cost, "hyperparameters": {"lora_r": 8, "n_epochs": 1}, "options": {"suffix": "guarded"}}
        job = _structured(await client.call_tool("start_job", arguments))
        assert job["spend"]["approved_by"] == "argument" and job["remote_id"].startswith("ft-")
        again = _structured(await client.call_tool("start_job", arguments))
        assert again["job_id"] == job["job_id"] and fake.count("POST", CREATE) == 1
        for _ in range(8):
            status = _structured(await client.call_tool("check_job", {"job_id": job["job_id"]}))
            if status["status"] == "succeeded":
                break
        assert status["status"] == "succeeded" and "guarded-mc-" in status["model_id"]
        # An option Together does not take is refused by name, and nothing is created at Together.
        refused_option = await client.call_tool("start_job", {**arguments, "confirm_cost_usd": 100, "options": {"metadata": {"team": "x"}}, "idempotency_key": "other"})
        assert refused_option.is_error and "Together jobs take no metadata" in refused_option.content[0].text
        assert fake.count("POST", CREATE) == 1
    assert API_KEY not in json.dumps([ws.store.jobs.all(), ws.store.jobs.events(job["job_id"], None)], default=str)


@pytest.mark.anyio
async def test_confirmed_by_elicitation_through_mcp(ws, fake, dataset_id):
    from model_customization.server.app import build_server

    asked: list[str] = []

    async def accept(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})

    async with Client(build_server(ws=ws), elicitation_callback=accept) as client:
        job = _structured(await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "together"}))
    assert len(asked) == 1 and "together" in asked[0] and job["spend"]["approved_by"] == "elicitation"
    assert fake.count("POST", CREATE) == 1


def test_an_unknown_price_needs_a_person(ws, fake, dataset_id):
    from model_customization.jobs import orchestrator
    from model_customization.jobs.spending import ConfirmationNeeded

    ws.settings = dataclasses.replace(ws.settings, budget_per_job_usd=100.0, budget_per_day_usd=1000.0)
    with pytest.raises(ConfirmationNeeded):
        orchestrator.start_job(ws, dataset_id, provider="together", base_model="deepseek-ai/DeepSeek-V3")
    assert fake.count("POST", UPLOAD) == 0 and ws.store.jobs.all() == []
