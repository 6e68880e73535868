"""What every tool adapter shares: domain errors become ToolError, blocking work runs off the event loop, and a tool's
arguments published from its operation's input model (`takes`, see model_customization/operations/__init__.py)."""

from __future__ import annotations

import functools
import inspect
import logging
import re
import secrets
import types
import typing
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import anyio
import anyio.from_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from model_customization.errors import UserError
from model_customization.store.errors import disk_os_error

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
        elif isinstance(value, BaseModel):  # an operation's request (operations/)
            pending.extend(value.__dict__.values())


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
        # abandon_on_cancel: a call the client cancels (or a client that left) frees its task and its place among
        # the worker threads at once; the thread itself stops at its next progress report (progress_reporter).
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), abandon_on_cancel=True)
    except UserError as error:
        raise ToolError(shorten_message(str(error))) from error
    except ToolError:
        raise
    except OSError as error:
        explained = disk_os_error(error)  # a full disk or a read-only file system is the machine's, not a bug
        if explained is not None:
            raise ToolError(shorten_message(str(explained))) from error
        name = (getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__).rsplit("<locals>.", 1)[-1]
        raise internal_error(name, error) from error
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
        # The call was cancelled or its client left: stop the work here rather than run it on for no one.
        try:
            anyio.from_thread.check_cancelled()
        except RuntimeError:  # called from a thread of the domain's own, not the tool's worker thread
            pass
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


def _published_field(field: Any, max_str_chars: int | None) -> Any:
    """A request field as a tool parameter's annotation: its type, constraints and description (the default is the
    parameter's default: pydantic refuses a default inside Annotated). The model's bound on every string
    (operations/bounds.py) is written into the type, so the published schema shows it as the model's own does."""
    described = {
        key: value
        for key, value in (("description", field.description), ("title", field.title), ("examples", field.examples), ("json_schema_extra", field.json_schema_extra))
        if value is not None
    }
    annotation = _bounded_strings(field.annotation, max_str_chars) if max_str_chars else field.annotation
    return Annotated[(annotation, *field.metadata, Field(**described))]


def _bounded_strings(annotation: Any, limit: int) -> Any:
    """`annotation` with each plain str in it (in a union, a list, a dict's values) at most `limit` characters long,
    as a pydantic model's str_max_length applies it; a str that has its own max_length keeps it."""
    if annotation is str:
        return Annotated[str, StringConstraints(max_length=limit)]
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, *metadata = typing.get_args(annotation)
        if base is str and any(getattr(item, "max_length", None) is not None for item in metadata):
            return annotation
        return Annotated[(_bounded_strings(base, limit), *metadata)]
    if origin in (typing.Union, types.UnionType):
        bounded = tuple(_bounded_strings(member, limit) for member in typing.get_args(annotation))
        return typing.Union[bounded]  # noqa: UP007 - built from a tuple
    if origin is list:
        return list[_bounded_strings(typing.get_args(annotation)[0], limit)]  # type: ignore[misc]
    if origin is dict:
        key, value = typing.get_args(annotation)
        return dict[key, _bounded_strings(value, limit)]  # type: ignore[valid-type]
    return annotation


def takes(request_model: type[BaseModel]) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Publish `async def tool(request: Model, ctx: Context | None = None)` as a tool with one argument per field.

    The MCP SDK builds a tool's inputSchema from its function's signature; the function returned here has the
    model's fields as keyword parameters (same names, order, types, constraints, descriptions and defaults), followed
    by the tool's own other parameters (ctx), so the schema is the one the model describes. A call validates the
    arguments into one `Model` (its validators included) and hands it to the tool body."""

    def decorate(tool: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        own = list(inspect.signature(tool).parameters.values())[1:]  # after the request: ctx and the like
        hints = typing.get_type_hints(tool, include_extras=True)
        parameters = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=_published_field(field, request_model.model_config.get("str_max_length")),
                default=inspect.Parameter.empty if field.is_required() else field.get_default(call_default_factory=True),
            )
            for name, field in request_model.model_fields.items()
        ]
        parameters += [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints.get(parameter.name, parameter.annotation)) for parameter in own]
        own_names = {parameter.name for parameter in own}

        @functools.wraps(tool)
        async def published(**arguments: Any) -> T:
            extras = {name: arguments.pop(name) for name in list(arguments) if name in own_names}
            try:
                request = request_model.model_validate(arguments)
            except ValidationError as error:  # a rule across fields (the SDK already checked each field alone)
                raise ToolError(shorten_message(_validation_message(error))) from None
            return await tool(request, **extras)

        published.__signature__ = inspect.Signature(parameters, return_annotation=hints.get("return", inspect.Signature.empty))  # type: ignore[attr-defined]
        published.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": hints.get("return")}
        del published.__wrapped__  # the signature above, not the tool body's, is what the SDK reads
        published.request_model = request_model  # type: ignore[attr-defined]  # tests compare it with the CLI's
        return published

    return decorate


def _validation_message(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(part) for part in issue['loc']) or 'arguments'}: {issue['msg']}" for issue in error.errors())
