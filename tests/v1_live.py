"""A live server for the /v1 tests, and an OpenAI SDK client whose every response is checked against OpenAI's spec.

The server is the real one (`model-customization serve --transport streamable-http`) in a subprocess on a free
port. The client is the real `openai` SDK over a real httpx2 connection; a response hook reads each response the
server sends and validates it against ../shared/specs/openai-openapi.json with the validator tests/openai_fake.py
builds (the operation's 200 schema, ErrorResponse for errors, and each server-sent event of a stream against
CreateChatCompletionStreamResponse). A violation fails the test at the request that caused it.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from openai_fake import spec_validator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    process: subprocess.Popen
    port: int
    home: Path
    log_path: Path
    checked: list[str] = field(default_factory=list)  # "METHOD /path status" of every validated response

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def http(self, **options: Any) -> httpx2.Client:
        return httpx2.Client(event_hooks={"response": [self._validate]}, timeout=httpx2.Timeout(600.0), **options)

    def client(self, api_key: str = "unused-on-loopback", **options: Any) -> Any:
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key=api_key, http_client=self.http(), max_retries=0, **options)

    def _validate(self, response: httpx2.Response) -> None:
        validate_response(response)
        self.checked.append(f"{response.request.method} {response.request.url.path} {response.status_code}")


def validate_response(response: httpx2.Response) -> None:
    """Check a /v1 response against OpenAI's spec; raises AssertionError naming what does not match."""
    validator = spec_validator()
    response.read()
    method = response.request.method
    path = response.request.url.path.removeprefix("/v1")
    content_type = response.headers.get("content-type", "")
    if response.status_code >= 400:  # errors on any path, routes or not, are OpenAI's error object
        problems = validator.errors(validator.component_ref("ErrorResponse"), response.json())
        assert not problems, f"{method} {path} ({response.status_code}) error does not match OpenAI's spec: {problems}"
        return
    found = validator.route(method, path)
    assert found is not None, f"{method} {path} is not an operation of OpenAI's API"
    template, _ = found
    if content_type.startswith("text/event-stream"):
        problems = []
        for line in response.text.splitlines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[len("data: "):])
            ref = validator.component_ref("ErrorResponse" if "error" in event else "CreateChatCompletionStreamResponse")
            problems += validator.errors(ref, event)
        assert response.text.rstrip().endswith("data: [DONE]") or '"error"' in response.text, "a stream must end with data: [DONE]"
    elif content_type.startswith("application/json"):
        problems = validator.errors(validator.response_ref(method, template), _as_spec_allows(response.json()))
    else:
        # file content: the spec describes it as a JSON string, served as the file's own bytes
        problems = []
    assert not problems, f"{method} {path} ({response.status_code}) does not match OpenAI's spec: {problems}"


def _as_spec_allows(body: Any) -> Any:
    """OpenAI serves a paused job's status as "paused", which its spec's status enum lacks (tests/openai_fake.py
    makes the same exception): such a job is validated as "running", every other field as it is."""
    jobs = body.get("data", [body]) if isinstance(body, dict) else []
    if not any(isinstance(j, dict) and j.get("object") == "fine_tuning.job" and j.get("status") == "paused" for j in jobs):
        return body
    body = copy.deepcopy(body)
    for job in body.get("data", [body]):
        if job.get("status") == "paused":
            job["status"] = "running"
    return body


@contextmanager
def serving(home: Path, log_path: Path, *, env: dict[str, str] | None = None, host: str = "127.0.0.1", extra: list[str] = ()) -> Iterator[LiveServer]:
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "model_customization", "serve", "--transport", "streamable-http", "--host", host, "--port", str(port), "--home", str(home), *extra],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )  # fmt: skip
    server = LiveServer(process, port, home, log_path)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert process.poll() is None, server.output()[-3000:]
                assert time.monotonic() < deadline, "server did not start listening"
                time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
