"""Chat completions on /v1 under concurrency: batched answers against the same requests sent one at a time.

One server (`model-customization serve --transport streamable-http` on 127.0.0.1, a fresh data home) answers with
the embedded model. After one unrecorded warm-up request (the model loads), the same --requests requests (distinct
prompts, temperature 0, max_tokens --max-tokens) are sent:

  - one at a time: each sent when the previous one was answered (what a server without batching does at best);
  - at concurrency 1, 8 and 32 (--levels): that many requests in flight at once, a new one sent as one is answered.

For each run: requests per second, completion tokens per second (from each answer's usage), and the p50 / p95
latency of a request (sent to answered). The client is the `openai` SDK, one thread per request in flight.
Every answer at temperature 0 is also compared with the one-at-a-time answer to the same prompt (batching must not
change what greedy decoding says, beyond float rounding in padded batches): the count of differing answers is shown.

--torch-threads N starts the server with OMP_NUM_THREADS=N (torch's intra-op threads; default: torch's choice).

    python benchmarks/v1_chat_concurrency.py [--requests 32] [--max-tokens 32] [--levels 1,8,32] [--torch-threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOPICS = ["rivers", "volcanoes", "bread", "chess", "owls", "glaciers", "violins", "comets", "tea", "bridges", "deserts", "bees",
          "lighthouses", "maps", "tides", "clocks", "coral", "kites", "salt", "trains", "moss", "opera", "wolves", "paper",
          "storms", "honey", "caves", "sails", "ink", "frost", "lanterns", "orchards"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def run(client, prompts: list[str], max_tokens: int, in_flight: int) -> dict:
    def one(prompt: str) -> tuple[float, int, str]:
        started = time.perf_counter()
        answer = client.chat.completions.create(
            model="SmolLM2-135M-Instruct", messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0
        )
        return time.perf_counter() - started, answer.usage.completion_tokens, answer.choices[0].message.content

    started = time.perf_counter()
    if in_flight == 0:  # one at a time
        results = [one(p) for p in prompts]
    else:
        with ThreadPoolExecutor(max_workers=in_flight) as pool:
            results = list(pool.map(one, prompts))
    wall = time.perf_counter() - started
    latencies = [r[0] for r in results]
    tokens = sum(r[1] for r in results)
    return {
        "requests": len(prompts), "wall_s": round(wall, 2), "requests_per_s": round(len(prompts) / wall, 2), "tokens_per_s": round(tokens / wall, 1),
        "p50_s": round(statistics.median(latencies), 2), "p95_s": round(_percentile(latencies, 0.95), 2), "answers": [r[2] for r in results],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--torch-threads", type=int, default=None, help="OMP_NUM_THREADS for the server (torch's intra-op threads)")
    args = parser.parse_args()
    import httpx2
    from openai import OpenAI

    prompts = [f"Write one sentence about {TOPICS[i % len(TOPICS)]}." + (f" (#{i})" if i >= len(TOPICS) else "") for i in range(args.requests)]
    home = Path(tempfile.mkdtemp(prefix="v1-bench-"))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    if args.torch_threads:
        env["OMP_NUM_THREADS"] = str(args.torch_threads)
    server = subprocess.Popen(
        [sys.executable, "-m", "model_customization", "serve", "--transport", "streamable-http", "--port", str(port), "--home", str(home)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        http = httpx2.Client(timeout=600, limits=httpx2.Limits(max_connections=64, max_keepalive_connections=64))
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="local", http_client=http, max_retries=0)
        run(client, prompts[:1], args.max_tokens, 0)  # warm-up: the model loads
        rows = {"one at a time": run(client, prompts, args.max_tokens, 0)}
        for level in (int(v) for v in args.levels.split(",")):
            rows[f"concurrency {level}"] = run(client, prompts, args.max_tokens, level)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
    reference = rows["one at a time"]["answers"]
    threads = f"OMP_NUM_THREADS={args.torch_threads}" if args.torch_threads else "torch's default threads"
    print(f"{args.requests} requests, max_tokens {args.max_tokens}, temperature 0; machine: {os.cpu_count()} CPUs; server with {threads}")
    print("| run | wall s | requests/s | completion tokens/s | p50 latency s | p95 latency s | answers differing from one-at-a-time |")
    print("|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        differing = sum(1 for a, b in zip(row["answers"], reference, strict=True) if a != b)
        print(f"| {name} | {row['wall_s']} | {row['requests_per_s']} | {row['tokens_per_s']} | {row['p50_s']} | {row['p95_s']} | {differing} |")
    if args.json:
        Path(args.json).write_text(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "answers"} for k, v in rows.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
