"""Round trip through llama.cpp: the exported GGUFs continue prompts exactly as the PyTorch model does.

Exact agreement (all 32 greedy tokens of every prompt) is required where llama.cpp computes in float32: the merged
F32 GGUF, and the GGUF adapter on an F32 GGUF of the base. On the Q4_1 base (the Ollama route) llama.cpp quantises
activations to 8 bits for its dot products, which can flip near-ties even without an adapter, so there the test
asks that llama.cpp pick PyTorch's token wherever PyTorch's choice is clear.

The tuned model is the embedded SmolLM2-135M-Instruct with a LoRA adapter whose B matrices are random and non-zero
(so it changes the answers). The PyTorch reference is that adapter merged into the embedded HF folder, which holds
the dequantised Q4_1 weights, i.e. exactly the weights llama.cpp reads from the Q4_1 GGUF.

Runs when llama-cpp-python is importable (`./dev.sh llama-cpp` builds it, ~5 minutes of compiling on 2 cores) or
when MODEL_CUSTOMIZATION_LLAMA_CPP=1, in which case a missing llama_cpp is a failure rather than a skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from model_customization.providers.local.export import export_model, merge_adapter
from model_customization.providers.local.models import EMBEDDED_MODEL, embedded_gguf_path
from model_customization.workspace import Workspace

try:
    import llama_cpp
except ImportError:  # the optional extra, see ./dev.sh llama-cpp
    llama_cpp = None

REQUIRED = os.environ.get("MODEL_CUSTOMIZATION_LLAMA_CPP") == "1"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(llama_cpp is None and not REQUIRED, reason="llama-cpp-python is not installed (./dev.sh llama-cpp)"),
]

N_TOKENS = 32  # greedy tokens compared per prompt
# llama.cpp multiplies Q4_1 weights with activations quantised to 8 bits, so on the Q4_1 base its logits differ from
# PyTorch's (on the very same dequantised weights) by up to ~1 and a near-tie between the two best tokens can flip.
# Where PyTorch's best token leads by at least this much, llama.cpp must pick it too.
CLEAR_MARGIN = 0.5
PROMPTS = [
    [{"role": "system", "content": "You are OpsBot, the on-call triage assistant."},
     {"role": "user", "content": "Triage this log line: 2026-11-22T04:01:09Z [search-indexer] ERROR shard 3 unreachable after 5 retries"}],
    [{"role": "user", "content": "Write a haiku about autumn leaves."}],
    [{"role": "user", "content": "What is the capital of France?"}, {"role": "assistant", "content": "Paris."},
     {"role": "user", "content": "And of Italy? Answer in one sentence and explain why."}],
    [{"role": "user", "content": "List three prime numbers and say what makes a number prime."}],
]


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory, model_cache, embedded_base):
    if llama_cpp is None:
        pytest.fail("MODEL_CUSTOMIZATION_LLAMA_CPP=1 but llama_cpp is not importable: run ./dev.sh llama-cpp first")
    from test_export import make_tuned_model
    from transformers import AutoTokenizer

    from model_customization.config import Settings
    from model_customization.providers.local.chat import prompt_ids

    home = tmp_path_factory.mktemp("llama-cpp-home")
    ws = Workspace(Settings(home=home, store_url=f"sqlite:///{home / 'ledger.sqlite3'}", model_cache=model_cache))
    model_id, adapter = make_tuned_model(ws, embedded_base, EMBEDDED_MODEL, rank=8, alpha=16.0, std=0.02, seed=3)
    result = export_model(ws, model_id, ["gguf-merged", "ollama"])  # ollama brings the gguf-adapter
    tokenizer = AutoTokenizer.from_pretrained(embedded_base)
    # The base itself as an F32 GGUF (what the gguf-merged writer makes of the unadapted model), so that the adapter
    # GGUF can also be checked on a base llama.cpp computes in full precision.
    import json

    from transformers import AutoModelForCausalLM

    from model_customization.providers.local.export import write_gguf_merged

    base_f32 = home / "base-f32.gguf"
    base_model = AutoModelForCausalLM.from_pretrained(embedded_base)
    write_gguf_merged(base_model, json.loads((embedded_base / "config.json").read_text()), tokenizer, base_f32,
                      gguf_type="f32", embedded=True, name="base")
    yield {
        "root": Path(result["output_dir"]),
        "adapter": adapter,
        "base_f32": base_f32,
        "base_model": base_model,
        "tokenizer": tokenizer,
        "prompts": [prompt_ids(tokenizer, p) for p in PROMPTS],
    }
    ws.store.close()


def torch_greedy(model, ids: list[int], n: int) -> tuple[list[int], object]:
    import torch

    tokens = []
    with torch.inference_mode():
        out = model(torch.tensor([ids]), use_cache=True)
        first = out.logits[0, -1].numpy().copy()
        for _ in range(n):
            token = int(torch.argmax(out.logits[0, -1]))
            tokens.append(token)
            out = model(torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)
    return tokens, first


def llama_greedy(llm, ids: list[int], n: int) -> tuple[list[int], object]:
    import numpy as np

    llm.reset()
    llm.eval(ids)
    first = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    tokens = []
    for _ in range(n):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        tokens.append(token)
        llm.eval([token])
    return tokens, first


def matched(a: list[int], b: list[int]) -> int:
    count = 0
    for x, y in zip(a, b):
        if x != y:
            break
        count += 1
    return count


def load_llama(model_path: Path, lora_path: Path | None = None):
    return llama_cpp.Llama(model_path=str(model_path), lora_path=str(lora_path) if lora_path else None,
                           n_ctx=512, n_threads=1, n_threads_batch=1, logits_all=True, verbose=False)


@pytest.fixture(scope="module", autouse=True)
def one_thread_each():
    """torch's and ggml's OpenMP threads spin-wait and starve each other in one process (32 s instead of 1.4 s for
    32 tokens measured here), so both run single-threaded in this module."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tuned_torch(round_trip, embedded_base):
    return merge_adapter(embedded_base, round_trip["adapter"])


