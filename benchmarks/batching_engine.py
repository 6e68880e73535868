"""The batching engine alone (no HTTP): N requests submitted at once to the embedded model's engine, for N in
--batches, at each torch thread count in --threads; wall time and completion tokens per second.

    PYTHONPATH=src python benchmarks/batching_engine.py [--threads 2,1] [--batches 1,8,32] [--max-tokens 16] [--home DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import wait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="2,1")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--home", default=None)
    args = parser.parse_args()
    import torch

    from model_customization.providers.local.batching import Generation, engine_for, prompt_token_ids
    from model_customization.workspace import Workspace

    ws = Workspace.open(args.home or tempfile.mkdtemp(prefix="engine-bench-"))
    engine, _ = engine_for(ws, "SmolLM2-135M-Instruct")
    engine.submit(Generation(prompt_token_ids(engine, [{"role": "user", "content": "Hi"}]), 2)).result()  # warm-up
    print("| torch threads | requests at once | wall s | completion tokens/s |\n|---|---|---|---|")
    for threads in (int(v) for v in args.threads.split(",")):
        torch.set_num_threads(threads)
        for size in (int(v) for v in args.batches.split(",")):
            requests = [Generation(prompt_token_ids(engine, [{"role": "user", "content": f"Write one sentence about topic {i}."}]), args.max_tokens) for i in range(size)]
            started = time.perf_counter()
            futures = [engine.submit(r) for r in requests]
            wait(futures)
            wall = time.perf_counter() - started
            tokens = sum(f.result()["completion_tokens"] for f in futures)
            print(f"| {threads} | {size} | {wall:.2f} | {tokens / wall:.1f} |")


if __name__ == "__main__":
    main()
