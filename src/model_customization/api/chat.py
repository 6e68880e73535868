"""POST /v1/chat/completions: one answer as JSON, or server-sent events (`stream: true`) in OpenAI's chunk shapes."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from model_customization.api.app import handler, in_thread, read_json
from model_customization.api.errors import from_exception
from model_customization.workspace import Workspace

_FINISHED = object()


def _usage(result: dict[str, Any]) -> dict[str, int]:
    prompt, completion = int(result["prompt_tokens"]), int(result["completion_tokens"])
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _tool_calls(calls: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]


def routes(ws: Workspace) -> list[Route]:
    from model_customization.operations.serving import ChatCompletionRequest
    from model_customization.serving import chat

    async def answer(prepared: chat.PreparedChat, on_text: Any = None) -> dict[str, Any]:
        if prepared.engine is None:
            return await in_thread(chat.answer_remote, ws, prepared)
        return await asyncio.wrap_future(chat.start_local(prepared, on_text))

    @handler
    async def completions(request: Request) -> Response:
        body = await read_json(request)
        parsed = ChatCompletionRequest.model_validate(body)
        prepared = await in_thread(chat.prepare_chat, ws, parsed)
        if "forward" in prepared.extra:
            return await _forward(prepared, body)
        head = {"id": "chatcmpl-" + secrets.token_hex(12), "created": int(time.time()), "model": prepared.model}
        if parsed.stream:
            return StreamingResponse(_stream(prepared, head), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        result = await answer(prepared)
        content, calls = chat.split_tool_calls(result["text"], prepared.tool_names)
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if calls:
            message["tool_calls"] = _tool_calls(calls)
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else result["finish_reason"], "logprobs": None}
        return JSONResponse({**head, "object": "chat.completion", "choices": [choice], "usage": _usage(result)})

    async def _forward(prepared: chat.PreparedChat, body: dict[str, Any]) -> Response:
        """The request as the client sent it, to the serving engine under its name for the model."""
        from starlette.concurrency import iterate_in_threadpool

        from model_customization.serving import engines

        kind, url, name = prepared.extra["forward"]
        sent = {**body, "model": name}
        if body.get("stream"):
            events = await in_thread(engines.forward_chat_stream, kind, url, sent)
            return StreamingResponse(iterate_in_threadpool(events), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        answer = await in_thread(engines.forward_chat, kind, url, sent)
        return JSONResponse({**answer, "model": prepared.model})

    async def _stream(prepared: chat.PreparedChat, head: dict[str, Any]) -> AsyncIterator[str]:
        def event(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            chunk = {**head, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}
            return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[Any] = asyncio.Queue()
        content_filter = chat.StreamedContent(prepared.tool_names)
        yield event({"role": "assistant", "content": ""})
        try:
            if prepared.engine is None:
                pending: asyncio.Future = asyncio.ensure_future(answer(prepared))
            else:
                pending = asyncio.wrap_future(chat.start_local(prepared, lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece)))
            pending.add_done_callback(lambda _: pieces.put_nowait(_FINISHED))
            while (piece := await pieces.get()) is not _FINISHED:
                if sent := content_filter.add(piece):
                    yield event({"content": sent})
            try:
                result = pending.result()
            except Exception as error:  # noqa: BLE001 - the stream has begun: the error is its last event
                body = json.loads(from_exception(error).body)
                yield f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
                return
            content, calls = chat.split_tool_calls(result["text"], prepared.tool_names)
            if rest := content_filter.finish(content):
                yield event({"content": rest})
            if calls:
                yield event({"tool_calls": [{"index": i, **call} for i, call in enumerate(_tool_calls(calls))]})
            yield event({}, "tool_calls" if calls else result["finish_reason"])
            if prepared.include_usage_chunk:
                yield f"data: {json.dumps({**head, 'object': 'chat.completion.chunk', 'choices': [], 'usage': _usage(result)})}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            chat.cancel(prepared)  # a no-op when the answer is whole; stops decoding for a client that went away

    return [Route("/chat/completions", completions, methods=["POST"])]
