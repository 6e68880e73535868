"""The client configurations we ship: mcp.json (Claude Desktop, Claude Code, Cursor), .vscode/mcp.json (VS Code) and
server.json (the MCP registry's manifest for the PyPI package). Each parses; the two client configs really start a
server that answers initialize and tools/list over stdio; server.json keeps to the registry's published rules."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from helpers import MCP_TOOLS

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "src" / "model_customization"
PROTOCOL_VERSION = "2025-06-18"
SERVER_NAME = "io.github.model-customization/model-customization"

# The registry's rules for what we use of server.json (https://static.modelcontextprotocol.io/schemas/2025-12-11/
# server.schema.json), written down here so the test needs no network. Package items allow no other properties.
EXACT_VERSION = {"type": "string", "minLength": 1, "not": {"anyOf": [{"pattern": r"[\^~<>=*| ]"}, {"const": "latest"}, {"pattern": r"(^|\.)[xX](\.|$)"}]}}
ENVIRONMENT_VARIABLE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "isRequired": {"type": "boolean"},
        "isSecret": {"type": "boolean"},
        "format": {"enum": ["string", "number", "boolean", "filepath"]},
        "default": {"type": "string"},
        "placeholder": {"type": "string"},
        "choices": {"type": "array", "items": {"type": "string"}},
    },
}
ARGUMENT = {
    "oneOf": [
        {"type": "object", "additionalProperties": False, "required": ["type", "value"], "properties": {"type": {"const": "positional"}, "value": {"type": "string"}, "description": {"type": "string"}}},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "name"],
            "properties": {"type": {"const": "named"}, "name": {"type": "string", "pattern": "^-"}, "value": {"type": "string"}, "description": {"type": "string"}, "isRequired": {"type": "boolean"}},
        },
    ]
}
SERVER_SCHEMA = {
    "type": "object",
    "required": ["$schema", "name", "description", "version"],
    "properties": {
        "$schema": {"const": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"},
        "name": {"type": "string", "pattern": r"^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$", "minLength": 3, "maxLength": 200},
        "title": {"type": "string", "minLength": 1, "maxLength": 100},
        "description": {"type": "string", "minLength": 1, "maxLength": 100},
        "version": EXACT_VERSION,
        "websiteUrl": {"type": "string", "format": "uri"},
        "repository": {"type": "object", "required": ["url", "source"], "properties": {"url": {"type": "string"}, "source": {"type": "string"}}},
        "packages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["registryType", "identifier", "version", "transport"],
                "properties": {
                    "registryType": {"const": "pypi"},
                    "registryBaseUrl": {"const": "https://pypi.org"},
                    "identifier": {"const": "model-customization"},
                    "version": EXACT_VERSION,
                    "runtimeHint": {"const": "uvx"},
                    "transport": {"type": "object", "required": ["type"], "properties": {"type": {"const": "stdio"}}},
                    "packageArguments": {"type": "array", "items": ARGUMENT},
                    "runtimeArguments": {"type": "array", "items": ARGUMENT},
                    "environmentVariables": {"type": "array", "items": ENVIRONMENT_VARIABLE},
                },
            },
        },
    },
}
# A name part that marks a variable as holding a secret, and the names that have such a part without holding one.
SECRET_PARTS = {"KEY", "TOKEN", "TOKENS", "SECRET", "PASSWORD"}
NOT_SECRET = {"MODEL_CUSTOMIZATION_BEDROCK_USD_PER_MILLION_TOKENS": "a price per million tokens"}


# --- speaking MCP over stdio to a spawned server ------------------------------------------------------------


class StdioServer:
    """A server process spoken to in newline-delimited JSON-RPC, as an MCP client does."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str]):
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True).start()
        self.next_id = 1

    def request(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        request_id = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, **({"params": params} if params is not None else {})})
        while True:
            message = self.receive(timeout)
            if message.get("id") == request_id:
                assert "error" not in message, f"{method}: {message['error']}"
                return message["result"]

    def notify(self, method: str) -> None:
        self.send({"jsonrpc": "2.0", "method": method})

    def send(self, message: dict[str, Any]) -> None:
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def receive(self, timeout: float) -> dict[str, Any]:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or not line[0]:
            self.close()
            pytest.fail(f"no answer from {self.process.args} within {timeout} s; its stderr:\n{''.join(self.stderr)[-4000:]}")
        return json.loads(line[0])  # stdout carries only JSON-RPC: a stray print would fail here

    def initialize(self, timeout: float = 60) -> dict[str, Any]:
        result = self.request("initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "config-test", "version": "0"}}, timeout)
        self.notify("notifications/initialized")
        return result

    def tool_names(self) -> set[str]:
        return {tool["name"] for tool in self.request("tools/list")["tools"]}

    def close(self) -> int:
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()  # end of input: a stdio server shuts down
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)


