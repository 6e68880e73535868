"""LoRA and QLoRA through our local trainer on a GPU: real tokens/s, MFU, peak GPU memory, falling loss, exact resume,
and the plain HF Trainer + PEFT baseline on the same GPU. One call, one time budget.

Usage: python benchmarks/gpu_lora.py OUT_DIR [--budget-s 480] [--models embedded,llama-1b] [--work DIR] ...

What it runs, in priority order (a run that would not fit the remaining --budget-s is reported as skipped):
for each model, our trainer in bf16 LoRA and 4-bit NF4 QLoRA (bitsandbytes), each without and with gradient
checkpointing; the baseline (`benchmarks/baseline_hf_trainer.py`, bf16, every example padded to the length cap);
and one resume check: the same job stopped by a simulated crash right after its checkpoint at step k, resumed by
the job queue from that checkpoint, against the run that never stopped (train losses of the steps after k and the
final adapter weights).

Models: "embedded" is SmolLM2-135M-Instruct (the dequantised GGUF, converted once into the model cache; if the GGUF
is not installed on the machine, the same architecture with random weights from --embedded-config, which the
result says); "llama-1b" is a randomly initialised Llama-architecture model of about 1.07B parameters (TinyLlama's
shape: 22 layers, width 2048, MLP 5632, 32 heads, 4 KV heads, tied embeddings, the SmolLM2 tokenizer's 49,152
tokens), made from a config, nothing downloaded. "tiny" is a 2-layer Llama of width 64 for CPU checks.

Every run of ours is the real thing: `start_job` queues it, the detached worker trains it (our trainer,
providers/local/train.py). The worker is started through this file (`--worker-shim`, set as the worker launcher),
which runs the worker module unchanged in the same process and, at exit, writes torch.cuda.max_memory_allocated();
for the resume check it also ends the process (os._exit, as a kill would) right after the checkpoint of step k.

Speed: the trainer times each optimizer step itself and records real (non-padding) tokens per second in the
ledger; the tokens of each step are recomputed here from the same deterministic batch order (epoch_batches with
the job's seed), so a step's time is its tokens over its recorded speed. The first steps (--warmup-steps) are left
out. MFU = 4 N x real tokens/s / peak, N = the base model's parameter count (the tied embedding once, as the output
layer): forward 2N and activation gradients 2N per token; frozen weights get no weight gradients; attention scores
and the LoRA matrices are not counted. Two peaks: the bf16 matrix-multiply rate measured on this GPU by
gemm_peak.py (8192^3, best of the timed calls) and the card's nominal dense bf16 rate (H100 SXM / H200: 989.4
TFLOP/s). On CPU (the reduced form, for tests): float32, the measured float32 peak, peak RSS instead of GPU memory,
and the bf16/QLoRA rows say "skipped: needs CUDA".

Writes OUT_DIR/gpu_lora.json (every number) and OUT_DIR/gpu_lora.md (the table), and prints the table last.
`--write-carry DIR` instead prepares what a GPU machine without network needs (see BENCHMARKS.md, "The GPU path").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

STOP_ENV = "GPU_LORA_STOP_AFTER_STEP"  # the shim ends the worker right after saving this step's checkpoint
PEAK_DIR_ENV = "GPU_LORA_PEAK_DIR"
STOPPED_EXIT = 75

MFU_FORMULA = (
    "MFU = 4 * N * real_tokens_per_s / peak_flops; N = base model parameters (tied embedding counted once, as the "
    "output layer); 4N per real (non-padding) token = forward 2N + activation gradients 2N; frozen base weights get "
    "no weight gradients; attention scores and LoRA matrices not counted; QLoRA counted alike (dequantising its "
    "4-bit weights is not counted)"
)
# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, TFLOP/s.
NOMINAL_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "H200": 989.4, "A100": 312.0}

LLAMA_1B = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4)
LLAMA_TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)


# ---------------------------------------------------------------------------------------------------------------
# The worker launcher: runs `-m model_customization.providers.local.worker HOME JOB ...` in this process.


def worker_shim(argv: list[str]) -> None:
    import atexit
    import runpy

    if len(argv) < 4 or argv[0] != "-m":
        raise SystemExit(f"--worker-shim expects: -m MODULE HOME JOB_ID ..., got {argv}")
    module, home, job_id = argv[1], argv[2], argv[3]
    stop_after = int(os.environ.get(STOP_ENV) or 0)
    if stop_after:
        from model_customization.providers.local import train

        save = train._save_checkpoint

        def save_then_die(*args: Any, **kwargs: Any) -> Path:
            path = save(*args, **kwargs)
            if int(path.name.removeprefix("step-")) == stop_after:
                os._exit(STOPPED_EXIT)  # like a kill: nothing of the worker's own clean-up runs
            return path

        train._save_checkpoint = save_then_die

    def write_peak() -> None:
        folder = Path(os.environ.get(PEAK_DIR_ENV) or Path(home) / "gpu-lora-peaks")
        folder.mkdir(parents=True, exist_ok=True)
        torch = sys.modules.get("torch")
        cuda = torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()
        peak = {
            "peak_gpu_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
            "peak_gpu_reserved_mb": round(torch.cuda.max_memory_reserved() / 2**20, 1) if cuda else None,
        }
        (folder / f"{job_id}-{os.getpid()}.json").write_text(json.dumps(peak))

    atexit.register(write_peak)
    sys.argv = [module, *argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


# ---------------------------------------------------------------------------------------------------------------
# Models and data


def _param_count(model_dir: Path) -> int:
    from train_speed import _count_parameters

    return _count_parameters(model_dir)


def embedded_model(ws, fallback_config: Path | None, device: str, log) -> tuple[Path, str]:
    """The embedded model's folder and where its weights came from."""
    from model_customization.errors import UserError
    from model_customization.providers.local.models import EMBEDDED_MODEL, ensure_base_model

    try:
        return ensure_base_model(ws.settings, EMBEDDED_MODEL), "SmolLM2-135M-Instruct, the dequantised Q4_1 GGUF"
    except UserError as error:
        if fallback_config is None or not (fallback_config / "config.json").is_file():
            raise
        log(f"embedded GGUF not available ({error}); using its architecture with random weights from {fallback_config}")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    target = ws.settings.home / "embedded-random"
    if not (target / "config.json").is_file():
        torch.manual_seed(0)
        config = AutoConfig.from_pretrained(fallback_config)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
        model.save_pretrained(target)
        AutoTokenizer.from_pretrained(fallback_config).save_pretrained(target)
    return target, "SmolLM2-135M-Instruct architecture, RANDOM weights (the GGUF was not on this machine)"


