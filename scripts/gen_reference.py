"""Write docs/reference.md, the tool, resource and prompt reference, from what the server itself publishes, and the
README's memory formats table from the format registry.

The server is built in process on an empty, throw-away data home and asked, as an MCP client would, for
tools/list, resources/list, resources/templates/list and prompts/list; the page is rendered from those answers
alone, so it cannot drift from the schemas. Nothing is read from the network and the output is deterministic.

    python scripts/gen_reference.py            # (re)write docs/reference.md
    python scripts/gen_reference.py --check    # exit 1 with a diff when docs/reference.md is out of date
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "docs" / "reference.md"
README = REPO / "README.md"
COMMAND = "python scripts/gen_reference.py"
ANNOTATION_HINTS = (
    ("read_only_hint", "read-only"),
    ("destructive_hint", "destructive"),
    ("idempotent_hint", "idempotent"),
    ("open_world_hint", "open world"),
)


# --- reading the live server ----------------------------------------------------------------------------------------
async def read_surface() -> dict[str, Any]:
    """What a client of a freshly built server sees: instructions, tools, resources, resource templates, prompts."""
    from dataclasses import replace

    from mcp import Client

    from model_customization.config import load_settings
    from model_customization.server.app import build_server
    from model_customization.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="gen-reference-") as folder:
        home = Path(folder) / "home"
        # Its own empty SQLite ledger even when MODEL_CUSTOMIZATION_STORE_URL names a real one: the server resumes
        # and starts jobs when it is built, which must never happen to someone's ledger because docs were generated.
        settings = replace(load_settings(home), store_url=f"sqlite:///{home / 'ledger.sqlite3'}")
        workspace = Workspace(settings)
        try:
            async with Client(build_server(ws=workspace)) as client:
                surface: dict[str, Any] = {"instructions": client.instructions or ""}
                for key, method, field in (
                    ("tools", client.list_tools, "tools"),
                    ("resources", client.list_resources, "resources"),
                    ("resource_templates", client.list_resource_templates, "resource_templates"),
                    ("prompts", client.list_prompts, "prompts"),
                ):
                    surface[key] = await _paged(method, field)
        finally:
            workspace.store.close()
    surface["providers"] = read_providers()
    return surface


def read_providers() -> list[dict[str, Any]]:
    """Every registered provider's declaration (built-ins, then those installed packages add by entry point)."""
    from model_customization.providers.registry import providers

    return [provider.describe() for provider in providers()]


async def _paged(method, field: str) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        page = await method(cursor=cursor)
        items.extend(getattr(page, field))
        cursor = page.next_cursor
        if cursor is None:
            return items


