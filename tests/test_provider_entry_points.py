"""A provider from another installed package, through the `model_customization.providers` entry-point group, with no
file of this repository edited: it appears in start_job's and inspect_dataset's schemas, the CLI's choices,
prompt_model's routing (and answers) and docs/reference.md; a data home whose tools/list answer was cached before
the package came sees it too; a broken third-party entry point is skipped with a warning and breaks nothing."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from model_customization.providers import registry
from model_customization.providers.chat import chat, resolve_chat_model
from model_customization.server.app import build_server
from model_customization.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]

TOY_MODULE = '''
"""A third party's provider: trains nothing real, answers every prompt with the same words."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from model_customization.providers.base import Provider


class ToyHyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    toy_knob: int = Field(3, ge=1, le=9, description="How hard the toy trains.")


class ToyProvider(Provider):
    name = "toy"
    title = "Toy"
    capabilities = frozenset({"train", "chat"})
    methods = ("sft",)
    paid = True
    hyperparameters_model = ToyHyperparameters
    training_summary = "toy fine-tuning, paid"
    base_model_help = "'toy-1' (default)"

    def claims_model(self, name: str) -> bool:
        return name.startswith("toy-")

    def chat(self, ws, model, messages, *, max_tokens, temperature, seed) -> dict[str, Any]:
        return {"model": model, "text": "toy says hi", "prompt_tokens": 1, "completion_tokens": 3, "seconds": 0.0, "stop_reason": "stop"}