def random_llama(folder: Path, tokenizer_dir: Path, shape: dict, device: str) -> Path:
    """A randomly initialised Llama-architecture model with the embedded model's tokenizer, saved as a model folder."""
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), max_position_embeddings=4096, tie_word_embeddings=True, rms_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **shape,
    )
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):  # initialising 1B parameters on the GPU takes a moment, on CPU much longer
        model = LlamaForCausalLM(config).to(dtype)
    staging = folder.with_name(folder.name + ".partial")
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)  # with its chat template, so the trainer can render chats for it
    os.replace(staging, folder)
    return folder


def memory_sources(names: list[str], folder: Path) -> list[Path]:
    """Agent memory to train on: the shipped demo memory, and the efficacy benchmark's generated tasks."""
    import efficacy_tasks

    paths: list[Path] = []
    for name in names:
        if name == "demo":
            from model_customization.demo_data import demo_memory_paths

            paths.extend(demo_memory_paths())
        elif name == "tool_calls":
            paths.append(folder / "tool_calls")
            efficacy_tasks.write_tool_call_sessions(folder / "tool_calls")
        elif name == "json_intake":
            paths.append(efficacy_tasks.write_json_intake_sessions(folder / "json_intake"))
        else:
            paths.append(Path(name))
    return paths


def prepare_dataset(ws, tokenizer, sources: list[Path], count: int | None, max_length: int, work: Path) -> dict:
    """A dataset of up to `count` examples at evenly spaced length quantiles (all in train), and the baseline's JSONL."""
    from model_customization.datasets.build import build_dataset, read_split
    from model_customization.datasets.examples import to_plain_chat
    from model_customization.providers.local.chat import tokenize_chat

    full = build_dataset(ws, sources, name="gpu-lora-all", validation_fraction=0.0, test_fraction=0.0)
    rows = []
    for example in read_split(ws, full.dataset_id, "train"):
        tokens = tokenize_chat(tokenizer, to_plain_chat(example["messages"]), max_length)
        if any(label != -100 for label in tokens.labels[1:]):  # our trainer skips the others: the baseline must too
            rows.append((len(tokens.input_ids), example))
    count = min(count or len(rows), len(rows))
    rows.sort(key=lambda r: r[0])
    picked = [rows[int((i + 0.5) * len(rows) / count)][1] for i in range(count)]
    source = work / "picked.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in picked), encoding="utf-8")
    bench = build_dataset(ws, [source], name="gpu-lora", validation_fraction=0.0, test_fraction=0.0, redact=False, near_duplicate_threshold=None)
    plain = [to_plain_chat(e["messages"]) for e in read_split(ws, bench.dataset_id, "train")]
    baseline_data = work / "baseline.jsonl"
    baseline_data.write_text("".join(json.dumps({"messages": m}) + "\n" for m in plain), encoding="utf-8")
    lengths = [len(tokenize_chat(tokenizer, m, max_length).input_ids) for m in plain]
    return {
        "dataset_id": bench.dataset_id,
        "examples": len(plain),
        "usable_examples": len(rows),
        "real_tokens": sum(lengths),
        "mean_tokens": round(sum(lengths) / len(lengths), 1),
        "max_tokens": max(lengths),
        "padding_share_at_max_length": round(1 - sum(lengths) / (len(lengths) * max_length), 3),
        "baseline_data": str(baseline_data),
    }


