"""OpenAI-compatible endpoints beyond the built-ins, and the dates of OpenAI's closing.

A [openai_compatible.<name>] table of the config file becomes a provider of that name: it trains and chats through
the stateful fake (OpenAI's spec, bearer auth) at its own base URL, with its own key variable, base models and prices.
Config errors name the file, the key and the line, never a value. With a fixed today: OpenAI's start_job refuses from
2027-01-06 naming the providers that still train (asked of the registry, configured endpoints included), and the
models OpenAI shuts down on 2027-01-14 are flagged in check_job, list_models and prompt_model, then refused.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path

import pytest
from mcp import Client

from openai_fake import serving
from model_customization.config import ConfigError, read_config_file
from model_customization.errors import UserError
from model_customization.jobs import orchestrator
from model_customization.jobs.spending import Consent

API_KEY = "mantle-key-DO-NOT-LEAK-0123456789abcdef"
TUNABLE = "openai.gpt-oss-20b"
MANTLE = """\
# Amazon Bedrock's OpenAI-compatible fine-tuning endpoint (bedrock-mantle), as the README documents it
[openai_compatible.mantle]
title = "Amazon Bedrock (OpenAI-compatible)"
base_url = "https://bedrock-mantle.us-east-1.api.aws/v1"
auth = "bearer"
key_env = "MANTLE_TEST_KEY"
closes_on = {closes_on}
base_models = ["openai.gpt-oss-20b"]
default_base_model = "openai.gpt-oss-20b"

[openai_compatible.mantle.training_prices]
"openai.gpt-oss-20b" = {{ usd_per_million_tokens = 2.0 }}

