"""The stdio transport with two guarantees the SDK's own does not give: every line a client sends that is not a
usable JSON-RPC message gets a JSON-RPC error back (the SDK drops it silently: a client waiting on that id would
hang), and the server stops as soon as its client's stdin closes, even while tool calls are still running in
worker threads (otherwise it lives on as an orphan until they finish, or for ever).

The SDK's stdio transport (mcp.server.stdio.stdio_server) still does the framing; it is handed our line filter as
its stdin and our locked writer as its stdout, so our error replies never interleave with its messages.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import sys
import threading
from collections.abc import AsyncIterator
from io import TextIOWrapper
from typing import Any

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

# How long in-flight replies may still be written after the client closed stdin (a client that sends a request and
# closes at once, `printf ... | server`, still gets its answer if it comes quickly).
GRACE_AFTER_CLIENT_LEFT_SECONDS = 2.0

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def refusal_for_line(line: str) -> dict[str, Any] | None:
    """The JSON-RPC error reply for a line the SDK cannot take as a message; None for a usable line, a blank one, or
    a broken notification or response (JSON-RPC never answers those: there is no id to answer to)."""
    if not line.strip():
        return None
    if _sdk_parses(line):
        return None
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return _error(None, PARSE_ERROR, "Parse error: the line is not JSON. Send one JSON-RPC message per line.")
    if not isinstance(message, dict):
        what = "a batch (a JSON array)" if isinstance(message, list) else "not a JSON object"
        return _error(None, INVALID_REQUEST, f"Invalid Request: the line is {what}; send one JSON-RPC request object per line.")
    request_id = message.get("id")
    if "method" not in message:
        return None  # a response from the client that does not parse: nothing to answer
    if not isinstance(request_id, (str, int)) or isinstance(request_id, bool) or (isinstance(request_id, str) and _LONE_SURROGATE.search(request_id)):
        if "id" not in message:
            return None  # a notification
        request_id = None
    if _holds_lone_surrogate(message):
        return _error(request_id, INVALID_REQUEST, "Invalid Request: a string holds a lone surrogate escape (e.g. \\ud800), which is not Unicode text; send UTF-8 text.")
    if "params" in message and not isinstance(message["params"], dict):
        return _error(request_id, INVALID_PARAMS, "Invalid params: MCP takes params as a JSON object (by name), not an array or a single value.")
    return _error(request_id, INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 request (it needs \"jsonrpc\": \"2.0\", a string method and an integer or string id).")


def _sdk_parses(line: str) -> bool:
    """Whether the SDK's stdio transport takes the line as a message (it parses it with this same adapter)."""
    try:
        types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except Exception:  # noqa: BLE001 - any refusal by the SDK's parser means the line is answered here
        return False
    return True


def _holds_lone_surrogate(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


class _LockedWriter:
    """stdout for the SDK and for our refusals: one whole message per write, never two at once."""

    def __init__(self, stream: TextIOWrapper) -> None:
        self._file = anyio.wrap_file(stream)
        self._lock = anyio.Lock()

    async def write(self, text: str) -> None:
        async with self._lock:
            await self._file.write(text)
            await self._file.flush()

    async def flush(self) -> None:  # each write already flushed
        return None

    async def refuse(self, reply: dict[str, Any]) -> None:
        await self.write(json.dumps(reply) + "\n")


class _GuardedLines:
    """stdin for the SDK: the lines it can parse, in order; the others answered here and not passed on. Sets
    `client_left` at end of input."""

    def __init__(self, stream: TextIOWrapper, writer: _LockedWriter) -> None:
        self._file = anyio.wrap_file(stream)
        self._writer = writer
        self.client_left = anyio.Event()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        try:
            async for line in self._file:
                reply = refusal_for_line(line)
                if reply is not None:
                    await self._writer.refuse(reply)
                elif line.strip():
                    yield line
        finally:
            self.client_left.set()


@contextlib.contextmanager
def _claimed_std_streams() -> Any:
    """Private copies of fd 0 and 1 for the protocol; while serving, fd 0 reads the null device and fd 1 goes to
    stderr, so a child process or a stray print can neither eat the client's input nor corrupt the protocol."""
    wire_in = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    wire_out = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    try:
        with os.fdopen(wire_in, "rb", closefd=False) as raw_in, os.fdopen(wire_out, "wb", closefd=False) as raw_out:
            yield (
                TextIOWrapper(raw_in, encoding="utf-8", errors="replace"),  # as the SDK reads: bad bytes become U+FFFD
                TextIOWrapper(raw_out, encoding="utf-8", write_through=True),
            )
    finally:
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        for fd in (saved_in, saved_out):
            os.close(fd)


async def serve_stdio(server: MCPServer) -> None:
    """Serve `server` over stdin/stdout until the client closes stdin; then stop, cancelling what still runs."""
    with _claimed_std_streams() as (text_in, text_out):
        writer = _LockedWriter(text_out)
        lines = _GuardedLines(text_in, writer)
        async with stdio_server(stdin=lines, stdout=writer) as (read_stream, write_stream), anyio.create_task_group() as group:  # type: ignore[arg-type]
            lowlevel = server._lowlevel_server  # what MCPServer.run_stdio_async runs, with our streams instead

            async def run() -> None:
                await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
                group.cancel_scope.cancel()

            group.start_soon(run)
            await lines.client_left.wait()
            with anyio.move_on_after(GRACE_AFTER_CLIENT_LEFT_SECONDS):
                await _until_cancelled(group)
            group.cancel_scope.cancel()


async def _until_cancelled(group: anyio.abc.TaskGroup) -> None:
    """Wait until the server loop ended by itself (no tool call still running)."""
    while not group.cancel_scope.cancel_called:
        await anyio.sleep(0.05)


def run_stdio(server: MCPServer) -> None:
    """serve_stdio, then leave at once: a tool call the client gave up on may still hold a worker thread (a long
    build, a model loading), and the interpreter would wait for it before exiting, as an orphan nobody reads."""
    anyio.run(serve_stdio, server)
    if any(thread.is_alive() and not thread.daemon for thread in threading.enumerate() if thread is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(0)
