"""The batching engine behind /v1/chat/completions: requests that arrive together are decoded in one batch, each
answer the same as when it is asked alone, each row stopping on its own (end of turn, max_tokens, stop strings),
and streamed pieces adding up to the answer. (Throughput is measured in benchmarks/v1_chat_concurrency.py.)"""

from __future__ import annotations

from concurrent.futures import wait

import pytest

pytestmark = pytest.mark.slow
TOPICS = ["rivers", "owls", "bread", "chess", "tides", "maps", "salt", "kites"]


def test_requests_sent_together_share_a_batch_and_answer_as_alone(ws, embedded_base):
    from model_customization.providers.local.batching import Generation, engine_for, prompt_token_ids

    engine, name = engine_for(ws, "SmolLM2-135M-Instruct")
    prompts = [prompt_token_ids(engine, [{"role": "user", "content": f"One sentence about {topic}."}]) for topic in TOPICS]
    alone = []
    for prompt in prompts:
        alone.append(engine.submit(Generation(prompt, 12)).result(timeout=300))
    before = engine.batches_run
    pieces: list[str] = []
    together = [Generation(p, 12 if i else 4, on_text=pieces.append if i == 0 else None) for i, p in enumerate(prompts)]
    futures = [engine.submit(g) for g in together]
    wait(futures, timeout=600)
    assert engine.batches_run == before + 1 and engine.largest_batch == len(prompts)  # one batch for all eight
    answers = [f.result() for f in futures]
    # the first row stopped at its own max_tokens while the others went on
    assert answers[0]["completion_tokens"] == 4 and answers[0]["finish_reason"] == "length"
    assert "".join(pieces) == answers[0]["text"]
    for got, expected in zip(answers[1:], alone[1:], strict=True):
        assert got["text"] == expected["text"] and got["prompt_tokens"] == expected["prompt_tokens"]


def test_stop_strings_end_a_row_and_are_never_streamed(ws, embedded_base):
    from model_customization.providers.local.batching import Generation, engine_for, prompt_token_ids

    engine, _ = engine_for(ws, "SmolLM2-135M-Instruct")
    prompt = prompt_token_ids(engine, [{"role": "user", "content": "Write two sentences about the sea."}])
    full = engine.submit(Generation(prompt, 40)).result(timeout=300)["text"]
    assert len(full) > 10, full
    word = full[len(full) // 2 : len(full) // 2 + 3]  # three characters from the middle: the answer ends before them
    pieces: list[str] = []
    stopped = engine.submit(Generation(prompt, 40, stop=(word,), on_text=pieces.append)).result(timeout=300)
    assert stopped["text"] == full[: full.index(word)] and stopped["finish_reason"] == "stop"
    assert "".join(pieces) == stopped["text"] and word not in "".join(pieces)