def step_tokens(ws, dataset_id: str, tokenizer, hp: dict) -> list[int]:
    """Real tokens of each optimizer step, in the order the trainer takes them (its batch order is deterministic)."""
    from model_customization.datasets.build import read_split
    from model_customization.providers.local import objectives
    from model_customization.providers.local.hyperparameters import parse_hyperparameters
    from model_customization.providers.local.train import epoch_batches

    parsed = parse_hyperparameters(hp)
    objective = objectives.for_method("sft", tokenizer, parsed, "cpu")
    items, _, _ = objective.prepare(read_split(ws, dataset_id, "train"))
    per_step = []
    for epoch in range(parsed.epochs):
        batches = epoch_batches(items, parsed.batch_size, parsed.seed, epoch, objective.length)
        for start in range(0, len(batches), parsed.gradient_accumulation_steps):
            per_step.append(sum(len(e.input_ids) for b in batches[start : start + parsed.gradient_accumulation_steps] for e in b))
    return per_step


# ---------------------------------------------------------------------------------------------------------------
# Runs


def _wait_job(ws, job_id: str, timeout: float) -> tuple[int, float]:
    """Wait for the job's current worker (our child); (exit status, its peak RSS in MB)."""
    from train_speed import _wait_child

    pid = ws.store.jobs.get(job_id)["worker_pid"]
    if not pid:
        raise RuntimeError(f"job {job_id} has no worker: {ws.store.jobs.get(job_id)}")
    status, peak_mb, _ = _wait_child(pid, timeout)
    return status, peak_mb


