"""The same door as /mcp for /v1: Host and Origin checked against the same lists (DNS rebinding), and a bearer
token required whenever the server was started with tokens (always off loopback). The MCP SDK's authentication
middleware, which wraps the whole app, has already checked the token and set scope["user"]; this refuses requests
it did not authenticate, in OpenAI's error shape, with the challenge /mcp sends."""

from __future__ import annotations

from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request

from model_customization.api.errors import error_response


class SameAccessAsMcp:
    def __init__(self, app: Any, security: TransportSecuritySettings, *, tokens_required: bool, resource_metadata_url: str | None = None) -> None:
        self.app = app
        self.checks = TransportSecurityMiddleware(security)
        self.tokens_required = tokens_required
        self.challenge = "Bearer" + (f' resource_metadata="{resource_metadata_url}"' if resource_metadata_url else "")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = await self.checks.validate_request(Request(scope), is_post=False)
        if refusal is not None:
            what = "Host" if refusal.status_code == 421 else "Origin"
            response = error_response(
                refusal.status_code, f"Invalid {what} header: this server does not answer requests addressed to that name (see serve --allowed-host).",
                code=f"invalid_{what.lower()}",
            )  # fmt: skip
            await response(scope, receive, send)
            return
        if self.tokens_required and not isinstance(scope.get("user"), AuthenticatedUser):
            response = error_response(
                401, "A bearer token is required: send 'Authorization: Bearer <token>' with one of the server's tokens (the OpenAI SDK sends its api_key so).",
                code="invalid_api_key", headers={"WWW-Authenticate": self.challenge},
            )  # fmt: skip
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
