"""Starting the server and listing its tools must not import torch or transformers (seconds of start-up, GBs of RAM),
nor the cloud SDKs (openai, anthropic, boto3), which load only when a provider is used.

Checked in a fresh interpreter, since this test process has long imported both for other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

MARKER = "HEAVY_MODULES="

SCRIPT = textwrap.dedent(
    f"""
    import json, sys
    import anyio
    from mcp import Client
    from model_customization.server.app import build_server

    async def main():
        server = build_server(home=sys.argv[1])
        async with Client(server) as client:
            tools = await client.list_tools()
            await client.read_resource("datasets://index")
            await client.read_resource("jobs://index")
            result = await client.call_tool("list_jobs", {{}})
            assert not result.is_error, result
        return [t.name for t in tools.tools]

    names = anyio.run(main)
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "peft", "accelerate", "openai", "anthropic", "boto3", "botocore"))
    print("{MARKER}" + json.dumps({{"tools": names, "heavy": heavy}}))
    """
)


def test_server_start_and_tools_list_import_no_torch(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "MODEL_CUSTOMIZATION_HOME"}
    env["MODEL_CUSTOMIZATION_HOME"] = str(tmp_path / "home")
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "home")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    lines = [line for line in completed.stdout.splitlines() if line.startswith(MARKER)]
    assert len(lines) == 1, completed.stdout + completed.stderr
    report = json.loads(lines[0][len(MARKER):])
    assert "start_job" in report["tools"] and "evaluate" in report["tools"]
    assert report["heavy"] == [], f"imported at start-up: {report['heavy']}"


SERVE_SCRIPT = textwrap.dedent(
    f"""
    import json, sys
    from model_customization.cli import main

    sys.argv = ["model-customization", "serve", "--transport", "no-such-transport", "--home", sys.argv[1]]
    try:
        main()
    except SystemExit as stop:
        code = stop.code
    cli = sorted(m for m in sys.modules if m.split(".")[0] in ("typer", "rich", "click") or m.startswith("model_customization.cli.") or m.startswith("model_customization.memory."))
    print("{MARKER}" + json.dumps({{"code": code, "cli": cli}}))
    """
)


def test_the_cli_serve_command_starts_the_server_without_the_cli_libraries(tmp_path: Path):
    """`model-customization serve` (what uvx configurations launch every session) goes straight to the server's entry
    point: its options are the server's own (a bad transport is a usage error there), and typer, rich, the command
    groups and the memory importers are never loaded."""
    completed = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, str(tmp_path / "home")], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(MARKER)]
    assert len(lines) == 1, completed.stdout + completed.stderr
    report = json.loads(lines[0][len(MARKER):])
    assert report["code"] == 2 and "invalid choice: 'no-such-transport'" in completed.stderr, completed.stderr
    assert report["cli"] == [], f"loaded by serve: {report['cli']}"
