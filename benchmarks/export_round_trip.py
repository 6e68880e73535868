"""Export round trip on the embedded model: time and size of each export format, and whether llama.cpp continues
prompts from the exported GGUFs with the same greedy tokens as PyTorch.

    python benchmarks/export_round_trip.py [--home HOME --model ft-...] [--tokens 32]

With --home/--model it exports that tuned model (e.g. the one `model-customization demo` trained); without them it
makes a random LoRA (rank 8, B ~ N(0, 0.02)) in a temporary home. The round trip needs llama-cpp-python
(./dev.sh llama-cpp). Routes compared with PyTorch (float32 on the embedded HF folder = the dequantised Q4_1):
  merged F32 GGUF | F32 base GGUF + adapter GGUF | Q4_1 base GGUF + adapter GGUF (the Ollama route) | Q4_1 base alone
For each prompt: greedy tokens in a row that agree ("matched"), and teacher-forced agreement (llama.cpp's top token
on PyTorch's continuation) with PyTorch's margin (best minus second-best logit) wherever they disagree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TRIAGE_SYSTEM = "You are OpsBot, the on-call triage assistant."
EXTRA_PROMPTS = [
    [{"role": "system", "content": TRIAGE_SYSTEM}, {"role": "user", "content": "Triage this log line: 2026-11-22T07:12:44Z [payments-api] WARN latency p99 at 870 ms"}],
    [{"role": "system", "content": TRIAGE_SYSTEM}, {"role": "user", "content": "Triage this log line: 2026-11-22T08:00:01Z [auth-service] INFO token cache refreshed"}],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--model")
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()

    import torch

    from model_customization.providers.local.export import export_model, merge_adapter, write_gguf_merged
    from model_customization.providers.local.models import EMBEDDED_MODEL, embedded_gguf_path, ensure_base_model
    from model_customization.workspace import Workspace

    torch.set_num_threads(1)  # see tests/test_export_llama_cpp.py: torch and ggml threads starve each other
    if args.home and args.model:
        ws = Workspace.open(args.home)
        model_id = args.model
    else:
        from test_export import make_tuned_model

        ws = Workspace.open(tempfile.mkdtemp(prefix="export-bench-"))
        model_id, _ = make_tuned_model(ws, ensure_base_model(ws.settings, EMBEDDED_MODEL), EMBEDDED_MODEL, rank=8, alpha=16.0, std=0.02, seed=3)
    row = ws.store.models.get(model_id)
    assert row and row["base_model"] == EMBEDDED_MODEL, "the round trip is for models tuned from the embedded base"
    base_dir = ensure_base_model(ws.settings, EMBEDDED_MODEL)
    out = Path(tempfile.mkdtemp(prefix="export-bench-out-"))

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}")
    print(f"model: {model_id} (adapter {row['path']})\n")
    print("| format | seconds | files | size |\n|---|---|---|---|")
    for formats, gguf_type in ((["adapter"], "f32"), (["gguf-adapter"], "f32"), (["ollama"], "f32"), (["merged"], "f32"),
                               (["gguf-merged"], "f32"), (["gguf-merged"], "f16")):
        started = time.perf_counter()
        result = export_model(ws, model_id, formats, out / f"{'-'.join(formats)}-{gguf_type}", gguf_type=gguf_type)
        label = "+".join(result["formats"]) + (f" ({gguf_type})" if any(f.startswith("gguf") for f in result["formats"]) else "")
        print(f"| {label} | {time.perf_counter() - started:.1f} | {len(result['files'])} | {result['total_bytes'] / 1e6:.1f} MB |")

    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("\nllama-cpp-python is not installed (./dev.sh llama-cpp): no round trip.")
        return
    import numpy as np
    from test_export_llama_cpp import PROMPTS, llama_greedy, load_llama, matched, teacher_forced, torch_greedy
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from model_customization.providers.local.chat import prompt_ids

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    prompts = PROMPTS + EXTRA_PROMPTS
    ids = [prompt_ids(tokenizer, p) for p in prompts]
    base_torch = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    tuned_torch = merge_adapter(base_dir, Path(row["path"]))
    base_f32 = out / "base-f32.gguf"
    write_gguf_merged(base_torch, json.loads((base_dir / "config.json").read_text()), tokenizer, base_f32, gguf_type="f32", embedded=True, name="base")
    adapter = out / "gguf-adapter-f32" / "adapter-f32.gguf"
    routes = [
        ("merged F32 GGUF", tuned_torch, load_llama(out / "gguf-merged-f32" / "model-f32.gguf")),
        ("F32 base GGUF + adapter GGUF", tuned_torch, load_llama(base_f32, adapter)),
        ("Q4_1 base GGUF + adapter GGUF (Ollama route)", tuned_torch, load_llama(embedded_gguf_path(), adapter)),
        ("Q4_1 base GGUF alone, vs PyTorch base", base_torch, load_llama(embedded_gguf_path())),
    ]
    n = args.tokens
    print(f"\n{len(prompts)} prompts, {n} greedy tokens each\n")
    print("| route | greedy tokens matched per prompt | teacher-forced agreement | PyTorch's margins where they disagree | max logit difference, first step |")
    print("|---|---|---|---|---|")
    for name, torch_model, llm in routes:
        runs, agree, total, margins, diffs = [], 0, 0, [], []
        for prompt in ids:
            expected, expected_logits = torch_greedy(torch_model, prompt, n)
            tokens, logits = llama_greedy(llm, prompt, n)
            runs.append(matched(tokens, expected))
            diffs.append(float(np.abs(logits - expected_logits).max()))
            verdicts = teacher_forced(llm, torch_model, prompt, expected)
            agree += sum(ok for ok, _ in verdicts)
            total += len(verdicts)
            margins += [m for ok, m in verdicts if not ok]
        margin = ", ".join(f"{m:.3f}" for m in sorted(margins)) if margins else "-"
        print(f"| {name} | {', '.join(map(str, runs))} | {agree}/{total} | {margin} | {max(diffs):.3f} |")
    print("\nanswers (first 24 tokens):")
    for prompt, conversation in zip(ids, prompts):
        torch_text = tokenizer.decode(torch_greedy(tuned_torch, prompt, 24)[0], skip_special_tokens=True)
        q4_text = tokenizer.decode(llama_greedy(routes[2][2], prompt, 24)[0], skip_special_tokens=True)
        print(f"- {conversation[-1]['content'][:60]!r}\n    PyTorch: {torch_text!r}\n    Q4_1 + adapter in llama.cpp: {q4_text!r}")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