@pytest.fixture(scope="module")
def reference(round_trip, tuned_torch):
    """PyTorch's greedy tokens (and first logits) for each prompt: the answers the exports must reproduce."""
    return [torch_greedy(tuned_torch, ids, N_TOKENS) for ids in round_trip["prompts"]]


def test_llama_cpp_tokenises_the_chat_prompt_as_transformers_does(round_trip):
    llm = llama_cpp.Llama(model_path=str(embedded_gguf_path()), vocab_only=True, verbose=False)
    tokenizer = round_trip["tokenizer"]
    for conversation, ids in zip(PROMPTS, round_trip["prompts"]):
        text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        # Ollama tokenises with the GGUF's add_bos_token (false for SmolLM2) and parses special tokens.
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids


def test_merged_gguf_continues_exactly_like_pytorch(round_trip, reference):
    """gguf-merged (F32): llama.cpp computes in full precision, so greedy tokens agree all the way."""
    import numpy as np

    llm = load_llama(round_trip["root"] / "model-f32.gguf")
    for ids, (expected, expected_logits) in zip(round_trip["prompts"], reference):
        tokens, logits = llama_greedy(llm, ids, N_TOKENS)
        assert tokens == expected, (matched(tokens, expected), tokens, expected)
        assert float(np.abs(logits - expected_logits).max()) < 0.05


def test_gguf_adapter_on_an_f32_base_continues_exactly_like_pytorch(round_trip, reference):
    llm = load_llama(round_trip["base_f32"], round_trip["root"] / "adapter-f32.gguf")
    for ids, (expected, _) in zip(round_trip["prompts"], reference):
        tokens, _ = llama_greedy(llm, ids, N_TOKENS)
        assert tokens == expected, (matched(tokens, expected), tokens, expected)


def teacher_forced(llm, model, ids: list[int], continuation: list[int]) -> list[tuple[bool, float]]:
    """For each token of PyTorch's continuation: does llama.cpp pick it too, and by how much did PyTorch prefer it."""
    import numpy as np
    import torch

    sequence = ids + continuation
    with torch.inference_mode():
        logits = model(torch.tensor([sequence])).logits[0].numpy()
    llm.reset()
    llm.eval(sequence)
    verdicts = []
    for k, token in enumerate(continuation):
        position = len(ids) - 1 + k
        runner_up = np.partition(logits[position], -2)[-2]
        verdicts.append((int(np.argmax(llm.scores[position])) == token, float(logits[position][token] - runner_up)))
    return verdicts


def test_base_q4_gguf_plus_gguf_adapter_agrees_with_pytorch_wherever_the_choice_is_clear(round_trip, reference, tuned_torch):
    """The Ollama route (the Q4_1 base + the adapter): llama.cpp's quantised kernels may flip near-ties, nothing else."""
    model = tuned_torch
    base = load_llama(embedded_gguf_path())
    tuned = load_llama(embedded_gguf_path(), round_trip["root"] / "adapter-f32.gguf")
    changed = 0
    for ids, (expected, _) in zip(round_trip["prompts"], reference):
        verdicts = teacher_forced(tuned, model, ids, expected)
        assert all(agree or margin < CLEAR_MARGIN for agree, margin in verdicts), verdicts
        assert sum(agree for agree, _ in verdicts) >= 0.85 * N_TOKENS, verdicts
        changed += llama_greedy(base, ids, N_TOKENS)[0] != llama_greedy(tuned, ids, N_TOKENS)[0]
    assert changed >= 1, "the adapter made no difference in llama.cpp: it was not applied"


def test_ollama_modelfile_points_llama_cpp_at_the_files_that_reproduce_the_model(round_trip):
    """What Ollama would load: FROM the Q4_1 GGUF plus ADAPTER, and the TEMPLATE's text tokenises to the prompt ids."""
    import re

    from test_export import modelfile_template, render_with_go

    modelfile = (round_trip["root"] / "Modelfile").read_text()
    assert re.search(rf"^FROM {re.escape(str(embedded_gguf_path()))}$", modelfile, re.M)
    assert (round_trip["root"] / re.search(r"^ADAPTER \./(.+)$", modelfile, re.M).group(1)).is_file()
    if shutil.which("go") is None:
        pytest.skip("Go is not installed: the TEMPLATE half of this check needs it")
    rendered = render_with_go(modelfile_template(modelfile), PROMPTS)
    llm = llama_cpp.Llama(model_path=str(embedded_gguf_path()), vocab_only=True, verbose=False)
    assert [llm.tokenize(text.encode(), add_bos=False, special=True) for text in rendered] == round_trip["prompts"]
