"""Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}, with the status OpenAI would use."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from model_customization.errors import ConfirmationNeeded, NotFoundError, TransientError, UserError

logger = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, kind=self.kind, param=self.param, code=self.code, headers=self.headers)


def error_response(status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status_code=status, headers=headers)


def from_exception(error: BaseException) -> JSONResponse:
    """The response for an error a handler raised: the domain's message for what the caller can fix, a short
    generic line (and the traceback in the server's log) for anything else."""
    if isinstance(error, ApiError):
        return error.response()
    if isinstance(error, HTTPException):  # starlette's own refusals (a malformed multipart body)
        return error_response(error.status_code, str(error.detail))
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        param = ".".join(str(p) for p in first.get("loc", ())) or None
        return error_response(400, f"{param or 'body'}: {first.get('msg')}", param=param)
    if isinstance(error, ConfirmationNeeded):
        return error_response(402, str(error), kind="insufficient_quota", code="insufficient_quota")
    if isinstance(error, NotFoundError):
        return error_response(404, str(error), param=getattr(error, "param", None), code=getattr(error, "code", None) or "not_found")
    if isinstance(error, TransientError):
        headers = {"Retry-After": str(int(error.retry_after))} if error.retry_after else None
        return error_response(503, str(error), kind="server_error", code="upstream_unavailable", headers=headers)
    if isinstance(error, UserError):
        return error_response(400, str(error), param=getattr(error, "param", None), code=getattr(error, "code", None))
    logger.error("unexpected error in /v1", exc_info=error)
    return error_response(500, "The server failed on this request (details in its log); try again or report it.", kind="server_error")


def body_error(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param)


def as_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise body_error("The request body must be a JSON object.")
    return value