def server_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["MODEL_CUSTOMIZATION_HOME"] = str(home)
    env.update(extra)
    return env


def assert_serves_tools(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 60) -> None:
    server = StdioServer(argv, cwd=cwd, env=env)
    try:
        info = server.initialize(timeout)
        assert info["serverInfo"]["name"] == "model-customization"
        assert "prompts" in info["capabilities"] and "tools" in info["capabilities"]
        assert MCP_TOOLS <= server.tool_names()
        prompts = {prompt["name"] for prompt in server.request("prompts/list")["prompts"]}
        assert {"specialize_agent", "review_dataset"} <= prompts
    finally:
        code = server.close()
    assert code == 0, f"exit {code}; stderr:\n{''.join(server.stderr)[-4000:]}"


def dev_sh_is_set_up() -> bool:
    """True when ./dev.sh serve would go straight to the server: its set-up stamp for this pyproject.toml and
    dev.sh exists and the tools it checks for are there (otherwise it would install them first, minutes)."""
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + (REPO / "dev.sh").read_bytes()).hexdigest()[:16]
    stamp = REPO / ".venv" / f".installed-{digest}"
    has_initdb = shutil.which("initdb") or list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return stamp.is_file() and (REPO / ".tools/node_modules/.bin/mcp-inspector").exists() and bool(shutil.which("go")) and bool(has_initdb)


def what_dev_sh_serve_runs() -> list[str]:
    """The command `./dev.sh serve` executes once set up, read from dev.sh itself."""
    match = re.search(r"^\s*serve\)\s*setup >&2 && exec (\S+) \"\$@\"\s*;;", (REPO / "dev.sh").read_text(), re.MULTILINE)
    assert match, "dev.sh serve no longer has the form the config test knows: `serve) setup >&2 && exec <server> \"$@\" ;;`"
    return [str(REPO / match.group(1))]


def run_config_command(command: str, args: list[str], env: dict[str, str]) -> None:
    """Start a config's command from the repository root, as a client launched in a clone would. ./dev.sh only
    when its set-up is done (a fresh one installs torch and more first); else the very command it then runs."""
    assert command.endswith("dev.sh") and args == ["serve"], (command, args)
    executable = REPO / command.removeprefix("./")
    assert executable.is_file() and os.access(executable, os.X_OK), executable
    argv = [str(executable), *args] if dev_sh_is_set_up() else what_dev_sh_serve_runs()
    assert_serves_tools(argv, cwd=REPO, env=env)


# --- mcp.json and .vscode/mcp.json --------------------------------------------------------------------------


