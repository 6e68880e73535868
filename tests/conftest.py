"""Shared fixtures: an isolated data home per test, the embedded model converted once per session, a tiny model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLES = REPO.parent / "shared" / "fixtures" / "memory-samples"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# PostgreSQL fixtures (postgres_server, pg_url, store_url: a ledger URL on SQLite and on PostgreSQL); see tests/pg.py.
from pg import pg_url, postgres_server, store_url  # noqa: E402, F401


@pytest.fixture(autouse=True, scope="session")
def _allowed_roots(tmp_path_factory: pytest.TempPathFactory):
    """Tests read the repository, ../shared fixtures and tmp_path files: those are the allowed roots (paths.py).
    A developer's own config file and size limits stay out of the run. Session-wide, so that module- and
    session-scoped fixtures that build datasets see the same roots as the tests."""
    roots = [REPO, REPO.parent / "shared", tmp_path_factory.getbasetemp()]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODEL_CUSTOMIZATION_ALLOWED_ROOTS", os.pathsep.join(str(root) for root in roots))
        for name in ("MODEL_CUSTOMIZATION_CONFIG", "MODEL_CUSTOMIZATION_MAX_FILE_BYTES", "MODEL_CUSTOMIZATION_MAX_LINE_BYTES"):
            patch.delenv(name, raising=False)
        # Chat calls to faked cloud models run within budgets an operator set; the spending tests (and the fake
        # OpenAI's `serving`, for jobs) set their own. No test may approve spending by argument unless it says so.
        patch.setenv("MODEL_CUSTOMIZATION_BUDGET_PER_JOB_USD", "100")
        patch.setenv("MODEL_CUSTOMIZATION_BUDGET_PER_DAY_USD", "1000")
        patch.delenv("MODEL_CUSTOMIZATION_ALLOW_ARGUMENT_CONFIRMATION", raising=False)
        # Prices for the made-up and newer model names the fakes answer to: an unpriced model needs a person.
        names = ["claude-sonnet-5", "claude-second", "claude-first", "claude-nope-9", "claude-gone", "claude-4-sonnet", "o4-mini", "o3-mini", "o1",
                 "gpt-9-imaginary", "gpt-imaginary", "gpt-9-mini", "gpt-3.5-turbo", "gpt-3.5-turbo-0125", "claude-tuned-elsewhere",
                 "anthropic.claude-3-haiku-20240307-v1:0", "scripted",
                 "claude-fast", "claude-slow", "claude-other", "first-judge", "second-judge", "longer-judge", "muddled-judge", "terse", "thorough",
                 "claude-plain", "claude-leaky", "toy-mini", "judge-mini"]
        patch.setenv("MODEL_CUSTOMIZATION_CHAT_PRICES", json.dumps({name: [3, 15] for name in names}))
        yield


@pytest.fixture(autouse=True)
def _openai_models_still_answer(monkeypatch: pytest.MonkeyPatch):
    """OpenAI shuts down gpt-4o/4o-mini/4.1/4.1-mini and their fine-tunes on 2027-01-14, after which prompting them is
    refused. Tests that prompt those names (through fakes) must not start failing on that day: the chat calendar is
    fixed at the day this was written; the tests of the dates set their own (tests/test_openai_compatible.py)."""
    from datetime import date

    from model_customization.providers.openai import provider

    monkeypatch.setattr(provider, "_today", lambda: date(2026, 12, 6))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One converted copy of the embedded model for the whole run (conversion takes ~25 s)."""
    cache = Path(os.environ.get("MODEL_CUSTOMIZATION_TEST_MODEL_CACHE") or tmp_path_factory.mktemp("model-cache"))
    return cache


@pytest.fixture
def ws(tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch):
    from model_customization.workspace import Workspace

    monkeypatch.setenv("MODEL_CUSTOMIZATION_MODEL_CACHE", str(model_cache))
    monkeypatch.setenv("MODEL_CUSTOMIZATION_HOME", str(tmp_path / "home"))
    workspace = Workspace.open(tmp_path / "home")
    yield workspace
    # Stop any worker a test left running, so no process outlives the test run.
    from model_customization.jobs.processes import stop_worker

    for job in workspace.store.jobs.all():
        if job["worker_pid"] and job["status"] not in ("succeeded", "failed", "cancelled"):
            stop_worker(job["worker_pid"], job["id"], grace_seconds=1)
    workspace.store.close()


@pytest.fixture(scope="session")
def embedded_base(model_cache: Path) -> Path:
    from model_customization.config import load_settings
    from model_customization.providers.local.models import EMBEDDED_MODEL, ensure_base_model

    settings = load_settings(model_cache.parent / "embedded-home")
    settings = type(settings)(home=settings.home, store_url=settings.store_url, model_cache=model_cache)
    return ensure_base_model(settings, EMBEDDED_MODEL)


@pytest.fixture(scope="session")
def tiny_model(embedded_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer Llama with the embedded model's tokenizer and chat template: trains in seconds."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(embedded_base)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    return folder


@pytest.fixture(scope="session")
def demo_paths() -> list[Path]:
    from model_customization.demo_data import demo_memory_paths

    return demo_memory_paths()
