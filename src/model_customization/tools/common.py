"""What every tool adapter shares: domain errors become ToolError, blocking work runs off the event loop."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from model_customization.errors import UserError

T = TypeVar("T")


async def run_domain(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking domain call in a worker thread; a UserError reaches the agent as a ToolError with its text."""
    try:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
    except UserError as error:
        raise ToolError(str(error)) from error


def progress_reporter(ctx: Context | None) -> Callable[[float, float | None, str], None] | None:
    """A plain callback the domain can call from its worker thread to send MCP progress notifications."""
    if ctx is None:
        return None

    def report(done: float, total: float | None, message: str) -> None:
        try:
            anyio.from_thread.run(ctx.report_progress, done, total, message)
        except Exception:  # noqa: BLE001 - a client that went away must not stop the work itself
            pass

    return report
