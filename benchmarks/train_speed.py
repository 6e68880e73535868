"""Training speed, model FLOPs utilisation and peak memory: our local trainer against a plain HF Trainer baseline.

Usage: python benchmarks/train_speed.py [--home DIR] [--datasets demo,mixed] [--steps 6] [--rounds 1] [--out FILE]

For each dataset it picks batch_size x (steps + 1) training examples, stores them as a dataset of their own (all in
the train split) and trains one epoch on them twice, each in its own process:

* ours: `start_job` (the real detached worker, `python -m model_customization.providers.local.worker`), LoRA r16 /
  alpha 32, batch 4, max_seq_length 512, one epoch, so exactly steps + 1 optimizer steps;
* baseline: `benchmarks/baseline_hf_trainer.py` on the same examples (rendered the same way), the same
  hyperparameters, every batch padded to 512 tokens.

Datasets: "demo" is the shipped OpsBot demo memory (short examples); "mixed" is every shared memory sample
(`../shared/fixtures/memory-samples`: Claude Code, ChatGPT, ShareGPT, OpenAI fine-tune files, trajectories) through
our importers, a realistic mix of short and long chats. The examples are taken at evenly spaced quantiles of the
token length of the examples that keep an assistant token within 512 tokens, so the small sample has the full
dataset's length mix.

The first optimizer step of each run is a warm-up; speed is real (non-padding) tokens over the wall time of the
remaining steps. MFU counts 4N FLOPs per real token (N = the base model's parameters, the tied embedding once as
the output layer; forward 2N + input gradients 2N; attention scores and LoRA's own small matrices not counted)
against the float32 matmul peak of this machine measured by `gemm_peak.py` with the same thread count (before and
after the runs; the higher counts). Peak memory is the RSS high-water mark of each training process (ru_maxrss from
wait4, so the parent's memory is not in it). With CUDA the baseline trains in bf16 and the peak is a bf16 matmul.

Ours and the baseline alternate (the order flips between datasets and rounds), so load from other users of the
machine hits both; compare ratios. Prints a Markdown table and writes all numbers as JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED_SAMPLES = HERE.parent.parent / "shared" / "fixtures" / "memory-samples"


def _wait_child(pid: int, timeout: float) -> tuple[int, float, float]:
    """Wait for our child process; (exit status, peak RSS in MB, CPU seconds). Kills it after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            os.killpg(pid, 9)
            done, status, usage = os.wait4(pid, 0)
            return -9, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
        time.sleep(0.2)


