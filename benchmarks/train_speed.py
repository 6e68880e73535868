"""Training speed, model FLOPs utilisation and peak memory: our local trainer against a plain HF Trainer baseline.

Usage: python benchmarks/train_speed.py [--home DIR] [--datasets demo,mixed] [--steps 6] [--rounds 1]
       [--sides ours,baseline,ours-micro4,ours-tcmalloc,baseline-tcmalloc] [--out FILE]

For each dataset it picks batch_size x (steps + 1) training examples, stores them as a dataset of their own (all in
the train split) and trains one epoch on them with each side, each run in its own process:

* ours: `start_job` (the real detached worker, `python -m model_customization.providers.local.worker`), LoRA r16 /
  alpha 32 on q/k/v/o/gate/up/down, batch 4, max_seq_length 512, one epoch, so exactly steps + 1 optimizer steps,
  the trainer's defaults otherwise (on CPU: one example per forward pass, gradients summed over the batch);
* ours-micro4: the same job with micro_batch_size 4 (the whole batch in one forward pass, padded to its longest
  example);
* ours-tcmalloc, baseline-tcmalloc: the same runs with tcmalloc preloaded (LD_PRELOAD) instead of glibc malloc;
* baseline: `benchmarks/baseline_hf_trainer.py` on the same examples rendered the same way, the same
  hyperparameters, every batch padded to 512 tokens.

Datasets: "demo" is the shipped OpsBot demo memory (short examples); "mixed" is every shared memory sample
(`../shared/fixtures/memory-samples`: Claude Code, ChatGPT, ShareGPT, OpenAI fine-tune files, trajectories) through
our importers, a realistic mix of short and long chats; a path builds from that memory instead. The examples are
taken at evenly spaced quantiles of the token length of the examples that keep a trained token within 512 tokens,
so the small sample has the whole dataset's length mix.

The first optimizer step of each run is a warm-up; speed is real (non-padding) tokens of the remaining steps over
their wall time (ours: the ledger's step timestamps, the first step's tokens estimated from its reported speed; the
baseline: a callback's times and the collator's token counts). Other people's work on a shared machine stretches
wall time, so each run also gives its CPU time over the same steps (ours: the worker's /proc CPU time sampled when
each step's metric row appears; the baseline: process_time in the callback): real tokens per CPU-second times the
thread count is near what the wall-clock speed would be with the cores to ourselves while the load is moderate
(under heavy load the math library's threads spin waiting for each other and burn CPU time too). A run in which a
measured step went at under half the run's median pace was disturbed by such load and is repeated (--retries).

MFU counts 4N FLOPs per real token (N = the base model's parameters, the tied embedding once as the output layer;
forward 2N + input gradients 2N; attention scores and LoRA's own small matrices are not counted) against the
float32 matmul peak measured by `gemm_peak.py` with the same thread count, before and after the runs (the higher
counts), on the wall clock and per CPU-second alike. Peak memory is the RSS high-water mark of each training
process (ru_maxrss from wait4, so nothing of the parent's is in it). With CUDA the baseline trains in bf16, ours
in whatever its trainer picks (bf16), and the peak is a bf16 matmul; CPU-time figures then mean nothing.

Sides alternate (who goes first flips between datasets and rounds), so drifting load hits all of them; compare
ratios. Prints a Markdown table and writes every number as JSON (--out).
"""

from __future__ import annotations

import argparse
import ctypes.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED_SAMPLES = HERE.parent.parent / "shared" / "fixtures" / "memory-samples"


def _wait_child(pid: int, timeout: float, on_tick=None) -> tuple[int, float, float]:
    """Wait for our child process; (exit status, peak RSS in MB, CPU seconds). Kills it after `timeout` seconds.
    `on_tick` is called about 20 times a second while it runs."""
    deadline = time.monotonic() + timeout
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            os.killpg(pid, 9)
            done, status, usage = os.wait4(pid, 0)
            return -9, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
        if on_tick:
            on_tick()
        time.sleep(0.05)


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) of a running process, from /proc (10 ms resolution)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        if any(label != -100 for label in tokens.labels[1:]):  # our trainer skips the others: the baseline must too
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


