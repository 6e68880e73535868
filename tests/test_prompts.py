"""MCP prompts, through an in-process client: listed with their arguments, rendered over a real built dataset, and
every tool and argument they name checked against the server's own tools/list."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from model_customization.server.app import build_server

pytestmark = pytest.mark.anyio

# The form every prompt writes a tool call in (server/prompts.py `call`).
CALL = re.compile(r"call `([^`]+)` with arguments `(\{[^`]*\})`")
SNAKE_CASE_WORD = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
LONG_ANSWER = "The deployment failed because " + "the cache was cold and " * 120 + "so we rolled back."


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def prompt_text(result) -> str:
    assert result.messages, "a prompt renders at least one message"
    assert all(message.role == "user" for message in result.messages)
    return "\n".join(message.content.text for message in result.messages)


def schema_property_names(schema: Any) -> set[str]:
    """Every property name anywhere in a JSON Schema (nested objects, $defs, anyOf arms)."""
    names: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                names.update(value)
            names |= schema_property_names(value)
    elif isinstance(schema, list):
        for item in schema:
            names |= schema_property_names(item)
    return names


def naming_problems(text: str, tools: dict[str, Any], *, check_words: bool) -> list[str]:
    """What the text names that the server does not publish: unknown tools in calls, arguments a tool's input schema
    lacks, and (check_words) snake_case words that are neither a tool nor a field of any tool's input or output
    schema nor a word of the published descriptions."""
    problems = []
    calls = CALL.findall(text)
    for tool_name, arguments in calls:
        if tool_name not in tools:
            problems.append(f"unknown tool {tool_name!r}")
            continue
        known = set(tools[tool_name].input_schema.get("properties", {}))
        problems += [f"{tool_name} has no argument {name!r}" for name in json.loads(arguments) if name not in known]
    if check_words:
        published = set(tools)
        descriptions = ""
        for tool in tools.values():
            published |= schema_property_names(tool.input_schema) | schema_property_names(tool.output_schema or {})
            descriptions += " " + (tool.description or "") + json.dumps(tool.output_schema or {})
        published |= set(SNAKE_CASE_WORD.findall(descriptions))
        problems += [f"unknown name {word!r}" for word in sorted(set(SNAKE_CASE_WORD.findall(text)) - published)]
    return problems


def write_memory(folder: Path) -> Path:
    """Twelve small OpenAI-format chats; one answer far longer than a sample shows, one user message with an e-mail."""
    folder.mkdir()
    lines = []
    for n in range(12):
        answer = LONG_ANSWER if n == 0 else f"Restart worker {n} and watch the queue."
        question = f"Worker {n} is stuck, what now? Mail me at ops{n}@example.com" if n == 1 else f"Worker {n} is stuck, what now?"
        lines.append(json.dumps({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}))
    path = folder / "chats.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def call_ok(client: Client, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def test_list_prompts_shows_both_with_argument_descriptions(ws):
    async with Client(build_server(ws=ws)) as client:
        prompts = {prompt.name: prompt for prompt in (await client.list_prompts()).prompts}
    assert {"specialize_agent", "review_dataset"} <= set(prompts)
    for prompt in prompts.values():
        assert prompt.title and prompt.description
        for argument in prompt.arguments:
            assert argument.description, (prompt.name, argument.name)
    specialize = {argument.name: argument for argument in prompts["specialize_agent"].arguments}
    assert {"memory_paths", "agent", "provider", "base_model"} <= set(specialize)
    assert not any(argument.required for argument in specialize.values())
    review = {argument.name: argument for argument in prompts["review_dataset"].arguments}
    assert set(review) == {"dataset_id", "samples"}
    assert review["dataset_id"].required and not review["samples"].required


async def test_specialize_agent_names_only_real_tools_and_arguments(ws):
    async with Client(build_server(ws=ws)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        renderings = [
            await client.get_prompt("specialize_agent", {}),
            await client.get_prompt("specialize_agent", {"memory_paths": "/a/one.jsonl, /b/two", "agent": "support-bot", "base_model": "my-base"}),
            await client.get_prompt("specialize_agent", {"provider": "openai", "agent": "support-bot", "outcome": "any", "dataset_name": "support"}),
            await client.get_prompt("specialize_agent", {"provider": "bedrock"}),
        ]
    for rendering in renderings:
        text = prompt_text(rendering)
        assert naming_problems(text, tools, check_words=True) == []
        called = [tool for tool, _ in CALL.findall(text)]
        # The loop in order: build -> inspect (quote) -> start -> check (poll) -> evaluate -> deploy.
        loop = ["build_dataset_from_memory", "inspect_dataset", "start_job", "check_job", "evaluate", "deploy_model"]
        assert [tool for tool in dict.fromkeys(called) if tool in loop] == loop  # first mentions, in order


async def test_specialize_agent_fills_in_its_arguments_and_says_when_to_stop(ws):
    async with Client(build_server(ws=ws)) as client:
        given = prompt_text(
            await client.get_prompt("specialize_agent", {"memory_paths": "/a/one.jsonl,\n/b/two", "agent": "support-bot", "base_model": "my-base"})
        )
        asked = prompt_text(await client.get_prompt("specialize_agent", {}))
        paid = prompt_text(await client.get_prompt("specialize_agent", {"provider": "openai"}))
        bedrock = prompt_text(await client.get_prompt("specialize_agent", {"provider": "bedrock"}))
    calls = {tool: json.loads(arguments) for tool, arguments in reversed(CALL.findall(given))}
    assert calls["build_dataset_from_memory"]["paths"] == ["/a/one.jsonl", "/b/two"]
    assert calls["start_job"] == {"dataset_id": "<dataset_id from step 1>", "provider": "local", "base_model": "my-base"}
    assert calls["inspect_dataset"]["model"] == "my-base"
    assert calls["evaluate"]["models"][0] == "my-base", "the base model comes first: comparisons read tuned against base"
    assert calls["deploy_model"]["agent"] == "support-bot"
    assert "do not deploy" in given.lower()
    assert "significant" in given and "verdict" in given
    assert "Stop if counts.train is below 10" in given
    assert "ask the user which memory" not in given.lower()
    # Left out: the prompt tells the agent to ask, and the local default model is the baseline.
    assert "ask the user which memory" in asked.lower()
    assert "Ask the user for the agent's name" in asked
    assert json.loads(dict(CALL.findall(asked))["evaluate"])["models"][0] == "SmolLM2-135M-Instruct"
    # A paid provider: the quote goes to the user first, and only they may confirm a cost.
    assert "confirm_cost_usd" in paid and "paid" in paid
    assert "confirm_cost_usd" not in asked
    assert "provision_throughput" in dict(CALL.findall(bedrock)) and "provision_throughput" not in paid


async def test_the_name_check_catches_a_wrong_tool_or_argument(ws):
    """The cross-check above would fail on a renamed tool or argument (it is not vacuous)."""
    async with Client(build_server(ws=ws)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    wrong = 'call `start_jobs` with arguments `{"dataset_id": "x"}` then call `check_job` with arguments `{"job": "x"}`; read eval_identifier'
    assert naming_problems(wrong, tools, check_words=True) == [
        "unknown tool 'start_jobs'",
        "check_job has no argument 'job'",
        "unknown name 'eval_identifier'",
        "unknown name 'start_jobs'",
    ]


async def test_review_dataset_shows_card_and_truncated_samples(ws, tmp_path):
    memory = write_memory(tmp_path / "memory")
    async with Client(build_server(ws=ws)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        built = await call_ok(client, "build_dataset_from_memory", {"paths": [str(memory)], "name": "stuck workers", "validation_fraction": 0.2, "test_fraction": 0.2, "near_duplicate_threshold": None})
        dataset_id = built["dataset_id"]
        card = json.loads((await client.read_resource(f"datasets://{dataset_id}")).contents[0].text)
        text = prompt_text(await client.get_prompt("review_dataset", {"dataset_id": dataset_id, "samples": "20"}))
        two = prompt_text(await client.get_prompt("review_dataset", {"dataset_id": dataset_id, "samples": "2"}))
    counts = built["counts"]
    tokens = card["token_stats"]["o200k_base"]
    for split in ("train", "validation", "test"):
        row = f"| {split} | {counts[split]} | {tokens[split]['total']} | {tokens[split]['mean']} | {tokens[split]['max']} |"
        assert row in text, row
    assert f"Dataset {dataset_id}: stuck workers" in text
    assert "email 1" in text and "ops1@example.com" not in text  # the card's redactions, and the address is gone
    assert str(memory) in text  # sources
    assert f"datasets://{dataset_id}/card.md" in text
    # Every training example is shown (20 asked, fewer there).
    assert f"## {counts['train']} of {counts['train']} training examples" in text
    assert text.count("### Example ") == counts["train"]
    assert len(text) < 8000, "long messages are truncated, so the prompt stays short"
    assert f"## 2 of {counts['train']} training examples" in two and two.count("### Example ") == 2
    # It ends with the question, the next calls written with real tools and arguments.
    assert text.rstrip().endswith("start a job on this dataset, or rebuild it with other filters?")
    assert naming_problems(text, tools, check_words=False) == []
    assert {"start_job", "inspect_dataset", "build_dataset_from_memory"} <= {tool for tool, _ in CALL.findall(text)}


async def test_review_dataset_truncates_a_long_message(ws, tmp_path):
    memory = write_memory(tmp_path / "memory")
    async with Client(build_server(ws=ws)) as client:
        built = await call_ok(client, "build_dataset_from_memory", {"paths": [str(memory)], "validation_fraction": 0, "test_fraction": 0, "near_duplicate_threshold": None})
        text = prompt_text(await client.get_prompt("review_dataset", {"dataset_id": built["dataset_id"], "samples": "12"}))
    assert built["counts"]["train"] == 12
    assert "The deployment failed because the cache was cold" in text
    assert "so we rolled back." not in text
    note = re.search(r"\[truncated: (\d+) more characters; the whole example is line (\d+) of (.*)/train\.jsonl\]", text)
    assert note, text
    assert int(note.group(1)) == len(LONG_ANSWER) - 600
    line = int(note.group(2))
    stored = (Path(note.group(3)) / "train.jsonl").read_text(encoding="utf-8").splitlines()[line - 1]
    assert json.loads(stored)["messages"][-1]["content"] == LONG_ANSWER


async def test_review_dataset_shows_preference_pairs(ws, tmp_path):
    folder = tmp_path / "prefs"
    folder.mkdir()
    pairs = [
        {
            "input": {"messages": [{"role": "user", "content": f"Summarise incident {n}."}]},
            "preferred_output": [{"role": "assistant", "content": f"Incident {n}: disk full, cleaned up."}],
            "non_preferred_output": [{"role": "assistant", "content": f"Something happened with {n}."}],
        }
        for n in range(12)
    ]
    (folder / "pairs.jsonl").write_text("\n".join(json.dumps(pair) for pair in pairs) + "\n", encoding="utf-8")
    async with Client(build_server(ws=ws)) as client:
        built = await call_ok(client, "build_dataset_from_memory", {"paths": [str(folder)], "method": "dpo", "validation_fraction": 0, "test_fraction": 0, "near_duplicate_threshold": None})
        text = prompt_text(await client.get_prompt("review_dataset", {"dataset_id": built["dataset_id"], "samples": "1"}))
    assert "Method dpo" in text
    assert "_preferred answer:_" in text and "_not preferred answer:_" in text
    assert re.search(r"Incident \d+: disk full, cleaned up\.", text) and re.search(r"Something happened with \d+\.", text)


async def test_prompt_errors_say_what_to_do(ws):
    async with Client(build_server(ws=ws)) as client:
        with pytest.raises(MCPError) as unknown:
            await client.get_prompt("review_dataset", {"dataset_id": "ds-000000000000"})
        with pytest.raises(MCPError) as not_a_number:
            await client.get_prompt("review_dataset", {"dataset_id": "ds-000000000000", "samples": "lots"})
        with pytest.raises(MCPError) as too_many:
            await client.get_prompt("review_dataset", {"dataset_id": "ds-000000000000", "samples": "500"})
        with pytest.raises(MCPError) as provider:
            await client.get_prompt("specialize_agent", {"provider": "azure"})
    assert "No dataset 'ds-000000000000'" in str(unknown.value) and "list_datasets" in str(unknown.value)
    assert "samples must be a whole number from 1 to 20" in str(not_a_number.value)
    assert "samples must be from 1 to 20; got 500" in str(too_many.value)
    assert "provider must be one of local, openai, azure-openai, bedrock, together, hf-jobs" in str(provider.value)


def test_the_prompts_constants_match_the_code_they_describe():
    # prompts.py names these without importing their modules (kept out of server start-up): they must not drift.
    from model_customization.jobs import orchestrator
    from model_customization.providers.local.models import EMBEDDED_MODEL
    from model_customization.server import prompts

    assert prompts.EMBEDDED_MODEL == EMBEDDED_MODEL
    assert prompts.MIN_TRAIN_EXAMPLES == orchestrator.MIN_TRAIN_EXAMPLES
