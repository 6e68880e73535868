"""The real server over stdio, driven line by line: requests as JSON-RPC objects or as raw text (malformed lines)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Self


class StdioServer:
    """`python -m model_customization.server` with its stdin and stdout as pipes; answers are read on a thread, so a
    silent server makes a test fail after `timeout` seconds instead of hanging."""

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        environment = {k: v for k, v in os.environ.items() if k != "MODEL_CUSTOMIZATION_HTTP_TOKENS"}
        environment.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "model_customization.server", "--home", str(home)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment,
        )  # fmt: skip
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stray: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.next_id = 1000

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def send_raw(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(json.dumps(message).encode() + b"\n")

    def next_message(self, timeout: float) -> dict[str, Any]:
        try:
            message = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message from the server within {timeout} s") from None
        if message is None:
            raise AssertionError("the server closed stdout")
        return message

    def answer(self, request_id: Any, timeout: float = 60) -> dict[str, Any]:
        for kept in list(self.stray):
            if kept.get("id") == request_id and ("result" in kept or "error" in kept):
                self.stray.remove(kept)
                return kept
        while True:
            message = self.next_message(timeout)
            if message.get("id") == request_id and ("result" in message or "error" in message):
                return message
            self.stray.append(message)

    def request(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, **({"params": params} if params is not None else {})})
        return self.answer(self.next_id, timeout)

    def call_tool(self, name: str, arguments: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        """The tools/call result (isError, content, structuredContent)."""
        reply = self.request("tools/call", {"name": name, "arguments": arguments}, timeout)
        assert "result" in reply, reply
        return reply["result"]

    def initialize(self) -> None:
        reply = self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}})
        assert reply["result"]["serverInfo"]["name"] == "model-customization"
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def __enter__(self) -> Self:
        self.initialize()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def text_of(result: dict[str, Any]) -> str:
    return "\n".join(item.get("text", "") for item in result["content"])