@contextmanager
def _environment(values: dict[str, str]):
    """Extra environment variables for the processes started inside (start_job's worker copies os.environ)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_ours(ws, dataset: dict, hp: dict, timeout: float, side: str = "ours", env: dict | None = None) -> dict:
    from model_customization.jobs.orchestrator import start_job

    load_before = os.getloadavg()[0]
    started = time.time()
    with _environment(env or {}):
        job_id = start_job(ws, dataset["dataset_id"], hyperparameters=hp)["job_id"]
    pid = ws.store.jobs.get(job_id)["worker_pid"]
    # The worker's CPU time when each step's metric row appears (polled: within ~50 ms of the step's end).
    cpu_at_step: dict[int, float] = {}

    def sample() -> None:
        rows = len(ws.store.jobs.metrics(job_id))
        if rows and rows not in cpu_at_step:
            cpu = _cpu_seconds(pid)
            if cpu is not None:
                cpu_at_step[rows] = cpu

    status, peak_mb, cpu_s = _wait_child(pid, timeout, sample)
    job = ws.store.jobs.get(job_id)
    if job["status"] != "succeeded":
        said = "\n".join(f"  {e['message']}" for e in ws.store.jobs.events(job_id, 12))
        raise SystemExit(f"our job {job_id} ended {job['status']}: {job['error']} (exit status {status}); its last events:\n{said}")
    steps = [m for m in ws.store.jobs.metrics(job_id) if m.get("tokens_per_second")]
    events = list(reversed(ws.store.jobs.events(job_id, 50)))
    # The clock of step 1 starts at the last event before it (the "training ... steps" line); its tokens are
    # estimated from its reported speed, the rest of the epoch's tokens are exact.
    step0 = max(e["at"] for e in events if e["at"] <= steps[0]["at"])
    first_tokens = steps[0]["tokens_per_second"] * (steps[0]["at"] - step0)
    measured_s = steps[-1]["at"] - steps[0]["at"]
    measured_cpu_s = cpu_at_step[len(steps)] - cpu_at_step[1] if 1 in cpu_at_step and len(steps) in cpu_at_step else None
    return {
        "side": side,
        "job_id": job_id,
        "steps": len(steps),
        "warmup_step_s": round(steps[0]["at"] - step0, 2),
        "measured_s": round(measured_s, 2),
        "real_tokens_measured": round(dataset["real_tokens"] - first_tokens),
        "measured_cpu_s": measured_cpu_s and round(measured_cpu_s, 2),
        "real_tokens_per_s": (dataset["real_tokens"] - first_tokens) / measured_s,
        "real_tokens_per_cpu_s": measured_cpu_s and (dataset["real_tokens"] - first_tokens) / measured_cpu_s,
        "padded_tokens_per_s": None,  # ours pads only within a length-grouped batch and does not report it
        "epoch_real_tokens_per_s": dataset["real_tokens"] / (steps[-1]["at"] - step0),
        "peak_rss_mb": round(peak_mb, 1),
        "cpu_s": round(cpu_s, 1),
        "wall_s": round(time.time() - started, 1),
        "final_train_loss": steps[-1]["train_loss"],
        "step_tokens_per_second": [round(m["tokens_per_second"], 1) for m in steps],
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "events": [e["message"] for e in events],
    }


def run_baseline(model_dir: Path, dataset: dict, hp: dict, work: Path, timeout: float, side: str = "baseline", env: dict | None = None) -> dict:
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
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})},
        )
        status, peak_mb, cpu_s = _wait_child(process.pid, timeout)
        process.returncode = status  # reaped by wait4 above
    if status != 0 or not out.is_file():
        raise SystemExit(f"the baseline failed (exit status {status}); see {work / 'baseline.log'}")
    result = json.loads(out.read_text())
    times, real, padded = result["step_seconds"], result["step_real_tokens"], result["step_padded_tokens"]
    measured_s = sum(times[1:])
    measured_cpu_s = sum(result["step_cpu_seconds"][1:])
    return {
        "side": side,
        "steps": result["steps"],
        "warmup_step_s": round(times[0], 2),
        "measured_s": round(measured_s, 2),
        "real_tokens_measured": sum(real[1:]),
        "measured_cpu_s": round(measured_cpu_s, 2),
        "real_tokens_per_s": sum(real[1:]) / measured_s,
        "real_tokens_per_cpu_s": sum(real[1:]) / measured_cpu_s,
        "padded_tokens_per_s": sum(padded[1:]) / measured_s,
        "padded_tokens_per_cpu_s": sum(padded[1:]) / measured_cpu_s,
        "epoch_real_tokens_per_s": sum(real) / sum(times),
        "epoch_real_tokens": sum(real),
        "peak_rss_mb": round(peak_mb, 1),
        "peak_gpu_mb": result["peak_gpu_mb"],
        "cpu_s": round(cpu_s, 1),
        "wall_s": round(time.time() - started, 1),
        "final_train_loss": result["train_loss"],
        "step_seconds": times,
        "threads": result["threads"],
        "device": result["device"],
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _disturbed(run: dict) -> bool:
    """True when one measured step ran at under half the run's typical pace: someone else took the cores.
    The baseline's steps all have the same shape, so their times should match; ours report their own speed."""
    if run["side"].startswith("baseline"):
        times = sorted(run["step_seconds"][1:])
        return times[-1] > 2 * times[len(times) // 2]
    speeds = sorted(run["step_tokens_per_second"][1:])
    return speeds[0] < 0.5 * speeds[len(speeds) // 2]


TCMALLOC = "libtcmalloc_minimal.so.4"  # Debian/Ubuntu: apt-get install libtcmalloc-minimal4

# side: (trainer, hyperparameter overrides, extra environment)
SIDES = {
    "ours": ("ours", {}, {}),
    # Four examples per forward pass, padded to the longest of them (the trainer's CPU default before
    # micro_batch_size; one per pass now): the same gradient, a different speed and memory.
    "ours-micro4": ("ours", {"micro_batch_size": 4}, {}),
    # glibc malloc keeps freed activation memory (its heap fragments as the shapes vary from pass to pass);
    # another allocator in the same process shows how much of the peak that is.
    "ours-tcmalloc": ("ours", {}, {"LD_PRELOAD": TCMALLOC}),
    "baseline": ("baseline", {}, {}),
    "baseline-tcmalloc": ("baseline", {}, {"LD_PRELOAD": TCMALLOC}),
}


def _summary_rows(results: dict) -> list[str]:
    """The Markdown table: speed on the wall clock and on CPU time, MFU on both, peak RSS, ratios to the baseline."""
    threads = results["torch_threads"]
    wall_peak, cpu_peak = results["gemm_peak_gflops"], results["gemm_cpu_peak_gflops"]
    flops_per_token = 4 * results["base_parameters"]
    max_length = results["hyperparameters"]["max_seq_length"]
    lines = [
        f"| dataset (examples, mean real tokens, padding at {max_length}) | side | real tokens/s, wall | real tokens/s, CPU time | s per step | MFU, wall | MFU, CPU time | peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cpu_rate(run: dict, key: str = "real_tokens_per_cpu_s") -> float | None:
        return run[key] * threads if run.get(key) else None

    for name, dataset in results["datasets"].items():
        runs = results["runs"][name]
        sides = [s for s in results["sides"] if any(r["side"] == s for r in runs)]
        for side in sides:
            for run in (r for r in runs if r["side"] == side):
                wall_mfu = f"{flops_per_token * run['real_tokens_per_s'] / (wall_peak * 1e9):.1%}"
                cpu = cpu_rate(run)
                cpu_mfu = f"{flops_per_token * cpu / (cpu_peak * 1e9):.1%}" if cpu and cpu_peak else "-"
                if run.get("padded_tokens_per_cpu_s") and cpu_peak:
                    cpu_mfu += f" ({flops_per_token * cpu_rate(run, 'padded_tokens_per_cpu_s') / (cpu_peak * 1e9):.0%} counting padding)"
                lines.append(
                    f"| {name} ({dataset['examples']}, {dataset['mean_tokens']:.0f}, {dataset['padding_share_at_max_length']:.0%}) | {side} | "
                    f"{run['real_tokens_per_s']:.0f} | {f'{cpu:.0f}' if cpu else '-'} | {run['measured_s'] / (run['steps'] - 1):.1f} | "
                    f"{wall_mfu} | {cpu_mfu} | {run['peak_rss_mb'] / 1024:.2f} GB |"
                )

        def mean(side: str, key: str) -> float | None:
            values = [r.get(key) for r in runs if r["side"] == side]
            return sum(values) / len(values) if values and all(values) else None

        pairs = [(side, "baseline") for side in sides if side != "baseline"]
        if "ours-tcmalloc" in sides and "baseline-tcmalloc" in sides:
            pairs.append(("ours-tcmalloc", "baseline-tcmalloc"))
        for side, reference in pairs:
            wall = mean(side, "real_tokens_per_s") / mean(reference, "real_tokens_per_s")
            ours_cpu, base_cpu = mean(side, "real_tokens_per_cpu_s"), mean(reference, "real_tokens_per_cpu_s")
            cpu = f"**{ours_cpu / base_cpu:.2f}x**" if ours_cpu and base_cpu else "-"
            memory = max(r["peak_rss_mb"] for r in runs if r["side"] == side) / max(r["peak_rss_mb"] for r in runs if r["side"] == reference)
            lines.append(f"| {name} | **{side} / {reference}** | **{wall:.2f}x** | {cpu} | | | | **{memory:.2f}x** |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", help="data home to use (default: a temporary one; the model cache follows MODEL_CUSTOMIZATION_MODEL_CACHE)")
    parser.add_argument("--datasets", default="demo,mixed", help="comma-separated: demo, mixed, or memory paths")
    parser.add_argument("--steps", type=int, default=6, help="measured optimizer steps after the warm-up step")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each side per dataset")
    parser.add_argument("--sides", default="ours,baseline,ours-micro4", help=f"comma-separated, from: {', '.join(SIDES)}")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per training run")
    parser.add_argument("--retries", type=int, default=2, help="times a disturbed run (one step far slower than the rest) is repeated")
    parser.add_argument("--out", help="write all numbers here as JSON")
    args = parser.parse_args()

    sides = [x for x in args.sides.split(",") if x]
    unknown = [x for x in sides if x not in SIDES]
    if unknown or "baseline" not in sides:
        raise SystemExit(f"--sides: unknown {unknown}; choose from {', '.join(SIDES)}, including baseline")
    if any("tcmalloc" in x for x in sides) and not ctypes.util.find_library("tcmalloc_minimal"):
        # A preload that is not found is skipped with a warning only: the run would measure glibc malloc.
        raise SystemExit("the tcmalloc sides need libtcmalloc_minimal.so.4 (apt-get install libtcmalloc-minimal4)")
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
    for round_index in range(args.rounds):
        for dataset_index, name in enumerate(names):
            # Alternate who goes first, so slow drift in the machine's load favours neither side.
            order = sides if (round_index + dataset_index) % 2 == 0 else sides[::-1]
            for side in order:
                trainer, overrides, env = SIDES[side]
                disturbed = []
                while True:
                    if trainer == "baseline":
                        run = run_baseline(model_dir, datasets[name], {**hp, **overrides}, work, args.timeout, side, env)
                    else:
                        run = run_ours(ws, datasets[name], {**hp, **overrides}, args.timeout, side, env)
                    if not _disturbed(run) or len(disturbed) == args.retries:
                        break
                    print(f"{name} {side}: a step took over twice its share of time (other load?); running it again", flush=True)
                    disturbed.append({k: v for k, v in run.items() if k != "events"})
                run["disturbed_attempts"] = disturbed
                runs[name].append(run)
                print(f"{name} {side}: {json.dumps({k: v for k, v in run.items() if k != 'events'})}", flush=True)
    gemm.append(_gemm_peak(device))
    print(f"gemm peak: {json.dumps(gemm[1])}", flush=True)

    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, " + (torch.cuda.get_device_name() if device == "cuda" else "no GPU"),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "base_parameters": _count_parameters(model_dir),
        "hyperparameters": hp,
        "sides": sides,
        "gemm": gemm,
        "gemm_peak_gflops": max(g["peak_gflops"] for g in gemm),
        "gemm_cpu_peak_gflops": max((g["cpu_peak_gflops"] or 0) for g in gemm) or None,
        "datasets": datasets,
        "runs": runs,
        "benchmark_wall_s": round(time.time() - started, 1),
    }
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    print("\n".join(_summary_rows(results)))
    print(f"GEMM peak {results['gemm_peak_gflops']} GFLOP/s wall, {results['gemm_cpu_peak_gflops']} per CPU-second x threads ({device}, {gemm[0]['dtype']}, {gemm[0]['threads']} threads); "
          f"N = {results['base_parameters']:,}; runs took {results['benchmark_wall_s']:.0f} s")


if __name__ == "__main__":
    main()
