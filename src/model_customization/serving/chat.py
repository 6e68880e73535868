"""Chat completions for the OpenAI-compatible endpoint: OpenAI's request read into our conversation form, answered
by the local batching engine (or, for a cloud model, through providers.chat with its spending rules), and tool calls
in our `<tool_call>{json}</tool_call>` text form read back into OpenAI tool calls.

A model trained here learned tool calls as text: datasets/examples.render_tool_calls writes an assistant message's
calls as `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` lines, and a tool result is a `tool` turn. A
request is rendered the same way (assistant tool calls as that text, tool results as tool turns), so the model sees
what it was trained on; tool definitions are not rendered into the prompt, as they were not in training.
"""

from __future__ import annotations

import json
import re
import secrets
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from model_customization.errors import UserError
from model_customization.operations.serving import ChatCompletionRequest
from model_customization.workspace import Workspace

DEFAULT_MAX_TOKENS = 512
DEFAULT_TEMPERATURE = 1.0
MAX_TOKENS = 4096
TOOL_CALL_OPEN = "<tool_call>"
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


class RequestFieldError(UserError):
    """A request field the caller must change; `param` names it as OpenAI's errors do (messages[2].content)."""

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class PreparedChat:
    requested: str  # the name the caller used (an agent name stays an agent name in the answer)
    model: str  # the model that answers
    provider: str
    messages: list[dict[str, Any]]
    max_tokens: int
    temperature: float
    seed: int
    stop: tuple[str, ...]
    tool_names: frozenset[str] = frozenset()  # tools whose calls are read back; empty: the text is the answer
    tools: list[dict[str, Any]] | None = None  # the tools a local model is shown, as training and evaluate show them
    engine: Any = None  # a local model's BatchingEngine
    include_usage_chunk: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def prepare_chat(ws: Workspace, request: ChatCompletionRequest) -> PreparedChat:
    """Check the request, resolve its model (agent names included) and load a local model's engine. Blocking."""
    from model_customization.providers.registry import get_provider, resolve_chat_model
    from model_customization.serving.models import served_model

    _refuse_unsupported(request)
    messages = conversation(request.messages)
    tool_names = _tool_names(request)
    max_tokens = request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS
    if max_tokens > MAX_TOKENS:
        field_name = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
        raise RequestFieldError(f"{field_name} is {max_tokens}; this server answers at most {MAX_TOKENS} tokens per request.", field_name)
    stop = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
    if any(not s for s in stop):
        raise RequestFieldError("stop strings must not be empty.", "stop")
    model = served_model(ws, request.model)
    from model_customization.serving.engines import engine_model_for

    forwarded = engine_model_for(ws, model)
    if forwarded is not None:  # a tuned model a serving engine answers: nothing is loaded here
        return PreparedChat(
            requested=request.model, model=model, provider="local", messages=messages, max_tokens=max_tokens, temperature=0.0, seed=0,
            stop=stop, tool_names=tool_names, extra={"forward": forwarded},
        )  # fmt: skip
    provider, name = resolve_chat_model(ws, model)
    answering = get_provider(provider, "chat")
    engine = None
    batched = getattr(answering, "chat_engine", None)
    if batched is not None:
        engine, name = batched(ws, name)
    include_usage = bool((request.stream_options or {}).get("include_usage"))
    return PreparedChat(
        requested=request.model, model=name, provider=provider, messages=messages, max_tokens=max_tokens,
        tools=list(request.tools) if tool_names else None,
        # OpenAI's default temperature is 1; a fixed default seed keeps even sampled answers repeatable
        temperature=request.temperature if request.temperature is not None else DEFAULT_TEMPERATURE,
        seed=(request.seed or 0) % (2**63), stop=stop, tool_names=tool_names, engine=engine, include_usage_chunk=include_usage,
    )  # fmt: skip


def start_local(prepared: PreparedChat, on_text: Callable[[str], None] | None = None) -> Future:
    """Queue the request on its model's batching engine; the future resolves to {text, prompt_tokens,
    completion_tokens, finish_reason, seconds}."""
    from model_customization.providers.local.batching import Generation, prompt_token_ids

    generation = Generation(
        prompt_token_ids(prepared.engine, prepared.messages, prepared.tools), prepared.max_tokens, temperature=prepared.temperature,
        seed=prepared.seed, stop=prepared.stop, on_text=on_text,
    )  # fmt: skip
    prepared.extra["generation"] = generation
    return prepared.engine.submit(generation)


def cancel(prepared: PreparedChat) -> None:
    """The caller went away: stop decoding its answer (its batch neighbours go on)."""
    generation = prepared.extra.get("generation")
    if generation is not None:
        generation.cancelled.set()


def answer_remote(ws: Workspace, prepared: PreparedChat) -> dict[str, Any]:
    """A model that is not decoded here (a cloud model, or a deployment of one): one call through providers.chat,
    under the same budgets as prompt_model. Blocking."""
    from model_customization.providers.chat import chat

    result = chat(ws, f"{prepared.provider}:{prepared.model}", prepared.messages, max_tokens=prepared.max_tokens, temperature=prepared.temperature, seed=prepared.seed)
    text = result.get("text") or ""
    for stop in prepared.stop:
        if stop in text:
            text = text[: text.index(stop)]
    reason = result.get("stop_reason")
    return {
        "text": text,
        "prompt_tokens": int(result.get("prompt_tokens") or 0),
        "completion_tokens": int(result.get("completion_tokens") or 0),
        "finish_reason": "length" if reason in ("length", "max_tokens") else "stop",
    }