def _peak_gpu(home: Path, job_id: str) -> dict:
    found = sorted((home / "gpu-lora-peaks").glob(f"{job_id}-*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(found[-1].read_text()) if found else {}


def run_ours(ws, model_dir: Path, dataset: dict, hp: dict, per_step_tokens: list[int], warmup: int, timeout: float, stop_after: int = 0) -> dict:
    """One job through start_job and the detached worker; with stop_after, killed after that checkpoint and resumed."""
    from model_customization.jobs.orchestrator import check_job, start_job

    started = time.time()
    if stop_after:
        os.environ[STOP_ENV] = str(stop_after)
    try:
        job_id = start_job(ws, dataset["dataset_id"], base_model=str(model_dir), hyperparameters=hp)["job_id"]
    finally:
        os.environ.pop(STOP_ENV, None)
    status, peak_rss = _wait_job(ws, job_id, timeout)
    stopped_at = None
    if stop_after:
        if status >> 8 != STOPPED_EXIT:
            raise RuntimeError(f"the worker of {job_id} was to stop after step {stop_after} but ended with status {status}")
        stopped_at = max(m["step"] for m in ws.store.jobs.metrics(job_id))
        check_job(ws, job_id)  # the queue notices the dead worker and resumes the job from its checkpoint
        status, peak_rss2 = _wait_job(ws, job_id, timeout - (time.time() - started))
        peak_rss = max(peak_rss, peak_rss2)
    job = ws.store.jobs.get(job_id)
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job_id} ended {job['status']}: {job['error']} (exit status {status})")
    metrics = [m for m in ws.store.jobs.metrics(job_id) if m.get("tokens_per_second")]
    if len(metrics) != len(per_step_tokens):
        raise RuntimeError(f"job {job_id} recorded {len(metrics)} steps, the batch order gives {len(per_step_tokens)}")
    step_seconds = [tokens / m["tokens_per_second"] for tokens, m in zip(per_step_tokens, metrics, strict=True)]
    measured = slice(min(warmup, len(metrics) - 1), None)
    tokens, seconds = sum(per_step_tokens[measured]), sum(step_seconds[measured])
    wall_span = metrics[-1]["at"] - metrics[measured.start - 1]["at"] if measured.start else None
    losses = [m["train_loss"] for m in metrics]
    events = [e["message"] for e in reversed(ws.store.jobs.events(job_id, 60))]
    return {
        "job_id": job_id,
        "status": "ok",
        "steps": len(metrics),
        "measured_steps": len(metrics) - measured.start,
        "real_tokens_measured": tokens,
        "real_tokens_per_s": tokens / seconds,
        # Wall clock between the metric rows: also counts ledger writes and checkpoint saving between steps.
        "real_tokens_per_s_wall": tokens / wall_span if wall_span else None,
        "step_seconds": [round(s, 4) for s in step_seconds],
        "train_losses": losses,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "loss_fell": sum(losses[-2:]) / len(losses[-2:]) < sum(losses[:2]) / len(losses[:2]),
        "peak_rss_mb": round(peak_rss, 1),
        **_peak_gpu(ws.settings.home, job_id),
        "stopped_after_step": stopped_at,
        "adapter": str(Path(ws.store.models.get(job["model_id"])["path"]) / "adapter_model.safetensors"),
        "run_wall_s": round(time.time() - started, 1),
        "events": [e for e in events if "worker started" in e or "resumed" in e or "trainable" in e or "peak" in e],
    }


def run_baseline(model_dir: Path, dataset: dict, hp: dict, work: Path, warmup: int, timeout: float, gradient_checkpointing: bool) -> dict:
    from train_speed import _wait_child

    out = work / f"baseline-{time.time_ns()}.json"
    started = time.time()
    command = [
        sys.executable, str(HERE / "baseline_hf_trainer.py"), str(model_dir), dataset["baseline_data"], str(out),
        "--max-length", str(hp["max_seq_length"]), "--batch-size", str(hp["batch_size"]), "--learning-rate", str(hp["learning_rate"]),
        "--seed", str(hp["seed"]), "--epochs", str(hp["epochs"]),
    ] + (["--gradient-checkpointing"] if gradient_checkpointing else [])
    with (work / "baseline.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        status, peak_rss, _ = _wait_child(process.pid, timeout)
        process.returncode = status
    if status != 0 or not out.is_file():
        raise RuntimeError(f"the baseline failed (exit status {status}); see {work / 'baseline.log'}")
    result = json.loads(out.read_text())
    times, real = result["step_seconds"], result["step_real_tokens"]
    start = min(warmup, len(times) - 1)
    return {
        "status": "ok",
        "steps": result["steps"],
        "measured_steps": len(times) - start,
        "real_tokens_per_s": sum(real[start:]) / sum(times[start:]),
        "padded_tokens_per_s": sum(result["step_padded_tokens"][start:]) / sum(times[start:]),
        "step_seconds": times,
        "final_train_loss": result["train_loss"],
        "peak_rss_mb": round(peak_rss, 1),
        "peak_gpu_allocated_mb": result["peak_gpu_mb"],
        "run_wall_s": round(time.time() - started, 1),
    }


def compare_resume(uninterrupted: dict, resumed: dict) -> dict:
    """Do the steps after the crash repeat the uninterrupted run's, and is the final adapter the same?"""
    import torch
    from safetensors.torch import load_file

    k = resumed["stopped_after_step"]
    a, b = uninterrupted["train_losses"], resumed["train_losses"]
    loss_diff = max(abs(x - y) for x, y in zip(a, b, strict=False))
    wa, wb = load_file(uninterrupted["adapter"]), load_file(resumed["adapter"])
    same_keys = set(wa) == set(wb)
    weight_diff = max(float((wa[n].float() - wb[n].float()).abs().max()) for n in wa) if same_keys else None
    weight_scale = max(float(wa[n].float().abs().max()) for n in wa)
    relative_weight_diff = weight_diff / weight_scale if weight_diff is not None else None
    relative_loss_diff = max(abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a, b, strict=False))
    # float32 on CPU repeats the run bit for bit in practice; on a GPU some bf16 kernels (attention's backward)
    # add up in an order that varies from run to run, so the resumed run may differ in the last bits.
    tolerance = 1e-5 if not torch.cuda.is_available() else 5e-3
    return {
        "stopped_after_step": k,
        "steps": len(b),
        "max_abs_train_loss_diff": loss_diff,
        "max_relative_train_loss_diff": relative_loss_diff,
        "max_abs_adapter_weight_diff": weight_diff,
        "relative_adapter_weight_diff": relative_weight_diff,
        "tolerance": tolerance,
        "matches": bool(same_keys and len(a) == len(b) and relative_loss_diff <= tolerance and relative_weight_diff is not None and relative_weight_diff <= 4 * tolerance),
    }


def count_tokens_with_tiktoken(data_dir: Path) -> None:
    """Where bpe-openai is not installed (the GPU machine: its compiled part is too big to carry), count the dataset
    card's OpenAI tokens with tiktoken and bpe-openai's own BPE files: the same encodings, so the same counts."""
    import base64
    import gzip
    from functools import lru_cache

    import tiktoken
    from tiktoken_ext import openai_public

    from model_customization.datasets import tokens

    def local_ranks(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        stem = url.rsplit("/", 1)[-1].removesuffix(".tiktoken")
        with gzip.open(data_dir / f"{stem}.tiktoken.gz", "rt", encoding="utf-8") as handle:
            return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in handle if line.strip())}

    openai_public.load_tiktoken_bpe = local_ranks
    tokens._encoding = lru_cache(maxsize=4)(lambda name: tiktoken.Encoding(**getattr(openai_public, name)()))


# ---------------------------------------------------------------------------------------------------------------
# Report


def _nominal_peak(name: str) -> float | None:
    for key in NOMINAL_BF16_TFLOPS:  # most specific first
        if key in name:
            return NOMINAL_BF16_TFLOPS[key]
    return None


