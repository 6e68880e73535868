"""Measured matrix-multiply peak of this machine: the denominator of model FLOPs utilisation (MFU).

Usage: python benchmarks/gemm_peak.py [--device cpu|cuda] [--dtype float32|bfloat16] [--size N] [--seconds S]

Multiplies two random N x N matrices with torch.matmul for about S seconds, in the thread count torch uses by
default (the same as a training process started the same way), and prints one JSON line: the best and median
GFLOP/s over the timed calls (2 N^3 FLOPs each). The best is the peak: on a shared machine a slower call means
someone else had a core. On CPU it also gives the rate per CPU-second of the process times the thread count
(`cpu_peak_gflops`): what the wall-clock rate would be if the threads had the cores to themselves, which stays
near the idle machine's figure while others load the machine. Defaults: float32 on CPU (N=2048), bfloat16 on CUDA
(N=8192).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time


def measure(device: str = "cpu", dtype: str | None = None, size: int | None = None, seconds: float = 5.0) -> dict:
    import torch

    dtype = dtype or ("bfloat16" if device == "cuda" else "float32")
    size = size or (8192 if device == "cuda" else 2048)
    torch_dtype = getattr(torch, dtype)
    a = torch.randn(size, size, device=device, dtype=torch_dtype)
    b = torch.randn(size, size, device=device, dtype=torch_dtype)
    out = torch.empty(size, size, device=device, dtype=torch_dtype)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    # Warm-up: thread pools, caches, CUDA kernels chosen.
    for _ in range(3):
        torch.matmul(a, b, out=out)
    sync()
    # On CUDA one call is far below the timer's resolution: time groups of calls.
    group = 20 if device == "cuda" else 1
    rates, cpu_rates = [], []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates) < 3:
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(group):
            torch.matmul(a, b, out=out)
        sync()
        flops = group * 2 * size**3
        rates.append(flops / (time.perf_counter() - started) / 1e9)
        cpu_rates.append(flops * torch.get_num_threads() / max(time.process_time() - cpu_started, 1e-9) / 1e9)
    return {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
        + (f", {torch.cuda.get_device_name()}" if device == "cuda" else ""),
        "device": device,
        "dtype": dtype,
        "size": size,
        "threads": torch.get_num_threads(),
        "calls": len(rates) * group,
        "peak_gflops": round(max(rates), 1),
        "median_gflops": round(statistics.median(rates), 1),
        "cpu_peak_gflops": None if device == "cuda" else round(max(cpu_rates), 1),
        "load_average": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--size", type=int)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(measure(args.device, args.dtype, args.size, args.seconds)))


if __name__ == "__main__":
    main()