def _gemm_peak(device: str) -> dict:
    out = subprocess.run([sys.executable, str(HERE / "gemm_peak.py"), "--device", device], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _count_parameters(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for path in model_dir.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                shape = handle.get_slice(name).get_shape()
                count = 1
                for size in shape:
                    count *= size
                total += count
    return total


def _source_paths(name: str) -> list[Path]:
    if name == "demo":
        from model_customization.demo_data import demo_memory_paths

        return demo_memory_paths()
    if name == "mixed":
        if not SHARED_SAMPLES.is_dir():
            raise SystemExit(f"{SHARED_SAMPLES} not found: the mixed dataset needs the shared memory samples")
        return [SHARED_SAMPLES]
    return [Path(name)]  # any memory file or folder


def prepare_dataset(ws, tokenizer, name: str, count: int, max_length: int, work: Path) -> dict:
    """A dataset of `count` training examples at evenly spaced length quantiles, and the baseline's JSONL of it."""
    from model_customization.datasets.build import build_dataset, read_split
    from model_customization.datasets.examples import to_plain_chat
    from model_customization.providers.local.chat import tokenize_chat

    full = build_dataset(ws, _source_paths(name), name=f"bench-{name}-all", validation_fraction=0.0, test_fraction=0.0)
    rows = []
    for example in read_split(ws, full.dataset_id, "train"):
        tokens = tokenize_chat(tokenizer, to_plain_chat(example["messages"]), max_length)
        if tokens.trained_tokens:  # our trainer drops the others, so the baseline must not see them either
            rows.append((len(tokens.input_ids), example))
    if len(rows) < count:
        raise SystemExit(f"dataset {name} has only {len(rows)} usable examples, {count} needed")
    rows.sort(key=lambda r: r[0])
    picked = [rows[int((i + 0.5) * len(rows) / count)][1] for i in range(count)]
    source = work / f"{name}-picked.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in picked), encoding="utf-8")
    # Already curated: store the picked examples unchanged, all in train.
    bench = build_dataset(ws, [source], name=f"bench-{name}", validation_fraction=0.0, test_fraction=0.0, redact=False, near_duplicate_threshold=None)
    train = read_split(ws, bench.dataset_id, "train")
    if len(train) != count:
        raise SystemExit(f"the benchmark dataset for {name} has {len(train)} examples, expected {count}")
    plain = [to_plain_chat(e["messages"]) for e in train]
    baseline_data = work / f"{name}-baseline.jsonl"
    baseline_data.write_text("".join(json.dumps({"messages": m}) + "\n" for m in plain), encoding="utf-8")
    lengths = [len(tokenize_chat(tokenizer, m, max_length).input_ids) for m in plain]
    all_lengths = [min(n, max_length) for n, _ in rows]
    return {
        "name": name,
        "dataset_id": bench.dataset_id,
        "source_dataset_id": full.dataset_id,
        "source_examples": len(rows),
        "source_mean_tokens": round(sum(all_lengths) / len(all_lengths), 1),
        "examples": count,
        "real_tokens": sum(lengths),
        "mean_tokens": round(sum(lengths) / count, 1),
        "min_tokens": min(lengths),
        "max_tokens": max(lengths),
        "padding_share_at_max_length": round(1 - sum(lengths) / (count * max_length), 3),
        "baseline_data": str(baseline_data),
    }


def run_ours(ws, dataset: dict, hp: dict, timeout: float) -> dict:
    from model_customization.jobs.orchestrator import start_job

    load_before = os.getloadavg()[0]
    started = time.time()
    job_id = start_job(ws, dataset["dataset_id"], hyperparameters=hp)["job_id"]
    pid = ws.ledger.get_job(job_id)["worker_pid"]
    status, peak_mb, cpu_s = _wait_child(pid, timeout)
    job = ws.ledger.get_job(job_id)
    if job["status"] != "succeeded":
        raise SystemExit(f"our job {job_id} ended {job['status']}: {job['error']} (exit status {status})")
    steps = [m for m in ws.ledger.metrics(job_id) if m.get("tokens_per_second")]
    events = list(reversed(ws.ledger.events(job_id, 50)))
    # The clock of step 1 starts at the last event before it (the "training ... steps" line); its tokens are
    # estimated from its reported speed, the rest of the epoch's tokens are exact.
    step0 = max(e["at"] for e in events if e["at"] <= steps[0]["at"])
    first_tokens = steps[0]["tokens_per_second"] * (steps[0]["at"] - step0)
    measured_s = steps[-1]["at"] - steps[0]["at"]
    return {
        "side": "ours",
        "job_id": job_id,
        "steps": len(steps),
        "warmup_step_s": round(steps[0]["at"] - step0, 2),
        "measured_s": round(measured_s, 2),
        "real_tokens_measured": round(dataset["real_tokens"] - first_tokens),
        "real_tokens_per_s": (dataset["real_tokens"] - first_tokens) / measured_s,
        "padded_tokens_per_s": None,  # ours pads only within a length-grouped batch and does not report it
        "epoch_real_tokens_per_s": dataset["real_tokens"] / (steps[-1]["at"] - step0),
        "peak_rss_mb": round(peak_mb, 1),
        "cpu_s": round(cpu_s, 1),
        "wall_s": round(time.time() - started, 1),
        "final_train_loss": steps[-1]["train_loss"],
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "events": [e["message"] for e in events],
    }


def run_baseline(model_dir: Path, dataset: dict, hp: dict, work: Path, timeout: float) -> dict:
    out = work / f"baseline-{dataset['name']}-{time.time_ns()}.json"
    load_before = os.getloadavg()[0]
    started = time.time()
    with (work / "baseline.log").open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable, str(HERE / "baseline_hf_trainer.py"), str(model_dir), dataset["baseline_data"], str(out),
                "--max-length", str(hp["max_seq_length"]), "--batch-size", str(hp["batch_size"]),
                "--learning-rate", str(hp["learning_rate"]), "--seed", str(hp["seed"]),
            ],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        status, peak_mb, cpu_s = _wait_child(process.pid, timeout)
        process.returncode = status  # reaped by wait4 above
    if status != 0 or not out.is_file():
        raise SystemExit(f"the baseline failed (exit status {status}); see {work / 'baseline.log'}")
    result = json.loads(out.read_text())
    times, real, padded = result["step_seconds"], result["step_real_tokens"], result["step_padded_tokens"]
    measured_s = sum(times[1:])
    return {
        "side": "baseline",
        "steps": result["steps"],
        "warmup_step_s": round(times[0], 2),
        "measured_s": round(measured_s, 2),
        "real_tokens_measured": sum(real[1:]),
        "real_tokens_per_s": sum(real[1:]) / measured_s,
        "padded_tokens_per_s": sum(padded[1:]) / measured_s,
        "epoch_real_tokens_per_s": sum(real) / sum(times),
        "epoch_real_tokens": sum(real),
        "peak_rss_mb": round(peak_mb, 1),
        "peak_gpu_mb": result["peak_gpu_mb"],
        "cpu_s": round(cpu_s, 1),
        "wall_s": round(time.time() - started, 1),
        "final_train_loss": result["train_loss"],
        "threads": result["threads"],
        "device": result["device"],
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _summary_rows(results: dict) -> list[str]:
    peak = results["gemm_peak_gflops"]
    flops_per_token = 4 * results["base_parameters"]
    lines = [
        "| dataset (examples, mean real tokens, padding at 512) | side | real tokens/s | step time | MFU | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for name, dataset in results["datasets"].items():
        runs = results["runs"][name]
        for side in ("ours", "baseline"):
            for run in (r for r in runs if r["side"] == side):
                mfu = flops_per_token * run["real_tokens_per_s"] / (peak * 1e9)
                extra = ""
                if run["padded_tokens_per_s"]:
                    extra = f" ({flops_per_token * run['padded_tokens_per_s'] / (peak * 1e9):.0%} counting padding)"
                lines.append(
                    f"| {name} ({dataset['examples']}, {dataset['mean_tokens']:.0f}, {dataset['padding_share_at_max_length']:.0%}) | {side} | "
                    f"{run['real_tokens_per_s']:.0f} | {run['measured_s'] / (run['steps'] - 1):.1f} s | {mfu:.1%}{extra} | {run['peak_rss_mb'] / 1024:.2f} GB |"
                )
        ours = [r for r in runs if r["side"] == "ours"]
        base = [r for r in runs if r["side"] == "baseline"]
        speed = sum(r["real_tokens_per_s"] for r in ours) / len(ours) / (sum(r["real_tokens_per_s"] for r in base) / len(base))
        memory = max(r["peak_rss_mb"] for r in ours) / max(r["peak_rss_mb"] for r in base)
        lines.append(f"| {name} | **ours / baseline** | **{speed:.2f}x** | | | **{memory:.2f}x** |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", help="data home to use (default: a temporary one; the model cache follows MODEL_CUSTOMIZATION_MODEL_CACHE)")
    parser.add_argument("--datasets", default="demo,mixed", help="comma-separated: demo, mixed, or memory paths")
    parser.add_argument("--steps", type=int, default=6, help="measured optimizer steps after the warm-up step")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each side per dataset")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per training run")
    parser.add_argument("--out", help="write all numbers here as JSON")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from transformers import AutoTokenizer

    from model_customization.providers.local.models import EMBEDDED_MODEL, ensure_base_model
    from model_customization.workspace import Workspace

    home = Path(args.home or tempfile.mkdtemp(prefix="train-speed-"))
    work = home / "train-speed"
    work.mkdir(parents=True, exist_ok=True)
    ws = Workspace.open(home)
    model_dir = ensure_base_model(ws.settings, EMBEDDED_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    hp = {
        "epochs": 1, "batch_size": args.batch_size, "learning_rate": args.learning_rate, "lora_rank": 16, "lora_alpha": 32,
        "lora_dropout": 0.0, "max_seq_length": args.max_length, "warmup_fraction": 0.1, "seed": 0,
    }
    count = args.batch_size * (args.steps + 1)
    names = [n for n in args.datasets.split(",") if n]
    datasets = {n: prepare_dataset(ws, tokenizer, n, count, args.max_length, work) for n in names}
    for d in datasets.values():
        print(f"dataset {d['name']}: {json.dumps({k: v for k, v in d.items() if k != 'baseline_data'})}", flush=True)

    started = time.time()
    gemm = [_gemm_peak(device)]
    print(f"gemm peak: {json.dumps(gemm[0])}", flush=True)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    flip = False
    for _ in range(args.rounds):
        for name in names:
            for side in (("baseline", "ours") if flip else ("ours", "baseline")):
                if side == "ours":
                    run = run_ours(ws, datasets[name], hp, args.timeout)
                else:
                    run = run_baseline(model_dir, datasets[name], hp, work, args.timeout)
                runs[name].append(run)
                print(f"{name} {side}: {json.dumps({k: v for k, v in run.items() if k != 'events'})}", flush=True)
            flip = not flip
    gemm.append(_gemm_peak(device))
    print(f"gemm peak: {json.dumps(gemm[1])}", flush=True)

    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, " + (torch.cuda.get_device_name() if device == "cuda" else "no GPU"),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "base_parameters": _count_parameters(model_dir),
        "hyperparameters": hp,
        "gemm": gemm,
        "gemm_peak_gflops": max(g["peak_gflops"] for g in gemm),
        "datasets": datasets,
        "runs": runs,
        "benchmark_wall_s": round(time.time() - started, 1),
    }
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    print("\n".join(_summary_rows(results)))
    print(f"GEMM peak {results['gemm_peak_gflops']} GFLOP/s ({device}, {gemm[0]['dtype']}, {gemm[0]['threads']} threads); "
          f"N = {results['base_parameters']:,}; runs took {results['benchmark_wall_s']:.0f} s")


if __name__ == "__main__":
    main()
