"""The real client: the MCP Inspector CLI (0.15) drives `python -m model_customization serve` over stdio.

Inspector 0.15 in --cli mode prints the JSON result of one request and exits 0, also when the tool result has
isError true (only a protocol or transport failure exits non-zero), so these tests read isError from its output.
Tool arguments are `--tool-arg key=value`; the value is parsed as JSON where the tool's input schema says the
argument is an array or object (`--tool-arg 'paths=["/a", "/b"]'`), and as a number where it says number.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import MCP_TOOLS

REPO = Path(__file__).resolve().parents[1]
INSPECTOR = REPO / ".tools" / "node_modules" / ".bin" / "mcp-inspector"
TOOLS = MCP_TOOLS

pytestmark = [
    pytest.mark.skipif(
        not INSPECTOR.exists(),
        reason=f"MCP Inspector CLI not installed at {INSPECTOR} (npm install --prefix .tools @modelcontextprotocol/inspector@0.15)",
    ),
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH (the Inspector CLI needs Node 20+)"),
]


def inspector_version() -> str:
    package = REPO / ".tools" / "node_modules" / "@modelcontextprotocol" / "inspector" / "package.json"
    return json.loads(package.read_text())["version"] if package.is_file() else ""


def inspector(home: Path, *args: str) -> tuple[int, str, str]:
    """Run one Inspector CLI request against a fresh stdio server whose data home is `home` (passed with -e)."""
    env = {k: v for k, v in os.environ.items() if k != "MODEL_CUSTOMIZATION_HOME"}  # only -e may set it
    command = [
        str(INSPECTOR),
        "--cli",
        "-e",
        f"MODEL_CUSTOMIZATION_HOME={home}",
        sys.executable,
        "-m",
        "model_customization",
        "serve",
        *args,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=home.parent)
    return completed.returncode, completed.stdout, completed.stderr


def json_output(stdout: str, stderr: str) -> dict[str, Any]:
    start = stdout.find("{")
    assert start >= 0, f"no JSON in the Inspector output:\nstdout: {stdout}\nstderr: {stderr}"
    return json.loads(stdout[start:])


def test_tools_list(ws):
    code, out, err = inspector(ws.settings.home, "--method", "tools/list")
    assert code == 0, err
    tools = {t["name"]: t for t in json_output(out, err)["tools"]}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool["inputSchema"]["type"] == "object"
        assert tool["outputSchema"]["type"] == "object"
        assert "annotations" in tool


def test_build_dataset_then_read_it(ws, demo_paths):
    openai_dir = demo_paths[1]
    code, out, err = inspector(
        ws.settings.home,
        "--method",
        "tools/call",
        "--tool-name",
        "build_dataset_from_memory",
        "--tool-arg",
        f"paths={json.dumps([str(openai_dir)])}",
        "--tool-arg",
        "name=inspector demo",
        "--tool-arg",
        "seed=3",
    )
    assert code == 0, err
    result = json_output(out, err)
    assert result.get("isError") is not True, result
    structured = result["structuredContent"]
    dataset_id = structured["dataset_id"]
    assert dataset_id.startswith("ds-")
    n_lines = len([line for line in (openai_dir / "triage_sessions.jsonl").read_text().splitlines() if line.strip()])
    assert sum(structured["counts"].values()) == n_lines
    assert json.loads(result["content"][0]["text"]) == structured

    # It went to the home given with -e, and nowhere else.
    rows = ws.store.datasets.all()
    assert [r["id"] for r in rows] == [dataset_id]
    assert rows[0]["name"] == "inspector demo"
    assert rows[0]["card"]["options"]["seed"] == 3

    code, out, err = inspector(ws.settings.home, "--method", "resources/read", "--uri", f"datasets://{dataset_id}")
    assert code == 0, err
    card = json.loads(json_output(out, err)["contents"][0]["text"])
    assert card["id"] == dataset_id and card["counts"] == structured["counts"]


def test_unknown_job_is_an_error_result_naming_list_jobs(ws):
    code, out, err = inspector(
        ws.settings.home, "--method", "tools/call", "--tool-name", "check_job", "--tool-arg", "job_id=job-nope"
    )
    result = json_output(out, err)
    assert result["isError"] is True, result
    text = result["content"][0]["text"]
    assert "job-nope" in text and "list_jobs" in text
    # Inspector 0.15 exits 0 on an isError result; the result itself says the call failed.
    if inspector_version().startswith("0.15."):
        assert code == 0, err