# --- the conversation ----------------------------------------------------------------------------------------------
def conversation(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI chat messages as the role + content turns local models are trained and prompted on."""
    from model_customization.datasets.examples import render_tool_calls

    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise RequestFieldError(f"{where} is not an object with role and content.", where)
        role = message.get("role")
        if role == "developer":  # OpenAI's newer name for the system turn
            role = "system"
        if role not in ("system", "user", "assistant", "tool"):
            raise RequestFieldError(f"{where}.role is {role!r}; use system, developer, user, assistant or tool.", f"{where}.role")
        content = _text(message.get("content"), f"{where}.content")
        if role == "assistant" and message.get("tool_calls"):
            calls = message["tool_calls"]
            if not isinstance(calls, list) or not all(isinstance(c, dict) and isinstance(c.get("function"), dict) and isinstance(c["function"].get("name"), str) for c in calls):
                raise RequestFieldError(f"{where}.tool_calls must be a list of {{id, type: function, function: {{name, arguments}}}}.", f"{where}.tool_calls")
            content = render_tool_calls({"content": content, "tool_calls": calls})
        elif role != "assistant" and not content:
            raise RequestFieldError(f"{where}.content is empty; a {role} message needs text.", f"{where}.content")
        turns.append({"role": role, "content": content})
    if turns[-1]["role"] == "assistant":
        raise RequestFieldError("The last message is the assistant's; end with a user (or tool) message to get an answer.", f"messages[{len(messages) - 1}]")
    return turns


def _text(content: Any, where: str) -> str:
    """A message's text: a string, or a list of text parts (what newer clients send); other parts are refused."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for position, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text") or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise RequestFieldError(f"{where}[{position}] is a {kind!r} part; the models here read text parts only.", f"{where}[{position}]")
            texts.append(part["text"])
        return "\n".join(texts)
    raise RequestFieldError(f"{where} must be a string or a list of text parts.", where)


def _tool_names(request: ChatCompletionRequest) -> frozenset[str]:
    names = []
    for index, tool in enumerate(request.tools or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type", "function") != "function" or not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RequestFieldError(f"tools[{index}] must be {{type: function, function: {{name, description, parameters}}}}.", f"tools[{index}]")
        names.append(function["name"])
    if request.tool_choice == "none":
        return frozenset()
    return frozenset(names)


def _refuse_unsupported(request: ChatCompletionRequest) -> None:
    if (request.n or 1) != 1:
        raise RequestFieldError("n must be 1: this server returns one choice per request (send several requests; they are batched).", "n")
    if request.logprobs:
        raise RequestFieldError("logprobs are not returned by this server; leave logprobs out.", "logprobs")
    kind = (request.response_format or {}).get("type", "text")
    if kind != "text":
        raise RequestFieldError(f"response_format {kind!r} is not enforced by this server; leave response_format out and validate the answer yourself.", "response_format")


# --- tool calls ----------------------------------------------------------------------------------------------------
def split_tool_calls(text: str, tool_names: frozenset[str]) -> tuple[str | None, list[dict[str, str]]]:
    """(content, tool calls) of an answer. Calls are read only for a request that offered tools, and only when every
    `<tool_call>` block is JSON naming one of them; otherwise the whole text is the content (nothing is lost).
    Each call: {id, name, arguments (a JSON string, as OpenAI sends it)}."""
    if not tool_names or TOOL_CALL_OPEN not in text:
        return text, []
    calls = []
    for body in _TOOL_CALL.findall(text):
        try:
            parsed = json.loads(body)
        except ValueError:
            return text, []
        if not isinstance(parsed, dict) or parsed.get("name") not in tool_names:
            return text, []
        arguments = parsed.get("arguments", parsed.get("parameters", {}))
        if isinstance(arguments, str):
            try:
                json.loads(arguments)
            except ValueError:
                return text, []
        else:
            arguments = json.dumps(arguments, ensure_ascii=False)
        calls.append({"id": "call_" + secrets.token_hex(12), "name": parsed["name"], "arguments": arguments})
    if not calls:
        return text, []
    content = text[: text.index(TOOL_CALL_OPEN)].rstrip()
    return content or None, calls


class StreamedContent:
    """What of a streamed answer may be sent as content now. With tools offered, text from `<tool_call>` on is held
    (it may become a tool call), and so are trailing spaces (content before a call ends without them), so the
    pieces sent always add up to what the non-streaming answer's content is."""

    def __init__(self, tool_names: frozenset[str]) -> None:
        self.watching = bool(tool_names)
        self.text = ""
        self.sent = 0

    def add(self, piece: str) -> str:
        self.text += piece
        if not self.watching:
            return self._send(len(self.text))
        at = self.text.find(TOOL_CALL_OPEN)
        if at != -1:
            ready = len(self.text[:at].rstrip())
        else:
            ready = len(self.text.rstrip())
            for size in range(min(len(TOOL_CALL_OPEN) - 1, len(self.text)), 0, -1):
                if self.text.endswith(TOOL_CALL_OPEN[:size]):
                    ready = min(ready, len(self.text[:-size].rstrip()))
                    break
        return self._send(ready)

    def finish(self, content: str | None) -> str:
        """The rest of the content once the whole answer is known (content as split_tool_calls gave it)."""
        content = content or ""
        if len(content) <= self.sent or not content.startswith(self.text[: self.sent]):
            return ""
        piece, self.sent = content[self.sent:], len(content)
        return piece

    def _send(self, ready: int) -> str:
        if ready <= self.sent:
            return ""
        piece, self.sent = self.text[self.sent:ready], ready
        return piece
