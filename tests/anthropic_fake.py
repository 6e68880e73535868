"""A small stateful fake of Anthropic's Messages API (POST /v1/messages) behind the SDK's own HTTP client.

It checks what the real API checks that our code could get wrong, so a request the API would refuse fails here too:
  - authentication (the SDK sends `Authorization: Bearer <key>`, older clients `x-api-key`) -> 401;
  - `anthropic-version`; at 2026-10-21 (what SDK 2.x sends) sampling parameters (temperature, top_p, top_k) are no
    longer part of the API and are refused even at their defaults, earlier versions range-check temperature;
  - only the fields of the SDK's published MessageCreateParams (anything else: "Extra inputs are not permitted");
  - model a non-empty string, max_tokens a positive integer, system a string or a list of text blocks, messages
    non-empty, each role user/assistant, alternating and starting with user, content non-empty text or text blocks.
Every response is parsed with the SDK's `anthropic.types.Message` before it is sent, so its shape cannot drift.

Replies come from `responder(body) -> str` (default: echo the last user turn), which may raise ApiErrorReply to
answer with an error instead; `fail_next` queues errors for the next requests. Every
request body that reached the handler is kept in `requests` (accepted or not) for assertions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
from anthropic.types import Message
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming

CURRENT_API_VERSION = "2026-10-21"  # what SDK 2.x sends in anthropic-version
SAMPLING_PARAMETERS = ("temperature", "top_p", "top_k")
ALLOWED_FIELDS = set(MessageCreateParamsNonStreaming.__required_keys__) | set(MessageCreateParamsNonStreaming.__optional_keys__)


class ApiErrorReply(Exception):
    """Raised by a responder to answer that one request with an API error instead of a message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


class FakeAnthropic:
    def __init__(self, api_key: str = "sk-ant-test-0123456789", responder: Callable[[dict[str, Any]], str] | None = None) -> None:
        self.api_key = api_key
        self.responder = responder or (lambda body: "echo: " + _last_user_text(body))
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.accepted: list[dict[str, Any]] = []
        self._failures: list[tuple[int, str, str, dict[str, str]]] = []
        self._next_id = 0

    def http_client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self.handle))

    def fail_next(self, status: int, error_type: str, message: str, *, times: int = 1, headers: dict[str, str] | None = None) -> None:
        """Answer the next `times` well-authenticated requests with this API error."""
        self._failures.extend([(status, error_type, message, headers or {})] * times)

    # --- the endpoint ------------------------------------------------------------------------------------------
    def handle(self, request: httpx2.Request) -> httpx2.Response:
        if request.method != "POST" or request.url.path != "/v1/messages":
            return self._error(404, "not_found_error", f"{request.method} {request.url.path} does not exist in this fake")
        body = json.loads(request.content)
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        given_key = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if given_key != self.api_key:
            return self._error(401, "authentication_error", "invalid x-api-key")
        version = request.headers.get("anthropic-version")
        if not version:
            return self._error(400, "invalid_request_error", "anthropic-version: header is required")
        problem = self._request_problem(body, version)
        if problem:
            return self._error(400, "invalid_request_error", problem)
        if self._failures:
            status, error_type, message, headers = self._failures.pop(0)
            return self._error(status, error_type, message, headers)
        try:
            reply = self.responder(body)
        except ApiErrorReply as error:
            return self._error(error.status, error.error_type, error.message)
        self.accepted.append(body)
        return self._message(body, reply)

    def _request_problem(self, body: dict[str, Any], version: str) -> str | None:
        for field in body:
            if field in SAMPLING_PARAMETERS and version >= CURRENT_API_VERSION:
                return f"{field}: Extra inputs are not permitted"
            if field not in ALLOWED_FIELDS and field not in SAMPLING_PARAMETERS:
                return f"{field}: Extra inputs are not permitted"
        if "temperature" in body and not (isinstance(body["temperature"], (int, float)) and 0 <= body["temperature"] <= 1):
            return "temperature: Input should be less than or equal to 1"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model: Field required"
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return "max_tokens: Field required (a positive integer)"
        system = body.get("system")
        if system is not None and not isinstance(system, str):
            if not isinstance(system, list) or not all(isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in system):
                return "system: Input should be a valid string or a list of text blocks"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: at least one message is required"
        for index, message in enumerate(messages):
            role = message.get("role")
            if role not in ("user", "assistant"):
                return f"messages.{index}.role: Input should be 'user' or 'assistant'"
            if index == 0 and role != "user":
                return "messages: first message must use the \"user\" role"
            if index > 0 and messages[index - 1]["role"] == role:
                return "messages: roles must alternate between \"user\" and \"assistant\""
            text = _content_text(message.get("content"))
            if text is None:
                return f"messages.{index}.content: Input should be a valid string or a list of content blocks"
            last_assistant = index == len(messages) - 1 and role == "assistant"
            if not text.strip() and not last_assistant:
                return f"messages.{index}: all messages must have non-empty content except for the optional final assistant message"
            if last_assistant and text != text.rstrip():
                return "messages: final assistant content cannot end with trailing whitespace"
        return None

    def _message(self, body: dict[str, Any], reply: str) -> httpx2.Response:
        words = reply.split()
        stop_reason = "end_turn"
        if len(words) > body["max_tokens"]:  # one word per token: enough to exercise the cut
            reply, stop_reason = " ".join(words[: body["max_tokens"]]), "max_tokens"
        system = body.get("system") or ""
        system_text = system if isinstance(system, str) else " ".join(b["text"] for b in system)
        prompt_words = len(system_text.split()) + sum(len((_content_text(m["content"]) or "").split()) for m in body["messages"])
        self._next_id += 1
        payload = {
            "id": f"msg_fake{self._next_id:04d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": reply, "citations": None}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt_words + 3, "output_tokens": max(len(reply.split()), 1), "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }
        Message.model_validate(payload)  # the SDK's own model: the fake's response must be a real Message
        return httpx2.Response(200, json=payload, headers={"request-id": f"req_fake{self._next_id:04d}"})

    def _error(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> httpx2.Response:
        payload = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_fake_error"}
        return httpx2.Response(status, json=payload, headers={"request-id": "req_fake_error", **(headers or {})})


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in content):
        return "".join(b["text"] for b in content)
    return None


def _last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body["messages"] if m["role"] == "user"]
    return _content_text(users[-1]["content"]) or "" if users else ""


assert anthropic.__version__.split(".")[0] == "2", "this fake models the API version SDK 2.x speaks"