def markdown(results: dict) -> str:
    measured, nominal = results["peaks"]["measured_tflops"], results["peaks"]["nominal_bf16_tflops"]
    memory_label = "peak GPU memory (allocated)" if results["device"] == "cuda" else "peak RSS"
    lines = [
        f"Device: {results['machine']}; torch {results['versions']['torch']}, transformers {results['versions']['transformers']}, "
        f"peft {results['versions']['peft']}, bitsandbytes {results['versions']['bitsandbytes']}.",
        f"Data: {results['dataset']['examples']} examples, mean {results['dataset']['mean_tokens']} real tokens (cap {results['hyperparameters']['max_seq_length']}), "
        f"batch {results['hyperparameters']['batch_size']}, {results['hyperparameters']['epochs']} epochs, LoRA r{results['hyperparameters']['lora_rank']} on q/k/v/o/gate/up/down.",
        f"MFU: {results['mfu_formula']}. Peaks: measured {results['peaks']['dtype']} matmul {measured:.1f} TFLOP/s"
        + (f", nominal dense bf16 {nominal:.1f} TFLOP/s." if nominal else "."),
        "",
        f"| model (N) | trainer | precision | grad. ckpt | real tokens/s | MFU (measured peak) | MFU (nominal peak) | {memory_label} | loss first → last | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        n = results["models"].get(run["model"], {}).get("parameters")
        label = f"{run['model']} ({n / 1e6:.0f}M)" if n else run["model"]
        if run["status"] != "ok":
            lines.append(f"| {label} | {run['trainer']} | {run['precision']} | {'on' if run['gradient_checkpointing'] else 'off'} | | | | | | {run['status']} |")
            continue
        memory = run.get("peak_gpu_allocated_mb") if results["device"] == "cuda" else run.get("peak_rss_mb")
        loss = f"{run['first_loss']:.3f} → {run['last_loss']:.3f}" if "first_loss" in run else f"final {run['final_train_loss']:.3f}"
        mfu_nominal = f"{run['mfu_nominal_peak']:.1%}" if run.get("mfu_nominal_peak") is not None else "-"
        lines.append(
            f"| {label} | {run['trainer']} | {run['precision']} | {'on' if run['gradient_checkpointing'] else 'off'} | {run['real_tokens_per_s']:,.0f} | "
            f"{run['mfu_measured_peak']:.1%} | {mfu_nominal} | {memory:,.0f} MB | {loss} | ok |"
        )
    for ratio in results["ratios"]:
        lines.append(
            f"| {ratio['model']} | **ours / baseline** | {ratio['precision']} | off | **{ratio['tokens_per_s']:.2f}x** | | | **{ratio['memory']:.2f}x** | | |"
        )
    resume = results.get("resume")
    if resume:
        if resume.get("status", "ok") != "ok":
            lines.append(f"\nResume check ({resume['model']}): {resume['status']}")
        else:
            lines.append(
                f"\nResume check ({resume['model']}, {resume['precision']}): killed after the checkpoint of step {resume['stopped_after_step']}, "
                f"resumed by the queue; {resume['steps']} steps; largest train-loss difference {resume['max_abs_train_loss_diff']:.2e} "
                f"({resume['max_relative_train_loss_diff']:.1e} relative), "
                f"adapter weights {resume['relative_adapter_weight_diff']:.2e} (relative): {'MATCHES' if resume['matches'] else 'DIFFERS'} "
                f"(tolerance {resume['tolerance']:g} on losses, {4 * resume['tolerance']:g} on weights)."
            )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# What a GPU machine without network needs (see BENCHMARKS.md, "The GPU path" for the device commands).

# Imported by the trainer's path (job queue, ledger, dataset build) or by QLoRA, and missing from the GPU image;
# pinned to the versions installed here, where the code is tested.
CARRY_PACKAGES = (
    "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "platformdirs", "sqlalchemy", "greenlet",
    "alembic", "mako", "gguf", "detect-secrets", "datasketch", "bpe-openai", "bitsandbytes",
)
GGUF_PART_BYTES = 40 * 2**20  # 40 + 40 + 14 MiB: each part travels in a call of its own, the last beside the rest
PLATFORMS = ("manylinux_2_39_x86_64", "manylinux_2_35_x86_64", "manylinux_2_34_x86_64", "manylinux_2_31_x86_64", "manylinux_2_28_x86_64",
             "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")


def write_carry(folder: Path, packages: list[str]) -> None:
    from importlib.metadata import PackageNotFoundError, version

    from model_customization.config import Settings  # noqa: F401 - fails early outside the project's environment
    from model_customization.providers.local.models import EMBEDDED_MODEL, embedded_gguf_path, ensure_base_model
    from model_customization.workspace import Workspace

    folder = folder.resolve()
    site = folder / "site"
    shutil.rmtree(site, ignore_errors=True)
    pinned = []
    for name in packages:
        try:
            pinned.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pinned.append(name)  # not installed here (bitsandbytes): the newest
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:", "--target", str(site),
               "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312", "--abi", "abi3", "--abi", "none"]
    for tag in PLATFORMS:
        command += ["--platform", tag]
    subprocess.run(command + ["--platform", "any", *pinned], check=True)
    # What a call cannot carry (64 MiB in all) and the code does without: bitsandbytes' libraries for other CUDA and
    # ROCm releases than the GPU image's 13.0 (about 120 MB); SQLAlchemy's optional compiled speed-ups (the same
    # modules ship as Python); bpe-openai's 71 MB compiled tokenizer (its BPE files go to bpe-data, and tiktoken,
    # which the image has, counts with them: see count_tokens_with_tiktoken).
    for library in (site / "bitsandbytes").glob("libbitsandbytes_*.so"):
        if "cuda130" not in library.name and "cpu" not in library.name:
            library.unlink()
    for compiled in (site / "sqlalchemy").rglob("*_cy.cpython-*.so"):
        if compiled.with_name(compiled.name.split(".")[0] + ".py").is_file():
            compiled.unlink()
    bpe_data = folder / "bpe-data"
    shutil.rmtree(bpe_data, ignore_errors=True)
    bpe_data.mkdir()
    for stem in ("o200k_base", "cl100k_base"):
        shutil.copy2(site / "bpe_openai" / "data" / f"{stem}.tiktoken.gz", bpe_data)
    shutil.rmtree(site / "bpe_openai")
    for info in site.glob("bpe_openai-*.dist-info"):
        shutil.rmtree(info)
    for cache in site.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)

    # The embedded model's config and tokenizer (a few MB): with them the script can still train its architecture
    # (random weights) when the GGUF did not travel.
    ws = Workspace.open(Path(tempfile.mkdtemp(prefix="gpu-carry-home-")))
    converted = ensure_base_model(ws.settings, EMBEDDED_MODEL)
    config_dir = folder / "smollm2-config"
    shutil.rmtree(config_dir, ignore_errors=True)
    config_dir.mkdir(parents=True)
    for item in converted.iterdir():
        if item.suffix in (".json", ".jinja") or item.name.startswith("tokenizer"):
            shutil.copy2(item, config_dir / item.name)

    # The GGUF (98 MB) in parts small enough to travel one per call beside the rest.
    import hashlib

    gguf = embedded_gguf_path()
    data = gguf.read_bytes()
    for old in folder.glob("gguf-part-*"):
        old.unlink()
    for index, start in enumerate(range(0, len(data), GGUF_PART_BYTES), 1):
        (folder / f"gguf-part-{index}").write_bytes(data[start : start + GGUF_PART_BYTES])
    (folder / "gguf.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {gguf.name}\n")
    sizes = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    site_mb = sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 2**20
    print(json.dumps({"folder": str(folder), "site_mb": round(site_mb, 1), "files": sizes, "packages": pinned}, indent=2))