def test_mcp_json_starts_the_server(tmp_path):
    config = json.loads((REPO / "mcp.json").read_text())
    assert set(config) == {"mcpServers"}
    entry = config["mcpServers"]["model-customization"]
    assert isinstance(entry["command"], str) and all(isinstance(a, str) for a in entry["args"])
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in entry.get("env", {}).items())
    assert not {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"} & set(entry.get("env", {})), "no keys in a checked-in file"
    run_config_command(entry["command"], entry["args"], server_env(tmp_path / "home"))


def test_vscode_mcp_json_starts_the_server_and_asks_for_keys(tmp_path):
    config = json.loads((REPO / ".vscode" / "mcp.json").read_text())
    assert set(config) <= {"servers", "inputs"}
    entry = config["servers"]["model-customization"]
    assert entry["type"] == "stdio"
    inputs = {item["id"]: item for item in config.get("inputs", [])}
    for item in inputs.values():
        assert item["type"] == "promptString" and item["description"] and item["password"] is True, item
    env = entry.get("env", {})
    # Every ${input:...} refers to a declared input; secrets come only from inputs, never written in the file.
    for name, value in env.items():
        for reference in re.findall(r"\$\{input:([^}]+)\}", value):
            assert reference in inputs, f"{name} uses an undeclared input {reference!r}"
        if any(part in SECRET_PARTS for part in name.split("_")):
            assert re.fullmatch(r"\$\{input:[^}]+\}", value), f"{name} must come from a password input"
    assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"} <= set(env)
    # VS Code runs it with ${workspaceFolder} = the repository; an input left empty means no key (unset).
    command = entry["command"].replace("${workspaceFolder}", str(REPO))
    answered = {name: re.sub(r"\$\{input:[^}]+\}", "", value) for name, value in env.items()}
    run_config_command(os.path.relpath(command, REPO), entry["args"], server_env(tmp_path / "home", **answered))


# --- server.json --------------------------------------------------------------------------------------------


def server_manifest() -> dict[str, Any]:
    return json.loads((REPO / "server.json").read_text())


def source_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in SOURCE.rglob("*.py"))


def test_server_json_keeps_to_the_registry_schema():
    manifest = server_manifest()
    jsonschema.validate(manifest, SERVER_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert manifest["name"] == SERVER_NAME
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert manifest["version"] == version
    (package,) = manifest["packages"]
    assert package["version"] == version
    assert package["packageArguments"] == [{"type": "positional", "value": "serve"}]  # uvx model-customization serve
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["model-customization"] == "model_customization.cli:main"
    # PyPI ownership: the registry looks for the server's name in the package's README.
    assert re.search(rf"mcp-name: {re.escape(SERVER_NAME)}\b", (REPO / "README.md").read_text())


def test_schema_of_ours_rejects_what_the_registry_rejects():
    """The schema above is not vacuous: the mistakes the registry refuses fail it."""
    bad = [
        {"name": "no-slash"},
        {"name": "two/slashes/here"},
        {"description": "x" * 101},
        {"version": "^0.1.0"},
        {"version": "latest"},
    ]
    for change in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**server_manifest(), **change}, SERVER_SCHEMA)
    manifest = server_manifest()
    manifest["packages"][0]["environmentVariables"][0]["format"] = "url"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(manifest, SERVER_SCHEMA)
    manifest = server_manifest()
    manifest["packages"][0]["command"] = "uvx"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(manifest, SERVER_SCHEMA)


def test_server_json_lists_the_environment_the_code_reads():
    variables = {item["name"]: item for item in server_manifest()["packages"][0]["environmentVariables"]}
    code = source_text()
    prefixes = set(re.findall(r"\"(MODEL_CUSTOMIZATION_[A-Z0-9_]+_)\"", code))  # e.g. ..._RPM_ + provider
    for name in variables:
        assert re.search(rf"\b{name}\b", code) or any(name.startswith(prefix) for prefix in prefixes), f"{name} is not read by the code"
    # Every setting of ours the code reads is listed (a new one must be added to server.json).
    ours = {name for name in re.findall(r"\bMODEL_CUSTOMIZATION_[A-Z0-9_]*[A-Z0-9]\b", code)}
    assert ours - set(variables) == set()
    for prefix in prefixes:
        assert any(name.startswith(prefix) for name in variables), prefix
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION"):
        assert name in variables, name
    # Secrets are marked, so clients mask them; nothing else is.
    for name, item in variables.items():
        looks_secret = any(part in SECRET_PARTS for part in name.split("_")) and name not in NOT_SECRET
        must_be_secret = looks_secret or name.endswith("STORE_URL")
        assert item.get("isSecret", False) is must_be_secret, f"{name}: isSecret should be {must_be_secret}"
        assert item["description"], name
        if "choices" in item and "default" in item:
            assert item["default"] in item["choices"], name
        assert item.get("isRequired", False) is False, f"{name}: the server starts without it (local training needs no keys)"
