"""The contract every published tool, resource and prompt keeps, checked on the live tools/list (in process).

Whatever tool is added later is covered without touching this file: each needs a snake_case name, a description an
agent can act on (what it costs, what to call next, only real tool names), an output schema, all four behaviour
annotations set explicitly, and a description for every argument. Resources, templates and prompts are described too.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from mcp import Client

from model_customization.server.app import build_server

pytestmark = pytest.mark.anyio

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
MIN_DESCRIPTION_CHARS = 80  # one sentence of purpose plus what it costs or what comes next
MAX_DESCRIPTION_CHARS = 2000  # an agent reads every description on every connect: keep them to a paragraph or two
HINTS = ("read_only_hint", "destructive_hint", "idempotent_hint", "open_world_hint")
# Words that say what a call costs: money (paid, billed, price), or that it is free / local time only.
COST_WORDS = re.compile(r"\b(free|paid|costs?|billed|bill|price|prices|money|charge)\b", re.IGNORECASE)
SNAKE_WORD = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
# Verbs a tool name starts with; a snake_case word starting with one of them in prose is taken to name a tool.
COMMON_VERBS = {"get", "create", "update", "show", "run", "read", "train", "remove", "add", "stop", "resume", "find"}


async def _surface(ws) -> dict[str, list[Any]]:
    async with Client(build_server(ws=ws)) as client:
        return {
            "tools": (await client.list_tools()).tools,
            "resources": (await client.list_resources()).resources,
            "templates": (await client.list_resource_templates()).resource_templates,
            "prompts": (await client.list_prompts()).prompts,
        }


def mentioned_tool_names(description: str, verbs: set[str]) -> set[str]:
    """snake_case words in a description that read as tool names: called like name(...) or starting with a tool verb."""
    found = set()
    for match in SNAKE_WORD.finditer(description):
        word = match.group(0)
        called = description[match.end() : match.end() + 1] == "("
        if called or word.split("_", 1)[0] in verbs:
            found.add(word)
    return found


def test_mentioned_tool_names_spots_calls_and_verbs_but_not_argument_names():
    verbs = {"start", "check", "list"}
    text = "Pass dry_run=true and model_id to start_job; then check_job(job_id) or list_jobz, or frobnicate_it(x)."
    assert mentioned_tool_names(text, verbs) == {"start_job", "check_job", "list_jobz", "frobnicate_it"}


async def test_every_tool_keeps_the_contract(ws):
    tools = (await _surface(ws))["tools"]
    names = {tool.name for tool in tools}
    verbs = {name.split("_", 1)[0] for name in names if "_" in name} | COMMON_VERBS
    assert len(tools) >= 20, sorted(names)
    problems: list[str] = []
    for tool in tools:
        where = tool.name
        if not NAME.match(tool.name):
            problems.append(f"{where}: name does not match {NAME.pattern}")
        description = (tool.description or "").strip()
        if not MIN_DESCRIPTION_CHARS <= len(description) <= MAX_DESCRIPTION_CHARS:
            problems.append(f"{where}: description is {len(description)} characters, not {MIN_DESCRIPTION_CHARS}-{MAX_DESCRIPTION_CHARS}")
        if not COST_WORDS.search(description):
            problems.append(f"{where}: description does not say what it costs (free, paid, billed ...)")
        # What next: another tool by name, or a resource to read.
        if not any(other != tool.name and re.search(rf"\b{other}\b", description) for other in names) and "://" not in description:
            problems.append(f"{where}: description names no tool or resource to use next")
        for unknown in sorted(mentioned_tool_names(description, verbs) - names):
            problems.append(f"{where}: description mentions {unknown!r}, which is not a tool")
        if not (tool.output_schema and tool.output_schema.get("type") == "object" and tool.output_schema.get("properties")):
            problems.append(f"{where}: no output schema with properties")
        annotations = tool.annotations
        if annotations is None or not annotations.title:
            problems.append(f"{where}: no annotations with a title")
        else:
            for hint in HINTS:
                if getattr(annotations, hint) is None:
                    problems.append(f"{where}: annotation {hint} is not set explicitly")
            if annotations.read_only_hint and annotations.destructive_hint:
                problems.append(f"{where}: read-only and destructive at once")
        schema = tool.input_schema or {}
        if schema.get("type") != "object":
            problems.append(f"{where}: input schema is not an object")
        for prop, spec in (schema.get("properties") or {}).items():
            if not NAME.match(prop):
                problems.append(f"{where}: argument {prop!r} is not snake_case")
            if not (spec.get("description") or "").strip():
                problems.append(f"{where}: argument {prop!r} has no description")
    assert not problems, "\n".join(problems)


async def test_every_resource_template_and_prompt_is_described(ws):
    surface = await _surface(ws)
    problems: list[str] = []
    for resource in surface["resources"]:
        if not (resource.description or "").strip():
            problems.append(f"resource {resource.uri}: no description")
        if not resource.mime_type:
            problems.append(f"resource {resource.uri}: no MIME type")
    for template in surface["templates"]:
        if not (template.description or "").strip():
            problems.append(f"template {template.uri_template}: no description")
        if not template.mime_type:
            problems.append(f"template {template.uri_template}: no MIME type")
    for prompt in surface["prompts"]:
        if not NAME.match(prompt.name):
            problems.append(f"prompt {prompt.name}: name does not match {NAME.pattern}")
        if not (prompt.description or "").strip():
            problems.append(f"prompt {prompt.name}: no description")
        for argument in prompt.arguments or []:
            if not (argument.description or "").strip():
                problems.append(f"prompt {prompt.name}: argument {argument.name!r} has no description")
    assert surface["resources"] and surface["templates"]
    assert not problems, "\n".join(problems)