# ---------------------------------------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker-shim":
        worker_shim(sys.argv[2:])
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--write-carry":
        write_carry(Path(sys.argv[2]), [*CARRY_PACKAGES, *sys.argv[3:]])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="folder for gpu_lora.json and gpu_lora.md")
    parser.add_argument("--budget-s", type=float, default=480, help="stop starting runs that would end after this many seconds")
    parser.add_argument("--models", help="comma-separated from embedded, llama-1b, tiny (default: llama-1b,embedded on CUDA, tiny on CPU)")
    parser.add_argument("--data", help="comma-separated memory sources: demo, tool_calls, json_intake or paths (default: demo,tool_calls,json_intake on CUDA, demo on CPU)")
    parser.add_argument("--examples", type=int, help="training examples (default: 512 on CUDA, 12 on CPU)")
    parser.add_argument("--batch-size", type=int, help="default 32 on CUDA, 2 on CPU")
    parser.add_argument("--max-length", type=int, help="default 1024 on CUDA, 128 on CPU")
    parser.add_argument("--epochs", type=int, help="default 1 on CUDA, 2 on CPU")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, help="first steps left out of the speed (default 2 on CUDA, 1 on CPU)")
    parser.add_argument("--skip", default="", help="comma-separated run labels to leave out, e.g. baseline,4bit,gc,resume")
    parser.add_argument("--work", help="folder for the data home and model folders (default: a temporary one)")
    parser.add_argument("--embedded-config", help="config and tokenizer of the embedded model, used with random weights when its GGUF is not installed")
    parser.add_argument("--bpe-data", help="bpe-openai's BPE files, for counting tokens with tiktoken where bpe-openai is not installed")
    parser.add_argument("--run-timeout", type=float, default=300, help="seconds allowed per training run")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    began = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu-lora-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log_file = (out / "gpu_lora.log").open("a", encoding="utf-8")

    def log(message: str) -> None:
        line = f"[{time.time() - began:6.1f} s] {message}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    models = [m for m in (args.models or ("llama-1b,embedded" if cuda else "tiny")).split(",") if m]
    data = [d for d in (args.data or ("demo,tool_calls,json_intake" if cuda else "demo")).split(",") if d]
    batch_size = args.batch_size or (32 if cuda else 2)
    max_length = args.max_length or (1024 if cuda else 128)
    examples = args.examples or (512 if cuda else 12)
    epochs = args.epochs or (1 if cuda else 2)
    warmup = args.warmup_steps if args.warmup_steps is not None else (2 if cuda else 1)
    skip = {s for s in args.skip.split(",") if s}

    # The worker runs through this file (the shim) so its peak GPU memory is recorded, and reads only allowed roots.
    os.environ["MODEL_CUSTOMIZATION_WORKER_LAUNCHER"] = f"{sys.executable} {Path(__file__).resolve()} --worker-shim"
    os.environ["MODEL_CUSTOMIZATION_ALLOWED_ROOTS"] = os.pathsep.join(filter(None, [str(work), os.environ.get("MODEL_CUSTOMIZATION_ALLOWED_ROOTS")]))
    os.environ.setdefault("MODEL_CUSTOMIZATION_MODEL_CACHE", str(work / "model-cache"))
    from transformers import AutoTokenizer

    from model_customization.workspace import Workspace

    try:
        import bpe_openai  # noqa: F401
    except ImportError:
        if not args.bpe_data:
            raise SystemExit("bpe-openai is not installed: give --bpe-data (its BPE files; tiktoken counts with them)") from None
        count_tokens_with_tiktoken(Path(args.bpe_data))

    ws = Workspace.open(work / "home")
    log(f"device {device}{' ' + torch.cuda.get_device_name() if cuda else ''}; work folder {work}")

    model_dirs: dict[str, Path] = {}
    model_info: dict[str, dict] = {}
    fallback = Path(args.embedded_config) if args.embedded_config else None
    embedded_dir, embedded_weights = embedded_model(ws, fallback, device, log)
    if "embedded" in models:
        model_dirs["embedded"] = embedded_dir
        model_info["embedded"] = {"weights": embedded_weights}
    for name, shape in (("llama-1b", LLAMA_1B), ("tiny", LLAMA_TINY)):
        if name in models:
            model_dirs[name] = random_llama(work / name, embedded_dir, shape, device)
            model_info[name] = {"weights": f"random Llama architecture {shape}, tied embeddings, the SmolLM2 tokenizer"}
    for name, folder in model_dirs.items():
        model_info[name]["parameters"] = _param_count(folder)
        model_info[name]["path"] = str(folder)
    log(f"models ready: {json.dumps({k: v['parameters'] for k, v in model_info.items()})}")

    tokenizer = AutoTokenizer.from_pretrained(embedded_dir)
    dataset = prepare_dataset(ws, tokenizer, memory_sources(data, work / "memory"), examples, max_length, work)
    log(f"dataset: {json.dumps({k: v for k, v in dataset.items() if k != 'baseline_data'})}")
    steps_per_epoch = -(-dataset["examples"] // batch_size)
    total_steps = steps_per_epoch * epochs
    checkpoint_every = max(total_steps // 2, 1)
    hp = {
        "epochs": epochs, "batch_size": batch_size, "learning_rate": args.learning_rate, "lora_rank": 16, "lora_alpha": 32, "lora_dropout": 0.0,
        "max_seq_length": max_length, "warmup_fraction": 0.1, "seed": 0, "checkpoint_interval_steps": checkpoint_every,
    }
    per_step = step_tokens(ws, dataset["dataset_id"], tokenizer, hp)

    from gemm_peak import measure

    if cuda:  # in a process of its own, so none of its GPU memory stays allocated in this one during the runs
        gemm = subprocess.run([sys.executable, str(HERE / "gemm_peak.py"), "--device", "cuda", "--seconds", "3"], capture_output=True, text=True, check=True)
        peak = json.loads(gemm.stdout.strip().splitlines()[-1])
    else:
        peak = measure("cpu", seconds=1.0)
    measured_tflops = peak["peak_gflops"] / 1000
    nominal = _nominal_peak(torch.cuda.get_device_name()) if cuda else None
    log(f"matmul peak: {json.dumps(peak)}")

    # Priority order: the headline rows first, so a tight budget still yields them.
    precision_ours = "bf16" if cuda else "float32"
    plan: list[tuple[str, str, str, bool]] = []  # (model, trainer, precision, gradient checkpointing)
    for model in models:
        plan += [(model, "ours", precision_ours, False), (model, "hf-trainer", precision_ours, False), (model, "resume", precision_ours, False)]
    for model in models:
        plan += [(model, "ours", "4bit", False), (model, "ours", precision_ours, True), (model, "ours", "4bit", True)]

    runs: list[dict] = []
    resume: dict | None = None
    last_duration: dict[str, float] = {}
    for model, trainer, precision, checkpointing in plan:
        row = {"model": model, "trainer": trainer, "precision": precision, "gradient_checkpointing": checkpointing}
        label = {"hf-trainer": "baseline", "resume": "resume"}.get(trainer, "ours")
        reasons = []
        if precision == "4bit" and not cuda:
            reasons.append("skipped: needs CUDA")
        if label in skip or (precision == "4bit" and "4bit" in skip) or (checkpointing and "gc" in skip):
            reasons.append("skipped: --skip")
        estimate = last_duration.get(model, 60.0 if cuda else 20.0) * (2.2 if trainer == "resume" else 1.2)
        if not reasons and time.time() - began + estimate > args.budget_s:
            reasons.append(f"skipped: time budget (about {estimate:.0f} s needed, {args.budget_s - (time.time() - began):.0f} s left)")
        if reasons:
            row["status"] = reasons[0]
            if trainer == "resume":
                resume = {**row, "status": reasons[0]}
            else:
                runs.append(row)
            log(f"{model} {trainer} {precision} gc={checkpointing}: {reasons[0]}")
            continue
        job_hp = {**hp, "gradient_checkpointing": checkpointing, "quantization": "4bit" if precision == "4bit" else "none"}
        started = time.time()
        try:
            if trainer == "hf-trainer":
                result = run_baseline(model_dirs[model], dataset, job_hp, work, warmup, args.run_timeout, checkpointing)
            else:
                result = run_ours(ws, model_dirs[model], dataset, {**job_hp}, per_step, warmup, args.run_timeout, stop_after=checkpoint_every if trainer == "resume" else 0)
        except Exception as error:  # noqa: BLE001 - one failed run is reported and the others still run
            result = {"status": f"failed: {type(error).__name__}: {error}"}
        last_duration[model] = (time.time() - started) / (2 if trainer == "resume" else 1)
        if trainer == "resume":
            reference = next((r for r in runs if r["model"] == model and r["trainer"] == "ours" and r["precision"] == precision and not r["gradient_checkpointing"] and r["status"] == "ok"), None)
            if result["status"] == "ok" and reference is not None:
                resume = {"model": model, "precision": precision, "status": "ok", **compare_resume(reference, result), "resumed_run": {k: v for k, v in result.items() if k != "step_seconds"}}
            else:
                resume = {"model": model, "precision": precision, "status": result["status"] if result["status"] != "ok" else "failed: no uninterrupted run to compare with"}
            log(f"{model} resume: {json.dumps({k: v for k, v in resume.items() if k != 'resumed_run'})}")
            continue
        row.update(result)
        if row["status"] == "ok":
            flops = 4 * model_info[model]["parameters"] * row["real_tokens_per_s"]
            row["model_tflops_per_s"] = flops / 1e12
            row["mfu_measured_peak"] = flops / (measured_tflops * 1e12)
            row["mfu_nominal_peak"] = flops / (nominal * 1e12) if nominal else None
        runs.append(row)
        log(f"{model} {trainer} {precision} gc={checkpointing}: {json.dumps({k: v for k, v in row.items() if k not in ('step_seconds', 'train_losses', 'events')})}")

    ratios = []
    memory_key = "peak_gpu_allocated_mb" if cuda else "peak_rss_mb"
    for model in models:
        ours = next((r for r in runs if r["model"] == model and r["trainer"] == "ours" and r["precision"] == precision_ours and not r["gradient_checkpointing"] and r["status"] == "ok"), None)
        base = next((r for r in runs if r["model"] == model and r["trainer"] == "hf-trainer" and r["status"] == "ok"), None)
        if ours and base:
            ratios.append({
                "model": model, "precision": precision_ours,
                "tokens_per_s": ours["real_tokens_per_s"] / base["real_tokens_per_s"],
                "memory": ours[memory_key] / base[memory_key] if ours.get(memory_key) and base.get(memory_key) else float("nan"),
            })

    import peft
    import transformers

    try:
        from importlib.metadata import version

        bnb_version = version("bitsandbytes")
    except Exception:  # noqa: BLE001 - not installed
        bnb_version = "not installed"
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, " + (torch.cuda.get_device_name() if cuda else "no GPU"),
        "device": device,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__, "bitsandbytes": bnb_version, "python": platform.python_version()},
        "mfu_formula": MFU_FORMULA,
        "peaks": {"measured_tflops": measured_tflops, "dtype": peak["dtype"], "gemm": peak, "nominal_bf16_tflops": nominal},
        "models": model_info,
        "dataset": dataset,
        "hyperparameters": hp,
        "warmup_steps_left_out": warmup,
        "runs": runs,
        "resume": resume,
        "ratios": ratios,
        "budget_s": args.budget_s,
        "wall_s": round(time.time() - began, 1),
    }
    (out / "gpu_lora.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / "gpu_lora.md").write_text(table)
    log(f"done in {results['wall_s']:.0f} s")
    print(table)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
