"""The `/v1` application: OpenAI's routes, each a thin handler over a domain operation run in a worker thread."""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from model_customization.api.errors import ApiError, as_dict, error_response, from_exception
from model_customization.workspace import Workspace

MAX_JSON_BODY_BYTES = 4 * 1024 * 1024  # as /mcp's limit: a chat request's messages fit many times over


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"The request body is {int(declared):,} bytes; this route takes at most {limit:,}.", code="request_too_large")
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise ApiError(413, f"The request body is over {limit:,} bytes, the most this route takes.", code="request_too_large")
    return bytes(received)


async def read_json(request: Request) -> dict[str, Any]:
    raw = await read_body(request, MAX_JSON_BODY_BYTES)
    try:
        return as_dict(json.loads(raw or b"null"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, f"The request body is not JSON ({error}).") from None


def handler(endpoint: Any) -> Any:
    """Wraps an endpoint so every failure is answered in OpenAI's error shape."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as error:  # noqa: BLE001 - from_exception logs what the caller cannot fix
            return from_exception(error)

    wrapped.__name__ = endpoint.__name__
    return wrapped


def build_v1_app(ws: Workspace) -> Starlette:
    from model_customization.api import chat, files, fine_tuning, models

    routes = [
        *models.routes(ws),
        *chat.routes(ws),
        *files.routes(ws),
        *fine_tuning.routes(ws),
    ]

    async def not_found(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 405:
            return error_response(405, f"{request.method} is not allowed on {request.url.path}.", code="method_not_allowed")
        return error_response(exc.status_code, f"No route {request.method} {request.url.path} on this server (it serves /v1/models, /v1/chat/completions, /v1/files and /v1/fine_tuning/jobs).", code="unknown_url")

    return Starlette(routes=routes, exception_handlers={HTTPException: not_found})


async def in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))


__all__ = ["ApiError", "Route", "build_v1_app", "handler", "in_thread", "read_body", "read_json"]
