"""Evaluation throughput against a slow endpoint: wall time of `evaluate` against the ideal of perfect overlap.

A separate process serves an OpenAI-compatible /v1/chat/completions that answers every request after a fixed delay
(100 ms by default), like a remote model whose latency dominates. The evaluation calls it through the real path:
the chat router, the OpenAI SDK, our retries, rate-limit gate and ledger writes. Ideal wall time is
calls / concurrency x delay; the goal is a wall time within 1.25x of it.

    python benchmarks/eval_concurrency.py [--cases 250] [--concurrency 16] [--delay 0.1] [--repeats 3]

evaluate compares two or more models, so each case is asked of two model names served by the same endpoint:
--cases 250 makes the issue's 500 calls (ideal 500 / 16 x 0.1 s = 3.125 s); --cases 500 makes 1000.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SERVER = textwrap.dedent(
    """
    import json, socket, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    DELAY = float(sys.argv[2])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real API serves

        def setup(self):
            super().setup()
            # Headers and body go out in separate writes; without this, Nagle's algorithm and delayed ACKs add
            # ~40 ms to every answer, a delay of this fake server rather than of the client being measured.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(DELAY)
            question = body["messages"][-1]["content"]
            reply = {
                "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Answer to " + question}}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
            }
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=250, help="Cases in the suite; each is asked of both models.")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--delay", type=float, default=0.1, help="Seconds the endpoint takes per answer.")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(args.delay)])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        os.environ["MODEL_CUSTOMIZATION_OPENAI_BASE_URL"] = f"http://127.0.0.1:{port}/v1"
        os.environ["OPENAI_API_KEY"] = "bench-key-not-secret"
        from model_customization.evaluation.runner import evaluate
        from model_customization.workspace import Workspace

        with tempfile.TemporaryDirectory() as home:
            suite = Path(home) / "suite.jsonl"
            suite.write_text(
                "".join(json.dumps({"messages": [{"role": "user", "content": f"Question {i}?"}], "reference": f"Answer to Question {i}?"}) + "\n" for i in range(args.cases)),
                encoding="utf-8",
            )
            ws = Workspace.open(Path(home) / "data")
            calls = 2 * args.cases
            ideal = calls / args.concurrency * args.delay
            print(f"{args.cases} cases x 2 models = {calls} calls, concurrency {args.concurrency}, {args.delay * 1000:.0f} ms per answer: ideal {ideal:.2f} s")
            walls = []
            for repeat in range(args.repeats):
                started = time.perf_counter()
                report = evaluate(ws, None, ["openai:bench-a", "openai:bench-b"], suite=suite, concurrency=args.concurrency, max_tokens=8)
                wall = time.perf_counter() - started
                walls.append(wall)
                assert report["summary"]["openai:bench-a"]["exact_match"] == 1.0, report["summary"]
                print(f"  run {repeat + 1}: {wall:.2f} s = {wall / ideal:.3f}x ideal (mean latency {report['summary']['openai:bench-a']['latency_seconds'] * 1000:.0f} ms)")
            best, median = min(walls), sorted(walls)[len(walls) // 2]
            print(f"best {best:.2f} s ({best / ideal:.3f}x), median {median:.2f} s ({median / ideal:.3f}x); goal <= 1.25x")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
