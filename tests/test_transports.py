"""The server over its real transports: streamable HTTP on loopback, and the client config in mcp.json."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp import Client

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def anyio_backend():
    return "asyncio"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.anyio
async def test_streamable_http_serves_tools_and_resources(ws, demo_paths):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "model_customization", "serve", "--transport", "streamable-http", "--port", str(port), "--home", str(ws.settings.home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "server did not start listening"
                time.sleep(0.2)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"build_dataset_from_memory", "start_job", "check_job", "evaluate", "prompt_model"} <= names
            built = await client.call_tool("build_dataset_from_memory", {"paths": [str(p) for p in demo_paths]})
            assert not built.is_error, built.content
            dataset_id = built.structured_content["dataset_id"]
            index = json.loads((await client.read_resource("datasets://index")).contents[0].text)
            assert [d["dataset_id"] for d in index] == [dataset_id]
            missing = await client.call_tool("check_job", {"job_id": "job-missing"})
            assert missing.is_error and "list_jobs" in missing.content[0].text
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_mcp_json_starts_this_server_from_a_clone():
    config = json.loads((REPO / "mcp.json").read_text())
    entry = config["mcpServers"]["model-customization"]
    command = (REPO / entry["command"]).resolve()
    assert command.is_file() and os.access(command, os.X_OK), command
    assert entry["args"] == ["serve"]
    # dev.sh serve must keep stdout clean for the protocol: its set-up output goes to stderr.
    assert "serve) setup >&2 && exec .venv/bin/model-customization-server" in command.read_text()


def test_the_server_entry_point_answers_over_stdio_and_refuses_an_open_bind_without_tokens(tmp_path):
    """`python -m model_customization.server` (model-customization-server) is the server the client configs launch."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MODEL_CUSTOMIZATION_HTTP_TOKENS"}
    process = subprocess.Popen(
        [sys.executable, "-m", "model_customization.server", "--home", str(tmp_path / "home")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        def send(message: dict) -> None:
            process.stdin.write(json.dumps(message) + "\n")
            process.stdin.flush()

        def answer(request_id: int) -> dict:
            for line in process.stdout:
                message = json.loads(line)
                if message.get("id") == request_id:
                    return message
            raise AssertionError("the server closed stdout")

        send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}})  # fmt: skip
        assert answer(1)["result"]["serverInfo"]["name"] == "model-customization"
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        names = {tool["name"] for tool in answer(2)["result"]["tools"]}
        assert {"build_dataset_from_memory", "start_job", "check_job", "evaluate", "prompt_model"} <= names
    finally:
        process.stdin.close()
        process.terminate()
        process.wait(timeout=30)
    refused = subprocess.run(
        [sys.executable, "-m", "model_customization.server", "--transport", "streamable-http", "--host", "0.0.0.0", "--home", str(tmp_path / "home")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 1 and "MODEL_CUSTOMIZATION_HTTP_TOKENS" in refused.stderr and "Traceback" not in refused.stderr
