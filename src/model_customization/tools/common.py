"""What every tool adapter shares: domain errors become ToolError, blocking work runs off the event loop."""

from __future__ import annotations

import functools
import logging
import re
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from model_customization.errors import UserError

T = TypeVar("T")


logger = logging.getLogger(__name__)

# An error that quotes a 100k-character argument back helps no one; longer messages keep their start and end.
MAX_ERROR_CHARS = 2000


def refuse_invalid_text(*values: Any) -> None:
    """A ToolError for a string (at any depth) holding a lone surrogate: it is not Unicode text, so it can be neither
    stored, sent to a provider nor written back as JSON. A real JSON transport already refuses such escapes; this
    covers in-process clients and any transport that lets them through."""
    pending = list(values)
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                shown = ascii(value if len(value) <= 80 else value[:80] + "...")
                raise ToolError(f"The argument {shown} is not valid Unicode text (it holds a lone surrogate); send it as UTF-8 text.")
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, (list, tuple, set, frozenset)):
            pending.extend(value)


_SURROGATE = re.compile("[\ud800-\udfff]")


# Tool outputs stay small: one long text (an event, an error) keeps this many characters and says where the rest is.
MAX_OUTPUT_TEXT_CHARS = 2000


def truncate_text(text: str | None, rest_at: str, limit: int = MAX_OUTPUT_TEXT_CHARS) -> str | None:
    """The text cut to `limit` characters with a note naming how many were cut and where the whole text is (rest_at,
    e.g. "read jobs://job-x/events"); only for text that has such a place. Short text (and None) is returned as it is."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]} ... truncated ({len(text) - limit:,} more characters); for the whole text, {rest_at}."


def shorten_message(text: str) -> str:
    if len(text) <= MAX_ERROR_CHARS:
        return text
    cut = len(text) - MAX_ERROR_CHARS
    return f"{text[: MAX_ERROR_CHARS * 2 // 3]} [...{cut} characters cut...] {text[-MAX_ERROR_CHARS // 3 :]}"


async def run_domain(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking domain call in a worker thread; a UserError reaches the agent as a ToolError with its text.

    Anything else is a bug: the agent gets a short error id and what to do, the traceback goes to the server log under
    that id (never to the client, whose text could leak paths or data and cannot act on it)."""
    refuse_invalid_text(args, kwargs)
    try:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
    except UserError as error:
        raise ToolError(shorten_message(str(error))) from error
    except ToolError:
        raise
    except Exception as error:
        name = (getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__).rsplit("<locals>.", 1)[-1]
        raise internal_error(name, error) from error


def internal_error(name: str, error: BaseException) -> ToolError:
    """The ToolError for a bug: a short id for the agent, the traceback in the server log under that id."""
    error_id = secrets.token_hex(4)
    logger.error("internal error %s in %s: %s", error_id, name, type(error).__name__, exc_info=error)
    return ToolError(
        f"Internal error {error_id} in {name}: a bug in this server, not a problem found in your arguments. "
        "Try again; if it happens again, report the id (the server log has the details) and use another route meanwhile."
    )


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


class lazy_module:  # noqa: N801 - used like a module
    """A module imported on first attribute access, so that importing an adapter stays cheap at server start-up."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        import importlib

        return getattr(importlib.import_module(self._name), attribute)