[openai_compatible.mantle.chat_prices]
"openai.gpt-oss-20b" = [0.075, 0.30]
"""


def _write_config(tmp_path: Path, monkeypatch, text: str) -> Path:
    from model_customization.providers.registry import clear_cache

    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    monkeypatch.setenv("MODEL_CUSTOMIZATION_CONFIG", str(path))
    clear_cache()
    return path


@pytest.fixture
def mantle(ws, tmp_path, monkeypatch):
    from model_customization.providers.registry import clear_cache

    _write_config(tmp_path, monkeypatch, MANTLE.format(closes_on="2027-06-30"))
    monkeypatch.setenv("MANTLE_TEST_KEY", API_KEY)
    yield
    monkeypatch.delenv("MODEL_CUSTOMIZATION_CONFIG")
    clear_cache()


@pytest.fixture
def dataset_id(ws, demo_paths) -> str:
    from model_customization.datasets.build import build_dataset

    return build_dataset(ws, demo_paths).dataset_id


# --- a configured endpoint -------------------------------------------------------------------------------------------
def test_a_configured_endpoint_trains_and_chats_with_bearer_auth(ws, mantle, monkeypatch, dataset_id):
    from model_customization.providers.chat import chat
    from model_customization.providers.registry import get_provider, provider_names

    assert "mantle" in provider_names("train") and "mantle" in provider_names("chat")
    provider = get_provider("mantle")
    assert provider.title == "Amazon Bedrock (OpenAI-compatible)" and provider.paid
    with serving(monkeypatch, "not-this-one", ws=ws) as fake:
        fake.api_key = API_KEY  # the fake takes the endpoint's own key, from MANTLE_TEST_KEY
        fake.add_model(TUNABLE)
        quote = orchestrator.start_job(ws, dataset_id, provider="mantle", dry_run=True)["quote"]
        assert quote["usd_per_million_tokens"] == 2.0 and quote["estimated_cost_usd"] == pytest.approx(quote["billed_tokens"] * 2.0 / 1_000_000, abs=1e-4)
        job = orchestrator.start_job(ws, dataset_id, provider="mantle", confirm_cost_usd=quote["estimated_cost_usd"])
        assert job["base_model"] == TUNABLE and job["provider"] == "mantle"
        for _ in range(12):
            checked = orchestrator.check_job(ws, job["job_id"])
            if checked["status"] == "succeeded":
                break
        assert checked["status"] == "succeeded" and ws.store.models.get(checked["model_id"])["provider"] == "mantle"
        trained = fake.jobs[job["remote_id"]]["object"]["trained_tokens"]
        assert ws.store.spending.for_job(job["job_id"])["actual_usd"] == pytest.approx(round(trained * 2.0 / 1_000_000, 4))  # its own price
        assert fake.hosts == {"bedrock-mantle.us-east-1.api.aws"}
        assert fake.auth_headers and all(h == {"authorization": f"Bearer {API_KEY}"} for h in fake.auth_headers)
        # The uploads are the endpoint's own in the ledger (a later openai job uploads its own copy).
        import hashlib

        from model_customization.providers.openai.files import render_split

        train_sha = hashlib.sha256(render_split(ws, dataset_id, "train")[0]).hexdigest()
        assert ws.store.provider_files.find("mantle", train_sha) and ws.store.provider_files.find("openai", train_sha) == []
        # Chat with the base model at the endpoint's own price (no operator price needed), within budgets.
        ws.settings = dataclasses.replace(ws.settings, budget_per_job_usd=1.0, budget_per_day_usd=100.0)
        reply = chat(ws, f"mantle:{TUNABLE}", [{"role": "user", "content": "hello"}], max_tokens=8)
        assert reply["provider"] == "mantle" and reply["text"] == f"reply from {TUNABLE}"
        # The tuned model has no price in the table: a person accepts the unknown price, and the registry routes it.
        tuned = chat(ws, checked["model_id"], [{"role": "user", "content": "hello"}], max_tokens=8, consent=Consent(human_usd=float("inf")))
        assert tuned["provider"] == "mantle" and tuned["text"] == f"reply from {checked['model_id']}"
    assert API_KEY not in json.dumps([ws.store.jobs.all(), ws.store.jobs.events(job["job_id"], None)], default=str)


def test_a_configured_endpoint_refuses_a_model_it_does_not_tune_before_any_call(ws, mantle, monkeypatch):
    from model_customization.providers.registry import get_provider

    with serving(monkeypatch, API_KEY, ws=ws) as fake:
        with pytest.raises(UserError, match=r"does not fine-tune 'gpt-4.1-mini'; its base models: openai.gpt-oss-20b \(config file .*config.toml line 4\)"):
            get_provider("mantle").check_available(ws, "gpt-4.1-mini", "sft")
        assert fake.calls == []
        monkeypatch.delenv("MANTLE_TEST_KEY")
        with pytest.raises(UserError, match="MANTLE_TEST_KEY is not set for provider 'mantle'"):
            get_provider("mantle").check_available(ws, None, "sft")


def test_config_errors_name_the_file_key_and_line_never_the_secret(tmp_path):
    secret = "sk-config-SECRET-0123456789abcdef"
    path = tmp_path / "config.toml"
    path.write_text(f'[openai_compatible.mine]\nbase_url = "https://llm.example/v1"\napi_key = "{secret}"\nauth = "{secret}"\n')
    path.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        read_config_file(path)
    assert f"{path} line 4 (openai_compatible.mine.auth)" in str(caught.value) and "bearer, api-key, none" in str(caught.value)
    assert secret not in str(caught.value)
    path.write_text('[openai_compatible.mine]\nbase_url = "https://llm.example/v1"\nkey_env = "MINE_KEY"\nprices = 3\n')
    with pytest.raises(ConfigError, match=r"line 4 \(openai_compatible.mine.prices\): unknown endpoint setting"):
        read_config_file(path)
    path.write_text('[openai_compatible.mine]\ntitle = "no url"\nkey_env = "MINE_KEY"\n')
    with pytest.raises(ConfigError, match=r"line 1 \(openai_compatible.mine\): a new endpoint needs base_url"):
        read_config_file(path)
    path.write_text('[openai_compatible.mine]\nbase_url = "https://llm.example/v1"\nkey_env = "MINE_KEY"\n[openai_compatible.mine.training_prices]\n"m" = { usd = 3 }\n')
    with pytest.raises(ConfigError, match=r"line 5 \(openai_compatible.mine.training_prices.m\)"):
        read_config_file(path)
    # A key in the file makes it a file of secrets: readable by others, it is refused, naming the key, not its value.
    path.write_text(f'[openai_compatible.mine]\nbase_url = "https://llm.example/v1"\napi_key = "{secret}"\n')
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"openai_compatible.mine.api_key.*chmod 600") as caught:
        read_config_file(path)
    assert secret not in str(caught.value)
    path.chmod(0o600)
    endpoints = read_config_file(path).endpoints
    assert endpoints["mine"]["api_key_value"] == secret and secret not in repr(read_config_file(path))


# --- OpenAI's closing and shutdown dates ------------------------------------------------------------------------------
def test_openai_refuses_new_jobs_from_2027_01_06_naming_the_providers_that_still_train(ws, mantle, monkeypatch):
    from model_customization.providers.openai import training
    from model_customization.providers.registry import get_provider

    with serving(monkeypatch, "sk-openai-0123456789abcdef", ws=ws, today=date(2027, 1, 6)) as fake:
        with pytest.raises(UserError, match="stopped accepting new fine-tuning jobs on 2027-01-06") as caught:
            get_provider("openai").check_available(ws, None, "sft")
        assert fake.calls == []
    alternatives = str(caught.value).split("Providers that still train:")[1]
    for name in ("'local'", "'azure-openai'", "'mantle'", "'bedrock'"):
        assert name in alternatives, alternatives
    assert "'openai'" not in alternatives and "'anthropic'" not in alternatives  # closed, or cannot train
    # An endpoint past its own closing date is not offered either.
    _write_config(Path(str(ws.settings.home)).parent, monkeypatch, MANTLE.format(closes_on="2027-01-01"))
    monkeypatch.setattr(training, "_today", lambda: date(2027, 1, 6))
    with pytest.raises(UserError) as caught:
        get_provider("openai").check_available(ws, None, "sft")
    assert "'mantle'" not in str(caught.value) and "'azure-openai'" in str(caught.value)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_models_shutting_down_are_flagged_then_refused(ws, monkeypatch, dataset_id):
    from model_customization.providers.openai import provider as provider_module
    from model_customization.server.app import build_server

    with serving(monkeypatch, "sk-openai-0123456789abcdef", ws=ws, today=date(2026, 12, 6)) as fake:
        job = orchestrator.start_job(ws, dataset_id, provider="openai", confirm_cost_usd=100)
        for _ in range(12):
            checked = orchestrator.check_job(ws, job["job_id"])
            if checked["status"] == "succeeded":
                break
        tuned = checked["model_id"]
        assert tuned.startswith("ft:gpt-4.1-mini-2025-04-14:")
        assert checked["notice"] == f"{tuned} (gpt-4.1-mini family, fine-tunes included) shuts down on 2027-01-14 at OpenAI; move to another model before then."
        ws.settings = dataclasses.replace(ws.settings, budget_per_job_usd=1.0, budget_per_day_usd=1000.0)
        async with Client(build_server(ws=ws)) as client:
            listed = (await client.call_tool("list_models", {})).structured_content["models"]
            notices = {m["model_id"]: m["notice"] for m in listed}
            assert "2027-01-14" in notices[tuned] and notices["SmolLM2-135M-Instruct"] is None
            answer = (await client.call_tool("prompt_model", {"model": tuned, "prompt": "hello"})).structured_content
            assert answer["text"] == f"reply from {tuned}" and "shuts down on 2027-01-14" in answer["notice"]
            plain = (await client.call_tool("prompt_model", {"model": "gpt-4o-mini-2024-07-18", "prompt": "hello"}))
            assert "gpt-4o-mini family" in plain.structured_content["notice"]

            # From the shutdown date the model is refused before anything is sent, naming what still answers.
            monkeypatch.setattr(provider_module, "_today", lambda: date(2027, 1, 14))
            sent = fake.count("POST", "/chat/completions")
            refused = await client.call_tool("prompt_model", {"model": tuned, "prompt": "hello"})
            assert refused.is_error and "shut down the gpt-4.1-mini family and its fine-tunes on 2027-01-14" in refused.content[0].text
            assert "'local'" in refused.content[0].text and fake.count("POST", "/chat/completions") == sent
            listed = (await client.call_tool("list_models", {})).structured_content["models"]
            assert "shut down on 2027-01-14" in {m["model_id"]: m["notice"] for m in listed}[tuned]
        # A model with no shutdown scheduled carries no notice.
        assert orchestrator.summarize_job(ws, {**ws.store.jobs.get(job["job_id"]), "model_id": None, "base_model": "gpt-4.1-nano-2025-04-14"})["notice"] is None


def test_each_endpoint_validates_the_stored_dataset_with_its_own_limit(ws, tmp_path, monkeypatch, dataset_id):
    from model_customization.datasets.inspect import inspect_dataset
    from model_customization.providers.registry import clear_cache

    _write_config(tmp_path, monkeypatch, MANTLE.format(closes_on="2027-06-30").replace('default_base_model = "openai.gpt-oss-20b"', 'default_base_model = "openai.gpt-oss-20b"\nexample_token_limit = 60'))
    try:
        strict = inspect_dataset(ws, dataset_id=dataset_id, provider="mantle")
        roomy = inspect_dataset(ws, dataset_id=dataset_id, provider="azure-openai")
    finally:
        monkeypatch.delenv("MODEL_CUSTOMIZATION_CONFIG")
        clear_cache()
    # The same stored rows, rendered in the same chat format: the endpoint with a 60-token limit refuses the long
    # examples by split and line; Azure's 65,536 takes them all. Both count with o200k (gpt-oss is an estimate there).
    too_long = [f for f in strict["findings"] if f["code"] == "example_too_long"]
    assert too_long and not strict["valid"] and all("Amazon Bedrock (OpenAI-compatible) takes at most 60" in f["message"] for f in too_long)
    assert all(f["line"] >= 1 and f["split"] in ("train", "validation", "test") for f in too_long)
    assert roomy["valid"] and roomy["counts"] == strict["counts"] and roomy["tokenizer"] == strict["tokenizer"] == "o200k_base"
    assert "estimate" in strict["tokenizer_note"]