'''


def _distribution(folder: Path, name: str, entry_points: str) -> None:
    info = folder / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def toy_installed(tmp_path, monkeypatch):
    """The toy package 'installed' into a folder on sys.path (and PYTHONPATH, for subprocesses)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "toy_provider.py").write_text(TOY_MODULE)
    _distribution(site, "toy_provider", "[model_customization.providers]\ntoy = toy_provider:ToyProvider\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    importlib.invalidate_caches()
    registry.clear_cache()
    yield site
    registry.clear_cache()
    sys.modules.pop("toy_provider", None)


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace.open(tmp_path / "home")


def _start_job_schema(ws: Workspace) -> dict:
    async def go():
        async with Client(build_server(ws)) as client:
            tools = (await client.list_tools()).tools
        return next(tool for tool in tools if tool.name == "start_job").input_schema

    return anyio.run(go)


def test_toy_provider_is_registered_after_the_built_ins(toy_installed):
    assert registry.provider_names() == ["local", "openai", "azure-openai", "anthropic", "bedrock", "together", "hf-jobs", "toy"]
    assert registry.provider_names("train") == ["local", "openai", "azure-openai", "bedrock", "together", "hf-jobs", "toy"]
    assert registry.get_provider("toy").title == "Toy"
    assert "toy=toy_provider:ToyProvider@toy-provider==0.1" in registry.fingerprint()


def test_toy_provider_appears_in_start_job_schema(toy_installed, ws):
    schema = _start_job_schema(ws)
    provider = schema["properties"]["provider"]
    assert provider["enum"] == ["local", "openai", "azure-openai", "bedrock", "together", "hf-jobs", "toy"]
    assert "'toy': toy fine-tuning (paid)." in provider["description"]
    assert "toy: 'toy-1' (default)." in schema["properties"]["base_model"]["description"]
    assert "ToyHyperparameters" in schema["$defs"]
    choices = schema["properties"]["hyperparameters"]["anyOf"]
    assert {"$ref": "#/$defs/ToyHyperparameters"} in choices


def test_prompt_model_routes_a_name_the_toy_claims_to_it(toy_installed, ws):
    assert resolve_chat_model(ws, "toy-mini") == ("toy", "toy-mini")
    assert resolve_chat_model(ws, "toy:anything") == ("toy", "anything")
    assert resolve_chat_model(ws, "gpt-4o-mini") == ("openai", "gpt-4o-mini")  # built-ins are asked first
    answer = chat(ws, "toy-mini", [{"role": "user", "content": "hello"}])
    assert answer["text"] == "toy says hi" and answer["provider"] == "toy"


def test_prompt_model_tool_answers_from_the_toy(toy_installed, ws):
    async def go():
        async with Client(build_server(ws)) as client:
            return await client.call_tool("prompt_model", {"model": "toy-mini", "prompt": "hello"})

    result = anyio.run(go)
    assert not result.is_error, result.content
    assert result.structured_content["provider"] == "toy" and result.structured_content["text"] == "toy says hi"


def test_toy_provider_appears_in_inspect_dataset_schema(toy_installed, ws):
    async def go():
        async with Client(build_server(ws)) as client:
            tools = (await client.list_tools()).tools
        return next(tool for tool in tools if tool.name == "inspect_dataset").input_schema

    assert anyio.run(go)["properties"]["provider"]["enum"] == ["local", "openai", "azure-openai", "bedrock", "together", "hf-jobs", "toy"]


def test_a_cached_tool_list_is_rebuilt_when_a_provider_package_arrives(tmp_path, ws, monkeypatch):
    # The data home answered tools/list (and cached it) before the toy package was installed.
    before = _start_job_schema(ws)["properties"]["provider"]["enum"]
    assert "toy" not in before
    site = tmp_path / "later-site"
    site.mkdir()
    (site / "toy_provider.py").write_text(TOY_MODULE)
    _distribution(site, "toy_provider", "[model_customization.providers]\ntoy = toy_provider:ToyProvider\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    registry.clear_cache()
    try:
        assert "toy" in _start_job_schema(ws)["properties"]["provider"]["enum"]
    finally:
        registry.clear_cache()
        sys.modules.pop("toy_provider", None)


def test_toy_provider_is_a_choice_of_the_cli(toy_installed, ws):
    """The CLI is a separate process here, as a person runs it: its --provider help lists the toy and a toy job
    is taken to the toy provider (which then refuses for want of a dataset, not for an unknown provider)."""
    env = {**os.environ, "MODEL_CUSTOMIZATION_HOME": str(ws.settings.home), "COLUMNS": "200"}
    command = [sys.executable, "-m", "model_customization.cli", "job", "start"]
    shown = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120, env=env)
    assert shown.returncode == 0, shown.stderr
    help_text = " ".join(shown.stdout.replace("│", " ").split())
    assert "'toy' (toy fine-tuning, paid)" in help_text and "toy_knob" in help_text
    refused = subprocess.run([*command, "ds-missing", "--provider", "toy", "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert "Unknown --provider" not in refused.stderr, refused.stderr
    unknown = subprocess.run([*command, "ds-missing", "--provider", "nosuch"], capture_output=True, text=True, timeout=120, env=env)
    assert unknown.returncode == 1 and "'toy' (toy fine-tuning, paid)" in " ".join(unknown.stderr.split())



def test_toy_provider_appears_in_the_reference(toy_installed, tmp_path):
    out = tmp_path / "reference.md"
    completed = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_reference.py"), "--output", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    page = out.read_text()
    assert "| `toy` | Toy | chat, train | sft | paid | remotely |" in page
    assert "`ToyHyperparameters`" in page


def test_a_broken_entry_point_is_skipped_with_a_warning(toy_installed, ws, caplog):
    _distribution(
        toy_installed,
        "broken_provider",
        "[model_customization.providers]\nbroken = no_such_module:Nothing\nlocal = toy_provider:ToyProvider\nnotaprovider = os:path\n"
        "openai = model_customization.providers.openai.provider:OpenAIProvider\n",  # as pyproject.toml declares it: no duplicate
    )
    importlib.invalidate_caches()
    registry.clear_cache()
    with caplog.at_level(logging.WARNING, logger=registry.__name__):
        names = registry.provider_names()
    assert names == ["local", "openai", "azure-openai", "anthropic", "bedrock", "together", "hf-jobs", "toy"]
    warned = caplog.text
    assert "'broken'" in warned and "ModuleNotFoundError" in warned
    assert "'local'" in warned and "already taken" in warned
    assert "'notaprovider'" in warned
    assert "'openai'" not in warned
    assert "toy" in _start_job_schema(ws)["properties"]["provider"]["enum"]  # the server still builds and lists
