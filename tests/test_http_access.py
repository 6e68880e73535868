"""Who gets in over streamable HTTP: loopback without tokens, bearer tokens when configured, refusal to bind a
public address without them, Host/Origin checks against DNS rebinding, and tokens never echoed in the logs.

Two real servers (subprocesses on free ports) serve the module: one on loopback with no tokens, one with tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from model_customization.errors import UserError
from model_customization.server.http import (
    ALLOWED_HOSTS_ENV,
    TOKENS_ENV,
    StaticTokenVerifier,
    allowed_host_values,
    http_access,
    is_loopback,
    token_digests,
)

PLAIN_TOKEN = "plain-token-7f3a9c1e5b2d4f60a8"
HASHED_TOKEN = "hashed-token-0c4e8a2f6b1d3957"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def anyio_backend():
    return "asyncio"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def _serve(home: Path, log_path: Path, *, tokens: str | None, extra: list[str] = ()) -> Iterator[RunningServer]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in (TOKENS_ENV, ALLOWED_HOSTS_ENV)}
    env["MODEL_CUSTOMIZATION_HOME"] = str(home)
    if tokens is not None:
        env[TOKENS_ENV] = tokens
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "model_customization", "serve", "--transport", "streamable-http", "--port", str(port), *extra],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    server = RunningServer(process, port, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert process.poll() is None, server.output()[-2000:]
                assert time.monotonic() < deadline, "server did not start listening"
                time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("open-server")
    yield from _serve(folder / "home", folder / "server.log", tokens=None)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("token-server")
    tokens = f"{PLAIN_TOKEN}, sha256:{hashlib.sha256(HASHED_TOKEN.encode()).hexdigest()}"
    yield from _serve(folder / "home", folder / "server.log", tokens=tokens, extra=["--allowed-host", "mcp.proxy.example"])


async def _tool_names(url: str, headers: dict[str, str] | None = None) -> set[str]:
    transport = streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))
    async with Client(transport) as client:
        return {tool.name for tool in (await client.list_tools()).tools}


# --- real servers ---------------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_loopback_answers_without_a_token(open_server):
    names = await _tool_names(open_server.url)
    assert {"check_job", "list_jobs", "start_job"} <= names


def test_foreign_host_and_origin_are_refused(open_server):
    with httpx2.Client(timeout=10) as http:
        foreign_host = http.post(open_server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Host": "attacker.example"})
        assert foreign_host.status_code == 421, foreign_host.text
        foreign_origin = http.post(open_server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Origin": "http://attacker.example"})
        assert foreign_origin.status_code == 403, foreign_origin.text
        # a loopback name on the served port passes both checks: a page on localhost may talk to the server
        same_machine = http.post(
            open_server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Host": f"localhost:{open_server.port}", "Origin": f"http://localhost:{open_server.port}"}
        )
        assert same_machine.status_code == 200, same_machine.text
        # another port is another origin
        other_port = http.post(open_server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Host": f"127.0.0.1:{open_server.port + 1}"})
        assert other_port.status_code == 421


def test_tokens_are_required_when_configured(token_server):
    with httpx2.Client(timeout=10) as http:
        for headers in ({}, {"Authorization": "Bearer wrong-token-but-long-enough"}, {"Authorization": f"Basic {PLAIN_TOKEN}"}):
            response = http.post(token_server.url, json=INITIALIZE, headers={**MCP_HEADERS, **headers})
            assert response.status_code == 401, (headers, response.text)
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge
        # the metadata the challenge points to names this server as the protected resource
        metadata = http.get(f"http://127.0.0.1:{token_server.port}/.well-known/oauth-protected-resource/mcp").json()
        assert metadata["resource"] == token_server.url
        # the token gets past authentication, but the Host check still applies (and the proxy name passes it)
        good = {**MCP_HEADERS, "Authorization": f"Bearer {PLAIN_TOKEN}"}
        assert http.post(token_server.url, json=INITIALIZE, headers={**good, "Host": "attacker.example"}).status_code == 421
        assert http.post(token_server.url, json=INITIALIZE, headers={**good, "Host": "mcp.proxy.example"}).status_code == 200


@pytest.mark.anyio
async def test_good_tokens_work_through_the_sdk_client(token_server):
    for token in (PLAIN_TOKEN, HASHED_TOKEN):  # configured as itself, and as sha256:<hex>
        names = await _tool_names(token_server.url, {"Authorization": f"Bearer {token}"})
        assert "check_job" in names
    with pytest.raises(BaseException) as refused:
        with anyio.fail_after(30):
            await _tool_names(token_server.url, {"Authorization": "Bearer not-a-configured-token"})
    assert any(isinstance(error, MCPError) for error in _leaves(refused.value)), refused.value


def _leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def test_tokens_never_appear_in_the_server_output(token_server):
    # runs after the requests above (same module server): the log has their access lines, never a token
    with httpx2.Client(timeout=10) as http:
        http.post(token_server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {PLAIN_TOKEN}x"})
    output = token_server.output()
    assert "POST /mcp" in output and "bearer tokens required (2 configured)" in output
    for secret in (PLAIN_TOKEN, HASHED_TOKEN):
        assert secret not in output


def test_public_address_without_tokens_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != TOKENS_ENV}
    completed = subprocess.run(
        [sys.executable, "-m", "model_customization", "serve", "--transport", "streamable-http", "--host", "0.0.0.0", "--port", str(_free_port()), "--home", str(tmp_path / "home")],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert completed.returncode == 1
    assert TOKENS_ENV in completed.stderr and "0.0.0.0" in completed.stderr


# --- the rules, without a server --------------------------------------------------------------------------------
def test_loopback_detection():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.com", ""))


def test_token_entries_plain_and_hashed():
    digest = hashlib.sha256(HASHED_TOKEN.encode()).hexdigest()
    assert token_digests(f" {PLAIN_TOKEN} ,, SHA256:{digest.upper()} ") == [hashlib.sha256(PLAIN_TOKEN.encode()).digest(), bytes.fromhex(digest)]
    assert token_digests("") == [] and token_digests(None) == []
    with pytest.raises(UserError, match=f"{TOKENS_ENV}: entry 2 is shorter") as short:
        token_digests(f"{PLAIN_TOKEN},tiny")
    assert "tiny" not in str(short.value)
    with pytest.raises(UserError, match="64 hex digits"):
        token_digests("sha256:abc")


@pytest.mark.anyio
async def test_verifier_accepts_only_configured_tokens():
    verifier = StaticTokenVerifier(token_digests(f"{PLAIN_TOKEN},sha256:{hashlib.sha256(HASHED_TOKEN.encode()).hexdigest()}"))
    plain, hashed = await verifier.verify_token(PLAIN_TOKEN), await verifier.verify_token(HASHED_TOKEN)
    assert plain is not None and hashed is not None and plain.client_id != hashed.client_id
    assert PLAIN_TOKEN not in plain.client_id
    for wrong in ("", PLAIN_TOKEN + "x", PLAIN_TOKEN[:-1], f"sha256:{hashlib.sha256(HASHED_TOKEN.encode()).hexdigest()}"):
        assert await verifier.verify_token(wrong) is None


def test_access_rules_from_bind_address():
    loopback = http_access("127.0.0.1", 8000, environ={})
    assert loopback.token_verifier is None and loopback.auth is None
    assert set(loopback.transport_security.allowed_hosts) == {"127.0.0.1:8000", "localhost:8000", "[::1]:8000"}
    assert "http://localhost:8000" in loopback.transport_security.allowed_origins

    with_tokens = http_access("::1", 9000, environ={TOKENS_ENV: PLAIN_TOKEN})
    assert with_tokens.token_verifier is not None and str(with_tokens.auth.resource_server_url) == "http://[::1]:9000/mcp"
    assert PLAIN_TOKEN not in with_tokens.describe()

    with pytest.raises(UserError, match=TOKENS_ENV):
        http_access("192.168.1.5", 8000, environ={})
    public = http_access("192.168.1.5", 8000, environ={TOKENS_ENV: PLAIN_TOKEN, ALLOWED_HOSTS_ENV: "mcp.example.org, proxy:8443"}, extra_allowed_hosts=["Other.Example"])
    assert public.transport_security.allowed_hosts == [
        "192.168.1.5:8000", "mcp.example.org", "mcp.example.org:*", "proxy:8443", "other.example", "other.example:*"
    ]
    wildcard = allowed_host_values("0.0.0.0", 80)
    assert {"127.0.0.1:80", "localhost", socket.gethostname().lower() + ":80"} <= set(wildcard)


def test_start_up_leaves_per_tool_domain_modules_unloaded(tmp_path):
    # Cold start to the first tools/list is measured against a bare MCPServer (benchmarks/http_load.py); the
    # modules behind single tools load on first use, not at start-up.
    script = (
        "import sys, json\n"
        "from model_customization.server.app import build_server\n"
        "build_server(home=sys.argv[1])\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('model_customization.'))))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script, str(tmp_path / "home")], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    loaded = set(json.loads(completed.stdout.strip().splitlines()[-1]))
    lazy = {
        "model_customization.datasets.constitutional", "model_customization.datasets.inspect", "model_customization.deployments",
        "model_customization.providers.bedrock.training", "model_customization.providers.openai.files", "model_customization.jobs.plots",
        "model_customization.server.http",
    }
    assert not lazy & loaded, sorted(lazy & loaded)