# --- JSON schema -> words -------------------------------------------------------------------------------------------
def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_text(schema: dict[str, Any]) -> str:
    """A short, readable type for a JSON schema: string, integer, list[string], 'a' | 'b', Model | null, ..."""
    if "$ref" in schema:
        return _ref_name(schema["$ref"])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(dict.fromkeys(type_text(option) for option in schema[key]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(type_text({**schema, "type": one}) for one in kind)
    if kind == "array":
        return f"list[{type_text(schema.get('items', {}))}]" if schema.get("items") else "list"
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return f"dict[string, {type_text(extra)}]"
        return "object"
    if kind == "string" and schema.get("format"):
        return f"string ({schema['format']})"
    return kind or "any"


def constraint_text(schema: dict[str, Any]) -> str:
    """Bounds the schema sets (on the value or, for an optional value, on its non-null form)."""
    parts: list[str] = []
    options = [schema] + [option for option in schema.get("anyOf", []) if isinstance(option, dict)]
    for option in options:
        for key, word in (
            ("minimum", ">="),
            ("exclusiveMinimum", ">"),
            ("maximum", "<="),
            ("exclusiveMaximum", "<"),
            ("minLength", "min length"),
            ("maxLength", "max length"),
            ("minItems", "min items"),
            ("maxItems", "max items"),
        ):
            if key in option:
                parts.append(f"{word} {option[key]}")
    return ", ".join(dict.fromkeys(parts))


def cell(text: Any) -> str:
    """Text safe inside one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|") if text not in (None, "") else ""


def code(text: str) -> str:
    return f"`{text}`" if text else ""


def _argument_rows(schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    rows = ["| name | type | default | required | description |", "|---|---|---|---|---|"]
    for name, prop in (schema.get("properties") or {}).items():
        kind = type_text(prop)
        bounds = constraint_text(prop)
        default = code(json.dumps(prop["default"], ensure_ascii=False)) if "default" in prop else ""
        rows.append(
            f"| `{name}` | {cell(code(kind) + (f' ({bounds})' if bounds else ''))} | {cell(default)} | "
            f"{'yes' if name in required else 'no'} | {cell(prop.get('description'))} |"
        )
    return rows


def _field_rows(schema: dict[str, Any]) -> list[str]:
    rows = ["| field | type | description |", "|---|---|---|"]
    for name, prop in (schema.get("properties") or {}).items():
        rows.append(f"| `{name}` | {cell(code(type_text(prop)))} | {cell(prop.get('description'))} |")
    return rows


def _referenced_definitions(schema: dict[str, Any]) -> list[str]:
    """Names of the $defs an input schema reaches from its properties, in first-use order (nested ones after)."""
    definitions = schema.get("$defs") or {}
    seen: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and _ref_name(ref) in definitions and _ref_name(ref) not in seen:
                seen.append(_ref_name(ref))
                walk(definitions[_ref_name(ref)])
            for key, value in node.items():
                if key != "$defs":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema.get("properties") or {})
    return seen


def _annotation_text(annotations: Any) -> str:
    if annotations is None:
        return "none given"
    words = []
    for attribute, word in ANNOTATION_HINTS:
        value = getattr(annotations, attribute, None)
        words.append(f"{word}: {'unset' if value is None else ('yes' if value else 'no')}")
    return " · ".join(words)


def _short_annotations(annotations: Any) -> str:
    if annotations is None:
        return ""
    return ", ".join(word for attribute, word in ANNOTATION_HINTS if getattr(annotations, attribute, None))


def _first_sentence(description: str) -> str:
    paragraph = " ".join((description or "").strip().split("\n\n", 1)[0].split())
    return re.split(r"(?<=[.!?])\s+(?=[A-Z])", paragraph, maxsplit=1)[0]


def _anchor(name: str) -> str:
    """The id GitHub gives a "### name" heading (tool names are already lower-case snake_case)."""
    return name.lower()


# --- rendering ------------------------------------------------------------------------------------------------------
def render_reference(surface: dict[str, Any]) -> str:
    """The Markdown page for a surface as read_surface returns it (pure: the same surface gives the same text)."""
    out: list[str] = [
        "# Tool, resource and prompt reference",
        "",
        f"Generated by `{COMMAND}` from the server's own tools/list, resources/list, resources/templates/list and",
        "prompts/list. Do not edit it by hand: change the tool's docstring or schema and run the script again",
        f"(`{COMMAND} --check` fails when this page is out of date; tests/test_reference_current.py runs it).",
        "",
        "## Server instructions",
        "",
        "What the server tells a client when it connects:",
        "",
        "```text",
        surface["instructions"].strip(),
        "```",
        "",
        *_provider_lines(surface.get("providers") or []),
        *_memory_format_lines(),
        "## Tools",
        "",
        "| tool | what it is for | annotations |",
        "|---|---|---|",
    ]
    tools = surface["tools"]
    for tool in tools:
        out.append(f"| [`{tool.name}`](#{_anchor(tool.name)}) | {cell(_first_sentence(tool.description))} | {cell(_short_annotations(tool.annotations))} |")
    out.append("")
    out.append("Annotations are MCP hints for the client: read-only (changes nothing), destructive (may delete or stop")
    out.append("something), idempotent (repeating the call has no further effect), open world (may call a cloud provider).")
    for tool in tools:
        title = getattr(tool.annotations, "title", None) if tool.annotations else None
        out += ["", f"### {tool.name}", ""]
        if title:
            out += [f"*{title}*", ""]
        out += [_dedent(tool.description), "", f"**Annotations:** {_annotation_text(tool.annotations)}", ""]
        if (tool.input_schema or {}).get("properties"):
            out += ["**Arguments**", ""] + _argument_rows(tool.input_schema)
        else:
            out += ["**Arguments:** none."]
        for name in _referenced_definitions(tool.input_schema or {}):
            definition = tool.input_schema["$defs"][name]
            out += ["", f"`{name}`" + (f": {' '.join(definition['description'].split())}" if definition.get("description") else ""), ""]
            out += _argument_rows(definition)
        out.append("")
        if tool.output_schema and tool.output_schema.get("properties"):
            out += ["**Output**", ""] + _field_rows(tool.output_schema)
            for name in _referenced_definitions(tool.output_schema):
                definition = tool.output_schema["$defs"][name]
                out += ["", f"`{name}`" + (f": {' '.join(definition['description'].split())}" if definition.get("description") else ""), ""]
                out += _field_rows(definition)
        else:
            out += ["**Output:** no structured output."]
    out += ["", "## Resources", ""]
    if surface["resources"]:
        out += ["| URI | name | MIME type | description |", "|---|---|---|---|"]
        for resource in surface["resources"]:
            out.append(f"| `{resource.uri}` | {cell(resource.name)} | {cell(resource.mime_type)} | {cell(resource.description)} |")
    else:
        out.append("None.")
    out += ["", "## Resource templates", ""]
    if surface["resource_templates"]:
        out += ["| URI template | name | MIME type | description |", "|---|---|---|---|"]
        for template in surface["resource_templates"]:
            out.append(f"| `{template.uri_template}` | {cell(template.name)} | {cell(template.mime_type)} | {cell(template.description)} |")
    else:
        out.append("None.")
    out += ["", "## Prompts", ""]
    if not surface["prompts"]:
        out.append("None.")
    for prompt in surface["prompts"]:
        out += [f"### {prompt.name}", ""]
        if prompt.title:
            out += [f"*{prompt.title}*", ""]
        out += [_dedent(prompt.description or ""), ""]
        if prompt.arguments:
            out += ["| argument | required | description |", "|---|---|---|"]
            for argument in prompt.arguments:
                out.append(f"| `{argument.name}` | {'yes' if argument.required else 'no'} | {cell(argument.description)} |")
        else:
            out.append("**Arguments:** none.")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _memory_format_lines() -> list[str]:
    from model_customization.memory.catalog import formats_table

    return [
        "## Memory formats",
        "",
        "What build_dataset_from_memory and find_memory read, from the format registry (`memory/detect.py`): detection",
        "asks every format's sniffers and takes the best fit, per file (or per folder, for formats kept as folders).",
        "",
        formats_table(),
        "",
    ]


def _provider_lines(declared: list[dict[str, Any]]) -> list[str]:
    if not declared:
        return []
    out = [
        "## Providers",
        "",
        "The providers this server knows, from its provider registry: the built-ins, then any that installed packages",
        "add through the `model_customization.providers` entry-point group. `provider` arguments take these names.",
        "",
        "| provider | name | can | training methods | cost | runs |",
        "|---|---|---|---|---|---|",
    ]
    for provider in declared:
        methods = ", ".join(provider["methods"]) or "none"
        where = "on this machine" if provider["runs_locally"] else "remotely"
        cost = "paid" if provider["paid"] else "free"
        out.append(f"| `{provider['name']}` | {provider['title']} | {', '.join(provider['capabilities'])} | {methods} | {cost} | {where} |")
    return out + [""]


def _dedent(text: str) -> str:
    """A docstring as published (its first line flush, the rest indented) made flush for Markdown."""
    import inspect

    return inspect.cleandoc(text or "")


# --- command line ---------------------------------------------------------------------------------------------------
def generate() -> str:
    import anyio

    return render_reference(anyio.run(read_surface))


def check(path: Path, text: str) -> tuple[bool, str]:
    """(current?, unified diff from the file on disk to what it should be)."""
    on_disk = path.read_text(encoding="utf-8") if path.is_file() else ""
    if on_disk == text:
        return True, ""
    diff = difflib.unified_diff(on_disk.splitlines(keepends=True), text.splitlines(keepends=True), f"{path} (on disk)", f"{path} (generated)")
    return False, "".join(diff)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the tool, resource and prompt reference from the live server.")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 with a diff when the file is out of date")
    parser.add_argument("--output", type=Path, default=REFERENCE, help=f"where the page goes (default {REFERENCE.relative_to(REPO)})")
    parser.add_argument("--readme", type=Path, default=README, help="the README whose memory formats table is rewritten")
    args = parser.parse_args(argv)
    from model_customization.memory.catalog import readme_with_table

    pages = [(args.output, generate())]
    if args.readme.is_file():
        pages.append((args.readme, readme_with_table(args.readme.read_text(encoding="utf-8"))))
    if args.check:
        stale = 0
        for path, text in pages:
            current, diff = check(path, text)
            if current:
                print(f"{path} is up to date.")
                continue
            stale += 1
            sys.stdout.write(diff)
            print(f"\n{path} is out of date: run `{COMMAND}` and commit the result.", file=sys.stderr)
        return 1 if stale else 0
    for path, text in pages:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
