"""Concurrent chat requests to one local model, answered together: one decoding loop per loaded model.

A request waits in its model's queue; the model's worker thread takes every request waiting (up to MAX_BATCH),
left-pads their prompts into one batch and decodes them together, one token per step for every row, with a
key/value cache. On a CPU, as on a GPU, a step for 8 or 32 rows costs little more than a step for one (generating a
token is bound by reading the weights, not by arithmetic), so throughput under concurrency grows almost with the
batch. Each row stops on its own (end of turn, max_tokens, a stop string, its caller gone) and its answer is handed
back at once; requests arriving while a batch runs form the next one.

Every row samples with its own seeded generator, so a request's answer depends on its seed, not on its neighbours.
Text is handed out as it is decoded (on_text), held back only while it might still become a stop string.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from model_customization.errors import UserError
from model_customization.workspace import Workspace

MAX_BATCH = 32
MAX_ENGINES = 2  # as many as the inference cache keeps models
# After a request finds the engine idle, wait this long for the requests sent with it (clients fire concurrent
# requests within a few milliseconds), so they share its batch instead of queueing behind it.
GATHER_SECONDS = 0.01
logger = logging.getLogger(__name__)


@dataclass
class Generation:
    """One request: a prompt (token ids) and how to answer it. `result` resolves to {text, prompt_tokens,
    completion_tokens, finish_reason ('stop' or 'length'), seconds}."""

    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 0.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    on_text: Callable[[str], None] | None = None  # called from the engine's thread with each new piece of text
    result: Future = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)  # the caller went away: stop decoding it


@dataclass
class _Row:
    request: Generation
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    sent: int = 0  # characters of text handed to on_text
    generated: int = 0  # tokens decoded, the end-of-turn token included (as usage counts them)
    finish_reason: str | None = None
    generator: Any = None
    started: float = 0.0


class BatchingEngine:
    """The decoding loop of one loaded model (its thread starts on the first request)."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str, max_batch: int = MAX_BATCH) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_batch = max_batch
        self._waiting: queue.Queue[Generation | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self.batches_run = 0
        self.largest_batch = 0
        eos = {tokenizer.eos_token_id}
        configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos.update(configured if isinstance(configured, list) else [configured])
        self.end_ids = {token for token in eos if token is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        from model_customization.providers.local.inference import context_tokens

        self.context = context_tokens(model)

    def submit(self, request: Generation) -> Future:
        if self.context is not None and len(request.prompt_ids) >= self.context:
            raise UserError(
                f"The prompt is {len(request.prompt_ids):,} tokens, but {self.name} reads at most {self.context:,} (its context), "
                "prompt and answer together. Shorten the conversation (keep the last turns)."
            )
        if self.context is not None:
            request.max_tokens = min(request.max_tokens, self.context - len(request.prompt_ids))
        with self._lock:
            if self._stopped:
                raise UserError(f"{self.name} was unloaded; send the request again.")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"batching-{self.name}", daemon=True)
                self._thread.start()
            self._waiting.put(request)
        return request.result

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._waiting.put(None)

    # --- the loop --------------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            first = self._waiting.get()
            if first is None:
                return
            batch = [first]
            gather_until = time.monotonic() + GATHER_SECONDS
            while len(batch) < self.max_batch:
                try:
                    following = self._waiting.get(timeout=max(0.0, gather_until - time.monotonic()))
                except queue.Empty:
                    break
                if following is None:
                    self._waiting.put(None)  # finish this batch, then stop
                    break
                batch.append(following)
            batch = [r for r in batch if not r.cancelled.is_set() and r.result.set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                self._decode(batch)
            except BaseException as error:  # noqa: BLE001 - every waiting caller hears of it; the loop goes on
                logger.exception("batched generation with %s failed", self.name)
                for request in batch:
                    if not request.result.done():
                        request.result.set_exception(error)

    def _decode(self, batch: list[Generation]) -> None:
        import torch
        from transformers import DynamicCache

        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        started = time.perf_counter()
        rows = [_Row(request, started=started) for request in batch]
        for row in rows:
            if row.request.temperature > 0:
                row.generator = torch.Generator().manual_seed(row.request.seed)
        width = max(len(r.request.prompt_ids) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            prompt = row.request.prompt_ids
            ids[index, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            mask[index, width - len(prompt):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        steps = max(r.request.max_tokens for r in rows)
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1, :]
            for _ in range(steps):
                chosen = self._choose(logits, rows)
                for index, row in enumerate(rows):
                    if row.finish_reason is None:
                        self._advance(row, int(chosen[index]))
                if all(r.finish_reason is not None for r in rows):
                    break
                # finished rows keep decoding padding (their output is ignored) so the batch stays one tensor
                feed = torch.tensor([[int(chosen[i]) if r.finish_reason is None else self.pad_id] for i, r in enumerate(rows)], dtype=torch.long)
                mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
                positions = mask.sum(-1, keepdim=True) - 1
                logits = self.model(input_ids=feed, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True).logits[:, -1, :]
        for row in rows:
            if row.finish_reason is None:
                self._finish(row, "length")

    def _choose(self, logits: Any, rows: list[_Row]) -> list[int]:
        import torch

        greedy = logits.argmax(dim=-1).tolist()
        for index, row in enumerate(rows):
            if row.finish_reason is None and row.generator is not None:
                probabilities = torch.softmax(logits[index].float() / row.request.temperature, dim=-1)
                greedy[index] = int(torch.multinomial(probabilities, 1, generator=row.generator))
        return greedy

    def _advance(self, row: _Row, token: int) -> None:
        request = row.request
        if request.cancelled.is_set():
            self._finish(row, "cancelled")
            return
        row.generated += 1
        if token in self.end_ids:
            self._finish(row, "stop")
            return
        row.tokens.append(token)
        row.text = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
        for stop in request.stop:
            at = row.text.find(stop)
            if at != -1:
                row.text = row.text[:at]
                self._finish(row, "stop")
                return
        if len(row.tokens) >= request.max_tokens:
            self._finish(row, "length")
            return
        self._hand_out(row, final=False)

    def _hand_out(self, row: _Row, *, final: bool) -> None:
        if row.request.on_text is None:
            return
        ready = len(row.text)
        if not final:
            if row.text.endswith("\ufffd"):  # half of a character: wait for its other bytes
                ready = len(row.text.rstrip("\ufffd"))
            ready = min(ready, _safe_length(row.text, row.request.stop))
        if ready > row.sent:
            piece, row.sent = row.text[row.sent:ready], ready
            try:
                row.request.on_text(piece)
            except Exception:  # noqa: BLE001 - a caller's broken callback must not stop its neighbours
                logger.exception("a streaming callback failed; that request is stopped")
                row.request.cancelled.set()

    def _finish(self, row: _Row, reason: str) -> None:
        row.finish_reason = reason
        if reason != "cancelled":
            self._hand_out(row, final=True)
        if not row.request.result.done():
            row.request.result.set_result({
                "text": row.text,
                "prompt_tokens": len(row.request.prompt_ids),
                "completion_tokens": row.generated,
                "finish_reason": "length" if reason == "length" else "stop",
                "seconds": round(time.perf_counter() - row.started, 3),
            })  # fmt: skip


def _safe_length(text: str, stops: tuple[str, ...]) -> int:
    """How much of text can be handed out now: all of it but a tail that could still grow into a stop string."""
    keep = len(text)
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                keep = min(keep, len(text) - size)
                break
    return keep


# --- one engine per loaded model ---------------------------------------------------------------------------------
_engines: OrderedDict[tuple[Any, ...], BatchingEngine] = OrderedDict()
_engines_lock = threading.Lock()


def engine_for(ws: Workspace, model: str) -> tuple[BatchingEngine, str]:
    """The batching engine of a local model (loading it on first use) and the model's canonical id."""
    from model_customization.providers.local.inference import load_model, resolve_model

    resolved = resolve_model(ws, model)
    loaded, tokenizer = load_model(ws, resolved)
    key = (id(loaded), resolved.model_id)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = BatchingEngine(loaded, tokenizer, name=resolved.model_id)
        _engines.move_to_end(key)
        while len(_engines) > MAX_ENGINES:
            _, evicted = _engines.popitem(last=False)
            evicted.stop()
    return engine, resolved.model_id


def prompt_token_ids(engine: BatchingEngine, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> list[int]:
    """The conversation (and its tools) in the model's chat template, ending with the assistant's generation prompt."""
    from model_customization.providers.local.chat import prompt_ids

    return prompt_ids(engine.tokenizer, messages, tools)
